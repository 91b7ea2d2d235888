"""Kernels checked against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxsim.graph import build_contact_layer
from jaxsim.kernels import (
    agent_infectiousness,
    exposure_probability,
    gamma_infectiousness_profile,
    heuristic_isolation_probability,
    seirm_progression,
    weekly_case_signal,
)
from jaxsim.kernels.neighbour_sums import neighbour_sum, sparse_tier
from jaxsim.population import EdgeList


def test_gamma_profile_is_cdf_difference_per_day():
    g = gamma_infectiousness_profile(5.5, 2.4, max_days=21)
    shape = (5.5 / 2.4) ** 2
    dist = stats.gamma(a=shape, scale=2.4**2 / 5.5)
    expected = dist.cdf(np.arange(1, 22)) - dist.cdf(np.arange(0, 21))
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7)
    assert g.dtype == np.float32 and g.shape == (21,)
    # Mean of the discretised profile is close to the Gamma mean (within half a day).
    assert abs(np.sum((np.arange(21) + 0.5) * g) / g.sum() - 5.5) < 0.1
    with pytest.raises(ValueError, match="sd_days"):
        gamma_infectiousness_profile(5.5, 0.0)


def _five_agent_layers():
    # 0-1, 0-2, 1-2, 2-3, 3-4 (undirected); a weighted second layer 1-4 and 0-3.
    household = EdgeList.from_pairs(np.array([0, 0, 1, 2, 3]), np.array([1, 2, 2, 3, 4]))
    work = EdgeList.from_pairs(
        np.array([1, 0]), np.array([4, 3]), weight=np.array([2.0, 0.5], np.float32)
    )
    return {"household": build_contact_layer(household, 5), "work": build_contact_layer(work, 5)}


def test_infection_formula_exact_on_five_agents():
    layers = _five_agent_layers()
    alpha = np.array([0.0, 0.33, 0.72, 0.0, 0.0], np.float32)
    profile = gamma_infectiousness_profile()
    t = 9
    stage = np.array([0, 2, 1, 0, 0], np.int8)  # agent 1 infected, agent 2 exposed
    day_infected = np.array([-30000, 2, 6, -30000, -30000], np.int16)
    isolating = np.array([False, False, False, False, True])
    sigma_by_age = np.array([0.5, 0.9], np.float32)
    age = np.array([0, 1, 0, 1, 1])
    R, c, work_scale = 2.0, 3.0, 0.25

    transmitting = jnp.asarray((~isolating).astype(np.float32))
    x = agent_infectiousness(
        jnp.asarray(stage), jnp.asarray(day_infected), transmitting, jnp.int32(t),
        jnp.asarray(alpha), jnp.asarray(profile),
    )
    pressure = neighbour_sum(x, layers, {"household": jnp.float32(1.0), "work": jnp.float32(work_scale)})
    p = exposure_probability(
        pressure, jnp.float32(R), jnp.asarray(sigma_by_age[age]), jnp.float32(c),
        jnp.asarray((stage == 0) & ~isolating),
    )

    # By hand: infectiousness of agent 1 = 0.72 * g[7]; agent 2 = 0.33 * g[3].
    x1, x2 = 0.72 * profile[7], 0.33 * profile[3]
    np.testing.assert_allclose(np.asarray(x), [0, x1, x2, 0, 0], rtol=1e-6)
    # Agent 0: household neighbours 1, 2; work neighbour 3 (not infectious).
    lam0 = R * 0.5 * (x1 + x2) / c
    # Agent 3: household neighbours 2, 4; work neighbour 0 (weight 0.5, not infectious).
    lam3 = R * 0.9 * x2 / c
    # Agent 4 isolates: probability 0 although its work contact 1 (weight 2) is infected.
    expected = np.array([1 - np.exp(-lam0), 0.0, 0.0, 1 - np.exp(-lam3), 0.0])
    np.testing.assert_allclose(np.asarray(p), expected, rtol=1e-6, atol=1e-9)
    # Agent 4's pressure comes only through the weighted, scaled work layer: 0.25 * 2.0 * x1
    # (its household contact 3 is not infectious).
    np.testing.assert_allclose(float(pressure[4]), 0.25 * 2.0 * x1, rtol=1e-6)


def test_exposure_probability_matches_expm1_at_small_and_moderate_rates():
    """``1 - exp(-rate)`` in float32 loses digits to cancellation at small rates; the kernel
    switches to a series there. Over rates 1e-6 .. 0.02 (both sides of the switch) and a
    few above, its value must match ``-expm1(-rate)`` computed in float64."""
    rates = np.concatenate([
        np.geomspace(1e-6, 0.02, 400),
        [0.0099, 0.00999, 0.01, 0.01001, 0.0101, 0.015],  # around the series' cut-off
        [0.025, 0.05, 0.1, 0.3, 1.0, 2.5],
    ])
    n = rates.size
    R, c = np.float32(2.5), np.float32(7.0)
    sigma = np.where(np.arange(n) % 2 == 0, 0.5, 1.3).astype(np.float32)
    # Pressure chosen so that rate = R * sigma * pressure / c takes the values above.
    pressure = (rates * np.float64(c) / (np.float64(R) * sigma)).astype(np.float32)
    p = np.asarray(exposure_probability(
        jnp.asarray(pressure), jnp.float32(R), jnp.asarray(sigma), jnp.float32(c), jnp.ones(n, bool),
    ), np.float64)
    # The reference from the float32 inputs the kernel saw, in float64.
    rate = np.float64(R) * sigma.astype(np.float64) * pressure.astype(np.float64) / np.float64(c)
    assert rate.min() < 1.01e-6 and np.sum(rate > 0.02) >= 6
    expected = -np.expm1(-rate)
    abs_err = np.abs(p - expected)
    assert abs_err.max() < 2e-7, (abs_err.max(), rate[abs_err.argmax()])
    relevant = rate >= 1e-6 * (1 - 1e-6)
    rel_err = abs_err[relevant] / expected[relevant]
    assert rel_err.max() < 1e-5, (rel_err.max(), rate[relevant][rel_err.argmax()])


def test_isolating_agents_do_not_transmit_and_closed_layer_is_skipped():
    layers = _five_agent_layers()
    alpha = jnp.asarray([0.0, 0.33, 0.72, 0.0, 0.0])
    profile = jnp.asarray(gamma_infectiousness_profile())
    stage = jnp.asarray(np.array([0, 2, 0, 0, 0], np.int8))
    day_infected = jnp.asarray(np.array([-30000, 3, -30000, -30000, -30000], np.int16))
    isolating_agent_1 = jnp.asarray(np.array([1.0, 0.0, 1.0, 1.0, 1.0], np.float32))
    x = agent_infectiousness(stage, day_infected, isolating_agent_1, jnp.int32(8), alpha, profile)
    assert float(jnp.abs(x).sum()) == 0.0
    x = agent_infectiousness(stage, day_infected, jnp.ones(5), jnp.int32(8), alpha, profile)
    closed = neighbour_sum(x, layers, {"household": jnp.float32(0.0), "work": jnp.float32(0.0)})
    assert float(jnp.abs(closed).sum()) == 0.0
    only_work = neighbour_sum(x, layers, {"household": jnp.float32(0.0)})
    assert float(only_work[4]) == pytest.approx(2.0 * float(x[1]))
    assert float(only_work[0]) == 0.0


def test_infectiousness_is_zero_outside_profile_window():
    profile = jnp.asarray(gamma_infectiousness_profile(max_days=10))
    alpha = jnp.asarray([0.0, 0.33, 0.72, 0.0, 0.0])
    stage = jnp.asarray(np.array([2, 2, 2], np.int8))
    day_infected = jnp.asarray(np.array([0, 5, 20], np.int16))  # 10 days ago, 5 ago, future
    x = agent_infectiousness(stage, day_infected, jnp.ones(3), jnp.int32(10), alpha, profile)
    np.testing.assert_allclose(np.asarray(x), [0.0, 0.72 * float(profile[5]), 0.0], rtol=1e-6)


def test_seirm_progression_transitions_on_due_day():
    # Day 4; exposed_days 5, infected_days 6: E ends when 5 days have passed since
    # exposure, I when 11 have.
    stage = jnp.asarray(np.array([1, 1, 2, 2, 0, 3], np.int8))
    day_infected = jnp.asarray(np.array([-1, 0, -7, -7, -30000, -30000], np.int16))
    dies = jnp.asarray(np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0], np.float32))
    new_stage, events = seirm_progression(
        stage, day_infected, jnp.int32(4), jnp.int32(5), jnp.int32(6), dies
    )
    np.testing.assert_array_equal(np.asarray(new_stage), [2, 1, 3, 4, 0, 3])
    np.testing.assert_array_equal(np.asarray(events["onset"]), [1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(np.asarray(events["death"]), [0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(np.asarray(events["recovery"]), [0, 0, 1, 0, 0, 0])


def test_weekly_case_signal_reads_ring_buffer():
    ring = np.zeros(28, np.float32)
    t = 30  # this week = days 23..29, previous 28 days = 2..29
    for day in range(2, 30):
        ring[day % 28] = 1.0 if day < 23 else 3.0
    this_week, average = weekly_case_signal(jnp.asarray(ring), jnp.int32(t))
    assert float(this_week) == pytest.approx(21.0)
    assert float(average) == pytest.approx((21 * 1.0 + 21.0) / 4)


def test_heuristic_isolation_probability_responds_to_trend():
    base = jnp.asarray([0.1, 0.2])
    response = jnp.asarray([1.0, 0.0])
    flat = heuristic_isolation_probability(jnp.float32(50), jnp.float32(50), base, response)
    np.testing.assert_allclose(np.asarray(flat), [0.1, 0.2], rtol=1e-5)
    rising = heuristic_isolation_probability(jnp.float32(200), jnp.float32(50), base, response)
    assert float(rising[0]) > 0.1 and float(rising[1]) == pytest.approx(0.2)
    logit = np.log(0.1 / 0.9) + np.log(201 / 51)
    assert float(rising[0]) == pytest.approx(1 / (1 + np.exp(-logit)), rel=1e-5)
    falling = heuristic_isolation_probability(jnp.float32(10), jnp.float32(50), base, response)
    assert float(falling[0]) < 0.1
    grad = jax.grad(lambda b: heuristic_isolation_probability(200.0, 50.0, b, response).sum())(base)
    assert np.all(np.asarray(grad) > 0)


@pytest.mark.parametrize("prevalence, tier", [(0.0, 0), (0.002, 0), (0.02, 1), (0.3, 2)])
def test_sparse_push_equals_dense_pull_in_every_tier(prevalence, tier):
    """The capacity tiers (1/256, 1/32 of agents) and the dense fallback give the same sums."""
    rng = np.random.default_rng(11)
    n = 5000
    layers = {
        "a": build_contact_layer(
            EdgeList.from_pairs(rng.integers(0, n, 30000), rng.integers(0, n, 30000)), n
        ),
        "b": build_contact_layer(
            EdgeList.from_pairs(
                rng.integers(0, n, 8000), rng.integers(0, n, 8000),
                weight=rng.random(8000).astype(np.float32),
            ),
            n,
        ),
    }
    x = np.where(rng.random(n) < prevalence, rng.random(n), 0.0).astype(np.float32)
    scale = {"a": jnp.float32(0.7), "b": jnp.float32(1.3)}
    assert int(sparse_tier(jnp.asarray(x), layers)) == tier  # the path under test
    dense = np.asarray(neighbour_sum(jnp.asarray(x), layers, scale, "dense"))
    auto = np.asarray(jax.jit(lambda v: neighbour_sum(v, layers, scale, "auto"))(jnp.asarray(x)))
    np.testing.assert_allclose(auto, dense, rtol=1e-5, atol=1e-6)
    # Brute force: the same sum over an explicit neighbour list.
    expected = np.zeros(n)
    for name, s in (("a", 0.7), ("b", 1.3)):
        lay = layers[name]
        w = np.ones(lay.num_directed_edges) if lay.weight is None else np.asarray(lay.weight)
        np.add.at(expected, np.asarray(lay.dst), s * x[np.asarray(lay.src)] * w)
    np.testing.assert_allclose(dense, expected, rtol=1e-5, atol=1e-6)
    # A closed layer contributes nothing on either path.
    closed = {"a": jnp.float32(0.0), "b": jnp.float32(1.0)}
    np.testing.assert_allclose(
        np.asarray(neighbour_sum(jnp.asarray(x), layers, closed, "auto")),
        np.asarray(neighbour_sum(jnp.asarray(x), {"b": layers["b"]}, {}, "dense")),
        rtol=1e-5, atol=1e-6,
    )


def test_a_layer_without_edges_sums_to_zero_on_every_path():
    n = 40
    empty = build_contact_layer(EdgeList.from_pairs(np.zeros(0, np.int64), np.zeros(0, np.int64)), n)
    x = jnp.asarray(np.where(np.arange(n) < 3, 1.0, 0.0).astype(np.float32))  # few senders: the push
    for method in ("auto", "dense"):
        out = jax.jit(lambda v, m=method: neighbour_sum(v, {"empty": empty}, None, m))(x)
        np.testing.assert_array_equal(np.asarray(out), np.zeros(n, np.float32))


def test_unknown_contact_method_is_an_error():
    with pytest.raises(ValueError, match="unknown neighbour-sum method"):
        neighbour_sum(jnp.zeros(3), {}, {}, "magic")


def test_edge_list_canonicalisation():
    edges = EdgeList.from_pairs(np.array([3, 1, 2, 2, 0]), np.array([1, 3, 2, 4, 1]))
    np.testing.assert_array_equal(edges.u, [0, 1, 2])
    np.testing.assert_array_equal(edges.v, [1, 3, 4])
    # Already canonical input comes back unchanged (fast path), weights kept.
    again = EdgeList.from_pairs(edges.u, edges.v, np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(again.u, edges.u)
    np.testing.assert_array_equal(again.weight, [1.0, 2.0, 3.0])


def test_regularized_lower_gamma_matches_scipy():
    """The numpy-only Gamma CDF that keeps scipy.special off the start-up path: within 1e-12
    of scipy's over shapes 0.05..1000, and the infectiousness profiles it gives equal
    scipy's bit for bit in float32 on a grid of (mean, sd) (the default's included, so runs
    are unchanged; elsewhere a few differ by one float32 unit)."""
    import itertools

    from scipy.special import gammainc

    from jaxsim.kernels.infectiousness import gamma_infectiousness_profile, regularized_lower_gamma

    for a in (0.05, 0.3, 1.0, 2.5, 5.25, 10.0, 50.0, 200.0, 1000.0):
        xs = np.concatenate([np.linspace(0.0, 3 * a + 30, 120), [1e-8, a, a + 1, 5 * a + 100]])
        got = np.array([regularized_lower_gamma(a, x) for x in xs])
        np.testing.assert_allclose(got, gammainc(a, xs), rtol=0, atol=1e-12, err_msg=f"a={a}")
    for mean, sd in itertools.product((2.0, 5.5, 8.0, 15.0, 30.0), (0.5, 1.0, 2.4, 5.0, 10.0)):
        shape, scale = (mean / sd) ** 2, sd**2 / mean
        expected = np.diff(gammainc(shape, np.arange(22.0) / scale)).astype(np.float32)
        np.testing.assert_array_equal(gamma_infectiousness_profile(mean, sd, 21), expected)
    with pytest.raises(ValueError, match="0 < a <="):
        regularized_lower_gamma(0.0, 1.0)
    # Very narrow profiles (shape above LARGE_SHAPE) are scipy's; infinite inputs refused.
    for mean, sd in ((5.0, 1e-4), (6.0, 2e-5)):
        expected = np.diff(gammainc((mean / sd) ** 2, np.arange(22.0) / (sd**2 / mean))).astype(np.float32)
        np.testing.assert_allclose(gamma_infectiousness_profile(mean, sd, 21), expected, atol=1e-6)
    with pytest.raises(ValueError, match="finite"):
        gamma_infectiousness_profile(float("inf"), 2.0)
