"""Network generators: each one's defining property, reproducibility by seed, clean edge
lists, and clear errors for bad arguments."""

import networkx as nx
import numpy as np
import pytest

from jaxsim import generators
from jaxsim.errors import InputError


def degrees(edges, n):
    return np.bincount(np.concatenate([edges.u, edges.v]), minlength=n)


def assert_clean(edges, n):
    """Each undirected edge once, ``u < v``, endpoints in range, no self-loops."""
    assert np.all(edges.u < edges.v) and edges.u.min() >= 0 and edges.v.max() < n
    keys = edges.u.astype(np.int64) * n + edges.v
    assert np.unique(keys).size == keys.size


def test_erdos_renyi_has_binomial_degrees_and_is_reproducible():
    n, k = 50_000, 8.0
    edges = generators.erdos_renyi(n, k, seed=3)
    assert_clean(edges, n)
    d = degrees(edges, n)
    assert abs(d.mean() - k) < 0.05 * k
    assert abs(d.var() - k) < 0.1 * k  # Poisson-like: variance close to the mean
    again = generators.erdos_renyi(n, k, seed=3)
    np.testing.assert_array_equal(edges.u, again.u) and np.testing.assert_array_equal(edges.v, again.v)
    assert not np.array_equal(generators.erdos_renyi(n, k, seed=4).u[:100], edges.u[:100])
    assert generators.erdos_renyi(10, 0.0).num_edges == 0
    assert generators.erdos_renyi(30, 29.0, seed=0).num_edges == 30 * 29 // 2  # p = 1: complete


def test_watts_strogatz_rewires_from_a_ring_lattice():
    n, k = 2000, 6
    ring = generators.watts_strogatz(n, k, 0.0, seed=0)
    assert_clean(ring, n)
    assert np.all(degrees(ring, n) == k)
    clustering = []
    for p in (0.0, 0.1, 1.0):
        edges = generators.watts_strogatz(n, k, p, seed=1)
        graph = nx.Graph(list(zip(edges.u.tolist(), edges.v.tolist())))
        clustering.append(nx.average_clustering(graph))
        assert abs(degrees(edges, n).mean() - k) < 0.05 * k
    # Ring lattice clustering 3(k-2)/(4(k-1)) = 0.6; falls with rewiring (small world -> random).
    assert clustering[0] == pytest.approx(0.6, abs=1e-9)
    assert clustering[0] > clustering[1] > clustering[2] and clustering[2] < 0.02


def test_barabasi_albert_has_a_power_law_tail():
    """``P(k) ~ k^-3``: the complementary degree distribution falls as ``k^-2``. Measured
    slope over degrees 2m..20m at 200k agents, m = 3: about -1.9 (networkx's generator
    gives the same within 0.1)."""
    n, m = 200_000, 3
    edges = generators.barabasi_albert(n, m, seed=0)
    assert_clean(edges, n)
    d = degrees(edges, n)
    assert 2 * m * 0.95 < d.mean() <= 2 * m
    assert d.min() >= 1 and d.max() > 100 * m  # hubs
    ks = np.arange(2 * m, 20 * m + 1)
    ccdf = np.array([(d >= k).mean() for k in ks])
    slope = np.polyfit(np.log(ks), np.log(ccdf), 1)[0]
    assert -2.3 < slope < -1.6, slope
    reference = np.bincount(np.asarray([deg for _, deg in nx.barabasi_albert_graph(20_000, m, seed=0).degree()]))
    ours = np.bincount(degrees(generators.barabasi_albert(20_000, m, seed=0), 20_000))
    share = lambda counts, k: counts[k:].sum() / counts.sum()  # noqa: E731
    assert abs(share(ours, 10 * m) - share(reference, 10 * m)) < 0.02


def test_configuration_model_keeps_the_degrees():
    rng = np.random.default_rng(0)
    n = 20_000
    wanted = rng.poisson(6, n)
    edges = generators.configuration_model(wanted, seed=2)
    assert_clean(edges, n)
    got = degrees(edges, n)
    assert np.all(got <= wanted)
    assert got.sum() >= 0.99 * (wanted.sum() - 1)  # only self-loops and repeats are erased
    assert np.corrcoef(got, wanted)[0, 1] > 0.99


def test_household_cliques_link_every_pair_of_members():
    sizes = np.array([1, 3, 2, 5, 1])
    edges = generators.household_cliques(sizes)
    assert edges.num_edges == sum(s * (s - 1) // 2 for s in sizes)
    household = np.repeat(np.arange(len(sizes)), sizes)
    assert np.all(household[edges.u] == household[edges.v])
    assert_clean(edges, sizes.sum())


def test_households_and_communities():
    population = generators.households_and_communities(
        30_000, mean_household_size=2.6, community_size=5000, community_mean_degree=10, cross_share=0.1, seed=1)
    assert population.size == 30_000 and set(population.networks) == {"household", "community"}
    household = population.attributes["household"]
    sizes = np.bincount(household)
    assert abs(sizes.mean() - 2.6) < 0.1
    community = population.attributes["community"]
    edges = population.networks["community"]
    across = np.mean(community[edges.u] != community[edges.v])
    assert 0.07 < across < 0.13
    assert abs(2 * edges.num_edges / 30_000 - 10) < 0.5
    same = generators.households_and_communities(30_000, seed=1)
    np.testing.assert_array_equal(same.networks["community"].u, edges.u)


@pytest.mark.parametrize("neighbourhood, periodic, inner, corner", [
    ("moore", True, 8, 8), ("moore", False, 8, 3), ("von_neumann", True, 4, 4), ("von_neumann", False, 4, 2),
])
def test_grid_neighbourhoods(neighbourhood, periodic, inner, corner):
    width, height = 7, 5
    edges = generators.grid_2d(width, height, neighbourhood=neighbourhood, periodic=periodic)
    assert_clean(edges, width * height)
    d = degrees(edges, width * height).reshape(height, width)
    assert d[2, 3] == inner and d[0, 0] == corner


def test_population_wraps_networks():
    edges = generators.erdos_renyi(100, 4, seed=0)
    population = generators.population(100, {"contacts": edges})
    assert population.size == 100 and population.category_labels("everyone") == ["all"]


@pytest.mark.parametrize("call, message", [
    (lambda: generators.erdos_renyi(0, 3), "number of agents"),
    (lambda: generators.erdos_renyi(100, 200), "mean_degree"),
    (lambda: generators.watts_strogatz(100, 3, 0.1), "even whole number"),
    (lambda: generators.watts_strogatz(100, 4, 1.5), "p must lie"),
    (lambda: generators.barabasi_albert(100, 0), "m must be"),
    (lambda: generators.configuration_model(np.array([1.5, 2])), "whole numbers"),
    (lambda: generators.household_cliques(np.array([2, 0])), "sizes"),
    (lambda: generators.grid_2d(3, 0), "height"),
    (lambda: generators.grid_2d(3, 3, neighbourhood="hex"), "neighbourhood"),
    (lambda: generators.erdos_renyi(10, 2, seed="x"), "seed"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises(InputError, match=message):
        call()
