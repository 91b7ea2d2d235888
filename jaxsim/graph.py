"""Contact layers as device arrays (:class:`jaxsim.kernels.layers.ContactLayer`), built
once on the host from a population's undirected :class:`~jaxsim.population.EdgeList`.

They are passed to the jitted step as an argument (never closed over, so XLA does not
constant-fold them and the same compiled program runs any population of the same shape).
"""

from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp
import numpy as np

from jaxsim.errors import InputError, LabelError
from jaxsim.kernels.layers import ContactLayer
from jaxsim.population import EdgeList, Population, PopulationError
from jaxsim.transfer import to_device_array


def directed_sorted_edges(
    edges: EdgeList, num_agents: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Host side: both directions of each undirected edge, sorted by (dst, src).

    Sorting by source within a destination keeps gathers as local as the agent order
    allows. Returns int32 ``src, dst`` and float32 ``weight`` (or ``None``), each ``[2E]``.
    """
    if edges.num_edges and (
        min(edges.u.min(), edges.v.min()) < 0 or max(edges.u.max(), edges.v.max()) >= num_agents
    ):
        raise PopulationError(f"an edge endpoint is outside [0, {num_agents})")
    src = np.concatenate([edges.u, edges.v]).astype(np.int32, copy=False)
    dst = np.concatenate([edges.v, edges.u]).astype(np.int32, copy=False)
    # Stable sort by src, then stable sort by dst: ordered by (dst, src).
    order = np.argsort(src, kind="stable")
    order = order[np.argsort(dst[order], kind="stable")]
    src, dst = src[order], dst[order]
    weight = None
    if edges.weight is not None:
        weight = np.concatenate([edges.weight, edges.weight]).astype(np.float32)[order]
    return src, dst, weight


def build_contact_layer(edges: EdgeList, num_agents: int, *, on_device: bool = True) -> ContactLayer:
    """:class:`ContactLayer` from an undirected edge list (device arrays, or numpy with
    ``on_device=False``)."""
    src, dst, weight = directed_sorted_edges(edges, num_agents)
    row_start = np.zeros(num_agents + 1, np.int64)
    np.cumsum(np.bincount(dst, minlength=num_agents), out=row_start[1:])
    if row_start[-1] >= 2**31:
        raise PopulationError(f"a contact layer has {row_start[-1]} directed edges; at most 2**31 - 1 are supported")
    put = to_device_array if on_device else np.asarray
    return ContactLayer(
        src=put(src),
        dst=put(dst),
        row_start=put(row_start.astype(np.int32)),
        weight=None if weight is None else put(weight),
    )


def build_contact_graph(
    population: Population, layers: list[str] | None = None, num_slots: int | None = None,
    *, on_device: bool = True,
) -> dict[str, ContactLayer]:
    """All (or the named) contact layers of a population as ``{name: ContactLayer}``.

    ``num_slots`` (>= N) sizes the layers' row offsets for padded agent arrays.
    """
    names = list(population.networks) if layers is None else list(layers)
    missing = [n for n in names if n not in population.networks]
    if missing:
        raise LabelError(
            f"population has no contact network(s) {missing}; it has {sorted(population.networks)}"
        )
    slots = population.size if num_slots is None else int(num_slots)
    if slots < population.size:
        raise InputError(f"num_slots {slots} is smaller than the population ({population.size})")
    return {n: build_contact_layer(population.networks[n], slots, on_device=on_device) for n in names}


def mean_contacts_per_day(
    graph: Mapping[str, ContactLayer], num_agents: int, layer_scale: Mapping[str, np.ndarray] | None = None
) -> float:
    """Mean weighted number of contacts per agent per day, averaged over the run's days.

    ``layer_scale`` maps a layer name to its per-day multipliers ``[days]`` (missing: 1).
    This is the default normalising constant ``c`` of the contact-infection kernel.
    """
    total = 0.0
    for name, layer in graph.items():
        per_day = float(layer.num_directed_edges if layer.weight is None else jnp.sum(layer.weight))
        scale = 1.0 if layer_scale is None or name not in layer_scale else float(np.mean(layer_scale[name]))
        total += per_day * scale
    return total / max(num_agents, 1)


__all__ = [
    "ContactLayer",
    "build_contact_graph",
    "build_contact_layer",
    "directed_sorted_edges",
    "mean_contacts_per_day",
]
