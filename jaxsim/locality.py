"""Agent order for memory locality: contacts near each other in the agent arrays.

The contact sum gathers each agent's neighbours' infectiousness; when neighbours sit close
together in memory the gather reads cache lines it already has. Populations from files
often come in an arbitrary order, so :func:`localize` reorders agents (by area and
household where the population has them, else by a bandwidth-reducing reverse
Cuthill-McKee ordering of the contact graph) and keeps the permutation, so per-agent
results can be put back in the user's agent ids (:func:`to_user_order`).

Aggregate metrics (counts per day) do not depend on the order, but random draws are per
agent slot, so a reordered population gives a different (equally valid) realisation for
the same seed.
"""

from __future__ import annotations

import numpy as np

from jaxsim.population import EdgeList, Population
from jaxsim.errors import InputError

#: Attributes that group agents who are in contact, in order of precedence.
LOCALITY_KEYS: tuple[str, ...] = ("area", "household")


def locality_order(population: Population) -> np.ndarray:
    """A permutation ``order`` of ``0..N-1``: new agent ``i`` is old agent ``order[i]``.

    Sorted by the population's ``area`` then ``household`` codes when it has either
    (stable, so ties keep their order); otherwise reverse Cuthill-McKee over all layers.
    """
    keys = [population.attributes[k] for k in LOCALITY_KEYS if k in population.attributes]
    n = population.size
    if keys:
        return np.lexsort(tuple(reversed(keys))).astype(np.int64)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    if not population.networks:
        return np.arange(n, dtype=np.int64)
    u = np.concatenate([e.u for e in population.networks.values()])
    v = np.concatenate([e.v for e in population.networks.values()])
    graph = coo_matrix((np.ones(u.size, np.int8), (u, v)), shape=(n, n)).tocsr()
    return np.asarray(reverse_cuthill_mckee(graph, symmetric_mode=False), dtype=np.int64)


def reorder(population: Population, order: np.ndarray) -> Population:
    """The population with agent ``i`` = old agent ``order[i]``; edges renumbered.

    The result's ``user_ids`` maps each new index to the id the agent had where the
    population came from (composed with any earlier reordering).
    """
    n = population.size
    order = np.asarray(order, dtype=np.int64)
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise InputError(f"order must be a permutation of 0..{n - 1}")
    new_index = np.empty(n, dtype=np.int64)
    new_index[order] = np.arange(n)
    networks = {
        name: EdgeList.from_pairs(new_index[e.u], new_index[e.v], e.weight)
        for name, e in population.networks.items()
    }
    user_ids = order if population.user_ids is None else population.user_ids[order]
    return Population(
        attributes={k: v[order] for k, v in population.attributes.items()},
        labels=dict(population.labels),
        strings={k: v[order] for k, v in population.strings.items()},
        networks=networks,
        initial_states={name: np.asarray(values)[order] for name, values in population.initial_states.items()},
        metadata=dict(population.metadata),
        user_ids=user_ids,
    )


def localize(population: Population) -> Population:
    """:func:`reorder` by :func:`locality_order`."""
    return reorder(population, locality_order(population))


def to_user_order(population: Population, values: np.ndarray) -> np.ndarray:
    """Per-agent ``values`` ``[N, ...]`` of a (possibly reordered) population, indexed by the
    user's agent ids (padding slots beyond ``N`` are dropped)."""
    values = np.asarray(values)[: population.size]
    if population.user_ids is None:
        return values
    out = np.empty_like(values)
    out[population.user_ids] = values
    return out
