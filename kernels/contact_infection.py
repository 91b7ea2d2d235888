"""Contact infection on undirected contact graphs.

For a susceptible, non-isolating agent ``i`` on day ``t``::

    lambda_i = R(t) * sigma[age_i] * sum_l s_l(t) * sum_{j in N_l(i)} alpha[stage_j] * g(t - t_inf_j) * w_ij / c
    P(exposed_i) = 1 - exp(-lambda_i)

where ``l`` runs over the contact layers active that day with multiplier ``s_l(t)``,
``alpha`` is the per-stage infectiousness, ``g`` the infectiousness profile over days since
infection, ``w_ij`` the edge weight and ``c`` the normalising mean number of contacts.
Isolating agents neither infect nor get infected. Edges are stored directed both ways and
sorted by destination, so the sum over neighbours is a gather plus a sorted ``segment_sum``.
"""

from __future__ import annotations

from functools import partial
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.graph import ContactLayer
from jaxsim.kernels.lookup import lookup
from jaxsim.kernels.sharded_contacts import is_sharded_graph, sharded_contact_pressure


def infectiousness_window(day_infected: jax.Array, t: jax.Array, num_days: int) -> jax.Array:
    """bool ``[N]``: ``0 <= t - day_infected < num_days``, the days on which the profile can
    give an agent non-zero infectiousness."""
    days_since = t - day_infected.astype(jnp.int32)
    return (days_since >= 0) & (days_since < num_days)


def agent_infectiousness(
    stage: jax.Array,
    day_infected: jax.Array,
    transmitting: jax.Array,
    t: jax.Array,
    stage_infectiousness: jax.Array,
    profile: jax.Array,
) -> jax.Array:
    """Each agent's infectiousness towards one contact today.

    Args:
        stage: int ``[N]`` stage codes (0 S, 1 E, 2 I, 3 R, 4 M; other codes, such as
            padding slots, are not infectious).
        day_infected: int ``[N]`` day the agent was exposed (negative for before the run;
            meaningless for agents never infected, whose ``alpha`` is 0).
        transmitting: float ``[N]`` multiplier, 1 for an agent that can transmit today and
            0 for one that cannot (isolating). In a differentiable run it carries the
            gradient of the events that made the agent infected and not isolating.
        t: int scalar, today (days since the run started).
        stage_infectiousness: float ``[5]`` ``alpha`` per stage code.
        profile: float ``[D]`` ``g[d]`` for ``d`` days since infection; 0 beyond ``D``.

    Returns:
        float32 ``[N]``: ``alpha[stage_j] * g(t - t_inf_j) * transmitting_j``.
    """
    days_since = t - day_infected.astype(jnp.int32)
    num_days = profile.shape[0]
    in_window = infectiousness_window(day_infected, t, num_days)
    g = jnp.where(in_window, profile[jnp.clip(days_since, 0, num_days - 1)], 0.0)
    alpha = lookup(stage_infectiousness, stage)
    return (alpha * g * transmitting).astype(jnp.float32)


def layer_pressure(infectiousness: jax.Array, layer: ContactLayer) -> jax.Array:
    """``sum_{j in N(i)} infectiousness_j * w_ij`` over one layer, for every agent ``i``.

    Args:
        infectiousness: float ``[N]`` per-agent infectiousness.
        layer: directed edges sorted by destination (see :class:`ContactLayer`).

    Returns:
        float32 ``[N]``.
    """
    # Indices were validated on the host when the layer was built, so the gather may skip
    # negative-index wrapping (about 3x faster on CPU than the default gather mode).
    sent = infectiousness.at[layer.src].get(mode="promise_in_bounds")
    if layer.weight is not None:
        sent = sent * layer.weight
    return jax.ops.segment_sum(
        sent, layer.dst, num_segments=infectiousness.shape[0], indices_are_sorted=True
    )


#: Capacity tiers of the sparse "push" path, as fractions of the agents (senders) and of
#: each layer's directed edges. A day whose infectious agents fit in a tier costs about that
#: fraction of the dense work plus O(N); otherwise the dense "pull" sum runs.
SPARSE_TIERS: tuple[float, ...] = (1 / 256, 1 / 32)
CONTACT_METHODS = ("auto", "dense")


def _tier_capacity(fraction: float, size: int, minimum: int) -> int:
    return int(min(size, max(minimum, -(-size * fraction // 1))))


def layer_push(
    infectiousness: jax.Array,
    senders: jax.Array,
    num_senders: jax.Array,
    layer: ContactLayer,
    edge_capacity: int,
) -> jax.Array:
    """:func:`layer_pressure` computed from the sending agents only.

    Each sender's edge row (its neighbours, by the layer's symmetry) is expanded into a
    buffer of ``edge_capacity`` slots and scatter-added to the receivers. Exact when the
    senders' edges fit in the buffer (the caller checks).

    Args:
        infectiousness: float ``[N]``.
        senders: int32 ``[A]`` agent indices with non-zero infectiousness, padded.
        num_senders: int scalar, how many entries of ``senders`` are real.
        layer: the contact layer.
        edge_capacity: static number of edge slots.

    Returns:
        float32 ``[N]``.
    """
    n = infectiousness.shape[0]
    owner, position, used = _expand_rows(senders, num_senders, layer, edge_capacity)
    receiver = jnp.where(used, layer.src[position], n)
    sent = infectiousness[senders[owner]]
    if layer.weight is not None:
        sent = sent * layer.weight[position]
    return jnp.zeros(n, infectiousness.dtype).at[receiver].add(sent, mode="drop")


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
    offset = jnp.cumsum(degree) - degree
    owner = jnp.repeat(jnp.arange(capacity), degree, total_repeat_length=edge_capacity)
    slot = jnp.arange(edge_capacity)
    used = slot < degree.sum()
    position = jnp.where(used, first[owner] + slot - offset[owner], 0)
    return owner, position, used


def layer_row_pull(
    values: jax.Array, rows: jax.Array, num_rows: jax.Array, layer: ContactLayer, edge_capacity: int
) -> jax.Array:
    """:func:`layer_pressure` of ``values`` evaluated only at agents ``rows[:num_rows]``
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


def contact_pressure(
    infectiousness: jax.Array,
    layers: Mapping[str, ContactLayer],
    layer_scale: Mapping[str, jax.Array],
    method: str = "auto",
    may_transmit: jax.Array | None = None,
) -> jax.Array:
    """Sum of :func:`layer_pressure` over layers, each times its multiplier for today.

    With ``method="auto"`` the sum is pushed from the infectious agents when they are few
    (the usual case: a few percent of agents), using the smallest capacity tier of
    :data:`SPARSE_TIERS` that holds them, and pulled over every edge otherwise
    (``method="dense"`` always pulls). Both give the same sums up to float rounding. Under
    ``vmap`` the tier choice becomes a select that evaluates every branch, so ensembles
    should use ``"dense"``.

    A layer whose multiplier is 0 today is skipped at run time (``lax.cond``), so one
    network per day of week costs one layer's work per day.

    Gradients: each layer's operator is symmetric (every undirected edge is stored both
    ways with one weight), so the gradient with respect to ``infectiousness`` is the same
    pull applied to the cotangent (a custom VJP). With ``may_transmit`` given, that pull is
    evaluated only on those agents, through the same capacity tiers as the forward push:
    exact when every agent outside ``may_transmit`` has infectiousness 0 whatever the
    parameters (e.g. agents outside their infectiousness window), which the caller
    guarantees. Multipliers get exact gradients; edge weights and the graph arrays are not
    differentiated (their cotangents are zero).

    Args:
        infectiousness: float ``[N]``.
        layers: ``{name: ContactLayer}``, or layers split over devices (``{name:
            ShardedContactLayer}``, see :mod:`jaxsim.sharding`), which go to
            :func:`jaxsim.kernels.sharded_contacts.sharded_contact_pressure` (same values;
            ``method`` and ``may_transmit`` do not apply).
        layer_scale: ``{name: float scalar}`` today's multiplier per layer (1 = as built,
            0 = closed); layers missing from the mapping count with multiplier 1.
        method: ``"auto"`` or ``"dense"``.
        may_transmit: optional bool ``[N]``, see above (only used by gradients).

    Returns:
        float32 ``[N]``.
    """
    if method not in CONTACT_METHODS:
        raise ValueError(f"unknown contact method {method!r}; choose one of {CONTACT_METHODS}")
    if is_sharded_graph(layers):
        # Layers split over devices (jaxsim.sharding): one halo exchange, then the pull.
        return sharded_contact_pressure(infectiousness, layers, layer_scale)
    names = tuple(sorted(layers))
    if not names:
        return jnp.zeros_like(infectiousness)
    scales = tuple(jnp.asarray(layer_scale.get(name, 1.0), jnp.float32) for name in names)
    # Only layers with a schedule can be closed; the others need no run-time test (an
    # XLA:CPU conditional costs a copy of its operands, the layer's edge arrays).
    closable = tuple(name in layer_scale for name in names)
    return _scaled_pressure(
        method, closable, infectiousness, tuple(layers[n] for n in names), scales, may_transmit
    )


def _skip_if_closed(closable: bool, scale, fn, x):
    if not closable:
        return fn(x)
    return jax.lax.cond(scale != 0, fn, jnp.zeros_like, x)


def _per_layer_pressure(
    method: str, closable: tuple, x: jax.Array, layers: tuple, scales: tuple
) -> jax.Array:
    """``[L, N]`` pressure of each layer (0 for a closed layer), by the chosen path."""

    def dense(v):
        return jnp.stack([
            _skip_if_closed(c, scale, lambda u, lay=lay: layer_pressure(u, lay), v)
            for lay, scale, c in zip(layers, scales, closable)
        ])

    if method == "dense":
        return dense(x)
    n = x.shape[0]
    num_senders = jnp.sum(x != 0, dtype=jnp.int32)

    def push_tier(fraction):
        agent_cap = _tier_capacity(fraction, n, 16)

        def push(v):
            senders = jnp.nonzero(v != 0, size=agent_cap, fill_value=0)[0].astype(jnp.int32)
            return jnp.stack([
                _skip_if_closed(
                    closed,
                    scale,
                    lambda u, lay=lay, c=_tier_capacity(fraction, lay.num_directed_edges, 64):
                    layer_push(u, senders, num_senders, lay, c),
                    v,
                )
                for lay, scale, closed in zip(layers, scales, closable)
            ])

        return push

    branches = [push_tier(fraction) for fraction in SPARSE_TIERS] + [dense]
    by_name = {str(i): lay for i, lay in enumerate(layers)}
    return jax.lax.switch(contact_tier(x, by_name), branches, x)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _scaled_pressure(method, closable, x, layers, scales, may_transmit):
    per_layer = _per_layer_pressure(method, closable, x, layers, scales)
    return jnp.tensordot(jnp.stack(scales), per_layer, axes=1)


def _scaled_pressure_fwd(method, closable, x, layers, scales, may_transmit):
    per_layer = _per_layer_pressure(method, closable, x, layers, scales)
    residuals = (per_layer, layers, scales, may_transmit)
    return jnp.tensordot(jnp.stack(scales), per_layer, axes=1), residuals


def _zero_cotangent(tree):
    def zero(a):
        if jnp.issubdtype(a.dtype, jnp.inexact):
            return jnp.zeros_like(a)
        return np.zeros(a.shape, dtype=jax.dtypes.float0)

    return jax.tree.map(zero, tree)


def _pull_transpose(method, closable, cotangent, layers, scales, may_transmit):
    """``sum_l s_l A_l cotangent`` (symmetric ``A_l``), on ``may_transmit`` rows when given."""

    def dense(ct):
        total = jnp.zeros_like(ct)
        for lay, scale, closed in zip(layers, scales, closable):
            total = total + _skip_if_closed(
                closed, scale, lambda u, lay=lay, s=scale: s * layer_pressure(u, lay), ct
            )
        return total

    if method == "dense" or may_transmit is None:
        return dense(cotangent)
    n = cotangent.shape[0]
    num_rows = jnp.sum(may_transmit, dtype=jnp.int32)

    def row_tier(fraction):
        agent_cap = _tier_capacity(fraction, n, 16)

        def pull(ct):
            rows = jnp.nonzero(may_transmit, size=agent_cap, fill_value=0)[0].astype(jnp.int32)
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
    choice = contact_tier(may_transmit.astype(jnp.float32), by_name)
    return jax.lax.switch(choice, branches, cotangent)


def _scaled_pressure_bwd(method, closable, residuals, cotangent):
    per_layer, layers, scales, may_transmit = residuals
    ct_x = _pull_transpose(method, closable, cotangent, layers, scales, may_transmit)
    ct_scales = tuple(jnp.sum(cotangent * per_layer[i]) for i in range(len(scales)))
    ct_mask = None if may_transmit is None else _zero_cotangent(may_transmit)
    return ct_x, _zero_cotangent(layers), ct_scales, ct_mask


_scaled_pressure.defvjp(_scaled_pressure_fwd, _scaled_pressure_bwd)


def contact_tier(infectiousness: jax.Array, layers: Mapping[str, ContactLayer]) -> jax.Array:
    """Which path :func:`contact_pressure` (``method="auto"``) takes today.

    Returns an int32 scalar: ``i < len(SPARSE_TIERS)`` for the first capacity tier that
    holds today's senders (agents with non-zero infectiousness) and their edges in every
    layer, ``len(SPARSE_TIERS)`` for the dense pull.
    """
    n = infectiousness.shape[0]
    sending = infectiousness != 0
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


def exposure_probability(
    pressure: jax.Array,
    transmission_rate: jax.Array,
    susceptibility: jax.Array,
    contact_normaliser: jax.Array,
    can_be_infected: jax.Array,
) -> jax.Array:
    """``P(exposed_i) = 1 - exp(-R(t) * sigma_i * pressure_i / c)`` for agents that can be infected.

    Args:
        pressure: float ``[N]`` from :func:`contact_pressure`.
        transmission_rate: float scalar ``R(t)`` for today's week (>= 0).
        susceptibility: float ``[N]`` ``sigma[age_i]`` per agent.
        contact_normaliser: float scalar ``c`` (> 0), mean contacts per agent per day.
        can_be_infected: ``[N]`` 1/True for agents that can be infected today (susceptible
            and not isolating), 0/False otherwise; a float mask passes gradients through.

    Returns:
        float32 ``[N]`` probabilities in ``[0, 1]``.
    """
    rate = transmission_rate * susceptibility * pressure / contact_normaliser
    # 1 - exp(-rate), with its Taylor series below 0.01 where float32 cancellation would
    # lose digits; absolute error < 1e-7 everywhere (under the 2**-24 resolution of the
    # uniform draws) and cheaper than expm1 on XLA:CPU.
    p = jnp.where(
        rate < 0.01, rate * (1.0 - 0.5 * rate * (1.0 - rate / 3.0)), 1.0 - jnp.exp(-rate)
    )
    return p * can_be_infected
