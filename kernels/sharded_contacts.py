"""Contact pressure with the agent axis split over the devices of a mesh.

Agents are cut into ``D`` contiguous blocks of ``B`` slots, block ``d`` on device ``d``.
Each device owns the directed edges whose *destination* is one of its agents, so the sum
into an agent is computed where the agent lives. Edges whose source lives on another
device need that source's infectiousness; only those values travel, once a day:

1. device ``d`` gathers, for every other device ``e``, the infectiousness of its agents
   that are sources of edges owned by ``e`` (``send[d, e, :]``, padded to ``H`` slots),
2. one ``all_to_all`` swaps these buffers: device ``e`` receives ``[D, H]`` values,
3. each device appends what it received to its own ``B`` values (the *extended* buffer,
   ``B + D * H`` floats), gathers every owned edge's source from it and sums into its
   destinations with a sorted ``segment_sum``.

Every device keeps its edges in the global ``(destination, source)`` order, so each agent's
sum adds the same terms in the same order as :func:`jaxsim.kernels.neighbour_sums.
layer_sum` on one device: the result is bitwise the one-device result, whatever the
number of devices (tested). The one-device sparse "push" tiers add the same terms in the
same order too (zeros from non-infectious agents leave a sum unchanged), so they agree as
well.

Gradients use the symmetry of each layer (every undirected edge stored both ways with one
weight): the cotangent of the infectiousness is the same sharded pull applied to the
cotangent of the pressure (a custom VJP), exact up to float rounding.

Host-side construction of the tables (partitioning, halo index tables, placement on the
mesh) lives in :mod:`jaxsim.sharding`.
"""

from __future__ import annotations

from functools import partial
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jaxsim.kernels import pytree as struct
from jax.sharding import Mesh, PartitionSpec as P


@struct.dataclass
class ShardedContactLayer:
    """One contact layer split by destination block over the devices of ``mesh``.

    ``D`` devices along mesh axis ``axis``, ``B`` agent slots per device, ``E`` edge slots
    per device (the largest block's edge count; shorter blocks are padded), ``H`` halo
    slots per pair of devices. Row ``d`` of every array lives on device ``d``.

    Attributes:
        src: int32 ``[D, E]`` position of each owned edge's source in the device's extended
            buffer: ``0 .. B-1`` its own agents, ``B + e * H + k`` the ``k``-th value
            received from device ``e``. Padding edges point at 0.
        dst: int32 ``[D, E]`` local index ``0 .. B-1`` of each owned edge's destination,
            ascending (the global ``(destination, source)`` order); ``B`` on padding edges,
            whose terms are dropped.
        send: int32 ``[D, D, H]`` ``send[d, e, k]``: local index on device ``d`` of the
            ``k``-th agent whose infectiousness ``d`` sends to ``e`` (padding: 0). Shared by
            all layers built together (one exchange per day serves them all).
        weight: float32 ``[D, E]`` contact weights (0 on padding), or ``None`` for all ones.
        mesh: the device mesh (static).
        block_slots: ``B``, agent slots per device (static).
        axis: the mesh axis the agents are split along (static).
        num_edges: the layer's real directed edges, ``2 x`` its undirected edges (static).
        halo_group: static label shared by the layers built together, whose ``send``
            tables are identical.
        halo_stats: static report of what crosses devices (a
            :class:`jaxsim.sharding.HaloStats`, shared by the layers built together).
    """

    src: jax.Array
    dst: jax.Array
    send: jax.Array
    weight: jax.Array | None = None
    mesh: Mesh | None = struct.field(pytree_node=False, default=None)
    block_slots: int = struct.field(pytree_node=False, default=0)
    axis: str = struct.field(pytree_node=False, default="agents")
    num_edges: int = struct.field(pytree_node=False, default=0)
    halo_group: str = struct.field(pytree_node=False, default="")
    halo_stats: object = struct.field(pytree_node=False, default=None)

    @property
    def num_directed_edges(self) -> int:
        """Real directed edges (padding excluded), as :class:`jaxsim.kernels.layers.ContactLayer`."""
        return int(self.num_edges)

    @property
    def num_devices(self) -> int:
        return int(self.src.shape[0])

    @property
    def halo_slots(self) -> int:
        """``H``: values exchanged per ordered pair of devices per day (padded)."""
        return int(self.send.shape[2])


def is_sharded_graph(layers: Mapping) -> bool:
    """True when ``layers`` holds :class:`ShardedContactLayer` s (all of them must then)."""
    kinds = {isinstance(layer, ShardedContactLayer) for layer in layers.values()}
    if kinds == {True, False}:
        raise ValueError(
            "a contact graph mixes sharded and unsharded layers: "
            f"{sorted((k, type(v).__name__) for k, v in layers.items())}; shard the whole world "
            "with jaxsim.sharding.shard_world"
        )
    return kinds == {True}


def sharded_contact_pressure(
    infectiousness: jax.Array,
    layers: Mapping[str, ShardedContactLayer],
    layer_scale: Mapping[str, jax.Array],
) -> jax.Array:
    """``sum_l s_l(t) sum_{j in N_l(i)} infectiousness_j w_ij`` for every agent slot ``i``.

    Same contract and same values (bitwise) as
    :func:`jaxsim.kernels.neighbour_sums.neighbour_sum`; the sum always pulls over
    the owned edges (no sparse tiers: on a device the exchange, not the sum, is what the
    few infectious agents would save).

    Args:
        infectiousness: float32 ``[D * B]``, split along the mesh axis (any placement
            works; it is resharded if needed).
        layers: ``{name: ShardedContactLayer}`` built together by
            :func:`jaxsim.sharding.shard_graph`.
        layer_scale: ``{name: float scalar}`` today's multiplier per layer; a layer that
            appears here is skipped at run time on days its multiplier is 0.

    Returns:
        float32 ``[D * B]``, split along the mesh axis like the agent arrays.
    """
    names = tuple(sorted(layers))
    if not names:
        return jnp.zeros_like(infectiousness)
    group = [layers[n] for n in names]
    first = group[0]
    for name, layer in zip(names, group):
        if (layer.mesh, layer.axis, layer.halo_group, layer.block_slots) != (
            first.mesh, first.axis, first.halo_group, first.block_slots
        ):
            raise ValueError(
                f"sharded layer {name!r} was built apart from {names[0]!r} (another mesh or halo "
                "table); build all layers of a world together with jaxsim.sharding.shard_graph"
            )
    slots = first.num_devices * first.block_slots
    if infectiousness.shape != (slots,):
        raise ValueError(
            f"infectiousness has shape {infectiousness.shape}, the sharded graph expects ({slots},)"
        )
    scales = tuple(jnp.asarray(layer_scale.get(n, 1.0), jnp.float32) for n in names)
    closable = tuple(n in layer_scale for n in names)
    return _scaled_pressure(closable, infectiousness, tuple(group), scales)


def _per_layer_pressure(closable: tuple, x: jax.Array, layers: tuple, scales: tuple) -> jax.Array:
    """``[L, D * B]`` pressure of each layer (0 for a closed layer), split over the mesh."""
    first = layers[0]
    mesh, axis = first.mesh, first.axis
    block = first.block_slots
    weighted = tuple(layer.weight is not None for layer in layers)
    edge_arrays = []
    for layer in layers:
        edge_arrays += [layer.src, layer.dst] + ([layer.weight] if layer.weight is not None else [])

    def local(x_block, send, scale_values, *arrays):
        # x_block [B]; send [1, D, H]; arrays: per layer src [1, E], dst [1, E] (, weight).
        outgoing = x_block.at[send[0]].get(mode="promise_in_bounds")  # [D, H]
        incoming = jax.lax.all_to_all(outgoing, axis, 0, 0, tiled=True)  # [D, H]: row e from e
        extended = jnp.concatenate([x_block, incoming.reshape(-1)])
        out, i = [], 0
        for has_weight, can_close, scale in zip(weighted, closable, scale_values):
            src, dst = arrays[i][0], arrays[i + 1][0]
            weight = arrays[i + 2][0] if has_weight else None
            i += 3 if has_weight else 2

            def pull(values, src=src, dst=dst, weight=weight):
                sent = values.at[src].get(mode="promise_in_bounds")
                if weight is not None:
                    sent = sent * weight
                # Padding edges have destination ``block`` and are dropped.
                return jax.ops.segment_sum(sent, dst, num_segments=block, indices_are_sorted=True)

            if can_close:
                out.append(jax.lax.cond(
                    scale != 0, pull, lambda values: jnp.zeros_like(values[:block]), extended
                ))
            else:
                out.append(pull(extended))
        return jnp.stack(out)

    edge_specs = tuple(P(axis) for _ in edge_arrays)
    mapped = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(axis), P(axis), P()) + edge_specs,
        out_specs=P(None, axis),
    )
    return mapped(x, first.send, scales, *edge_arrays)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _scaled_pressure(closable, x, layers, scales):
    per_layer = _per_layer_pressure(closable, x, layers, scales)
    return jnp.tensordot(jnp.stack(scales), per_layer, axes=1)


def _scaled_pressure_fwd(closable, x, layers, scales):
    per_layer = _per_layer_pressure(closable, x, layers, scales)
    return jnp.tensordot(jnp.stack(scales), per_layer, axes=1), (per_layer, layers, scales)


def _zero_cotangent(tree):
    def zero(a):
        if jnp.issubdtype(a.dtype, jnp.inexact):
            return jnp.zeros_like(a)
        return np.zeros(a.shape, dtype=jax.dtypes.float0)

    return jax.tree.map(zero, tree)


def _scaled_pressure_bwd(closable, residuals, cotangent):
    per_layer, layers, scales = residuals
    # Each layer's operator is symmetric, so its transpose is the same pull.
    ct_x = jnp.tensordot(
        jnp.stack(scales), _per_layer_pressure(closable, cotangent, layers, scales), axes=1
    )
    ct_scales = tuple(jnp.sum(cotangent * per_layer[i]) for i in range(len(scales)))
    return ct_x, _zero_cotangent(layers), ct_scales


_scaled_pressure.defvjp(_scaled_pressure_fwd, _scaled_pressure_bwd)
