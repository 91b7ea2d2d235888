"""One population split over several devices (jaxsim.sharding, kernels/sharded_contacts).

The suite runs with one CPU device; runs on 2, 3 and 4 devices happen in a subprocess
started with XLA_FLAGS=--xla_force_host_platform_device_count=4 (the flag must be set
before JAX starts), which is this file run as a script: ``python tests/test_sharding.py
OUT_DIR POPULATION_DIR``. It writes the metrics of each configuration to OUT_DIR and the
tests compare them here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MULTIHOST = ROOT / "scenarios" / "multihost_example.py"
HOST_DEVICES = 4
CHECK_DAYS = 21
GRADIENT_DAYS = 14
CHECK_AGENTS = 3001  # not a multiple of 2, 3 or 4: the slots need padding


def _population_with_stages(n: int = CHECK_AGENTS):
    from conftest import random_population

    population = random_population(n, seed=1, degree=10)
    stages = np.zeros(n, np.int8)
    rng = np.random.default_rng(2)
    stages[rng.choice(n, 60, replace=False)] = 2  # 2 % infected on day 0: an epidemic
    population.initial_states["disease_stage"] = stages
    return population


def _weighted_population(n: int = CHECK_AGENTS):
    """:func:`_population_with_stages` with a WEIGHTED community layer: weights uniform in
    0.1 .. 3 (far from 1, so a kernel that drops them gives other sums); the household
    layer stays unweighted (a world mixing both)."""
    from jaxsim.population import EdgeList

    population = _population_with_stages(n)
    community = population.networks["community"]
    rng = np.random.default_rng(8)
    weight = rng.uniform(0.1, 3.0, community.num_edges).astype(np.float32)
    population.networks["community"] = EdgeList(community.u, community.v, weight)
    return population


# ------------------------------------------------------------------ host-side tables
def _path_graph_edges(n: int):
    from jaxsim.graph import directed_sorted_edges
    from jaxsim.population import EdgeList

    edges = EdgeList.from_pairs(np.arange(n - 1), np.arange(1, n))
    return directed_sorted_edges(edges, n)


def _emulate(partition, x: np.ndarray, name: str) -> np.ndarray:
    """The pressure the device tables describe, computed with numpy device by device."""
    stats, send = partition.stats, partition.send
    d_count, block = stats.num_devices, stats.block_slots
    blocks = x.reshape(d_count, block)
    outgoing = blocks[np.arange(d_count)[:, None, None], send]  # [sender, receiver, H]
    out = np.zeros((d_count, block), np.float64)
    layer = partition.layers[name]
    for d in range(d_count):
        extended = np.concatenate([blocks[d], outgoing[:, d, :].reshape(-1)])
        real = layer.dst[d] < block
        w = 1.0 if layer.weight is None else layer.weight[d][real]
        np.add.at(out[d], layer.dst[d][real], extended[layer.src[d][real]] * w)
    return out.reshape(-1)


def test_path_graph_exchanges_only_the_boundary_agents():
    from jaxsim.sharding import partition_edges

    src, dst, weight = _path_graph_edges(16)
    part = partition_edges({"path": (src, dst, weight)}, num_slots=16, num_devices=4)
    stats = part.stats
    # Blocks 0-3, 4-7, 8-11, 12-15: edges 3-4, 7-8, 11-12 cross, both ways.
    assert (stats.block_slots, stats.halo_slots, stats.values_per_day) == (4, 1, 6)
    assert stats.cross_edges == 6 and stats.directed_edges == 30
    assert stats.received_per_device == (1, 2, 2, 1)
    assert stats.padded_values_per_day == 4 * 3 * 1
    # Device 1 (agents 4-7) sends agent 4 (local 0) to device 0 and agent 7 (local 3) to 2.
    assert part.send[1, 0, 0] == 0 and part.send[1, 2, 0] == 3
    x = np.arange(16, dtype=np.float64) + 1.0
    expected = np.zeros(16)
    np.add.at(expected, dst, x[src])
    np.testing.assert_array_equal(_emulate(part, x, "path"), expected)


def test_random_weighted_graph_tables_reproduce_the_sum():
    from jaxsim.graph import directed_sorted_edges
    from jaxsim.population import EdgeList
    from jaxsim.sharding import partition_edges

    rng = np.random.default_rng(5)
    n, slots = 997, 1000
    edges = EdgeList.from_pairs(
        rng.integers(0, n, 4000), rng.integers(0, n, 4000), rng.random(4000).astype(np.float32)
    )
    other = EdgeList.from_pairs(np.arange(0, n - 1, 2), np.arange(1, n, 2))
    layers = {
        "a": directed_sorted_edges(edges, n),
        "b": directed_sorted_edges(other, n),
    }
    part = partition_edges(layers, num_slots=slots, num_devices=5)
    x = np.zeros(slots)
    x[:n] = rng.random(n)
    for name, (src, dst, weight) in layers.items():
        expected = np.zeros(slots)
        np.add.at(expected, dst, x[src] * (1.0 if weight is None else weight))
        np.testing.assert_allclose(_emulate(part, x, name), expected, rtol=1e-6)
    # Every crossing (receiver, source) pair is sent exactly once, whatever the layer.
    crossing = set()
    for src, dst, _ in layers.values():
        cross = src // 200 != dst // 200
        crossing |= set(zip((dst[cross] // 200).tolist(), src[cross].tolist()))
    assert part.stats.values_per_day == len(crossing)
    assert sum(part.stats.edges_per_device) == part.stats.directed_edges


def test_partition_rejects_bad_tables():
    from jaxsim.sharding import partition_edges

    src, dst, weight = _path_graph_edges(16)
    with pytest.raises(ValueError, match="16 agent slots do not split evenly over 3 devices"):
        partition_edges({"path": (src, dst, weight)}, 16, 3)
    with pytest.raises(ValueError, match="layer 'path': an edge endpoint is outside"):
        partition_edges({"path": (src, dst, weight)}, 8, 2)
    with pytest.raises(ValueError, match="layer 'path': edges are not sorted"):
        partition_edges({"path": (src[::-1], dst[::-1], weight)}, 16, 2)


def test_device_count_is_validated():
    from jaxsim import sharding

    available = sharding.available_device_count()
    with pytest.raises(ValueError, match="--devices must be >= 1, got 0"):
        sharding.check_device_count(0)
    with pytest.raises(ValueError, match=f"--devices {available + 1}: only {available} cpu device"):
        sharding.check_device_count(available + 1)
    with pytest.raises(ValueError, match="whole number"):
        sharding.check_device_count(2.5)
    assert sharding.check_device_count(1) == 1
    assert sharding.default_device_count(10) == 1  # too few agents to split


@pytest.mark.parametrize("value, message", [
    ("64", "--devices 64: only 1 cpu device(s) available"),
    ("0", "--devices must be >= 1, got 0"),
    ("two", "--devices must be a whole number, got 'two'"),
])
def test_scenario_rejects_bad_device_counts(tmp_path, capsys, value, message):
    from conftest import load_script

    scenario = load_script(ROOT / "scenarios" / "covid_nyc.py")
    with pytest.raises(SystemExit) as exit_info:
        scenario.main(["--agents", "500", "--days", "2", "--devices", value, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_slot_padding_follows_the_device_count():
    from jaxsim import engine, sharding

    assert engine.padded_size(3001) == 3008
    assert sharding.slot_multiple(3) == 24 and engine.padded_size(3001, 24) == 3024
    world = engine.World(agents={}, graph={}, num_agents=3001, slot_multiple=24)
    assert world.num_slots == 3024
    assert engine.World(agents={}, graph={}, num_agents=3001).num_slots == 3008


def test_one_device_mesh_equals_the_unsharded_run(small_population):
    """The sharded code path on a 1-device mesh (the subprocess below covers several)."""
    import jax

    from jaxsim import engine, sharding
    from jaxsim.models import covid

    def run(mesh):
        world = covid.build_world(small_population)
        params = covid.default_params(
            world, weeks=2, contact_normaliser=covid.default_contact_normaliser(world),
            initial_exposed_share=0.01, initial_infected_share=0.01, transmission_rate=4.0,
        )
        key = jax.random.key(0)
        if mesh is not None:
            world = sharding.shard_world(world, mesh)
        state = covid.initial_state(jax.random.key(1), params, world)
        if mesh is not None:
            state = sharding.shard_state(state, mesh, world)
            params, key = sharding.replicate((params, key), mesh)
        return engine.run(covid.covid_model(), key, state, params, world, 10, progress=False).metrics

    plain, sharded = run(None), run(sharding.make_mesh(1))
    assert plain["new_infections"].sum() > 20
    for name in plain:
        np.testing.assert_array_equal(sharded[name], plain[name], err_msg=name)


def test_mixed_graph_is_rejected(small_population):
    from jaxsim import sharding
    from jaxsim.kernels.neighbour_sums import neighbour_sum
    from jaxsim.models import covid

    world = covid.build_world(small_population)
    sharded = sharding.shard_world(world, sharding.make_mesh(1))
    mixed = {"household": world.graph["household"], "community": sharded.graph["community"]}
    with pytest.raises(ValueError, match="mixes sharded and unsharded layers"):
        neighbour_sum(np.zeros(world.num_slots, np.float32), mixed, {})
    with pytest.raises(ValueError, match="already sharded"):
        sharding.shard_world(sharded, sharding.make_mesh(1))
    with pytest.raises(ValueError, match=r"infectiousness has shape \(2992,\), the sharded graph expects \(3000,\)"):
        neighbour_sum(np.zeros(2992, np.float32), sharded.graph, {})


# ------------------------------------------------------------- several devices (subprocess)
@pytest.fixture(scope="module")
def device_runs(tmp_path_factory):
    """Metrics of the scenario and of the engine on 1-4 devices, from one subprocess."""
    from conftest import run_on_host_devices

    from jaxsim.population_io import save_population

    out = tmp_path_factory.mktemp("devices")
    population_dir = out / "population"
    save_population(_population_with_stages(), population_dir)
    run_on_host_devices(__file__, HOST_DEVICES, out, population_dir)
    return out


@pytest.mark.parametrize("devices", [2, 3, 4])
def test_scenario_metrics_equal_one_device(device_runs, devices):
    one = (device_runs / "scenario-1" / "metrics.csv").read_text()
    many = (device_runs / f"scenario-{devices}" / "metrics.csv").read_text()
    assert many == one
    run = json.loads((device_runs / f"scenario-{devices}" / "run.json").read_text())
    assert run["devices"]["count"] == devices
    assert run["devices"]["halo"]["num_devices"] == devices
    assert json.loads((device_runs / "scenario-1" / "run.json").read_text())["devices"] == {
        "count": 1, "halo": None}


def test_scenario_runs_a_real_epidemic(device_runs):
    import pandas as pd

    table = pd.read_csv(device_runs / "scenario-1" / "metrics.csv")
    assert len(table) == CHECK_DAYS and table["new_infections"].sum() > 300
    assert table["dead"].iloc[-1] >= 0 and table["recovered"].iloc[-1] > 0


def test_engine_metrics_and_gradients_equal_one_device(device_runs):
    plain = np.load(device_runs / "engine-1.npz")
    sharded = np.load(device_runs / "engine-4.npz")
    metric_names = [k for k in plain.files if k.startswith("metric:")]
    assert len(metric_names) >= 9
    for name in metric_names:
        np.testing.assert_array_equal(sharded[name], plain[name], err_msg=name)
    assert float(plain["loss"]) > 0 and float(sharded["loss"]) == float(plain["loss"])
    gradients = [k for k in plain.files if k.startswith("grad:")]
    assert {"grad:transmission_rate", "grad:susceptibility", "grad:isolation_baseline"} <= set(gradients)
    for name in gradients:
        assert np.all(np.isfinite(plain[name])), name
        np.testing.assert_allclose(sharded[name], plain[name], rtol=2e-5, atol=1e-6, err_msg=name)
    assert np.any(np.abs(plain["grad:transmission_rate"]) > 0)


def test_ensemble_under_vmap_equals_one_device(device_runs):
    plain = np.load(device_runs / "ensemble-1.npy")
    sharded = np.load(device_runs / "ensemble-4.npy")
    assert plain.shape == (2, 7) and plain.sum() > 0 and not np.array_equal(plain[0], plain[1])
    np.testing.assert_array_equal(sharded, plain)


def test_default_device_count_gives_each_device_enough_agents(device_runs):
    defaults = json.loads((device_runs / "defaults.json").read_text())
    assert defaults == {"3001": 1, "250000": 2, "1000000": HOST_DEVICES}


def test_state_from_the_unsharded_world_is_refused(device_runs):
    message = (device_runs / "refused.txt").read_text()
    assert "3008 agent slots but the sharded world has 3024" in message


# ----------------------------------------------------- a weighted layer on several devices
WEIGHTED_DEVICES = (2, 3)


@pytest.fixture(scope="module")
def weighted_runs(tmp_path_factory):
    """Metrics and neighbour sums of a world with a weighted layer on 1, 2 and 3 devices,
    from one subprocess (this file run as ``python tests/test_sharding.py --weighted OUT``)."""
    out = tmp_path_factory.mktemp("weighted")
    from conftest import run_on_host_devices

    run_on_host_devices(__file__, HOST_DEVICES, "--weighted", out)
    return out


@pytest.mark.parametrize("devices", WEIGHTED_DEVICES)
def test_weighted_layer_on_several_devices_equals_one_device(weighted_runs, devices):
    """A contact layer with weights far from 1 (uniform in 0.1 .. 3): the run's metrics and
    the neighbour sum over the sharded world equal the one-device ones, bit for bit. (The
    other multi-device tests use unweighted layers: dropping the weights in
    kernels/sharded_contacts.py would pass them.)"""
    one = np.load(weighted_runs / "weighted-1.npz")
    many = np.load(weighted_runs / f"weighted-{devices}.npz")
    assert int(many["devices"]) == devices and int(one["devices"]) == 1
    # The weights matter: the weighted sum is not the sum with every weight 1.
    assert not np.allclose(one["sum:dense"], one["unweighted:dense"])
    assert float(one["min_weight"]) < 0.2 and float(one["max_weight"]) > 2.8
    metric_names = [k for k in one.files if k.startswith("metric:")]
    assert len(metric_names) >= 9 and one["metric:new_infections"].sum() > 100
    for name in metric_names:
        np.testing.assert_array_equal(many[name], one[name], err_msg=f"{devices} devices: {name}")
    sums = [k for k in one.files if k.startswith("sum:")]
    assert sorted(sums) == ["sum:dense", "sum:scaled", "sum:sparse"]
    for name in sums:
        assert np.any(one[name] != 0), name
        np.testing.assert_array_equal(many[name], one[name], err_msg=f"{devices} devices: {name}")


def _weighted_main(out: Path) -> int:
    """Run in a process with several CPU devices: a world with a weighted layer on 1, 2 and 3
    devices; writes ``weighted-D.npz`` (metrics and neighbour sums, real agents only)."""
    import jax
    import jax.numpy as jnp

    from jaxsim import engine, sharding
    from jaxsim.kernels.neighbour_sums import neighbour_sum
    from jaxsim.models import covid

    assert jax.device_count() >= max(WEIGHTED_DEVICES), jax.devices()
    population = _weighted_population()
    n = population.size
    rng = np.random.default_rng(9)
    dense = rng.random(n).astype(np.float32) + 0.5  # every agent sends: the dense pull
    sparse = np.where(rng.random(n) < 0.01, rng.random(n), 0.0).astype(np.float32)  # a push tier
    model = covid.covid_model()
    for devices in (1,) + WEIGHTED_DEVICES:
        world = covid.build_world(population)
        assert world.graph["community"].weight is not None and world.graph["household"].weight is None
        params = covid.default_params(world, weeks=3, transmission_rate=8.0)
        key = jax.random.key(0)
        if devices > 1:
            mesh = sharding.make_mesh(devices)
            world = sharding.shard_world(world, mesh)
        state = model.init(jax.random.key(1), params, world)
        if devices > 1:
            state = sharding.shard_state(state, mesh, world)
            params, key = sharding.replicate((params, key), mesh)
        metrics = engine.run(model, key, state, params, world, CHECK_DAYS, progress=False).metrics
        arrays = {f"metric:{k}": np.asarray(v) for k, v in metrics.items()}

        def summed(x, scale=None, world=world):
            padded = np.zeros(world.num_slots, np.float32)
            padded[:n] = x
            fn = jax.jit(lambda v: neighbour_sum(v, world.graph, scale))
            return np.asarray(jax.device_get(fn(jnp.asarray(padded))))[:n]

        arrays["sum:dense"] = summed(dense)
        arrays["sum:sparse"] = summed(sparse)
        arrays["sum:scaled"] = summed(dense, {"community": jnp.float32(0.5), "household": jnp.float32(2.0)})
        if devices == 1:
            layer = world.graph["community"]
            arrays["min_weight"] = np.asarray(layer.weight).min()
            arrays["max_weight"] = np.asarray(layer.weight).max()
            unweighted = {**world.graph, "community": layer.replace(weight=None)}
            padded = np.zeros(world.num_slots, np.float32)
            padded[:n] = dense
            arrays["unweighted:dense"] = np.asarray(neighbour_sum(jnp.asarray(padded), unweighted))[:n]
        np.savez(out / f"weighted-{devices}.npz", devices=devices, **arrays)
    return 0


# ---------------------------------------------------------------- two processes, localhost
def test_two_process_example_equals_one_device(tmp_path):
    from conftest import load_script

    from jaxsim import engine

    out = tmp_path / "multihost"
    agents, days = 6000, 14
    result = subprocess.run(
        [sys.executable, str(MULTIHOST), "--launch", "2", "--agents", str(agents), "--days", str(days),
         "--out", str(out), "--timeout", "240"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 processes, 4 devices" in result.stdout
    example = load_script(MULTIHOST)
    model, state, params, world, key = example.build_run(agents, days, 0)
    reference = engine.run(model, key, state, params, world, days, progress=False).metrics
    got = np.load(out / "metrics.npz")
    assert sorted(got.files) == sorted(reference)
    assert reference["new_infections"].sum() > 50
    for name in reference:
        np.testing.assert_array_equal(got[name], reference[name], err_msg=name)
    run = json.loads((out / "run.json").read_text())
    assert run["processes"] == 2 and len(run["devices"]) == 4 and run["halo"]["values_per_day"] > 0


# ------------------------------------------------------------------ subprocess entry point
def _subprocess_main(out: Path, population_dir: Path) -> int:
    """Run in a process with 4 CPU devices; writes what the tests above compare."""
    import jax
    import jax.numpy as jnp

    from jaxsim import engine, sharding
    from jaxsim.models import covid
    from conftest import load_script

    assert jax.device_count() == HOST_DEVICES, jax.devices()
    defaults = {n: sharding.default_device_count(n) for n in (3001, 250_000, 10**6)}
    (out / "defaults.json").write_text(json.dumps(defaults))
    scenario = load_script(ROOT / "scenarios" / "covid_nyc.py")
    for devices in (1, 2, 3, 4):
        code = scenario.main([
            "--population", str(population_dir), "--days", str(CHECK_DAYS), "--transmission-rate", "8",
            "--devices", str(devices), "--out", str(out / f"scenario-{devices}"), "--no-progress",
        ])
        assert code == 0, devices

    population = _population_with_stages()
    model = covid.covid_model()

    def setup(mesh):
        world = covid.build_world(population)
        params = covid.default_params(
            world, weeks=2, contact_normaliser=covid.default_contact_normaliser(world),
            transmission_rate=4.0,
        )
        key = jax.random.key(0)
        if mesh is not None:
            world = sharding.shard_world(world, mesh)
        # The day-0 stages come from the world (the population's initial "disease_stage").
        state = engine.initial_state(model, jax.random.key(1), params, world, estimator="straight_through")
        if mesh is not None:
            state = sharding.shard_state(state, mesh, world)
            params, key = sharding.replicate((params, key), mesh)
        return state, params, world, key

    def loss(params, state, world, key):
        _, metrics = engine.simulate(model, key, state, params, world, GRADIENT_DAYS, checkpoint_days=7,
                                     estimator="straight_through")
        return jnp.sum(metrics["new_cases"] ** 2) / 100.0, metrics

    value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True, allow_int=True))
    for devices in (1, 4):
        mesh = None if devices == 1 else sharding.make_mesh(devices)
        state, params, world, key = setup(mesh)
        (value, metrics), grads = value_and_grad(params, state, world, key)
        arrays = {f"metric:{k}": np.asarray(v) for k, v in metrics.items()}
        arrays.update({
            f"grad:{name}": np.asarray(getattr(grads, name))
            for name in ("transmission_rate", "susceptibility", "mortality", "isolation_baseline",
                         "isolation_response", "stage_infectiousness")
        })
        np.savez(out / f"engine-{devices}.npz", loss=np.asarray(value), **arrays)
        # An ensemble (vmap over keys), as calibration runs them.
        ensemble_model = covid.covid_model(contact_method="dense")
        keys = jax.random.split(jax.random.key(7), 2)
        members = jax.jit(jax.vmap(
            lambda k: engine.simulate(ensemble_model, k, state, params, world, 7)[1]["new_infections"]
        ))(keys)
        np.save(out / f"ensemble-{devices}.npy", np.asarray(members))

    params = setup(None)[1]
    mesh = sharding.make_mesh(3)
    plain_world = covid.build_world(population)
    state = covid.initial_state(jax.random.key(1), params, plain_world)
    try:
        sharding.shard_state(state, mesh, sharding.shard_world(plain_world, mesh))
    except ValueError as err:
        (out / "refused.txt").write_text(str(err))
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--weighted":
        sys.exit(_weighted_main(Path(sys.argv[2])))
    sys.exit(_subprocess_main(Path(sys.argv[1]), Path(sys.argv[2])))
