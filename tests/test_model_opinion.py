"""The Deffuant-Weisbuch opinion model (jaxsim.models.opinion) and its kernels
(jaxsim.kernels.edge_pairs): science, gradients, ensembles, several devices, bad input.

Runs on several CPU devices happen in a subprocess started with
XLA_FLAGS=--xla_force_host_platform_device_count=3 (the flag must be set before JAX
starts): this file run as a script, ``python tests/test_model_opinion.py --devices OUT``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEVICES = (2, 3)
DEVICE_AGENTS = 1001  # not a multiple of 2, 3 or 8: the slots need padding
DEVICE_DAYS = 20


def _edge_population(n: int, mean_degree: float, seed: int):
    from jaxsim import generators

    return generators.population(n, {"contacts": generators.erdos_renyi(n, mean_degree, seed=seed)})


def _world(n: int, mean_degree: float, seed: int):
    from jaxsim.models import opinion

    return opinion.build_world(_edge_population(n, mean_degree, seed))


@pytest.fixture(scope="module")
def model():
    from jaxsim.models import opinion

    return opinion.opinion_model()


@pytest.fixture(scope="module")
def small_world():
    """301 agents (padded to 304 slots), Erdos-Renyi with mean degree 8."""
    return _world(301, 8, seed=3)


# ------------------------------------------------------------------------------ kernels
def _random_layer(n: int, pairs: int, seed: int):
    from jaxsim.graph import build_contact_layer
    from jaxsim.population import EdgeList

    rng = np.random.default_rng(seed)
    edges = EdgeList.from_pairs(rng.integers(0, n, pairs), rng.integers(0, n, pairs))
    return build_contact_layer(edges, n), edges


def _check_matching(partner: np.ndarray, src: np.ndarray, dst: np.ndarray) -> int:
    """A matching along existing edges; returns the number of pairs."""
    n = partner.shape[0]
    matched = np.flatnonzero(partner >= 0)
    assert np.all(partner[partner[matched]] == matched), "partner of partner is not self"
    assert np.all(partner[matched] != matched), "an agent paired with itself"
    assert np.all(partner >= -1) and np.all(partner < n)
    edges = set((src.astype(np.int64) * n + dst).tolist())
    assert all(i * n + j in edges for i, j in zip(matched.tolist(), partner[matched].tolist())), "not an edge"
    # No agent twice: partner is one value per agent, and symmetric, so pairs are disjoint.
    assert np.unique(partner[matched]).size == matched.size
    return matched.size // 2


def test_reverse_edges_host_and_device_agree():
    import jax
    import jax.numpy as jnp

    from jaxsim.kernels import edge_pairs

    layer, _ = _random_layer(200, 900, seed=0)
    host = jax.tree.map(np.asarray, layer)
    reverse = edge_pairs.reverse_edges(host)
    assert isinstance(reverse, np.ndarray) and reverse.dtype == np.int32
    assert np.array_equal(host.src[reverse], host.dst) and np.array_equal(host.dst[reverse], host.src)
    assert np.array_equal(reverse[reverse], np.arange(reverse.size))  # an involution
    on_device = jax.jit(edge_pairs.reverse_edges)(layer)
    assert isinstance(on_device, jax.Array)
    np.testing.assert_array_equal(np.asarray(on_device), reverse)
    # A layer with one direction missing is refused (host check).
    broken = host.replace(src=host.src[1:], dst=host.dst[1:])
    with pytest.raises(ValueError, match="not symmetric"):
        edge_pairs.reverse_edges(broken)
    assert jnp.asarray(reverse).shape == layer.src.shape


def test_random_matching_is_the_set_of_locally_dominant_edges():
    """On a random graph the kernel's pairs are exactly the edges whose priority is the
    largest among the edges of both endpoints (a numpy reference), and a matching."""
    import jax
    import jax.numpy as jnp

    import jaxsim
    from jaxsim.kernels import edge_pairs

    n = 500
    layer, edges = _random_layer(n, 3000, seed=1)
    reverse = edge_pairs.reverse_edges(jax.tree.map(np.asarray, layer))
    match = jax.jit(edge_pairs.random_matching)
    src, dst = np.asarray(layer.src), np.asarray(layer.dst)
    total = 0
    for seed in range(3):
        uniforms = jaxsim.uniform(jax.random.key(seed), (src.size,))
        partner = np.asarray(match(uniforms, layer, jnp.asarray(reverse)))
        total += _check_matching(partner, src, dst)
        # Reference: priority of undirected edge (u, v) = uniform of its first stored direction.
        u = np.asarray(uniforms)
        position = np.arange(src.size)
        priority = u[np.minimum(position, reverse)]
        assert np.array_equal(priority, priority[reverse])
        # The model draws the same priorities hashed at the first positions (no gather).
        first = edge_pairs.first_positions(jnp.asarray(reverse))
        hashed = jaxsim.uniform(jax.random.key(seed), (src.size,), offset=first - jnp.arange(src.size))
        np.testing.assert_array_equal(np.asarray(hashed), priority)
        np.testing.assert_array_equal(
            np.asarray(edge_pairs.symmetric_priorities(uniforms, jnp.asarray(reverse))), priority)
        best = np.full(n, -np.inf)
        np.maximum.at(best, dst, priority)
        dominant = (priority == best[src]) & (priority == best[dst])
        expected = np.full(n, -1)
        expected[dst[dominant]] = src[dominant]
        assert len(np.unique(priority)) == priority.size // 2  # no ties in these draws
        np.testing.assert_array_equal(partner, expected)
    # Each edge is dominant with probability 1 / (edges sharing an endpoint, itself included).
    degree = np.bincount(dst, minlength=n)
    expected_pairs = np.sum(1.0 / (degree[edges.u] + degree[edges.v] - 1))
    assert abs(total / 3 - expected_pairs) < 0.1 * expected_pairs


def test_matching_with_ties_and_edge_frequencies():
    """Equal priorities (ties) still give a matching; on a star every edge is drawn equally
    often (1 / 4 each), and on a path of 3 edges the middle one with probability 1/3."""
    import jax
    import jax.numpy as jnp

    import jaxsim
    from jaxsim.kernels import edge_pairs
    from jaxsim.graph import build_contact_layer
    from jaxsim.population import EdgeList

    layer, _ = _random_layer(300, 2000, seed=2)
    partner = np.asarray(jax.jit(edge_pairs.matching_from_priorities)(jnp.zeros(layer.src.shape[0]), layer))
    assert _check_matching(partner, np.asarray(layer.src), np.asarray(layer.dst)) > 0
    # Empty layer: nobody is paired.
    empty = build_contact_layer(EdgeList(np.zeros(0, np.int32), np.zeros(0, np.int32)), 5)
    assert np.all(np.asarray(jax.jit(edge_pairs.random_matching)(jnp.zeros(0), empty)) == -1)

    # A star (centre 0, leaves 1-4) and a path 5-6-7-8 in one layer.
    both = build_contact_layer(EdgeList.from_pairs(np.array([0, 0, 0, 0, 5, 6, 7]),
                                                   np.array([1, 2, 3, 4, 6, 7, 8])), 9)
    draws = 4000
    keys = jax.random.split(jax.random.key(5), draws)
    reverse = edge_pairs.reverse_edges(both)
    fn = jax.jit(jax.vmap(lambda k: edge_pairs.random_matching(
        jaxsim.uniform(k, (both.src.shape[0],)), both, reverse)))
    partners = np.asarray(fn(keys))
    assert np.all((partners[:, 0] >= 1) & (partners[:, 0] <= 4))  # the centre is always paired
    share = np.bincount(partners[:, 0], minlength=5)[1:] / draws
    np.testing.assert_allclose(share, 0.25, atol=0.03)
    middle = np.mean(partners[:, 6] == 7)
    assert abs(middle - 1 / 3) < 0.03, middle
    assert np.all((partners[:, 5] == 6) == (partners[:, 6] == 5))
    # The middle edge is drawn exactly when neither end edge is; both ends when it is the lowest.
    ends = (partners[:, 5] == 6).astype(int) + (partners[:, 8] == 7)
    assert np.all((partners[:, 6] == 7) == (ends == 0))
    assert abs(np.mean(ends == 2) - 1 / 3) < 0.03


def test_bounded_confidence_update_is_symmetric_and_conserves_the_sum():
    import jax
    import jax.numpy as jnp

    import jaxsim
    from jaxsim.kernels import edge_pairs

    n = 400
    layer, _ = _random_layer(n, 4000, seed=4)
    x = np.asarray(jaxsim.uniform(jax.random.key(0), (n,)))
    uniforms = np.asarray(jaxsim.uniform(jax.random.key(1), (layer.src.shape[0],)))
    partner = jax.jit(edge_pairs.random_matching)(uniforms, layer)
    update = jax.jit(edge_pairs.bounded_confidence_update)
    new = update(x, partner, 0.3, 0.37)
    x_h, new_h, p = np.asarray(x), np.asarray(new), np.asarray(partner)
    delta = new_h.astype(np.float64) - x_h
    matched = np.flatnonzero(p >= 0)
    close = matched[np.abs(x_h[p[matched]] - x_h[matched]) < 0.3]
    far = np.setdiff1d(np.arange(n), close)
    assert close.size > 50 and far.size > 50
    assert np.all(new_h[far] == x_h[far])  # unmatched or too far apart: unchanged
    # The moves are mu times the difference, and symmetric within each pair.
    step = np.float32(0.37) * (x_h[p[close]] - x_h[close])
    np.testing.assert_allclose(delta[close], step, atol=1e-7)
    np.testing.assert_allclose(delta[close], -delta[p[close]], atol=1e-7)
    # The threshold's surrogate gradient: the same values; d/d epsilon of the summed moves
    # toward partners is the sigmoid's slope at each pair's distance times its step.
    soft = jax.jit(lambda e: edge_pairs.bounded_confidence_update(jnp.asarray(x), partner, e, 0.37, softness=0.02))
    np.testing.assert_array_equal(np.asarray(soft(0.3)), new_h)
    weights = jnp.asarray(np.where(p >= 0, x_h[np.maximum(p, 0)] - x_h, 0.0), jnp.float32)
    grad = float(jax.grad(lambda e: jnp.sum(soft(e) * weights))(jnp.float32(0.3)))
    d = np.abs(x_h[p[matched]] - x_h[matched]).astype(np.float64)
    z = (0.3 - d) / 0.02
    slope = np.exp(-z) / (1 + np.exp(-z)) ** 2 / 0.02
    expected = float(np.sum(slope * 0.37 * (x_h[p[matched]] - x_h[matched]) ** 2))
    assert expected > 0 and grad == pytest.approx(expected, rel=1e-3)
    assert float(jax.grad(lambda e: jnp.sum(update(jnp.asarray(x), partner, e, 0.37) * weights))(jnp.float32(0.3))) == 0.0
    # The sum changes only by the rounding of the additions (one half-ulp each, at most).
    assert abs(new_h.astype(np.float64).sum() - x_h.astype(np.float64).sum()) <= close.size * 2.0**-25
    # mu = 0.5 meets halfway: both partners land on the same value.
    half = np.asarray(update(x, partner, 1.0, 0.5))
    np.testing.assert_allclose(half[matched], half[p[matched]], atol=1e-7)
    # A weight of 0 cancels the move; epsilon is a strict bound.
    stay = update(x, partner, 1.0, 0.5, np.zeros(n, np.float32))
    assert np.array_equal(np.asarray(stay), x_h)
    same = update(jnp.array([0.0, 0.25]), jnp.array([1, 0]), 0.25, 0.5)
    assert np.array_equal(np.asarray(same), [0.0, 0.25])


def test_exact_sum_does_not_depend_on_the_order():
    """The mean and variance metrics come from fixed-point sums: a shuffled array gives the
    same float32, bit for bit, within 2**-31 per value of the float64 sum."""
    import jax

    from jaxsim.models import opinion

    rng = np.random.default_rng(0)
    values = rng.random(100_000).astype(np.float32)
    values[:5] = [0.0, 1.0, 2.0**-30, 1.0 - 2.0**-24, 0.5]
    mask = rng.random(values.size) < 0.9
    order = rng.permutation(values.size)
    total = jax.jit(opinion.exact_unit_sum)
    a, b = float(total(values, mask)), float(total(values[order], mask[order]))
    assert a == b
    expected = values[mask].astype(np.float64).sum()
    assert abs(a - expected) <= mask.sum() * 2.0**-31 + abs(expected) * 2.0**-23
    assert [opinion.limb_bits(n) for n in (2000, 100_000, 10**6, 8_550_333)] == [20, 14, 11, 7]


# ------------------------------------------------------------------------------ science
CLUSTER_EPSILONS = (0.1, 0.15, 0.25, 0.5)
CLUSTER_AGENTS = 2000
CLUSTER_DAYS = 300
CLUSTER_SEEDS = (0, 1)


@pytest.fixture(scope="module")
def cluster_runs(model):
    """Final opinions for each epsilon and seed on Erdos-Renyi (2,000 agents, mean degree
    50), mu = 0.5, 300 days (about 150 meetings per agent); one compiled program."""
    import jax

    import jaxsim
    from jaxsim.models import opinion

    world = _world(CLUSTER_AGENTS, 50, seed=1)
    runs = {}
    for seed in CLUSTER_SEEDS:
        for epsilon in CLUSTER_EPSILONS:
            params = opinion.default_params(world, epsilon=epsilon)
            state = model.init(jax.random.key(seed), params, world)
            result = jaxsim.run(model, jax.random.key(100 + seed), state, params, world, CLUSTER_DAYS,
                                progress=False)
            runs[seed, epsilon] = (opinion.opinions(state, world), opinion.opinions(result.state, world),
                                   result.metrics)
    return runs


def test_cluster_count_follows_one_over_two_epsilon(cluster_runs):
    """Deffuant et al. (2000): from uniform opinions the number of major clusters is about
    floor(1 / (2 epsilon)). Measured (major clusters: at least 2 % of the agents; seeds 0
    and 1): epsilon 0.1 -> 5 and 4, 0.15 -> 3 and 3, 0.25 -> 2 and 2, 0.5 -> 1 and 1
    (expected 5, 3, 2, 1); e.g. seed 0, epsilon 0.25: clusters at 0.29 and 0.69 holding 47 %
    and 53 % of the agents; epsilon 0.1: at 0.11, 0.27, 0.49, 0.70, 0.86."""
    from jaxsim.models import opinion

    counts = {}
    for (seed, epsilon), (_, final, _) in cluster_runs.items():
        found = opinion.clusters(final, tolerance=0.01, min_share=0.02)
        expected = opinion.expected_clusters(epsilon)
        assert abs(found.major - expected) <= 1, (seed, epsilon, found.major, expected)
        # Major clusters are further apart than epsilon (else they would still merge).
        assert np.all(np.diff(found.major_centers) > epsilon * 0.9), (seed, epsilon, found.major_centers)
        counts[seed, epsilon] = found.major
    assert [opinion.expected_clusters(e) for e in CLUSTER_EPSILONS] == [5, 3, 2, 1]
    for seed in CLUSTER_SEEDS:
        per_seed = [counts[seed, e] for e in CLUSTER_EPSILONS]
        assert per_seed == sorted(per_seed, reverse=True), per_seed
    mean = [np.mean([counts[s, e] for s in CLUSTER_SEEDS]) for e in CLUSTER_EPSILONS]
    assert all(a > b for a, b in zip(mean, mean[1:])), mean  # strictly fewer as epsilon grows
    assert counts[0, 0.5] == counts[1, 0.5] == 1  # consensus


def test_mean_opinion_is_conserved_and_dynamics_settle(cluster_runs):
    """Symmetric updates conserve the sum: the daily mean stays within 1e-6 of the day-0
    mean (measured: at most 4.2e-8 apart over 300 days); the variance falls and, for
    epsilon 0.5, reaches consensus (no agent changes on the last days)."""
    for (seed, epsilon), (initial, final, metrics) in cluster_runs.items():
        mean0 = initial.astype(np.float64).mean()
        assert abs(mean0 - 0.5) < 0.02
        assert np.max(np.abs(metrics["mean_opinion"] - mean0)) < 1e-6, (seed, epsilon)
        assert abs(final.astype(np.float64).mean() - mean0) < 1e-6
        variance = metrics["opinion_variance"]
        assert abs(variance[0] - initial.astype(np.float64).var()) < 0.02  # after one day's meetings
        assert variance[-1] < variance[0]
        # About half of the agents meet every day on a graph of mean degree 50.
        assert 0.4 < metrics["meetings"][0] * 2 / CLUSTER_AGENTS < 0.6
        assert metrics["changed"].dtype == np.int32 and metrics["meetings"].dtype == np.int32
        np.testing.assert_allclose(metrics["changed_share"], metrics["changed"] / CLUSTER_AGENTS, rtol=2e-7)
        if epsilon == 0.5:
            assert variance[-1] < 1e-10 and np.all(metrics["changed"][-10:] == 0)


# ---------------------------------------------------------------------------- gradient
GRADIENT_DAYS = 8


@pytest.fixture(scope="module")
def gradient_functions(small_world):
    """The plain pathwise derivative (no surrogate for the confidence bound): the exact
    derivative of each realisation."""
    import jax
    import jax.numpy as jnp

    import jaxsim
    from jaxsim.models import opinion

    base = opinion.default_params(small_world)
    model = opinion.opinion_model(epsilon_softness=None)

    def final_variance(mu, epsilon):
        params = base.replace(mu=mu, epsilon=epsilon)
        state = jaxsim.initial_state(model, jax.random.key(1), params, small_world)
        _, metrics = jaxsim.simulate(model, jax.random.key(2), state, params, small_world, GRADIENT_DAYS,
                                     estimator="straight_through")
        return metrics["opinion_variance"][-1]

    return jax.jit(jax.value_and_grad(final_variance)), jnp.float32


@pytest.mark.parametrize("epsilon", [1.0, 0.3])
def test_gradient_of_final_variance_matches_finite_differences(gradient_functions, epsilon):
    """d(variance after 8 days)/d(mu) at mu = 0.3, pathwise (the matching's draws do not
    depend on mu), against central differences on the same keys (common random numbers),
    h = 1e-3. With epsilon = 1 every matched pair moves (smooth in mu); with epsilon = 0.3
    the bound is a threshold, and h is small enough that no pair crosses it. Measured:
    epsilon 1.0: -0.051003 vs -0.051004 (relative gap 3e-6); epsilon 0.3: -0.014627 vs
    -0.014626 (1.1e-4); asserted within 1 %. (With h = 1e-2 and epsilon 0.3 pairs do cross
    the bound: on a 600-agent graph the quotient was then 25-32 % off, the jumps that the
    pathwise derivative leaves out.)"""
    value_and_grad, f32 = gradient_functions
    mu, h = f32(0.3), f32(1e-3)
    g = float(value_and_grad(mu, f32(epsilon))[1])
    high, low = (float(value_and_grad(m, f32(epsilon))[0]) for m in (mu + h, mu - h))
    fd = (high - low) / (float(mu + h) - float(mu - h))
    assert np.isfinite(g) and g < 0  # a faster convergence lowers the variance
    assert abs(g - fd) <= 0.01 * abs(fd), (g, fd)


def test_the_default_surrogate_gives_the_confidence_bound_a_gradient_without_changing_values(small_world):
    """The default model differentiates the bound through a sigmoid surrogate: epsilon gets
    a (negative: a wider bound merges more) gradient where the pathwise derivative has
    none; values are those of the pathwise model, bit for bit."""
    import jax

    import jaxsim
    from jaxsim.models import opinion

    base = opinion.default_params(small_world, epsilon=0.3, mu=0.3)

    def final_variance(model, epsilon):
        params = base.replace(epsilon=epsilon)
        state = jaxsim.initial_state(model, jax.random.key(1), params, small_world)
        _, metrics = jaxsim.simulate(model, jax.random.key(2), state, params, small_world, GRADIENT_DAYS,
                                     estimator="straight_through")
        return metrics["opinion_variance"][-1]

    soft, plain = opinion.opinion_model(), opinion.opinion_model(epsilon_softness=None)
    v_soft, g_soft = jax.value_and_grad(lambda e: final_variance(soft, e))(jax.numpy.float32(0.3))
    v_plain, g_plain = jax.value_and_grad(lambda e: final_variance(plain, e))(jax.numpy.float32(0.3))
    assert float(v_soft) == float(v_plain)
    assert float(g_plain) == 0.0
    assert np.isfinite(float(g_soft)) and float(g_soft) < 0
    assert soft != plain
    with pytest.raises(jaxsim.InputError, match="epsilon_softness must be None or a number > 0"):
        opinion.opinion_model(epsilon_softness=0.0)


# ---------------------------------------------------------------------------- ensembles
ENSEMBLE_DAYS = 12


def test_ensemble_members_equal_single_runs(model, small_world):
    """run_ensemble (vmap): member k equals the single run with key k, bit for bit; and
    Sim.ensemble gives the same members."""
    import jax

    import jaxsim
    from jaxsim import ensemble
    from jaxsim.models import opinion

    params = opinion.default_params(small_world, epsilon=0.3, mu=0.4, meeting_prob=0.8)
    keys = ensemble.member_keys(7, 3)
    batch = ensemble.run_ensemble(model, keys, params, small_world, ENSEMBLE_DAYS, batch_size=3)
    assert batch.batch_size == 3
    sim = jaxsim.Sim(model, world=small_world, params=params, days=ENSEMBLE_DAYS, seed=7)
    for k in range(3):
        single = sim.run(key=keys[k], progress=False)
        for name, values in single.metrics.items():
            np.testing.assert_array_equal(batch.metrics[name][k], values, err_msg=f"member {k}: {name}")
    assert not np.array_equal(batch.metrics["opinion_variance"][0], batch.metrics["opinion_variance"][1])
    # Fewer than all pairs meet with meeting_prob 0.8.
    assert 0.3 < batch.metrics["meetings"].mean() * 2 / small_world.num_agents < 0.45
    via_sim = sim.ensemble(members=3)
    assert sorted(via_sim.metrics) == sorted(batch.metrics)
    for name in batch.metrics:
        np.testing.assert_array_equal(via_sim.metrics[name], batch.metrics[name], err_msg=name)
    bands = via_sim.quantiles(["mean_opinion", "opinion_variance"])
    assert set(bands["metric"]) == {"mean_opinion", "opinion_variance"}


def test_sim_from_a_population_and_padding_stays_inert(model):
    """Sim builds the model's own world (reverse edges included); padding slots keep 0 and
    are never paired; a world from plain make_world gives the same run (with a warning:
    the edges are sorted every day); two rounds a day give twice the meetings."""
    import jax

    import jaxsim
    from jaxsim.models import opinion

    population = _edge_population(301, 8, seed=3)
    sim = jaxsim.Sim(model, population, days=ENSEMBLE_DAYS, epsilon=0.3, mu=0.4, meeting_prob=0.8)
    assert opinion.REVERSE_EDGES in sim.world.inputs
    result = sim.run(seed=1, progress=False)
    assert result.info["parameters"]["epsilon"] == pytest.approx(0.3)
    assert result.info["units"]["mu"] == "share of the difference per meeting"
    final = np.asarray(result.state.opinion)
    assert final.shape == (304,) and np.all(final[301:] == 0)
    frame = result.frame()
    assert {"meetings", "changed", "mean_opinion", "opinion_variance"} <= set(frame.columns)
    plain_world = jaxsim.make_world(population)
    with pytest.warns(UserWarning, match="reverse_edges"):
        plain = jaxsim.Sim(model, world=plain_world, params=sim.params, days=ENSEMBLE_DAYS).run(seed=1, progress=False)
    for name in result.metrics:
        np.testing.assert_array_equal(plain.metrics[name], result.metrics[name], err_msg=name)
    # Two rounds a day: about twice the meetings.
    twice = jaxsim.Sim(opinion.opinion_model(rounds=2), world=sim.world, params=sim.params,
                       days=ENSEMBLE_DAYS).run(seed=1, progress=False)
    ratio = twice.metrics["meetings"].sum() / result.metrics["meetings"].sum()
    assert 1.8 < ratio < 2.2, ratio
    assert jax.numpy.shape(twice.state.opinion) == (304,)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("field, value", [
    ("epsilon", 1.5), ("epsilon", -0.1), ("mu", 0.7), ("mu", -0.01), ("meeting_prob", 1.2),
    ("initial_high", 2.0),
])
def test_parameters_outside_their_bounds_are_refused(small_world, field, value):
    import jaxsim
    from jaxsim.models import opinion

    with pytest.raises(jaxsim.InputError, match=rf"OpinionParams\.{field}: \[?{value}\]? is outside its bounds"):
        opinion.default_params(small_world, **{field: value})


def test_bad_parameters_and_worlds_are_refused_before_a_run(model, small_world):
    import jax
    import jax.numpy as jnp

    import jaxsim
    from jaxsim import sharding
    from jaxsim.models import opinion

    params = opinion.default_params(small_world)
    state = model.init(jax.random.key(0), params, small_world)
    key = jax.random.key(1)
    with pytest.raises(jaxsim.InputError, match=r"OpinionParams\.mu: .*outside its bounds \[0.0, 0.5\]"):
        jaxsim.run(model, key, state, params.replace(mu=jnp.float32(0.9)), small_world, 2, progress=False)
    with pytest.raises(jaxsim.InputError, match=r"OpinionParams\.epsilon: .*outside its bounds"):
        jaxsim.Sim(model, world=small_world, days=3, epsilon=2.0)
    with pytest.raises(jaxsim.InputError, match=r"OpinionParams\.initial_low: 0.8 is above initial_high 0.2"):
        opinion.default_params(small_world, initial_low=0.8, initial_high=0.2)
    with pytest.raises(jaxsim.InputError, match="OpinionParams.epsilon: non-finite"):
        jaxsim.run(model, key, state, params.replace(epsilon=jnp.float32(np.nan)), small_world, 2, progress=False)
    with pytest.raises(jaxsim.InputError, match="OpinionState.opinion has shape"):
        jaxsim.run(model, key, state.replace(opinion=state.opinion[:8]), params, small_world, 2, progress=False)
    with pytest.raises(jaxsim.InputError, match=r"layers \['friends'\] are not in the world"):
        jaxsim.run(opinion.opinion_model(layers=["friends"]), key, state, params, small_world, 2, progress=False)
    with pytest.raises(jaxsim.InputError, match="rounds must be a whole number >= 1"):
        opinion.opinion_model(rounds=0)
    halo = sharding.shard_world(small_world, sharding.make_mesh(1))
    with pytest.raises(jaxsim.InputError, match="graph='replicate'"):
        jaxsim.run(model, key, model.init(key, params, halo), params, halo, 2, progress=False)
    with pytest.raises(jaxsim.InputError, match="tolerance"):
        opinion.clusters(np.zeros(3), tolerance=-1.0)


# ------------------------------------------------------------------ several devices
@pytest.fixture(scope="module")
def device_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("opinion-devices")
    from conftest import run_on_host_devices

    run_on_host_devices(__file__, max(DEVICES), "--devices", out)
    return out


@pytest.mark.parametrize("devices", DEVICES)
def test_metrics_on_several_devices_equal_one_device(device_runs, devices):
    """The world split over 2 and 3 CPU devices (shard_world(..., graph="replicate") and
    shard_state): every metric and the final opinions equal the unsharded run bit for bit
    (the draws hash global indices; the mean and variance are order-independent sums)."""
    plain = np.load(device_runs / "plain.npz")
    sharded = np.load(device_runs / f"devices-{devices}.npz")
    assert int(sharded["devices"]) == devices
    names = [k for k in plain.files if k.startswith("metric:")]
    assert len(names) == 5
    assert plain["metric:meetings"].sum() > DEVICE_DAYS * DEVICE_AGENTS // 5
    for name in names + ["opinion"]:
        np.testing.assert_array_equal(sharded[name], plain[name], err_msg=f"{devices} devices: {name}")


def _devices_main(out: Path) -> int:
    """Run with several CPU devices: the model unsharded and on 2 and 3 devices."""
    import jax

    import jaxsim
    from jaxsim import sharding
    from jaxsim.models import opinion

    assert jax.device_count() >= max(DEVICES), jax.devices()
    model = opinion.opinion_model()
    base_world = _world(DEVICE_AGENTS, 10, seed=6)
    params = opinion.default_params(base_world, epsilon=0.3, meeting_prob=0.9)

    def run(devices):
        world, p, key = base_world, params, jax.random.key(0)
        if devices is not None:
            mesh = sharding.make_mesh(devices)
            world = sharding.shard_world(base_world, mesh, graph="replicate")
        state = model.init(jax.random.key(1), p, world)
        if devices is not None:
            state = sharding.shard_state(state, mesh, world)
            p, key = sharding.replicate((p, key), mesh)
            assert len(state.opinion.sharding.device_set) == devices
        result = jaxsim.run(model, key, state, p, world, DEVICE_DAYS, progress=False)
        arrays = {f"metric:{k}": np.asarray(v) for k, v in result.metrics.items()}
        arrays["opinion"] = opinion.opinions(result.state, world)
        return arrays

    np.savez(out / "plain.npz", **run(None))  # the unsharded run: the reference
    for devices in DEVICES:
        np.savez(out / f"devices-{devices}.npz", devices=devices, **run(devices))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--devices":
        sys.path.insert(0, str(ROOT / "tests"))
        sys.exit(_devices_main(Path(sys.argv[2])))
    sys.exit(f"usage: {sys.argv[0]} --devices OUT_DIR")
