"""Ensembles: member k equals a single run with key k, batching, parameter grids in one
call, tables and quantile bands, paired comparisons under common random numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from jaxsim import engine, ensemble, memory
from jaxsim import interventions as iv
from jaxsim.models import covid

from conftest import random_population

DAYS = 21
#: One model object for every ensemble here, so that they share compiled programs.
MODEL = covid.covid_model()


@pytest.fixture(scope="module")
def setting():
    population = random_population(2500, seed=21)
    world = covid.build_world(population)
    params = covid.default_params(
        world, 3, contact_normaliser=covid.default_contact_normaliser(world),
        initial_exposed_share=0.01, initial_infected_share=0.01, transmission_rate=4.0,
    )
    return population, world, params


def with_levels(params, compliance, contact):
    return params.replace(interventions=iv.combine(
        covid.isolation_compliance(np.full(3, compliance, np.float32), start=7),
        covid.scale_contacts("community", contact, start=7, end=14),
    ))


@pytest.fixture(scope="module")
def grid(setting):
    """Two parameter sets x eight keys; memory for six members at a time: three batches
    (the last padded with copies of the last member)."""
    _, world, params = setting
    sets = [with_levels(params, 1.0, 1.0), with_levels(params, 1.6, 0.4)]
    keys = ensemble.member_keys(5, 8)
    batch, all_keys, members = ensemble.cross(sets, keys, ["baseline", "stricter"])
    batches = []
    result = ensemble.run_ensemble(MODEL, all_keys, batch, world, DAYS, capacity_bytes=room_for(6, sets[0], world),
                                   members=members, on_batch=lambda done, total: batches.append((done, total)))
    result.progress_calls = batches
    return sets, keys, all_keys, result


def test_progress_after_compiling_and_after_each_batch(grid):
    *_, result = grid
    assert result.batch_size == 6
    assert result.progress_calls == [(0, 16), (6, 16), (12, 16), (16, 16)]


def room_for(members, params, world):
    """A device capacity (bytes) with room for ``members`` members of this ensemble."""
    state = covid.initial_state(jax.random.key(0), params, world)
    metrics = jax.eval_shape(lambda k: ensemble.member_metrics(MODEL, k, params, world, DAYS), jax.random.key(0))
    per_member = ensemble.member_bytes(world, state, metrics)
    shared = ensemble.tree_bytes(world) + ensemble.tree_bytes(params)
    return int((shared + (members + 0.5) * per_member) / memory.HEADROOM)


def single_run(model, params, world, key, days=DAYS):
    """One member written out by hand: initial state from split(key)[0], run from split(key)[1]."""
    init_key, run_key = jax.random.split(key)
    state = covid.initial_state(init_key, params, world)
    _, metrics = jax.jit(engine.simulate, static_argnums=(0, 5))(model, run_key, state, params, world, days)
    return {k: np.asarray(v) for k, v in metrics.items()}


def test_member_k_equals_a_single_run_with_key_k(setting, grid):
    _, world, _ = setting
    sets, keys, all_keys, result = grid
    model = covid.covid_model()
    assert result.size == 16 and result.batch_size == 6
    for member in range(16):
        params = sets[member // 8]
        alone = single_run(model, params, world, all_keys[member])
        for name, values in alone.items():
            np.testing.assert_array_equal(result.metrics[name][member], values, err_msg=f"{member} {name}")
    np.testing.assert_array_equal(result.members["set"], ["baseline"] * 8 + ["stricter"] * 8)
    np.testing.assert_array_equal(result.members["replicate"], list(range(8)) * 2)


def test_memory_chooses_the_batch_size(setting, grid):
    """The grid fixture ran in batches of 6 because its capacity had room for 6 members
    (and member k still equals its single run, above); batches of one equal them too."""
    _, world, _ = setting
    sets, _, _, result = grid
    assert result.batch_size == 6
    state = covid.initial_state(jax.random.key(0), sets[0], world)
    per_member = ensemble.member_bytes(world, state, {"x": jnp.zeros((DAYS, 40))})
    assert per_member > world.num_slots * memory.WORKING_BYTES_PER_SLOT
    shared = ensemble.tree_bytes(world)
    capacity = int((shared + 3.5 * per_member) / memory.HEADROOM)
    assert ensemble.choose_batch_size(16, shared, per_member, capacity) == 3
    assert ensemble.choose_batch_size(2, shared, per_member, capacity) == 2
    assert ensemble.choose_batch_size(6, shared, per_member, capacity_bytes=None) == 6
    with pytest.raises(memory.InsufficientMemoryError, match="one ensemble member needs about"):
        ensemble.choose_batch_size(6, shared, per_member, capacity_bytes=shared)
    # Batches of one member run the single-run program (no vmap): the same metrics.
    batch, all_keys, _ = ensemble.cross(sets, grid[1])
    one_by_one = ensemble.run_ensemble(MODEL, all_keys, batch, world, DAYS, batch_size=1,
                                       metric_names=["new_infections", "isolating"])
    for name in ("new_infections", "isolating"):
        np.testing.assert_array_equal(one_by_one.metrics[name], result.metrics[name])


def test_stack_params_keeps_shared_leaves_once_and_checks_structure(setting):
    _, world, params = setting
    a, b = with_levels(params, 1.0, 1.0), with_levels(params, 1.5, 1.0)
    batch = ensemble.stack_params([a, b, a])
    compliance = batch.tree.interventions.items[0]
    assert compliance.scale.shape == (3, 3) and batch.axes.interventions.items[0].scale == 0
    assert batch.axes.susceptibility is None and batch.tree.susceptibility.shape == (6,)
    assert batch.axes.interventions.items[1].scale is None
    np.testing.assert_array_equal(batch.member(1).interventions.items[0].scale, np.full(3, 1.5))
    with pytest.raises(ensemble.EnsembleError, match="differs in structure"):
        ensemble.stack_params([a, params])
    with pytest.raises(ensemble.EnsembleError, match="parameter sets for"):
        ensemble.run_ensemble(covid.covid_model(), ensemble.member_keys(0, 2), batch, world, 3)
    with pytest.raises(ensemble.EnsembleError, match="typed JAX keys"):
        ensemble.run_ensemble(covid.covid_model(), np.zeros((2, 2), np.uint32), params, world, 3)


def test_tables_and_quantile_bands(grid):
    _, _, _, result = grid
    table = result.table(["new_infections", "new_infections_by_age"])
    assert list(table.columns[:4]) == ["member", "day", "metric", "value"]
    assert {"set", "replicate"} <= set(table.columns)
    assert len(table) == 16 * DAYS * (1 + 6)
    one = table[(table.metric == "new_infections") & (table.member == 4)].sort_values("day")
    np.testing.assert_array_equal(one["value"], result.metrics["new_infections"][4])
    bands = result.quantiles(["new_infections"], q=(0.05, 0.5, 0.95))
    assert list(bands.columns) == ["day", "metric", "mean", "q05", "q50", "q95"]
    np.testing.assert_allclose(bands["q50"], np.median(result.metrics["new_infections"], axis=0))
    np.testing.assert_allclose(bands["mean"], result.metrics["new_infections"].mean(axis=0))
    assert np.all(bands["q05"] <= bands["q50"]) and np.all(bands["q50"] <= bands["q95"])
    cumulative = result.quantiles(["new_infections"], q=(0.5,), cumulative=True)
    np.testing.assert_allclose(cumulative["mean"], np.cumsum(result.metrics["new_infections"], axis=1).mean(axis=0))


def test_paired_comparison_with_common_random_numbers(grid):
    _, _, _, result = grid
    parts = result.split("set")
    baseline, stricter = parts["baseline"], parts["stricter"]
    assert baseline.size == 8 and np.array_equal(baseline.key_data, stricter.key_data)
    # Before day 7 the policies are identical: the paired differences are exactly 0.
    early = ensemble.compare(baseline, {"stricter": stricter}, days=slice(0, 7))
    diff = early["differences"]["stricter"]["infections_averted"]
    assert diff["mean"] == 0 and diff["low"] == 0 and diff["high"] == 0
    report = ensemble.compare(baseline, {"stricter": stricter})
    averted = baseline.totals("new_infections") - stricter.totals("new_infections")
    diff = report["differences"]["stricter"]["infections_averted"]
    assert diff["mean"] == pytest.approx(averted.mean()) and diff["mean"] > 0
    assert diff["mean_ci_low"] <= diff["mean"] <= diff["mean_ci_high"]
    extra = report["differences"]["stricter"]["extra_isolation_days"]
    assert extra["mean"] == pytest.approx((stricter.totals("isolating") - baseline.totals("isolating")).mean())
    totals = report["totals"]["baseline"]["new_infections"]
    assert totals["q50"] == pytest.approx(np.median(baseline.totals("new_infections")))
    # Runs on other keys are not paired: refused.
    shuffled = stricter.select([1, 2, 3, 4, 5, 6, 7, 0])
    with pytest.raises(ensemble.EnsembleError, match="not run on the baseline's member keys"):
        ensemble.compare(baseline, {"stricter": shuffled})


def test_paired_difference_summary():
    base = np.array([10.0, 12.0, 9.0, 11.0])
    alt = np.array([8.0, 9.0, 8.0, 8.0])
    out = ensemble.paired_difference(base, alt, interval=0.9)
    d = base - alt
    assert out["mean"] == pytest.approx(d.mean())
    half = 1.6448536 * d.std(ddof=1) / 2
    assert out["mean_ci_low"] == pytest.approx(d.mean() - half, rel=1e-6)
    assert out["share_positive"] == 1.0 and out["members"] == 4
    assert out["low"] == pytest.approx(np.quantile(d, 0.05)) and out["high"] == pytest.approx(np.quantile(d, 0.95))


def test_common_random_numbers_shrink_the_noise_of_a_difference(setting, grid):
    """For a mild policy (compliance x1.2, community contacts x0.9 in week 2), the spread of paired differences is far below
    that of differences between independent members (what separate seeds per scenario
    would give). Same structure and batch as the grid: the same compiled program."""
    _, world, params = setting
    sets = [with_levels(params, 1.0, 1.0), with_levels(params, 1.2, 0.9)]
    batch, all_keys, members = ensemble.cross(sets, ensemble.member_keys(9, 8), ["a", "b"])
    result = ensemble.run_ensemble(MODEL, all_keys, batch, world, DAYS, batch_size=6, members=members)
    assert result.compile_seconds < grid[3].compile_seconds / 10  # reused, not recompiled
    a, b = (part.totals("new_infections") for part in result.split("set").values())
    paired = np.std(a - b)
    unpaired = np.std(a - np.roll(b, 1))
    assert paired < 0.5 * unpaired, (paired, unpaired)


def test_member_batched_contact_pressure_equals_the_kernel_under_vmap(setting):
    """The batching rule (one push for all members, or the transposed pull) gives every
    member exactly the kernel's sums, for sparse and dense infectiousness, with
    per-member layer multipliers."""
    from jaxsim.kernels.neighbour_sums import neighbour_sum

    _, world, _ = setting
    rng = np.random.default_rng(0)
    n = world.num_slots
    batched_fn = jax.jit(jax.vmap(lambda v, s: neighbour_sum(
        v, world.graph, {"community": s}, "auto")))
    single = jax.jit(lambda v, s: neighbour_sum(v, world.graph, {"community": s}, "auto"))
    scales = jnp.asarray([1.0, 0.5, 0.0, 1.0, 0.25], jnp.float32)
    for share in (0.002, 0.02, 0.5):  # tier 0, tier 1 and the dense pull at 2,500 agents
        x = jnp.asarray((rng.random((5, n)) < share) * rng.random((5, n)), jnp.float32)
        batched = batched_fn(x, scales)
        for m in range(5):
            alone = single(x[m], scales[m])
            np.testing.assert_array_equal(np.asarray(batched[m]), np.asarray(alone), err_msg=f"{share} {m}")
