"""Building a run's :class:`~jaxsim.engine.World` from a population (host side).

Labels are looked up once, here: the world carries each coded attribute's codes ``[S]``
(padded to :func:`jaxsim.engine.padded_size` slots) with their labels, so that parameter
tables keyed by label (:mod:`jaxsim.parameters`) resolve against the world alone and no
kernel ever sees a label.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from jaxsim import memory
from jaxsim.engine import World, pad_agents, padded_size
from jaxsim.errors import InputError, LabelError
from jaxsim.graph import build_contact_graph
from jaxsim.population import Population
from jaxsim.transfer import to_device_array, tree_to_device


def code_dtype(num_categories: int):
    """The narrowest integer type for codes ``0 .. K-1`` (int8 below 127 categories)."""
    return np.int8 if num_categories < 127 else np.int32


def make_world(
    population: Population,
    *,
    attributes: Sequence[str] | None = None,
    groups: Mapping[str, str] | None = None,
    layers: Sequence[str] | None = None,
    agents: Mapping[str, np.ndarray] | None = None,
    inputs: Mapping | None = None,
    check_memory: bool = True,
    on_device: bool = True,
) -> World:
    """The world of a run on ``population``.

    Args:
        attributes: coded attributes to carry (default: all of the population's), as
            ``world.agents[name]`` with their category counts and labels.
        groups: ``{new name: attribute}``: an attribute carried again under another name
            (e.g. ``{"isolation_group": "age"}``: the groups a model's per-group table is
            indexed by), with the attribute's labels.
        layers: contact layers to build (default: all of the population's).
        agents: ``{name: [N] values}`` further per-agent arrays (numeric, padded with 0).
        inputs: ``world.inputs`` (exogenous, often time-indexed arrays).
        check_memory: refuse a world that would not fit the device (:mod:`jaxsim.memory`).
        on_device: ``False`` keeps every array on the host (numpy): estimate a whole run's
            memory first (:func:`jaxsim.memory.run_bytes` works on it), then
            :func:`to_device`.

    Raises:
        LabelError: an attribute or layer the population lacks.
    """
    n = population.size
    if n < 1:
        raise InputError("the population has no agents")
    names = list(population.attributes) if attributes is None else list(attributes)
    missing = [a for a in names if a not in population.attributes]
    if missing:
        raise LabelError(f"population has no attribute(s) {missing}; it has {sorted(population.attributes)}")
    groups = dict(groups or {})
    for alias, source in groups.items():
        if source not in population.attributes:
            raise LabelError(
                f"groups[{alias!r}]: population has no attribute {source!r}; it has {sorted(population.attributes)}"
            )
    agents = {name: np.asarray(values) for name, values in (agents or {}).items()}
    inputs = dict(inputs or {})
    if check_memory and on_device:
        memory.check_fits(
            world_bytes(population, attributes=names, groups=groups, layers=layers, agents=agents, inputs=inputs),
            f"the contact graph of {n:,} agents ({population.num_contacts:,} contacts)",
        )
    slots = padded_size(n)
    put = to_device_array if on_device else (lambda x: x)
    coded, categories, labels = {}, [], []
    for name, source in [(a, a) for a in names] + list(groups.items()):
        k = population.num_categories(source)
        coded[name] = put(pad_agents(population.attributes[source], slots, 0, code_dtype(k)))
        categories.append((name, k))
        labels.append((name, tuple(population.category_labels(source))))
    for name, values in agents.items():
        if values.shape[:1] != (n,):
            raise InputError(f"agents[{name!r}] has {values.shape[0] if values.ndim else 0} entries for {n} agents")
        if name in coded:
            raise InputError(f"agents[{name!r}] repeats a coded attribute")
        coded[name] = put(pad_agents(values, slots, 0))
    graph = build_contact_graph(population, None if layers is None else list(layers), num_slots=slots,
                                on_device=on_device)
    return World(
        agents=coded, graph=graph, inputs=inputs, num_agents=n,
        categories=tuple(categories), labels=tuple(labels),
    )


def to_device(world: World) -> World:
    """``world`` with every array on the default device (after a host build)."""
    import jax

    return tree_to_device(world)


def world_bytes(
    population: Population,
    *,
    attributes: Sequence[str] | None = None,
    groups: Mapping[str, str] | None = None,
    layers: Sequence[str] | None = None,
    agents: Mapping[str, np.ndarray] | None = None,
    inputs: Mapping | None = None,
) -> int:
    """Bytes :func:`make_world` allocates for the same arguments (before allocating them)."""
    names = list(population.attributes) if attributes is None else list(attributes)
    sources = names + [source for source in (groups or {}).values()]
    per_slot = sum(np.dtype(code_dtype(population.num_categories(a))).itemsize for a in sources)
    per_slot += sum(np.asarray(v).dtype.itemsize * int(np.prod(np.shape(v)[1:], dtype=np.int64))
                    for v in (agents or {}).values())
    return memory.world_bytes(
        population, None if layers is None else list(layers), per_slot_bytes=per_slot,
        input_bytes=memory.tree_bytes(dict(inputs or {})),
    )


__all__ = ["code_dtype", "make_world", "to_device", "world_bytes"]
