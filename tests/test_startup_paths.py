"""The pieces of a fast start (issue 16): host arrays onto the device without a program per
shape, keys from a seed in one program, pytree dataclasses without flax, a plot worker
that draws what the command would have drawn, and a command that leaves without the
interpreter's teardown but with its atexit handlers run."""

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from jaxsim import plot_worker
from jaxsim.kernels import pytree
from jaxsim.sampling import keys_from_seed
from jaxsim.transfer import to_device_array, tree_to_device


class _Compiles:
    """Counts XLA compilations (cache hits in the persistent cache included) while open."""

    def __enter__(self):
        self.count = 0

        def listen(event, duration, **kwargs):
            if event == "/jax/core/compile/backend_compile_duration":
                self.count += 1

        self._listen = listen
        jax.monitoring.register_event_duration_secs_listener(listen)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listen)


@pytest.mark.parametrize("value, dtype", [
    (1.0, None), (3, None), (np.float64(2.0), None), (np.zeros(3), None), (np.zeros(3, np.int64), None),
    ([1.0, 2.0], None), ([[1, 2], [3, 4.5]], None), (np.array(2.0), None), (True, None),
    (0.5, jnp.float32), ([1, 2], jnp.int16), (np.arange(4), jnp.float32),
])
def test_to_device_array_is_jnp_asarray(value, dtype):
    expected = jnp.asarray(value, dtype)
    got = to_device_array(value, dtype)
    assert got.aval == expected.aval and got.weak_type == expected.weak_type
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_to_device_array_compiles_nothing():
    """jnp.asarray of a host array of a new shape compiles a program (JAX 0.10); ours does not."""
    fresh = np.arange(7 * 13, dtype=np.float32).reshape(7, 13)
    with _Compiles() as compiles:
        tree = tree_to_device({"a": fresh, "b": np.zeros((11, 3), np.int8), "c": 2.5})
    assert compiles.count == 0
    assert isinstance(tree["a"], jax.Array) and tree["b"].dtype == jnp.int8 and tree["c"].weak_type
    with _Compiles() as compiles:
        jnp.asarray(np.zeros((5, 17), np.float32))
    assert compiles.count == 1  # what the helper avoids (if JAX stops doing this, drop the helper)


def test_to_device_array_takes_what_jnp_asarray_takes():
    series = pd.Series([1.5, 2.5])
    np.testing.assert_array_equal(to_device_array(series), jnp.asarray(series))
    assert to_device_array(range(3)).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="None is not a valid value"):
        to_device_array(None)


def test_keys_from_seed_are_the_split_keys():
    for seed in (0, 7, 2**31 - 1, 2**31, 2**32 - 1, -1):
        a, b = keys_from_seed(seed)
        c, d = jax.random.split(jax.random.key(seed))
        np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(c))
        np.testing.assert_array_equal(jax.random.key_data(b), jax.random.key_data(d))
    assert len(keys_from_seed(3, 4)) == 4


@pytree.dataclass
class _State:
    x: jax.Array
    label: str = pytree.field(pytree_node=False, default="a")


def test_pytree_dataclass_contract():
    s = _State(jnp.arange(3.0))
    leaves, treedef = jax.tree.flatten(s)
    assert len(leaves) == 1 and "a" in str(treedef)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.x = 1
    t = s.replace(x=s.x + 1, label="b")
    assert t.label == "b" and s.label == "a"
    doubled = jax.jit(lambda state: state.replace(x=2 * state.x))(s)
    np.testing.assert_array_equal(doubled.x, [0.0, 2.0, 4.0])
    assert jax.grad(lambda state: jnp.sum(state.x ** 2))(s).x.tolist() == [0.0, 2.0, 4.0]
    # A user's flax.struct subclass of one of ours is a pytree with both classes' fields.
    from flax import struct

    @struct.dataclass
    class Extended(_State):
        y: jax.Array = 0.0

    e = Extended(jnp.ones(2), "c", jnp.zeros(2))
    assert len(jax.tree.leaves(e)) == 2 and e.replace(y=1.0).y == 1.0


def _figure(path, *, values):
    from jaxsim.outputs import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(np.asarray(values["y"]))
    ax.set_title("worker test")
    save_figure(fig, path)


def warm_up():
    """Called by a plot worker that imports this module, before its job (see below)."""
    mark = os.environ.get("JAXSIM_TEST_WARM_UP_MARK")
    if mark:
        Path(mark).write_text(f"warmed up in process {os.getpid()}")


def test_plot_worker_warms_up_then_draws_the_same_figure(tmp_path, monkeypatch):
    """A worker calls each module's warm_up() before its job; the COVID plot drawn by a
    warmed-up worker is the figure this process draws, byte for byte; warming up leaves
    no figure open."""
    from jaxsim.models.covid import plots
    from jaxsim.outputs import pyplot

    monkeypatch.setenv(plot_worker.ENV_VAR, "1")
    monkeypatch.setenv("JAXSIM_TEST_WARM_UP_MARK", str(tmp_path / "mark"))
    days = 21
    table = pd.DataFrame({
        "day": np.arange(days), "date": pd.date_range("2020-11-22", periods=days).strftime("%Y-%m-%d"),
        **{name: np.linspace(10, 100 + i, days) for i, name in enumerate(("susceptible", "exposed", "infected"))},
        "new_cases": np.arange(days, dtype=float) % 5,
    })
    observed = pd.DataFrame({"week_start_day": [0, 7, 14], "cases": [3.0, 6.0, 2.0]})
    kwargs = dict(title="t", observed_weekly=observed, ascertainment=0.25, stages=("susceptible", "exposed", "infected"))
    here, there = tmp_path / "here.png", tmp_path / "there.png"
    plots.plot_epidemic(table, here, **kwargs)
    with plot_worker.started(("jaxsim.models.covid.plots", "tests.test_startup_paths")) as worker:
        # The job is sent once the worker has warmed up (a job already waiting skips it).
        mark = tmp_path / "mark"
        for _ in range(600):
            if mark.exists() or worker.process.poll() is not None:
                break
            time.sleep(0.1)
        assert mark.read_text() == f"warmed up in process {worker.process.pid}"
        plot_worker.draw("jaxsim.models.covid.plots:plot_epidemic", table, there, **kwargs)
    assert there.read_bytes() == here.read_bytes()
    plots.warm_up()
    assert pyplot().get_fignums() == []


def _failing_figure(path):
    raise ValueError("no such column 'cases' in the table")


def test_plot_worker_draws_what_this_process_would(tmp_path, monkeypatch):
    monkeypatch.setenv(plot_worker.ENV_VAR, "1")
    table = pd.DataFrame({"y": np.sin(np.arange(30) / 4.0)})
    here, there = tmp_path / "here.png", tmp_path / "there.png"
    plot_worker.draw("tests.test_startup_paths:_figure", here, values=table)  # no worker: drawn here
    with plot_worker.started(("tests.test_startup_paths",)) as worker:
        assert worker is not None
        assert plot_worker.draw("tests.test_startup_paths:_figure", there, values=table) is None
        assert worker.process.returncode == 0
    assert there.read_bytes() == here.read_bytes()


def test_plot_worker_failure_raises_here_with_its_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv(plot_worker.ENV_VAR, "1")
    with plot_worker.started() as worker:
        with pytest.raises(plot_worker.PlotWorkerError, match="(?s)ValueError: no such column 'cases'.*"):
            plot_worker.draw("tests.test_startup_paths:_failing_figure", tmp_path / "x.png")
        assert worker.process.returncode == 1
    assert not (tmp_path / "x.png").exists()


def test_plot_worker_off_and_unused(tmp_path, monkeypatch):
    monkeypatch.setenv(plot_worker.ENV_VAR, "0")
    with plot_worker.started(("tests.test_startup_paths",)) as worker:
        assert worker is None
    monkeypatch.setenv(plot_worker.ENV_VAR, "1")
    with plot_worker.started() as worker:  # no job: the worker ends with the command
        process = worker.process
    assert process.returncode == 0
    with pytest.raises(ValueError, match="not 'module:function'"):
        plot_worker.resolve("no_colon")


def _python(*argv: str, **options) -> subprocess.CompletedProcess:
    """``python *argv`` in a fresh process that imports this checkout's jaxsim."""
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.getcwd()), **options)


def test_leave_runs_atexit_handlers_and_keeps_the_status():
    code = ("import atexit, sys; from jaxsim.cli import leave; "
            "atexit.register(lambda: print('atexit ran', flush=True)); "
            "print('output', end=''); sys.stderr.write('err'); leave(3)")
    done = _python("-c", code)
    assert done.returncode == 3
    assert done.stdout == "outputatexit ran\n" and done.stderr == "err"


def test_plotting_modules_import_without_jax():
    """The worker imports the figures' modules while the command imports JAX: they must not."""
    code = ("import sys; import jaxsim.plot_worker, jaxsim.models.covid.plots, jaxsim.outputs; "
            "print(sorted(m for m in ('jax', 'flax', 'jaxsim.models.covid.model') if m in sys.modules))")
    done = _python("-c", code, check=True)
    assert done.stdout.strip() == "[]"


def test_leave_returns_under_a_profiler(tmp_path):
    """``python -m cProfile -m jaxsim ...`` must still write its profile."""
    script = tmp_path / "script.py"
    script.write_text("from jaxsim.cli import leave\nleave(0)\nprint('returned')\n")
    profile = tmp_path / "out.prof"
    done = _python("-m", "cProfile", "-o", str(profile), str(script))
    assert done.returncode == 0 and "returned" in done.stdout and profile.stat().st_size > 0


def test_plot_worker_ends_at_once_when_the_command_is_interrupted(tmp_path, monkeypatch):
    """Ctrl-C while the worker draws: the worker is killed before the command removes its
    staged outputs (so it cannot write into a folder being removed)."""
    monkeypatch.setenv(plot_worker.ENV_VAR, "1")
    with plot_worker.started() as worker:
        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(worker.process, "communicate", interrupted)
        with pytest.raises(KeyboardInterrupt):
            plot_worker.draw("tests.test_startup_paths:_figure", tmp_path / "x.png", values={"y": [1, 2]})
        assert worker.process.returncode not in (None, 0)  # killed (-9 on POSIX)


def test_ctrl_c_while_loading_is_acted_on_after_it():
    """A Ctrl-C while JAX's native libraries load (cli.interrupts_deferred) is held back:
    the loading finishes, then the command says so in one line and exits 130."""
    code = ("import os, signal, time; from jaxsim import cli\n"
            "cli.install_interrupt_handler()\n"
            "def work(argv):\n"
            "    with cli.interrupts_deferred():\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "        time.sleep(0.2)\n"
            "        print('loaded', flush=True)\n"
            "    print('ran on', flush=True)\n"
            "    return 0\n"
            "cli.run_cli(work, [])\n")
    done = _python("-c", code)
    assert done.returncode == 130
    assert done.stdout == "loaded\n" and done.stderr == "interrupted; nothing written\n"


def test_leave_stops_idle_executor_threads():
    """A thread pool still alive at the end (as a library may leave one) does not hang the exit."""
    code = ("from concurrent.futures import ThreadPoolExecutor; from jaxsim.cli import leave\n"
            "pool = ThreadPoolExecutor(2); pool.submit(print, 'worked').result()\nleave(0)\n")
    done = _python("-c", code)
    assert done.returncode == 0 and done.stdout == "worked\n"


def test_covid_package_names_and_submodules():
    """The lazy package keeps what the eager one offered: names and submodules as attributes."""
    code = ("from jaxsim.models import covid\n"
            "print(all(hasattr(covid, m) for m in ('params', 'model', 'report', 'state', 'substeps', 'behaviour', "
            "'interventions')), covid.STAGE_NAMES[0], callable(covid.covid_model), 'plot_epidemic' in dir(covid))\n")
    done = _python("-c", code, check=True)
    assert done.stdout.split() == ["True", "susceptible", "True", "True"]


def test_plot_worker_wanted_with_more_than_one_usable_core(monkeypatch):
    monkeypatch.delenv(plot_worker.ENV_VAR, raising=False)
    if hasattr(os, "sched_getaffinity"):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
        assert not plot_worker.wanted()  # one core allowed, however many the machine has
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
        assert plot_worker.wanted()
    monkeypatch.setenv(plot_worker.ENV_VAR, "off")
    assert not plot_worker.wanted()
