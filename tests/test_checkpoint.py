"""Runs that stop and resume (jaxsim.checkpoint with jaxsim.engine.run).

- A run with checkpoints, and a run resumed from any of its checkpoints, give the metrics
  and final state of an uninterrupted run bit for bit (SIR; COVID with interventions, whose
  state nests intervention states; a run with a ``before_chunk`` hook; a run that does not
  start at day 0).
- A resume with another model, population, run length, key, parameters or configuration
  is refused with one InputError line naming the folder and what differs; a fresh run
  does not overwrite an earlier run's checkpoints unless asked.
- Atomicity: a process SIGKILLed while a checkpoint is being written (deterministically
  just before orbax's commit, and at a random moment of a stream of large saves) leaves
  the previous checkpoint loadable, and the resumed run equals an uninterrupted one;
  a folder named like a checkpoint but never committed is never read.
- Agents split over two CPU devices come back split the same way, and resume equal.
- The covid_nyc scenario, killed with SIGKILL after its first checkpoint and resumed with
  ``--resume``, writes the uninterrupted run's metrics.csv byte for byte.
- Importing jaxsim (engine, checkpoint) does not import orbax.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxsim import engine
from jaxsim.checkpoint import Checkpoints, is_complete, resolve
from jaxsim.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def same(a: dict, b: dict) -> bool:
    return sorted(a) == sorted(b) and all(
        np.asarray(a[k]).dtype == np.asarray(b[k]).dtype and np.array_equal(a[k], b[k]) for k in a)


def same_tree(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        np.asarray(x).dtype == np.asarray(y).dtype and np.asarray(x).tobytes() == np.asarray(y).tobytes()
        for x, y in zip(la, lb))


def keep_only(folder: Path, day: int) -> None:
    """Remove the checkpoints after ``day`` (as if the run had been killed just after it)."""
    for path in folder.iterdir():
        if path.name.isdigit() and int(path.name) > day:
            shutil.rmtree(path)


# --------------------------------------------------------------------------- SIR
@pytest.fixture(scope="module")
def sir_run():
    from jaxsim import generators
    from jaxsim.models import sir

    n = 2000
    population = generators.population(n, {"contacts": generators.erdos_renyi(n, 8.0, seed=0)})
    world = sir.build_world(population)
    model = sir.sir_model()
    params = sir.default_params(initial_infected_share=0.02)
    state = model.init(jax.random.key(1), params, world)
    return model, world, params, state


def test_resume_equals_uninterrupted_sir(sir_run, tmp_path):
    model, world, params, state = sir_run
    key = jax.random.key(2)
    plain = engine.run(model, key, state, params, world, 12, progress=False)
    folder = tmp_path / "ckpt"
    with_checkpoints = engine.run(model, key, state, params, world, 12, progress=False,
                                  checkpoints=Checkpoints(folder, every=3))
    assert same(plain.metrics, with_checkpoints.metrics)
    assert Checkpoints(folder).days() == [6, 9]  # the last two kept; none after the last day
    assert with_checkpoints.checkpoint_seconds > 0
    for day in (9, 6):
        keep_only(folder, day)
        resumed = engine.run(model, key, state, params, world, 12, progress=False,
                             checkpoints=Checkpoints(folder), resume=True)
        assert resumed.resumed_from == day
        assert same(plain.metrics, resumed.metrics), day
        assert same_tree(plain.state, resumed.state), day
    # Resumed from day 6, the run wrote day 9 again, with its interval of 3 days.
    assert Checkpoints(folder).days() == [6, 9]


def test_resume_with_a_hook_and_a_later_first_day(sir_run, tmp_path):
    model, world, params, state = sir_run
    key = jax.random.key(5)
    days_seen = []

    def hook(t, s, w):
        days_seen.append(t)
        return w

    plain = engine.run(model, key, state, params, world, 11, start_day=4, progress=False)
    folder = tmp_path / "ckpt"
    first = engine.run(model, key, state, params, world, 11, start_day=4, progress=False, chunk_days=4,
                       before_chunk=hook, checkpoints=Checkpoints(folder, every=5))
    assert days_seen == [4, 8, 9, 12, 14]  # chunk ends at multiples of 4 and of 5 days
    assert same(plain.metrics, first.metrics)
    keep_only(folder, 9)
    days_seen.clear()
    resumed = engine.run(model, key, state, params, world, 11, start_day=4, progress=False, chunk_days=4,
                         before_chunk=hook, checkpoints=Checkpoints(folder), resume=True)
    assert days_seen == [9, 12, 14]
    assert same(plain.metrics, resumed.metrics)
    assert same_tree(plain.state, resumed.state)


# -------------------------------------------------------------------------- COVID
def test_resume_equals_uninterrupted_covid_with_interventions(tmp_path):
    from conftest import random_population

    from jaxsim import interventions as iv
    from jaxsim.models import covid

    population = random_population(600, seed=3)
    world = covid.build_world(population)
    params = covid.default_params(world, 3, initial_exposed_share=0.02, initial_infected_share=0.02,
                                  transmission_rate=3.0)
    params = params.replace(interventions=iv.combine(
        covid.testing(random_share=0.02, symptomatic_share=0.3, sensitivity=0.85, delay_days=2,
                      isolation_days=10, start=2),
        covid.vaccination(world, 10.0, priority=("65A", "50t64"), efficacy=0.8, protection_delay_days=5, start=1),
        covid.scale_contacts("community", 0.5, name="community_scale", schedule=covid.when_cases(4.0, 2.0)),
    ))
    model = covid.covid_model()
    state = model.init(jax.random.key(8), params, world)
    key = jax.random.key(1)
    # 16 days in chunks of 8, with or without checkpoints every 8 days: one compiled program.
    plain = engine.run(model, key, state, params, world, 16, progress=False)
    folder = tmp_path / "ckpt"
    engine.run(model, key, state, params, world, 16, progress=False, checkpoints=Checkpoints(folder, every=8))
    assert Checkpoints(folder).days() == [8]
    resumed = engine.run(model, key, state, params, world, 16, progress=False, checkpoints=Checkpoints(folder),
                         resume=True)
    assert resumed.resumed_from == 8
    assert same(plain.metrics, resumed.metrics)
    assert same_tree(plain.state, resumed.state)


# ------------------------------------------------------------------------ refusals
def test_resume_refused_on_mismatch(sir_run, tmp_path):
    from jaxsim import generators
    from jaxsim.models import sir

    model, world, params, state = sir_run
    key = jax.random.key(2)
    folder = tmp_path / "ckpt"
    engine.run(model, key, state, params, world, 10, progress=False,
               checkpoints=Checkpoints(folder, every=4, config={"seed": 2, "scenario": "test"}))

    def refused(match, *, model=model, key=key, state=state, params=params, world=world, days=10,
                config=None):
        checkpoints = Checkpoints(folder, config={"seed": 2, "scenario": "test"} if config is None else config)
        with pytest.raises(InputError, match=match) as caught:
            engine.run(model, key, state, params, world, days, progress=False, checkpoints=checkpoints,
                       resume=True)
        message = str(caught.value)
        assert "\n" not in message and str(folder) in message, message

    refused("number of days is 10, this run's is 12", days=12)
    refused("run key differs", key=jax.random.key(3))
    refused("parameter tau differs", params=params.replace(tau=params.tau * 2))
    refused("its seed is 2, this run's is 3", config={"seed": 3, "scenario": "test"})
    seir = sir.seir_model()
    refused('its model is "sir", this run\'s is "seir"', model=seir, state=seir.init(jax.random.key(1), params, world))
    small = sir.build_world(generators.population(1000, {"contacts": generators.erdos_renyi(1000, 8.0, seed=0)}))
    refused("number of agents is 2000, this run's is 1000", world=small,
            state=model.init(jax.random.key(1), params, small))
    # A model built the same way is the same model: accepted.
    resumed = engine.run(sir.sir_model(), key, state, params, world, 10, progress=False,
                         checkpoints=Checkpoints(folder, config={"seed": 2, "scenario": "test"}), resume=True)
    assert resumed.resumed_from == 8

    # Nothing to resume from; a fresh run over an earlier run's checkpoints.
    with pytest.raises(InputError, match="no complete checkpoint"):
        engine.run(model, key, state, params, world, 10, progress=False,
                   checkpoints=Checkpoints(tmp_path / "empty"), resume=True)
    with pytest.raises(InputError, match="already holds checkpoints"):
        engine.run(model, key, state, params, world, 10, progress=False, checkpoints=Checkpoints(folder, every=4))
    engine.run(model, key, state, params, world, 10, progress=False,
               checkpoints=Checkpoints(folder, every=3, overwrite=True))
    assert Checkpoints(folder).days() == [6, 9]
    with pytest.raises(InputError, match="no complete checkpoint"):
        resolve(tmp_path)
    assert resolve(folder) == folder


# ------------------------------------------------------------------------ atomicity
#: A toy model whose state is one large float array (a save takes a while), run from
#: the command line: ``python script.py FOLDER MODE DAYS EVERY`` with MODE ``plain``
#: (no checkpoints), ``run`` (checkpoints), ``resume``, or ``kill-at-commit:D`` (killed by
#: SIGKILL inside orbax's commit of day D, after its files are written and before the rename).
#: Writes ``FOLDER/<MODE>.npz`` with the metrics when it finishes.
SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import jax, jax.numpy as jnp, numpy as np
    from jaxsim import engine
    from jaxsim.checkpoint import Checkpoints

    folder, mode, days, every, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

    def drift(key, s, p, t, world):
        x = s["x"] + jax.random.uniform(key, s["x"].shape)
        return {"x": x, "n": s["n"] + 1}, {"total": x.sum(), "first": x[0]}

    model = engine.Model("toy", [drift])
    world = engine.World(num_agents=n)
    state = {"x": jnp.zeros(n, jnp.float32), "n": jnp.zeros((), jnp.int32)}
    params = {"unused": jnp.float32(1.0)}
    key = jax.random.key(11)
    if mode.startswith("kill-at-commit:"):
        from orbax.checkpoint._src.path import atomicity
        at = mode.split(":")[1]
        finalize = atomicity.AtomicRenameTemporaryPath.finalize
        async def killing_finalize(self):
            if self.get().name.startswith(at + "."):
                os.kill(os.getpid(), signal.SIGKILL)
            return await finalize(self)
        atomicity.AtomicRenameTemporaryPath.finalize = killing_finalize
    checkpoints = None if mode == "plain" else Checkpoints(folder + "/ckpt", every=every)
    result = engine.run(model, key, state, params, world, days, progress=False, checkpoints=checkpoints,
                        resume=mode == "resume")
    np.savez(f"{folder}/{mode.split(':')[0]}.npz", **result.metrics, resumed=result.resumed_from or -1)
''')


def toy(tmp_path: Path, mode: str, days: int, every: int, n: int, wait: bool = True):
    script = tmp_path / "toy.py"
    script.write_text(SCRIPT)
    command = [sys.executable, str(script), str(tmp_path), mode, str(days), str(every), str(n)]
    if not wait:
        return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_killed_while_committing_leaves_previous_checkpoint(tmp_path):
    killed = toy(tmp_path, "kill-at-commit:6", 10, 3, 1000)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    folder = tmp_path / "ckpt"
    # Day 6 was fully written but never committed: a temporary folder, never read.
    assert (folder / "6.orbax-checkpoint-tmp").is_dir() and not (folder / "6").exists()
    assert Checkpoints(folder).days() == [3]
    resumed = toy(tmp_path, "resume", 10, 3, 1000)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    plain = toy(tmp_path, "plain", 10, 3, 1000)
    assert plain.returncode == 0, plain.stderr[-2000:]
    got, want = np.load(tmp_path / "resume.npz"), np.load(tmp_path / "plain.npz")
    assert int(got["resumed"]) == 3
    assert same({k: got[k] for k in ("total", "first")}, {k: want[k] for k in ("total", "first")})
    assert Checkpoints(folder).days() == [6, 9] and not (folder / "6.orbax-checkpoint-tmp").exists()


def test_killed_at_a_random_moment_of_saving(tmp_path):
    folder = tmp_path / "ckpt"
    process = toy(tmp_path, "run", 30, 1, 2_000_000, wait=False)  # 8 MB a checkpoint, one a day
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            writing = [p for p in folder.glob("*.orbax-checkpoint-tmp")] if folder.is_dir() else []
            if writing and len(Checkpoints(folder).days()) >= 2:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    complete = Checkpoints(folder).days()
    assert len(complete) == 2 and complete[-1] < 30
    for name in os.listdir(folder):  # whatever was being written is not a checkpoint
        if not name.isdigit() and (folder / name).is_dir():
            assert not is_complete(folder / name)
    # Fewer days needed now: resume and compare with an uninterrupted run.
    resumed = toy(tmp_path, "resume", 30, 1, 2_000_000)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    plain = toy(tmp_path, "plain", 30, 1, 2_000_000)
    assert plain.returncode == 0, plain.stderr[-2000:]
    got, want = np.load(tmp_path / "resume.npz"), np.load(tmp_path / "plain.npz")
    assert int(got["resumed"]) == complete[-1]
    assert same({k: got[k] for k in ("total", "first")}, {k: want[k] for k in ("total", "first")})


def test_an_uncommitted_folder_is_never_read(sir_run, tmp_path):
    model, world, params, state = sir_run
    key = jax.random.key(2)
    folder = tmp_path / "ckpt"
    engine.run(model, key, state, params, world, 10, progress=False, checkpoints=Checkpoints(folder, every=3))
    assert Checkpoints(folder).days() == [6, 9]
    # A folder named like a later checkpoint, with orbax's files but no commit marker
    # (a copy of a folder still being written): not a checkpoint.
    shutil.copytree(folder / "9", folder / "12")
    for marker in (folder / "12").rglob("commit_success.txt"):
        marker.unlink()
    assert Checkpoints(folder).days() == [6, 9]
    resumed = engine.run(model, key, state, params, world, 10, progress=False, checkpoints=Checkpoints(folder),
                         resume=True)
    assert resumed.resumed_from == 9


# ------------------------------------------------------------------------ devices
SHARDED = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax, numpy as np
    from jaxsim import engine, generators, sharding
    from jaxsim.checkpoint import Checkpoints
    from jaxsim.models import sir

    folder, n = sys.argv[1], 4000
    world = sir.build_world(generators.population(n, {"contacts": generators.erdos_renyi(n, 8.0, seed=0)}))
    model, params = sir.sir_model(), sir.default_params(initial_infected_share=0.02)
    mesh = sharding.make_mesh(2)
    world = sharding.shard_world(world, mesh)
    state = sharding.shard_state(model.init(jax.random.key(1), params, world), mesh, world)
    params, key = sharding.replicate((params, jax.random.key(2)), mesh)
    plain = engine.run(model, key, state, params, world, 12, progress=False)
    engine.run(model, key, state, params, world, 12, progress=False, checkpoints=Checkpoints(folder, every=3))
    resumed = engine.run(model, key, state, params, world, 12, progress=False, checkpoints=Checkpoints(folder),
                         resume=True)
    same = all(np.array_equal(plain.metrics[k], resumed.metrics[k]) for k in plain.metrics)
    placed = all(a.sharding == b.sharding for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(resumed.state)))
    print("resumed", resumed.resumed_from, same, placed)
""")


def test_sharded_state_resumes_in_place(tmp_path):
    """Agents split over 2 CPU devices: the checkpoint's state comes back split the same
    way, and the resumed run equals the uninterrupted one."""
    out = subprocess.run([sys.executable, "-c", SHARDED, str(tmp_path / "ckpt")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "resumed 9 True True"


# ------------------------------------------------------------------------- import
def test_orbax_not_imported_with_jaxsim():
    code = ("import sys, jaxsim, jaxsim.engine, jaxsim.checkpoint; "
            "print(sorted(m for m in sys.modules if m.startswith('orbax')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -------------------------------------------------------------------------- scenario
#: Runs a program with ``Checkpoints.save`` followed by a pause (so that the test can kill
#: it between two checkpoints): ``python -c WRAPPER SECONDS PROGRAM ARGS...``.
WRAPPER = textwrap.dedent('''
    import runpy, sys, time
    from jaxsim import checkpoint
    save, pause = checkpoint.Checkpoints.save, float(sys.argv[1])
    def save_then_pause(self, *args, **kwargs):
        seconds = save(self, *args, **kwargs)
        time.sleep(pause)
        return seconds
    checkpoint.Checkpoints.save = save_then_pause
    sys.argv = sys.argv[2:]
    runpy.run_path(sys.argv[0], run_name="__main__")
''')

#: 1,000 agents of Astoria from a week with many cases (so that the run has infections).
COVID_ARGS = ["--agents", "1000", "--days", "12", "--start-week", "202102", "--transmission-rate", "3",
              "--no-progress"]


def scenario(*args, timeout=600):
    return subprocess.run([sys.executable, "scenarios/covid_nyc.py", *COVID_ARGS, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_covid_nyc_killed_and_resumed_writes_the_same_metrics(tmp_path):
    plain = scenario("--out", str(tmp_path / "plain"))
    assert plain.returncode == 0, plain.stderr[-3000:]

    out = tmp_path / "killed"
    folder = out / "checkpoints"
    process = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, "5", "scenarios/covid_nyc.py", *COVID_ARGS, "--checkpoint-every", "3",
         "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None and not Checkpoints(folder).days():
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-3000:]
    assert Checkpoints(folder).days() == [3]
    assert not (out / "metrics.csv").exists()

    # Other options: refused in one line before any work.
    refused = scenario("--out", str(out), "--resume", str(out), "--seed", "1")
    assert refused.returncode == 2
    assert refused.stderr.strip() == f"error: cannot resume from {folder}: its seed is 0, this run's is 1"

    resumed = scenario("--out", str(out), "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from day 3 of {folder}" in resumed.stdout
    assert (out / "metrics.csv").read_bytes() == (tmp_path / "plain" / "metrics.csv").read_bytes()
    info = json.loads((out / "run.json").read_text())
    assert info["checkpoints"]["resumed_from_day"] == 3 and info["checkpoints"]["saved_days"] == [6, 9]
    assert Checkpoints(folder).days() == [6, 9]
