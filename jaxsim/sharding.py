"""One population over many devices: the agent axis split into contiguous blocks.

A run on ``D`` devices keeps every per-agent array (state and world) split along a 1-D
device mesh with axis :data:`AGENT_AXIS`: device ``d`` holds agent slots
``d * B .. (d + 1) * B - 1``. Element-wise work and the per-day counts are partitioned by
XLA (``jax.jit`` over ``NamedSharding`` arguments); the contact sum, the one step that
reads other agents, runs in :mod:`jaxsim.kernels.sharded_contacts` with explicit
``shard_map`` code that exchanges only the infectiousness of agents with contacts on
another device (the *halo*). Agents ordered for locality (:mod:`jaxsim.locality`, or the
synthetic populations' neighbourhood-by-household order) have few such contacts.

Same seed, same metrics for any number of devices: the random draws hash the *global*
agent index (:func:`jaxsim.sampling.uniform`), integer-valued counts are exact in any
order, and each agent's contact sum adds the same terms in the same order as on one
device. ``tests/test_sharding.py`` checks 1, 2, 3 and 4 devices give bitwise-equal metrics.

Usage (one process; several processes: see ``scenarios/multihost_example.py``)::

    mesh = sharding.make_mesh(4)
    world = sharding.shard_world(covid.build_world(population), mesh)
    state = sharding.shard_state(model.init(key0, params, world), mesh, world)
    params, key = sharding.replicate((params, key), mesh)
    result = engine.run(model, key, state, params, world, days=60)

Any model works this way: its per-agent arrays are split, XLA partitions its element-wise
work, and a model whose only read of other agents is
:func:`jaxsim.kernels.neighbour_sums.neighbour_sum` gets the halo exchange. A model that
reads the graph's edges itself (e.g. pairwise updates) keeps the layers whole on every
device (``shard_world(..., graph="replicate")``) and lets XLA partition the rest.

Build the state from the *sharded* world: it may have more padding slots (the slots are
padded to a multiple of ``lcm(8, D)`` so that they split evenly).

All tables are built on the host with vectorised numpy (no loop over agents or edges).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxsim.engine import AGENT_ALIGNMENT, World, padded_size
from jaxsim.graph import ContactLayer, directed_sorted_edges
from jaxsim.kernels.sharded_contacts import ShardedContactLayer
from jaxsim.population import Population
from jaxsim.errors import InputError

#: Name of the mesh axis the agents are split along.
AGENT_AXIS = "agents"

#: A device joins the default mesh only if it gets at least this many agents
#: (:func:`default_device_count`). A heuristic, not measured on accelerators: one 2-core
#: CPU device runs 100 k agents in about a millisecond a day (benchmarks/RESULTS.md), so
#: below that a split adds collective latency for little work saved.
MIN_AGENTS_PER_DEVICE = 100_000


# ------------------------------------------------------------------------------ devices
def available_device_count() -> int:
    """Devices JAX can use (all processes' devices in a multi-process run)."""
    return jax.device_count()


def default_device_count(num_agents: int) -> int:
    """All available devices that fit the population: as many as give every device at
    least :data:`MIN_AGENTS_PER_DEVICE` agents (at least 1)."""
    return max(1, min(available_device_count(), int(num_agents) // MIN_AGENTS_PER_DEVICE))


def more_devices_hint(requested: int, platform: str) -> str:
    """`` (on CPU, start Python with XLA_FLAGS=...)`` for an error asking for more devices
    than there are; ``""`` off CPU."""
    if platform != "cpu":
        return ""
    return (" (on CPU, start Python with XLA_FLAGS=--xla_force_host_platform_device_count="
            f"{requested} to split the CPU into {requested} devices)")


def check_device_count(requested: int) -> int:
    """``requested`` if ``1 <= requested <=`` the available devices; ``ValueError`` naming
    both numbers (and how to get more CPU devices) otherwise."""
    available = available_device_count()
    if isinstance(requested, bool) or not isinstance(requested, (int, np.integer)):
        raise InputError(f"--devices must be a whole number, got {requested!r}")
    if requested < 1:
        raise InputError(f"--devices must be >= 1, got {requested}")
    if requested > available:
        platform = jax.devices()[0].platform
        hint = more_devices_hint(requested, platform)
        raise InputError(
            f"--devices {requested}: only {available} {platform} device(s) available{hint}"
        )
    return int(requested)


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (default: all), axis
    :data:`AGENT_AXIS`. In a multi-process run the devices are ordered by process, so
    each process holds a contiguous range of agents."""
    count = available_device_count() if num_devices is None else check_device_count(num_devices)
    return Mesh(np.array(jax.devices()[:count]), (AGENT_AXIS,))


def slot_multiple(num_devices: int) -> int:
    """Agent slots are padded to a multiple of ``lcm(AGENT_ALIGNMENT, num_devices)``."""
    return math.lcm(AGENT_ALIGNMENT, int(num_devices))


# ----------------------------------------------------------------------- partitioning
@dataclass(frozen=True)
class HaloStats:
    """What crosses devices each day for one partition of a contact graph.

    Attributes:
        num_devices: ``D``.
        block_slots: ``B``, agent slots per device.
        halo_slots: ``H``, values per ordered pair of devices in the exchange buffer.
        values_per_day: infectiousness values that cross devices per day: for each device,
            the distinct agents on other devices that are sources of its edges (all layers).
        padded_values_per_day: values the ``all_to_all`` actually moves, ``D (D - 1) H``.
        cross_edges: directed edges whose source and destination are on different devices.
        directed_edges: all directed edges (all layers).
        received_per_device: int ``[D]`` distinct values each device receives per day.
        edges_per_device: int ``[D]`` directed edges each device owns (all layers).
    """

    num_devices: int
    block_slots: int
    halo_slots: int
    values_per_day: int
    padded_values_per_day: int
    cross_edges: int
    directed_edges: int
    received_per_device: tuple[int, ...]
    edges_per_device: tuple[int, ...]

    def as_dict(self) -> dict:
        return {
            "num_devices": self.num_devices,
            "block_slots": self.block_slots,
            "halo_slots": self.halo_slots,
            "values_per_day": self.values_per_day,
            "padded_values_per_day": self.padded_values_per_day,
            "cross_edges": self.cross_edges,
            "directed_edges": self.directed_edges,
            "received_per_device": list(self.received_per_device),
            "edges_per_device": list(self.edges_per_device),
        }


@dataclass(frozen=True)
class LayerBlocks:
    """Host tables of one layer (see :class:`ShardedContactLayer` for their meaning)."""

    src: np.ndarray  # int32 [D, E]
    dst: np.ndarray  # int32 [D, E]
    weight: np.ndarray | None  # float32 [D, E]
    num_edges: int


@dataclass(frozen=True)
class GraphPartition:
    """Host tables of a whole graph split over ``D`` devices: per-layer edge blocks, the
    shared halo table ``send`` (int32 ``[D, D, H]``) and :class:`HaloStats`."""

    layers: dict[str, LayerBlocks]
    send: np.ndarray
    stats: HaloStats


def partition_edges(
    edges: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    num_slots: int,
    num_devices: int,
) -> GraphPartition:
    """Split directed edges sorted by ``(dst, src)`` into per-device blocks and halo tables.

    Args:
        edges: ``{layer: (src, dst, weight or None)}``, each ``[2E]``, both directions of
            every undirected edge, sorted by destination then source (as
            :func:`jaxsim.graph.directed_sorted_edges` returns them).
        num_slots: agent slots ``S`` (a multiple of ``num_devices``); endpoints must be
            below it.
        num_devices: ``D``.

    Device ``d`` owns the edges into slots ``d B .. (d + 1) B - 1`` (``B = S / D``) in their
    global order; an edge whose source lives on device ``d' != d`` reads it from the
    values ``d'`` sends to ``d``, each distinct source sent once per day whatever the layer.
    """
    d_count, slots = int(num_devices), int(num_slots)
    if d_count < 1:
        raise InputError(f"num_devices must be >= 1, got {num_devices}")
    if slots % d_count:
        raise InputError(f"{slots} agent slots do not split evenly over {d_count} devices")
    if slots >= 2**31:
        raise InputError(f"{slots} agent slots: at most 2**31 - 1 are supported")
    block = slots // d_count
    cuts = np.arange(d_count + 1, dtype=np.int64) * block
    layer_edges = {}
    for name, (src, dst, weight) in edges.items():
        src, dst = np.asarray(src), np.asarray(dst)
        if src.dtype.kind not in "iu" or dst.dtype.kind not in "iu" or src.shape != dst.shape:
            raise InputError(f"layer {name!r}: src and dst must be integer arrays of one length")
        if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= slots):
            raise InputError(f"layer {name!r}: an edge endpoint is outside [0, {slots})")
        if src.size > 1 and np.any(dst[1:] < dst[:-1]):
            raise InputError(f"layer {name!r}: edges are not sorted by destination")
        layer_edges[name] = (src, dst, weight)

    def crossing(src, dst):
        """Mask of the edges whose ends are on different devices, and their halo keys
        ``receiving device * S + source`` (int64)."""
        owner = dst // block
        crosses = (src // block) != owner
        return crosses, owner[crosses].astype(np.int64) * slots + src[crosses]

    # Halo: distinct (receiving device, source) pairs over all layers, sorted by key, so
    # each (receiver, sender) pair is one run, in ascending source order.
    keys = np.unique(np.concatenate(
        [crossing(src, dst)[1] for src, dst, _ in layer_edges.values()] + [np.zeros(0, np.int64)]
    ))
    receiver = keys // slots
    source = keys % slots
    sender = source // block
    pair = receiver * d_count + sender
    pair_counts = np.bincount(pair, minlength=d_count * d_count)
    halo = max(1, int(pair_counts.max()) if keys.size else 1)
    pair_first = np.concatenate([[0], np.cumsum(pair_counts)[:-1]])
    rank = np.arange(keys.size, dtype=np.int64) - pair_first[pair]
    send = np.zeros((d_count, d_count, halo), np.int32)
    send[sender, receiver, rank] = (source - sender * block).astype(np.int32)
    # Where each crossing value lands in its receiver's extended buffer.
    landing = (block + sender * halo + rank).astype(np.int32)

    layers: dict[str, LayerBlocks] = {}
    cross_edges, total_edges = 0, 0
    owned = np.zeros(d_count, np.int64)
    for name, (src, dst, weight) in layer_edges.items():
        starts = np.searchsorted(dst, cuts)
        counts = np.diff(starts)
        width = max(1, int(counts.max()))
        crosses, crossing_keys = crossing(src, dst)
        local_src = (src % block).astype(np.int32)  # own agents: the local index
        local_src[crosses] = landing[np.searchsorted(keys, crossing_keys)]
        del crossing_keys
        src_blocks = np.zeros((d_count, width), np.int32)
        dst_blocks = np.full((d_count, width), block, np.int32)  # padding: dropped
        weight_blocks = None if weight is None else np.zeros((d_count, width), np.float32)
        for d in range(d_count):  # devices, not agents: edges into block d are contiguous
            lo, hi = starts[d], starts[d + 1]
            src_blocks[d, : hi - lo] = local_src[lo:hi]
            dst_blocks[d, : hi - lo] = dst[lo:hi] - d * block
            if weight is not None:
                weight_blocks[d, : hi - lo] = np.asarray(weight[lo:hi], np.float32)
        layers[name] = LayerBlocks(src_blocks, dst_blocks, weight_blocks, int(src.size))
        cross_edges += int(crosses.sum())
        total_edges += int(src.size)
        owned += counts
    received = np.bincount(receiver, minlength=d_count)
    stats = HaloStats(
        num_devices=d_count,
        block_slots=block,
        halo_slots=halo,
        values_per_day=int(keys.size),
        padded_values_per_day=d_count * (d_count - 1) * halo if keys.size else 0,
        cross_edges=cross_edges,
        directed_edges=total_edges,
        received_per_device=tuple(int(r) for r in received),
        edges_per_device=tuple(int(c) for c in owned),
    )
    return GraphPartition(layers=layers, send=send, stats=stats)


def partition_population(
    population: Population, num_devices: int, layers: list[str] | None = None
) -> GraphPartition:
    """:func:`partition_edges` of a population's contact layers, with the slot padding a
    sharded world of ``num_devices`` devices uses (for halo statistics without a run)."""
    slots = padded_size(population.size, slot_multiple(num_devices))
    names = list(population.networks) if layers is None else list(layers)
    edges = {n: directed_sorted_edges(population.networks[n], population.size) for n in names}
    return partition_edges(edges, slots, num_devices)


# -------------------------------------------------------------------------- placement
def _put(value, sharding: NamedSharding):
    """``value`` as a global array with ``sharding`` (one or several processes)."""
    if jax.process_count() == 1:
        return jax.device_put(value, sharding)
    if isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
        data = _put(jax.random.key_data(value), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(value))
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def replicate(tree, mesh: Mesh):
    """Every array leaf of ``tree`` copied to every device of ``mesh`` (parameters, keys)."""
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda leaf: _put(leaf, sharding), tree)


def _split(mesh: Mesh, ndim: int) -> NamedSharding:
    return NamedSharding(mesh, P(AGENT_AXIS, *([None] * (ndim - 1))))


def shard_graph(
    graph: Mapping[str, ContactLayer], mesh: Mesh, num_slots: int
) -> tuple[dict[str, ShardedContactLayer], HaloStats]:
    """The layers of ``graph`` split over ``mesh`` for ``num_slots`` agent slots (a
    multiple of the mesh size), with one shared halo table; plus its :class:`HaloStats`."""
    d_count = mesh.devices.size
    edges = {}
    for name, layer in graph.items():
        if not isinstance(layer, ContactLayer):
            raise InputError(
                f"graph layer {name!r} is a {type(layer).__name__}, not a ContactLayer "
                "(is the world already sharded?)"
            )
        weight = None if layer.weight is None else np.asarray(layer.weight)
        edges[name] = (np.asarray(layer.src), np.asarray(layer.dst), weight)
    part = partition_edges(edges, num_slots, d_count)
    send = _put(part.send, _split(mesh, 3))
    group = "+".join(sorted(edges))
    layers = {}
    for name, blocks in part.layers.items():
        layers[name] = ShardedContactLayer(
            src=_put(blocks.src, _split(mesh, 2)),
            dst=_put(blocks.dst, _split(mesh, 2)),
            send=send,
            weight=None if blocks.weight is None else _put(blocks.weight, _split(mesh, 2)),
            mesh=mesh,
            block_slots=part.stats.block_slots,
            axis=AGENT_AXIS,
            num_edges=blocks.num_edges,
            halo_group=group,
            halo_stats=part.stats,
        )
    return layers, part.stats


def shard_world(world: World, mesh: Mesh, *, graph: str = "halo") -> World:
    """``world`` split over ``mesh``: agent arrays in contiguous blocks, time-indexed inputs
    replicated, contact layers as :class:`ShardedContactLayer` s (``graph="halo"``, for
    models that read other agents through
    :func:`jaxsim.kernels.neighbour_sums.neighbour_sum`) or whole on every device
    (``graph="replicate"``, for models that read the edges themselves).

    The agent arrays are padded to a multiple of ``lcm(8, D)`` slots (:func:`slot_multiple`)
    with the value of their existing padding (0 when they had none): create the state from
    the returned world. The halo statistics are available from :func:`halo_stats`.
    """
    if graph not in ("halo", "replicate"):
        raise InputError(f"shard_world: graph must be 'halo' or 'replicate', got {graph!r}")
    if any(isinstance(layer, ShardedContactLayer) for layer in world.graph.values()):
        raise InputError("the world is already sharded")
    d_count = mesh.devices.size
    if mesh.axis_names != (AGENT_AXIS,):
        raise InputError(f"the mesh needs the single axis {AGENT_AXIS!r}, got {mesh.axis_names}")
    old_slots = world.num_slots
    multiple = slot_multiple(d_count)
    slots = padded_size(world.num_agents, multiple)
    agents = {}
    for name, values in world.agents.items():
        host = np.asarray(values)
        if host.shape[:1] != (old_slots,):
            raise InputError(
                f"world.agents[{name!r}] has shape {host.shape}, expected ({old_slots}, ...) agent slots"
            )
        fill = host[-1] if old_slots > world.num_agents else 0
        padded = np.empty((slots,) + host.shape[1:], host.dtype)
        padded[:] = fill
        padded[:old_slots] = host
        agents[name] = _put(padded, _split(mesh, host.ndim))
    if graph == "halo":
        layers, _ = shard_graph(world.graph, mesh, slots)
    else:
        layers = {name: _regrow_layer(layer, slots) for name, layer in world.graph.items()}
        layers = replicate(layers, mesh)
    return world.replace(
        agents=agents, graph=layers, inputs=replicate(world.inputs, mesh), slot_multiple=multiple
    )


def _regrow_layer(layer: ContactLayer, slots: int) -> ContactLayer:
    """``layer`` with its row offsets extended to ``slots`` slots (the new slots have no edges)."""
    row_start = np.asarray(layer.row_start)
    if row_start.shape[0] - 1 < slots:
        row_start = np.concatenate([row_start, np.full(slots + 1 - row_start.shape[0], row_start[-1], row_start.dtype)])
    return layer.replace(row_start=jnp.asarray(row_start))


def halo_stats(world: World) -> HaloStats | None:
    """:class:`HaloStats` of a sharded world (``None`` for an unsharded one)."""
    for layer in world.graph.values():
        if isinstance(layer, ShardedContactLayer):
            return layer.halo_stats
    return None


def shard_state(state, mesh: Mesh, world: World):
    """``state`` on ``mesh``: leaves whose first axis has ``world.num_slots`` entries are
    split along it, the others (rings, per-group tables) replicated."""
    slots = world.num_slots
    unsharded = padded_size(world.num_agents)

    def place(leaf):
        shape = np.shape(leaf)
        if shape[:1] == (slots,):
            return _put(leaf, _split(mesh, len(shape)))
        if shape[:1] == (unsharded,) and unsharded != slots:
            raise InputError(
                f"a state array has {unsharded} agent slots but the sharded world has {slots}: "
                "create the state from the sharded world (e.g. model.init(key, params, "
                "sharding.shard_world(world, mesh)))"
            )
        return _put(leaf, NamedSharding(mesh, P()))

    return jax.tree.map(place, state)


def gather_to_host(tree) -> Any:
    """Numpy copies of a tree of (possibly sharded, multi-process) arrays; in several
    processes every process gets the whole array."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, jax.device_get(tree))
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
