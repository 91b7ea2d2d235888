"""Schelling's segregation model (jaxsim.models.schelling) and its grid kernels
(jaxsim.kernels.grid).

Compiled programs are shared: one ensemble program (80 x 80 grid, 42 days, thresholds 0.3
and 0.5, members as a ``vmap``) serves the science, the ensemble and the ``Sim`` tests; one
single-run program serves the member-equals-run checks; one ``value_and_grad`` program the
gradient and its finite differences. The runs on 1 and 2 devices happen in a subprocess
started with ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (this file run as
``python tests/test_model_schelling.py --devices OUT``), launched when the module starts so
that it compiles while the other tests run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

SCIENCE_SIDE = 80  # 6400 cells, ~5760 households at density 0.9
SCIENCE_DAYS = 42  # a multiple of 7: a Sim run compiles one 7-day chunk
REPLICATES = 2
THRESHOLDS = (0.3, 0.5)

GRAD_SHAPE = (41, 39)  # 1599 cells: 1600 agent slots, one of them padding
GRAD_DAYS = 14
GRAD_SEEDS = 4
GRAD_SOFTNESS = 0.05
GRAD_STEP = 0.05

DEVICE_SIDE = 36  # 1296 cells = agent slots: the grid and free list split over devices too
DEVICE_DAYS = 10


# --------------------------------------------------------------------------- fixtures
class _Subprocess:
    def __init__(self, args, env):
        self.out = args[-1]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=env, cwd=ROOT)

    def result(self) -> Path:
        output, _ = self.process.communicate(timeout=600)
        assert self.process.returncode == 0, output[-4000:]
        return Path(self.out)


@pytest.fixture(scope="module", autouse=True)
def device_runs(tmp_path_factory):
    """The 1- and 2-device runs, started at once in a subprocess (collected by the tests
    that need them)."""
    out = tmp_path_factory.mktemp("schelling-devices")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    runner = _Subprocess([sys.executable, __file__, "--devices", str(out)], env)
    yield runner
    if runner.process.poll() is None:
        runner.process.kill()
        runner.process.communicate()


@pytest.fixture(scope="module")
def model():
    from jaxsim.models import schelling

    return schelling.schelling_model()


@pytest.fixture(scope="module")
def sim(model):
    import jaxsim
    from jaxsim.models import schelling

    return jaxsim.Sim(model, schelling.grid_population(SCIENCE_SIDE, SCIENCE_SIDE), days=SCIENCE_DAYS)


@pytest.fixture(scope="module")
def threshold_sets(sim):
    return [sim.with_params(threshold=t).params for t in THRESHOLDS]


@pytest.fixture(scope="module")
def science(model, sim, threshold_sets):
    """Both thresholds on the same ``REPLICATES`` keys, one compiled ``vmap`` program."""
    from jaxsim import ensemble

    keys = ensemble.member_keys(0, REPLICATES)
    batch, all_keys, table = ensemble.cross(threshold_sets, keys, [str(t) for t in THRESHOLDS])
    result = ensemble.run_ensemble(model, all_keys, batch, sim.world, SCIENCE_DAYS, members=table)
    return result, keys


# ----------------------------------------------------------------------------- kernels
def _brute_counts(occupancy: np.ndarray, num_types: int, offsets, periodic: bool) -> np.ndarray:
    height, width = occupancy.shape
    out = np.zeros((num_types, height, width), np.int64)
    for y in range(height):
        for x in range(width):
            for dy, dx in offsets:
                yy, xx = y + dy, x + dx
                if periodic:
                    yy, xx = yy % height, xx % width
                elif not (0 <= yy < height and 0 <= xx < width):
                    continue
                code = occupancy[yy, xx]
                if 0 <= code < num_types:
                    out[code, y, x] += 1
    return out


@pytest.mark.parametrize("neighbourhood", ["moore", "von_neumann"])
@pytest.mark.parametrize("periodic", [True, False])
def test_neighbour_counts_equal_a_brute_force_count(neighbourhood, periodic):
    import jax
    import jax.numpy as jnp

    from jaxsim.kernels import grid

    rng = np.random.default_rng(3)
    occupancy = rng.integers(-2, 3, (7, 11)).astype(np.int8)  # types 0..2, two kinds of no agent
    counts = jax.jit(grid.neighbour_counts, static_argnums=1, static_argnames=("neighbourhood", "periodic"))(
        jnp.asarray(occupancy), 3, neighbourhood=neighbourhood, periodic=periodic)
    assert counts.dtype == jnp.int32 and counts.shape == (3, 7, 11)
    np.testing.assert_array_equal(np.asarray(counts),
                                  _brute_counts(occupancy, 3, grid.OFFSETS[neighbourhood], periodic))


def _random_grid(rng, cells=400, density=0.7):
    occupied = rng.random(cells) < density
    cell = np.flatnonzero(occupied).astype(np.int32)
    rng.shuffle(cell)
    return cell, ~occupied


def test_moves_go_to_free_cells_only_one_agent_per_cell():
    import jax
    import jax.numpy as jnp

    from jaxsim.kernels import grid

    rng = np.random.default_rng(5)
    cell, free = _random_grid(rng)
    n, c = cell.shape[0], free.shape[0]
    step = jax.jit(grid.move_to_free_cells)
    free_cells, count = jax.jit(grid.free_cell_list)(jnp.asarray(free))
    assert int(count) == free.sum()
    np.testing.assert_array_equal(np.asarray(free_cells)[: int(count)], np.flatnonzero(free))
    assert np.all(np.asarray(free_cells)[int(count):] == c)
    current, listed = cell.copy(), np.asarray(free_cells)
    total_moved = 0
    for day in range(5):
        movers = rng.random(n) < 0.6  # more movers than free cells: conflicts every day
        u, priority = rng.random(n).astype(np.float32), rng.random(n).astype(np.float32)
        new, moved, new_list = (np.asarray(a) for a in step(
            jnp.asarray(current), jnp.asarray(movers), jnp.asarray(listed), count, jnp.asarray(u),
            jnp.asarray(priority)))
        free_before = np.ones(c, bool)
        free_before[current] = False
        assert len(np.unique(new)) == n  # no two agents on one cell, nobody lost
        assert np.all(~moved | movers) and np.all(new[~moved] == current[~moved])
        assert np.all(free_before[new[moved]])  # only free cells are taken
        free_after = np.ones(c, bool)
        free_after[new] = False
        np.testing.assert_array_equal(np.sort(new_list[: int(count)]), np.flatnonzero(free_after))
        # Every proposed list position was won by exactly one mover.
        picks = np.floor(u[movers] * np.float32(int(count))).astype(np.int64)
        proposed = np.unique(np.minimum(picks, int(count) - 1))
        assert moved.sum() == proposed.size > 0
        total_moved += int(moved.sum())
        current, listed = new, new_list
    assert total_moved > 100
    # No free cell: nobody moves, the list is unchanged.
    full = jnp.full(20, 20, jnp.int32)
    new, moved, same_list = step(jnp.arange(20, dtype=jnp.int32), jnp.ones(20, bool), full, jnp.int32(0),
                                 jnp.zeros(20, jnp.float32), jnp.zeros(20, jnp.float32))
    np.testing.assert_array_equal(np.asarray(new), np.arange(20))
    assert not np.asarray(moved).any() and np.array_equal(np.asarray(same_list), np.asarray(full))


def test_proposals_from_the_mask_are_free_and_cover_the_free_cells():
    import jax
    import jax.numpy as jnp

    from jaxsim.kernels import grid

    rng = np.random.default_rng(6)
    free = rng.random(300) < 0.2
    u = np.arange(20_000, dtype=np.float32) / 20_000
    target = np.asarray(jax.jit(grid.propose_free_cells)(jnp.asarray(free), jnp.asarray(u)))
    assert np.all(free[target])
    np.testing.assert_array_equal(np.unique(target), np.flatnonzero(free))
    counts = np.bincount(target, minlength=300)[free]
    assert counts.max() - counts.min() <= 1  # evenly spaced uniforms: even proposals
    none = np.asarray(jax.jit(grid.propose_free_cells)(jnp.zeros(10, bool), jnp.asarray(u[:4])))
    assert np.all(none == 10)


def test_conflicts_have_exactly_one_winner_even_on_equal_priorities():
    import jax
    import jax.numpy as jnp

    from jaxsim.kernels import grid

    resolve = jax.jit(grid.resolve_conflicts, static_argnums=2)
    target = jnp.asarray([3, 3, 3, 1, 1, 7, 0, 5], jnp.int32)  # 7 >= 6 targets: no proposal
    equal = jnp.zeros(8, jnp.float32)
    won = np.asarray(resolve(target, equal, 6))
    np.testing.assert_array_equal(won, [True, False, False, True, False, False, True, True])
    ranked = jnp.asarray([0.1, 0.9, 0.5, 0.2, 0.3, 0.0, 0.4, 0.4], jnp.float32)
    won = np.asarray(resolve(target, ranked, 6))
    np.testing.assert_array_equal(won, [False, True, False, False, True, False, True, True])


# ----------------------------------------------------------------------------- science
def test_random_placement_starts_near_one_half(model, sim):
    """Random placement of two equal groups: about half of a household's neighbours are
    like it (measured 0.497 on the 80 x 80 grid, key 1; 17 % of households unhappy at
    threshold 0.3)."""
    import jax

    from jaxsim.models import schelling

    state = jax.jit(model.init)(jax.random.key(1), sim.params, sim.world)
    start = jax.jit(schelling.segregation_metrics)(state, sim.params, sim.world)
    households = int((np.asarray(state.grid) >= 0).sum())
    assert abs(households / SCIENCE_SIDE**2 - 0.9) < 0.02
    assert abs(float(start["segregation"]) - 0.5) < 0.03
    assert 0.05 < float(start["share_unhappy"]) < 0.25  # some households below 30 % at the start


def test_mild_preferences_produce_strong_segregation(science):
    """Schelling's result, as NetLogo's Segregation model shows it (about 70 %+ similar
    neighbours at 30 % similar-wanted): on an 80 x 80 torus at density 0.9 the segregation
    index rises from ~0.5 to 0.75 (measured 0.747 and 0.755 for keys 0 and 1 after 42 days)
    at threshold 0.3 and to 0.87 (0.869, 0.881) at threshold 0.5; by then no household is
    unhappy and nobody moves (the last moves: days 21 and 15 at 0.3, days 23 and 24 at 0.5)."""
    result, _ = science
    parts = result.split("set")
    final = {t: parts[str(t)].metrics["segregation"][:, -1] for t in THRESHOLDS}
    assert np.all(final[0.3] >= 0.70), final
    assert np.all(final[0.5] > final[0.3] + 0.05), final
    for t in THRESHOLDS:
        metrics = parts[str(t)].metrics
        assert np.all(metrics["segregation"][:, -1] > metrics["segregation"][:, 0])
        assert np.all(metrics["share_unhappy"][:, -1] <= 0.01), (t, metrics["share_unhappy"][:, -1])
        assert np.all(metrics["moves"][:, 0] > 200)  # day 0: hundreds of unhappy households move
    assert np.all(parts["0.3"].metrics["moves"][:, -7:] == 0)  # settled
    # Counts are whole households; the unhappy share is their count over the households.
    unhappy = parts["0.5"].metrics["unhappy"]
    assert unhappy.dtype.kind == "i" and np.all(unhappy[:, 0] > 0)


# ------------------------------------------------------------------------------- ensembles
def test_ensemble_members_equal_single_runs_bitwise(sim, science, threshold_sets):
    """Member (threshold s, key r) of jaxsim.ensemble.run_ensemble equals Sim.run with key
    r and those parameters, bit for bit; the final state keeps its invariants."""
    from jaxsim.models import schelling

    result, keys = science
    for member in (0, 3):
        s, r = divmod(member, REPLICATES)
        single = sim.run(key=keys[r], params=threshold_sets[s], progress=False)
        for name, values in single.metrics.items():
            np.testing.assert_array_equal(result.metrics[name][member], values, err_msg=f"{member}: {name}")
        state = single.state
        cell, group, grid = (np.asarray(a) for a in (state.cell, state.group, state.grid))
        cells = SCIENCE_SIDE**2
        housed = cell < cells
        assert len(np.unique(cell[housed])) == housed.sum()
        np.testing.assert_array_equal(grid[cell[housed]], group[housed])
        assert (grid >= 0).sum() == housed.sum() and np.all(group[~housed] == schelling.VACANT)
        empty = np.flatnonzero(grid == schelling.EMPTY)
        np.testing.assert_array_equal(np.sort(np.asarray(state.free)[: empty.size]), empty)


def test_sim_ensemble_equals_run_ensemble(sim, science, threshold_sets):
    result, _ = science
    again = sim.ensemble(members=REPLICATES, seed=0, params=threshold_sets, labels=[str(t) for t in THRESHOLDS])
    assert again.compile_seconds < 0.5  # the same compiled program (nothing compiled)
    assert list(again.members["set"]) == list(result.members["set"])
    for name in result.metrics:
        np.testing.assert_array_equal(again.metrics[name], result.metrics[name], err_msg=name)
    assert not np.array_equal(result.metrics["moves"][0], result.metrics["moves"][1])  # keys differ


# -------------------------------------------------------------------------------- gradient
@pytest.fixture(scope="module")
def gradient_runs(model):
    """``(value, d value / d threshold)`` of the total moves over ``GRAD_DAYS`` days with
    a smooth move probability, per seed, at the threshold and either side of it."""
    import jax
    import jax.numpy as jnp

    import jaxsim
    from jaxsim import ensemble
    from jaxsim.models import schelling

    world = schelling.grid_world(*GRAD_SHAPE)
    base = schelling.default_params(world, softness=GRAD_SOFTNESS)

    def total_moves(threshold, key):
        params = base.replace(threshold=threshold)
        init_key, run_key = jax.random.split(key)
        state = jaxsim.initial_state(model, init_key, params, world, estimator="straight_through")
        _, metrics = jaxsim.simulate(model, run_key, state, params, world, GRAD_DAYS, estimator="straight_through")
        return jnp.sum(metrics["moves"])

    program = jax.jit(jax.vmap(jax.value_and_grad(total_moves), in_axes=(None, 0)))
    keys = ensemble.member_keys(7, GRAD_SEEDS)
    out = {}
    for name, threshold in (("at", 0.3), ("low", 0.3 - GRAD_STEP), ("high", 0.3 + GRAD_STEP)):
        value, grad = program(jnp.float32(threshold), keys)
        out[name] = (np.asarray(value, np.float64), np.asarray(grad, np.float64))
    return out


def test_gradient_of_total_moves_agrees_in_sign_with_finite_differences(gradient_runs):
    """d(total moves over 14 days)/d threshold on a 41 x 39 grid, softness 0.05,
    straight-through estimator, 4 seeds: measured gradients 2.16-2.30 thousand moves per
    unit of threshold; the common-random-number central differences (step 0.05, same
    keys) 3.5-4.0 thousand (about 870-900 moves in all; the same signs and a ratio of
    0.55-0.6 on 8 further seeds). Raising the threshold makes more households unhappy, so
    more move: both are positive for every seed. Straight-through counts only the
    moves' own probabilities (not their effect on later days), so it falls short of the
    differences; we assert the sign and a loose ratio only."""
    value, grad = gradient_runs["at"]
    low, _ = gradient_runs["low"]
    high, _ = gradient_runs["high"]
    assert np.all(np.isfinite(grad)) and np.all(value > 100)
    fd = (high - low) / (2 * GRAD_STEP)
    assert np.all(fd > 0), fd
    assert np.all(grad > 0), grad
    assert np.all(np.sign(grad) == np.sign(fd))
    ratio = grad.mean() / fd.mean()
    assert 0.2 < ratio < 2.0, (grad, fd)


# --------------------------------------------------------------------------------- devices
def test_one_and_two_devices_give_bitwise_equal_metrics(device_runs):
    out = device_runs.result()
    one = np.load(out / "devices-1.npz")
    two = np.load(out / "devices-2.npz")
    info = json.loads((out / "info.json").read_text())
    assert info["devices"] == 2 and info["cell_shards"] == 2 and info["grid_shards"] == 2
    names = [k for k in one.files if k.startswith("metric:")]
    assert sorted(names) == ["metric:moves", "metric:segregation", "metric:share_unhappy", "metric:unhappy"]
    assert one["metric:moves"].sum() > 100
    for name in one.files:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)


def _devices_main(out: Path) -> int:
    """Run with two CPU devices: the same run unsharded and split over 2 devices."""
    import jax

    import jaxsim
    from jaxsim import sharding
    from jaxsim.models import schelling

    assert jax.device_count() >= 2, jax.devices()
    model = schelling.schelling_model()
    info = {}
    for devices in (1, 2):
        world = schelling.grid_world(DEVICE_SIDE, DEVICE_SIDE)
        params = schelling.default_params(world, threshold=0.45)
        key = jax.random.key(0)
        if devices > 1:
            mesh = sharding.make_mesh(devices)
            world = sharding.shard_world(world, mesh, graph="replicate")
        state = jax.jit(model.init)(jax.random.key(1), params, world)
        if devices > 1:
            state = sharding.shard_state(state, mesh, world)
            params, key = sharding.replicate((params, key), mesh)
            info = {"devices": devices, "cell_shards": len(state.cell.sharding.device_set),
                    "grid_shards": len(state.grid.sharding.device_set)}
        result = jaxsim.run(model, key, state, params, world, DEVICE_DAYS, progress=False, chunk_days=DEVICE_DAYS)
        arrays = {f"metric:{k}": np.asarray(v) for k, v in result.metrics.items()}
        final = sharding.gather_to_host(result.state)
        arrays.update({"state:cell": final.cell, "state:grid": final.grid, "state:free": final.free})
        np.savez(out / f"devices-{devices}.npz", **arrays)
    (out / "info.json").write_text(json.dumps(info))
    return 0


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("field, value", [
    ("threshold", 1.5), ("threshold", -0.1), ("density", 1.5), ("density", 0.0), ("density", 1.0),
    ("density", -0.2),
])
def test_bad_parameters_are_refused_naming_the_field(field, value):
    import jaxsim
    from jaxsim.models import schelling

    with pytest.raises(jaxsim.InputError, match=f"SchellingParams.{field}"):
        schelling.default_params(**{field: value})


def test_bad_values_are_refused_before_a_run(model, sim):
    import jax
    import jax.numpy as jnp

    import jaxsim
    from jaxsim import generators
    from jaxsim.models import schelling

    with pytest.raises(jaxsim.InputError, match="SchellingParams.threshold"):
        jaxsim.Sim(model, schelling.grid_population(10, 10), threshold=2.0)
    params = sim.params.replace(density=jnp.float32(1.0))
    state = jax.jit(model.init)(jax.random.key(0), sim.params, sim.world)
    with pytest.raises(jaxsim.InputError, match="SchellingParams.density: .* strictly between 0 and 1"):
        jaxsim.run(model, jax.random.key(0), state, params, sim.world, 7, progress=False)
    with pytest.raises(jaxsim.InputError, match="grid_population"):
        schelling.build_world(generators.population(100))
    with pytest.raises(jaxsim.InputError, match="width must be a whole number >= 3"):
        schelling.grid_population(2, 10)
    with pytest.raises(jaxsim.InputError, match="neighbourhood must be one of"):
        schelling.schelling_model("hexagonal")


# ------------------------------------------------------------------------ another layout
def test_bounded_von_neumann_grid_with_closed_cells(model):
    """A bounded grid, 4 neighbours, a closed block in the middle: nobody lives on a closed
    cell, households are kept, and segregation still rises."""
    import jax

    import jaxsim
    from jaxsim.models import schelling

    open_cells = np.ones((24, 30), bool)
    open_cells[8:16, 10:20] = False
    world = schelling.build_world(schelling.grid_population(30, 24), open_cells=open_cells)
    bounded = schelling.schelling_model("von_neumann", periodic=False)
    assert bounded != model
    params = schelling.default_params(world, threshold=0.5)
    state = jax.jit(bounded.init)(jax.random.key(2), params, world)
    result = jaxsim.run(bounded, jax.random.key(3), state, params, world, 21, progress=False, chunk_days=21)
    grid, cell = np.asarray(result.state.grid), np.asarray(result.state.cell)
    closed = ~open_cells.reshape(-1)
    assert np.all(grid[closed] == schelling.CLOSED)
    housed = cell[cell < grid.size]
    assert not np.any(closed[housed]) and len(np.unique(housed)) == housed.size
    assert housed.size == int((np.asarray(state.grid) >= 0).sum())
    seg = result.metrics["segregation"]
    assert seg[-1] > seg[0] + 0.1 and result.metrics["moves"].sum() > 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--devices":
        sys.exit(_devices_main(Path(sys.argv[2])))
    sys.exit(f"usage: {sys.argv[0]} --devices OUT_DIR")
