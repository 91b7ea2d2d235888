"""Agent reordering for memory locality, with the permutation kept."""

import numpy as np
import pytest

from jaxsim import locality
from jaxsim.nyc import synthesis
from jaxsim.population import EdgeList, Population

from conftest import random_population


def edge_set(population, ids=None):
    pairs = set()
    for name, e in population.networks.items():
        u, v = (e.u, e.v) if ids is None else (ids[e.u], ids[e.v])
        pairs |= {(name, int(min(a, b)), int(max(a, b))) for a, b in zip(u, v)}
    return pairs


@pytest.fixture(scope="module")
def shuffled():
    population = synthesis.synthesize_population_of_size(3000, seed=2)
    order = np.random.default_rng(0).permutation(population.size)
    return population, locality.reorder(population, order)


def test_reorder_keeps_agents_and_contacts(shuffled):
    original, mixed = shuffled
    assert np.array_equal(mixed.attributes["age"], original.attributes["age"][mixed.user_ids])
    assert edge_set(mixed, mixed.user_ids) == edge_set(original)
    back = locality.to_user_order(mixed, mixed.attributes["household"])
    assert np.array_equal(back, original.attributes["household"])


def test_localize_sorts_by_area_and_household_and_composes_ids(shuffled):
    original, mixed = shuffled
    local = locality.localize(mixed)
    keys = np.stack([local.attributes["area"], local.attributes["household"]], axis=1)
    assert np.all(np.diff(keys[:, 0]) >= 0)
    same_area = np.diff(keys[:, 0]) == 0
    assert np.all(np.diff(keys[:, 1])[same_area] >= 0)
    # user_ids refer to the original (pre-shuffle) ids.
    assert np.array_equal(local.attributes["age"], original.attributes["age"][local.user_ids])
    assert edge_set(local, local.user_ids) == edge_set(original)
    padded = np.concatenate([local.attributes["age"], np.zeros(5, np.int32)])
    assert np.array_equal(locality.to_user_order(local, padded), original.attributes["age"])


def test_reverse_cuthill_mckee_without_area_reduces_bandwidth():
    population = random_population(n=2000, seed=4, degree=0)
    ring = np.arange(2000)
    population.networks = {"ring": EdgeList.from_pairs(ring, (ring + 1) % 2000)}
    population.attributes.pop("household")
    mixed = locality.reorder(population, np.random.default_rng(1).permutation(2000))

    def bandwidth(p):
        e = p.networks["ring"]
        return int(np.max(np.abs(e.u.astype(int) - e.v.astype(int))))

    assert bandwidth(locality.localize(mixed)) < bandwidth(mixed) / 20


def test_bad_permutation_is_an_error():
    population = random_population(n=10, seed=0)
    with pytest.raises(ValueError, match="permutation"):
        locality.reorder(population, np.zeros(10, int))
