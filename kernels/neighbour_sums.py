"""Sums over neighbours on contact layers: ``out_i = sum_l s_l sum_{j in N_l(i)} w_ij x_j``.

The one kernel every network model needs (infection pressure, the share of infected
neighbours, the mean opinion around an agent, ...). :func:`neighbour_sum` picks its path
by itself:

- one run, few senders (agents with ``x != 0``): the sparse "push" from the senders
  along their edges, in passes of a fixed number of edge slots (one compiled loop body),
  while they fit the last tier of :data:`SPARSE_TIERS`, else the dense "pull" over every
  edge (a gather and a sorted ``segment_sum``);
- under ``vmap`` (an ensemble sharing one graph): a batching rule computes all members
  together, pushing from the blocks of :data:`PUSH_BLOCK` agents that hold a sender in
  any member (:data:`BATCHED_TIERS`), else pulling every member over every edge with the
  members of an agent side by side. Each member's sums equal its single run's, bit for
  bit (the same terms added in the same order);
- with a gradient: a custom VJP. Each layer is symmetric (every undirected edge stored
  both ways with one weight), so the cotangent of ``x`` is the same sum applied to the
  cotangent of the output; with ``may_transmit`` it is evaluated on those agents only,
  through the same tiers; under ``vmap`` the dense batched pull. A model author never
  chooses a method for ``vmap`` or ``grad``;
- layers split over devices (:class:`jaxsim.kernels.sharded_contacts.ShardedContactLayer`):
  one halo exchange a day, then the pull (:mod:`jaxsim.kernels.sharded_contacts`).

A layer whose multiplier is 0 on a day is skipped at run time (``lax.cond``), so one
network per day of week costs one layer's work per day.

Shapes: values ``[N]`` float, one entry per agent slot; layers ``{name: ContactLayer}``
whose ``row_start`` has ``N + 1`` entries.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap

from jaxsim.kernels.layers import ContactLayer
from jaxsim.kernels.sharded_contacts import is_sharded_graph, sharded_contact_pressure

#: Capacity tiers of the sparse "push" path, as fractions of the agents (senders) and of
#: each layer's directed edges. The push runs while the senders fit the last tier, in
#: passes of the first tier's edge capacity (:func:`layer_push_windows`): a day costs
#: about its senders' share of the dense work, in steps of the first tier, plus O(N);
#: beyond the last tier the dense "pull" sum runs.
SPARSE_TIERS: tuple[float, ...] = (1 / 256, 1 / 32)
#: ``"auto"`` picks push or pull by itself; ``"dense"`` always pulls.
METHODS = ("auto", "dense")


def layer_sum(values: jax.Array, layer: ContactLayer) -> jax.Array:
    """``sum_{j in N(i)} values_j * w_ij`` over one layer, for every agent ``i``.

    Args:
        values: float ``[N]`` per-agent values.
        layer: directed edges sorted by destination (see :class:`ContactLayer`).

    Returns:
        float32 ``[N]``.
    """
    # Indices were validated on the host when the layer was built, so the gather may skip
    # negative-index wrapping (about 3x faster on CPU than the default gather mode).
    sent = values.at[layer.src].get(mode="promise_in_bounds")
    if layer.weight is not None:
        sent = sent * layer.weight
    return jax.ops.segment_sum(sent, layer.dst, num_segments=values.shape[0], indices_are_sorted=True)


def _tier_capacity(fraction: float, size: int, minimum: int) -> int:
    return int(min(size, max(minimum, -(-size * fraction // 1))))


def layer_push_windows(
    values: jax.Array,
    senders: jax.Array,
    num_senders: jax.Array,
    layer: ContactLayer,
    window: int,
) -> jax.Array:
    """:func:`layer_sum` computed from the sending agents only, through one buffer of
    ``window`` edge slots, reused.

    The senders' edge rows (their neighbours, by the layer's symmetry) are laid out one
    after another and scatter-added to the receivers ``window`` slots at a time, as many
    windows as their edges need: the work follows the day's senders in steps of
    ``window`` slots, and one loop body is compiled however many windows a day takes (a
    tier per capacity would compile one each). The terms reach each receiver in the same
    order as one push over all the slots: the same sums, bit for bit.

    Args:
        values: float ``[N]``.
        senders: int32 ``[A]`` agent indices with non-zero values, ascending, padded.
        num_senders: int scalar, how many entries of ``senders`` are real.
        layer: the contact layer.
        window: static number of edge slots per pass.

    Returns:
        float32 ``[N]``.
    """
    n = values.shape[0]
    if window == 0 or layer.num_directed_edges == 0:  # a layer without edges sends nothing
        return jnp.zeros(n, values.dtype)
    capacity = senders.shape[0]
    real = jnp.arange(capacity) < num_senders
    first = layer.row_start[senders]
    degree = jnp.where(real, layer.row_start[senders + 1] - first, 0)
    end = blocked_cumsum(degree)
    total = end[-1]
    offset = jnp.where(real, end - degree, total)  # padding senders after every used slot
    sent_value = values[senders]
    slot = jnp.arange(window, dtype=jnp.int32)

    def one_window(w, out):
        start = w * window
        # owner[s]: the last sender whose row starts at or before slot start + s (senders
        # before the window all count at slot 0; rows without edges start where the next
        # one does, so the last of them is a row with edges).
        starts = jnp.zeros(window + 1, jnp.int32).at[jnp.clip(offset - start, 0, window)].add(1)
        owner = jnp.clip(blocked_cumsum(starts[:window]) - 1, 0, capacity - 1)
        here = start + slot
        used = here < total
        position = jnp.where(used, first[owner] + here - offset[owner], 0)
        receiver = jnp.where(used, layer.src[position], n)
        sent = sent_value[owner]
        if layer.weight is not None:
            sent = sent * layer.weight[position]
        return out.at[receiver].add(sent, mode="drop")

    windows = (total + window - 1) // window
    return jax.lax.fori_loop(0, windows, one_window, jnp.zeros(n, values.dtype))


def first_true(flags: jax.Array, size: int) -> jax.Array:
    """int32 ``[size]``: the indices of the first ``size`` true entries of ``flags`` ``[N]``,
    ascending, 0 in unused slots (``jnp.nonzero(flags, size=size, fill_value=0)``, built
    from a blocked running count and one scatter: it compiles in a fraction of the time)."""
    n = flags.shape[0]
    position = blocked_cumsum(flags.astype(jnp.int32)) - 1
    position = jnp.where(flags, position, size)
    return jnp.zeros(size, jnp.int32).at[position].set(jnp.arange(n, dtype=jnp.int32), mode="drop")


def _expand_rows(rows: jax.Array, num_rows: jax.Array, layer: ContactLayer, edge_capacity: int):
    """The edge rows of agents ``rows[:num_rows]`` laid out in ``edge_capacity`` slots.

    Returns ``(owner, position, used)``, each ``[edge_capacity]``: the index into ``rows``
    of the agent a slot belongs to (non-decreasing), the slot's edge position in the layer,
    and whether the slot holds an edge.
    """
    capacity = rows.shape[0]
    real = jnp.arange(capacity) < num_rows
    first = layer.row_start[rows]
    degree = jnp.where(real, layer.row_start[rows + 1] - first, 0)
    offset = blocked_cumsum(degree) - degree
    # owner[s]: the last row starting at or before slot s (rows without edges start where
    # the next one does, so the last of them is a row with edges).
    starts = jnp.zeros(edge_capacity + 1, jnp.int32).at[jnp.minimum(offset, edge_capacity)].add(1)
    owner = jnp.clip(blocked_cumsum(starts[:edge_capacity]) - 1, 0, capacity - 1)
    slot = jnp.arange(edge_capacity)
    used = slot < degree.sum()
    position = jnp.where(used, first[owner] + slot - offset[owner], 0)
    return owner, position, used


def layer_row_pull(
    values: jax.Array, rows: jax.Array, num_rows: jax.Array, layer: ContactLayer, edge_capacity: int
) -> jax.Array:
    """:func:`layer_sum` of ``values`` evaluated only at agents ``rows[:num_rows]``
    (0 elsewhere); exact when their edges fit in ``edge_capacity`` slots (caller checks)."""
    n = values.shape[0]
    owner, position, used = _expand_rows(rows, num_rows, layer, edge_capacity)
    got = values[layer.src[position]]
    if layer.weight is not None:
        got = got * layer.weight[position]
    per_row = jax.ops.segment_sum(
        jnp.where(used, got, 0.0), owner, num_segments=rows.shape[0], indices_are_sorted=True
    )
    real = jnp.arange(rows.shape[0]) < num_rows
    return jnp.zeros(n, values.dtype).at[jnp.where(real, rows, n)].add(per_row, mode="drop")


def neighbour_sum(
    values: jax.Array,
    layers: Mapping[str, ContactLayer],
    layer_scale: Mapping[str, jax.Array] | None = None,
    method: str = "auto",
    may_transmit: jax.Array | None = None,
) -> jax.Array:
    """Sum of :func:`layer_sum` over layers, each times its multiplier for today.

    Args:
        values: float ``[N]`` what each agent sends along its edges.
        layers: ``{name: ContactLayer}``, or layers split over devices (``{name:
            ShardedContactLayer}``, see :mod:`jaxsim.sharding`), which go to
            :func:`jaxsim.kernels.sharded_contacts.sharded_contact_pressure` (same values;
            ``method`` and ``may_transmit`` do not apply).
        layer_scale: ``{name: float scalar}`` today's multiplier per layer (1 = as built,
            0 = closed); layers missing from the mapping count with multiplier 1.
        method: ``"auto"`` (push or pull, see the module docstring) or ``"dense"``
            (always pull). Both give the same sums up to float rounding.
        may_transmit: optional bool ``[N]``, used by gradients only: the agents whose
            values may be non-zero for any parameters (e.g. infected agents inside their
            infectiousness window); the backward pull is evaluated on them only. The
            caller guarantees that every other agent's value is 0 whatever the parameters.

    Returns:
        float32 ``[N]``. Multipliers get exact gradients; edge weights and the graph arrays
        are not differentiated (their cotangents are zero).
    """
    layer_scale = {} if layer_scale is None else layer_scale
    if method not in METHODS:
        raise ValueError(f"unknown neighbour-sum method {method!r}; choose one of {METHODS}")
    if is_sharded_graph(layers):
        # Layers split over devices (jaxsim.sharding): one halo exchange, then the pull.
        return sharded_contact_pressure(values, layers, layer_scale)
    names = tuple(sorted(layers))
    if not names:
        return jnp.zeros_like(values)
    scales = tuple(jnp.asarray(layer_scale.get(name, 1.0), jnp.float32) for name in names)
    # Only layers with a schedule can be closed; the others need no run-time test (an
    # XLA:CPU conditional costs a copy of its operands, the layer's edge arrays).
    closable = tuple(name in layer_scale for name in names)
    return _scaled_sum(method, closable, values, tuple(layers[n] for n in names), scales, may_transmit)


def _skip_if_closed(closable: bool, scale, fn, x):
    if not closable:
        return fn(x)
    return jax.lax.cond(scale != 0, fn, jnp.zeros_like, x)


def _per_layer_single(method: str, closable: tuple, x: jax.Array, layers: tuple, scales: tuple) -> jax.Array:
    """``[L, N]`` sums of each layer for one run (0 for a closed layer), by the chosen path."""

    def dense(v):
        return jnp.stack([
            _skip_if_closed(c, scale, lambda u, lay=lay: layer_sum(u, lay), v)
            for lay, scale, c in zip(layers, scales, closable)
        ])

    if method == "dense":
        return dense(x)
    n = x.shape[0]

    def push(v):
        sending = v != 0
        num_senders = jnp.sum(sending, dtype=jnp.int32)
        senders = first_true(sending, _tier_capacity(SPARSE_TIERS[-1], n, 16))
        return jnp.stack([
            _skip_if_closed(
                closed,
                scale,
                lambda u, lay=lay: layer_push_windows(
                    u, senders, num_senders, lay, _tier_capacity(SPARSE_TIERS[0], lay.num_directed_edges, 64)
                ),
                v,
            )
            for lay, scale, closed in zip(layers, scales, closable)
        ])

    by_name = {str(i): lay for i, lay in enumerate(layers)}
    return jax.lax.cond(sparse_tier(x, by_name) < len(SPARSE_TIERS), push, dense, x)


def _per_layer(method: str, closable: tuple, x: jax.Array, layers: tuple, scales: tuple) -> jax.Array:
    """``[L, N]`` per-layer sums: the single-run paths, with a batching rule for ``vmap``
    (members sharing the graph are summed together, see :func:`_batched_per_layer`)."""

    @custom_vmap
    def per_layer(v, graph, s):
        return _per_layer_single(method, closable, v, graph, s)

    @per_layer.def_vmap
    def per_layer_batched(axis_size, in_batched, v, graph, s):
        v_batched, graph_batched, _ = in_batched
        if any(jax.tree.leaves(graph_batched)):  # members with their own graphs: plain vmap
            out = jax.vmap(
                lambda a, g, t: _per_layer_single(method, closable, a, g, t),
                in_axes=(0 if v_batched else None, jax.tree.map(lambda b: 0 if b else None, graph_batched),
                         tuple(0 if b else None for b in in_batched[2])),
                axis_size=axis_size,
            )(v, graph, s)
            return out, True
        if not v_batched:
            v = jnp.broadcast_to(v, (axis_size,) + v.shape)
        per = _batched_per_layer(v, graph, method == "auto")  # [L, M, N]
        return jnp.swapaxes(per, 0, 1), True

    return per_layer(x, layers, scales)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _scaled_sum(method, closable, x, layers, scales, may_transmit):
    per_layer = _per_layer(method, closable, x, layers, scales)
    return jnp.tensordot(jnp.stack(scales), per_layer, axes=1)


def _scaled_sum_fwd(method, closable, x, layers, scales, may_transmit):
    per_layer = _per_layer(method, closable, x, layers, scales)
    residuals = (per_layer, layers, scales, may_transmit)
    return jnp.tensordot(jnp.stack(scales), per_layer, axes=1), residuals


def zero_cotangent(tree):
    """Zero cotangents for a pytree (``float0`` for integer leaves)."""

    def zero(a):
        if jnp.issubdtype(a.dtype, jnp.inexact):
            return jnp.zeros_like(a)
        return np.zeros(a.shape, dtype=jax.dtypes.float0)

    return jax.tree.map(zero, tree)


def _pull_single(method, closable, cotangent, layers, scales, may_transmit):
    """``sum_l s_l A_l cotangent`` (symmetric ``A_l``) for one run, on ``may_transmit``
    rows when given."""

    def dense(ct):
        total = jnp.zeros_like(ct)
        for lay, scale, closed in zip(layers, scales, closable):
            total = total + _skip_if_closed(
                closed, scale, lambda u, lay=lay, s=scale: s * layer_sum(u, lay), ct
            )
        return total

    if method == "dense" or may_transmit is None:
        return dense(cotangent)
    n = cotangent.shape[0]
    num_rows = jnp.sum(may_transmit, dtype=jnp.int32)

    def row_tier(fraction):
        agent_cap = _tier_capacity(fraction, n, 16)

        def pull(ct):
            rows = first_true(may_transmit, agent_cap)
            total = jnp.zeros_like(ct)
            for lay, scale, closed in zip(layers, scales, closable):
                cap = _tier_capacity(fraction, lay.num_directed_edges, 64)
                total = total + _skip_if_closed(
                    closed, scale,
                    lambda u, lay=lay, s=scale, c=cap: s * layer_row_pull(u, rows, num_rows, lay, c), ct,
                )
            return total

        return pull

    branches = [row_tier(fraction) for fraction in SPARSE_TIERS] + [dense]
    by_name = {str(i): lay for i, lay in enumerate(layers)}
    choice = sparse_tier(may_transmit.astype(jnp.float32), by_name)
    return jax.lax.switch(choice, branches, cotangent)


def _pull(method, closable, cotangent, layers, scales, may_transmit):
    """:func:`_pull_single`, with a batching rule: members sharing the graph are pulled
    densely together (every tier would run under ``vmap``)."""
    mask = jnp.zeros((), bool) if may_transmit is None else may_transmit

    @custom_vmap
    def pull(ct, graph, s, m):
        return _pull_single(method, closable, ct, graph, s, None if may_transmit is None else m)

    @pull.def_vmap
    def pull_batched(axis_size, in_batched, ct, graph, s, m):
        ct_batched, graph_batched, s_batched, m_batched = in_batched
        if any(jax.tree.leaves(graph_batched)):
            out = jax.vmap(
                lambda a, g, t, k: _pull_single(method, closable, a, g, t, None if may_transmit is None else k),
                in_axes=(0 if ct_batched else None, jax.tree.map(lambda b: 0 if b else None, graph_batched),
                         tuple(0 if b else None for b in s_batched), 0 if m_batched else None),
                axis_size=axis_size,
            )(ct, graph, s, m)
            return out, True
        if not ct_batched:
            ct = jnp.broadcast_to(ct, (axis_size,) + ct.shape)
        total = jnp.zeros_like(ct)
        for lay, scale, batched in zip(graph, s, s_batched):
            scale = scale[:, None] if batched else scale
            total = total + scale * _transposed_pull(ct, lay)
        if may_transmit is not None and method != "dense":  # as the single run: only those rows
            total = jnp.where(m, total, 0.0)
        return total, True

    return pull(cotangent, layers, scales, mask)


def _scaled_sum_bwd(method, closable, residuals, cotangent):
    per_layer, layers, scales, may_transmit = residuals
    ct_x = _pull(method, closable, cotangent, layers, scales, may_transmit)
    ct_scales = tuple(jnp.sum(cotangent * per_layer[i]) for i in range(len(scales)))
    ct_mask = None if may_transmit is None else zero_cotangent(may_transmit)
    return ct_x, zero_cotangent(layers), ct_scales, ct_mask


_scaled_sum.defvjp(_scaled_sum_fwd, _scaled_sum_bwd)


def sparse_tier(values: jax.Array, layers: Mapping[str, ContactLayer]) -> jax.Array:
    """Which path :func:`neighbour_sum` (``method="auto"``, one run) takes today.

    Returns an int32 scalar: ``i < len(SPARSE_TIERS)`` for the first capacity tier that
    holds today's senders (agents with non-zero values) and their edges in every layer,
    ``len(SPARSE_TIERS)`` for the dense pull.
    """
    n = values.shape[0]
    sending = values != 0
    num_senders = jnp.sum(sending, dtype=jnp.int32)
    names = sorted(layers)
    sender_edges = [
        jnp.sum(jnp.where(sending, jnp.diff(layers[name].row_start), 0)) for name in names
    ]
    choice = jnp.int32(len(SPARSE_TIERS))
    for i in reversed(range(len(SPARSE_TIERS))):
        fraction = SPARSE_TIERS[i]
        fits = num_senders <= _tier_capacity(fraction, n, 16)
        for name, count in zip(names, sender_edges):
            fits = fits & (count <= _tier_capacity(fraction, layers[name].num_directed_edges, 64))
        choice = jnp.where(fits, jnp.int32(i), choice)
    return choice


# ------------------------------------------------------------- batched (vmap) sums
#: Width of the blocks :func:`blocked_cumsum` adds up with one small matrix product.
CUMSUM_BLOCK = 32


def blocked_cumsum(values: jax.Array, block: int = CUMSUM_BLOCK) -> jax.Array:
    """Inclusive cumulative sum of a 1-D integer array, exact.

    On a CPU, as levels of ``[rows, block] @ upper-triangular ones`` integer matrix
    products (each level adds up blocks; the block totals go up a level): XLA:CPU lowers
    ``jnp.cumsum`` to an associative scan that takes about half a second to compile and
    runs element by element, while these products compile in milliseconds and run faster
    (measured at 1 M entries: 7 ms against 22 ms under load). Elsewhere, ``jnp.cumsum``.
    """
    if jax.default_backend() != "cpu" or not jnp.issubdtype(values.dtype, jnp.integer):
        return jnp.cumsum(values)
    n = values.shape[0]
    if n == 0:
        return values
    rows = -(-n // block)
    padded = jnp.zeros(rows * block, values.dtype).at[:n].set(values).reshape(rows, block)
    triangle = jnp.triu(jnp.ones((block, block), values.dtype))
    within = jax.lax.dot(padded, triangle, preferred_element_type=values.dtype)
    if rows == 1:
        return within.reshape(-1)[:n]
    totals = within[:, -1]
    offsets = blocked_cumsum(totals, block) - totals
    return (within + offsets[:, None]).reshape(-1)[:n]


def _first_true(flags: jax.Array, capacity: int) -> tuple[jax.Array, jax.Array]:
    """The first ``capacity`` true entries of each row, ascending: int32 ``[M, C]`` (0 in
    unused slots) and bool ``[M, C]`` (slot used).

    A running count per row (a cumulative sum along the row, which vectorises over the
    rows) and a binary search for each slot: ``O(K + C log K)`` per row of ``K``.
    """
    counts = jnp.cumsum(flags.astype(jnp.int32), axis=1)
    wanted = jnp.arange(1, capacity + 1, dtype=jnp.int32)
    found = jax.vmap(lambda row: jnp.searchsorted(row, wanted, side="left"))(counts).astype(jnp.int32)
    valid = wanted[None, :] <= counts[:, -1:]
    return jnp.where(valid, found, 0), valid


#: Agents per block of the batched push: a block with any sender sends along all its
#: agents' edges (the others send 0, which leaves every sum unchanged).
PUSH_BLOCK = 16
#: Capacity tiers of the batched push, as fractions of each layer's directed edges (per
#: member, pooled over the batch); beyond the last, or when a member has more than
#: :data:`MAX_ACTIVE_BLOCKS` of its blocks active, the dense pull. (Measured at 47 k agents,
#: 32 members: a push costs about 15 ns per edge slot, single-element scatters; the
#: transposed pull about 0.5-1.5 ns per edge and member, so the push pays only below
#: a few percent of the edges.)
BATCHED_TIERS: tuple[float, ...] = (1 / 128, 1 / 64, 1 / 32)
#: Share of a member's blocks that may be active for the push.
MAX_ACTIVE_BLOCKS = 1 / 4


def _block_push(x: jax.Array, blocks: jax.Array, valid: jax.Array, layer, edge_capacity: int) -> jax.Array:
    """Sums ``[M, N]`` of one layer pushed from the active blocks of all members at once.

    ``blocks`` int32 ``[M, C]`` (per member, ascending) and ``valid`` bool ``[M, C]``. The
    edge rows of every active block (contiguous in the layer: its agents' rows) are laid out
    in one buffer of ``edge_capacity`` slots, member by member, block by block, and
    scatter-added into the flattened ``[M * N]`` receivers. Each receiver gets its
    sending neighbours' terms in the same order as the single-member push (ascending
    sender), interleaved with exact zeros from the blocks' other agents: the same sums.
    """
    m, n = x.shape
    c = blocks.shape[1]
    rows = blocks.reshape(-1)
    first = layer.row_start[jnp.minimum(rows * PUSH_BLOCK, n)]
    last = layer.row_start[jnp.minimum((rows + 1) * PUSH_BLOCK, n)]
    degree = jnp.where(valid.reshape(-1), last - first, 0)
    offset = blocked_cumsum(degree) - degree
    # owner[s] = the block slot s belongs to: count the blocks starting at or before s.
    starts = jnp.zeros(edge_capacity + 1, jnp.int32).at[jnp.minimum(offset, edge_capacity)].add(1)
    owner = jnp.clip(blocked_cumsum(starts[:edge_capacity]) - 1, 0, rows.shape[0] - 1)
    slot = jnp.arange(edge_capacity, dtype=jnp.int32)
    used = slot < degree.sum()
    position = jnp.where(used, first[owner] + slot - offset[owner], 0)
    member = owner // c
    receiver = jnp.where(used, member * n + layer.src[position], m * n)
    sent = x.reshape(-1)[member * n + layer.dst[position]]
    if layer.weight is not None:
        sent = sent * layer.weight[position]
    return jnp.zeros(m * n, x.dtype).at[receiver].add(sent, mode="drop").reshape(m, n)


def _transposed_pull(x: jax.Array, layer) -> jax.Array:
    """Dense sums ``[M, N]`` of one layer for all members: gather rows of ``x.T`` (the
    members of an agent side by side) and a sorted segment sum, same order of terms as
    the single-member pull."""
    xt = x.T
    sent = xt.at[layer.src].get(mode="promise_in_bounds")
    if layer.weight is not None:
        sent = sent * layer.weight[:, None]
    return jax.ops.segment_sum(sent, layer.dst, num_segments=x.shape[1], indices_are_sorted=True).T


def _batch_tiers(layers: tuple) -> tuple:
    """``((edge slots per member, per layer), ...)`` of :data:`BATCHED_TIERS`."""
    return tuple(
        tuple(max(64, math.ceil(layer.num_directed_edges * f)) for layer in layers) for f in BATCHED_TIERS
    )


def _batched_per_layer(x: jax.Array, layers: tuple, sparse: bool) -> jax.Array:
    """``[L, M, N]`` sums of a batch: the block push through the first tier whose edge
    buffer (``M`` times a member's share) holds the active blocks' edges of all members
    together, else the dense pull."""
    m, n = x.shape
    if not sparse:
        return jnp.stack([_transposed_pull(x, layer) for layer in layers])
    tiers = _batch_tiers(layers)
    num_blocks = -(-n // PUSH_BLOCK)
    block_cap = max(1, math.ceil(num_blocks * MAX_ACTIVE_BLOCKS))
    sending = jnp.pad(x != 0, ((0, 0), (0, num_blocks * PUSH_BLOCK - n)))
    active = sending.reshape(m, num_blocks, PUSH_BLOCK).any(axis=2)  # [M, blocks]
    num_active = active.sum(axis=1, dtype=jnp.int32)
    # Edges of each block, per layer: the block's span of the CSR rows.
    block_edges = []
    for layer in layers:
        bounds = layer.row_start[jnp.minimum(jnp.arange(num_blocks + 1) * PUSH_BLOCK, n)]
        block_edges.append(jnp.sum(jnp.where(active, jnp.diff(bounds)[None, :], 0)))
    choice = jnp.int32(len(tiers))
    for i in reversed(range(len(tiers))):
        edge_caps = tiers[i]
        fits = num_active.max() <= block_cap
        for count, cap in zip(block_edges, edge_caps):
            fits = fits & (count <= m * cap)
        choice = jnp.where(fits, jnp.int32(i), choice)

    def push(edge_caps):
        def run(v):
            blocks, valid = _first_true(active, block_cap)
            return jnp.stack([
                _block_push(v, blocks, valid, layer, m * cap) for layer, cap in zip(layers, edge_caps)
            ])

        return run

    def dense(v):
        return jnp.stack([_transposed_pull(v, layer) for layer in layers])

    return jax.lax.switch(choice, [push(tier) for tier in tiers] + [dense], x)


__all__ = [
    "BATCHED_TIERS",
    "METHODS",
    "PUSH_BLOCK",
    "SPARSE_TIERS",
    "blocked_cumsum",
    "first_true",
    "layer_row_pull",
    "layer_sum",
    "neighbour_sum",
    "sparse_tier",
    "zero_cotangent",
]
