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

from typing import Mapping

import jax
import jax.numpy as jnp

from jaxsim.graph import ContactLayer


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
    in_window = (days_since >= 0) & (days_since < num_days)
    g = jnp.where(in_window, profile[jnp.clip(days_since, 0, num_days - 1)], 0.0)
    alpha = jnp.take(stage_infectiousness, stage.astype(jnp.int32), mode="fill", fill_value=0.0)
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
    capacity = senders.shape[0]
    real = jnp.arange(capacity) < num_senders
    first = layer.row_start[senders]
    degree = jnp.where(real, layer.row_start[senders + 1] - first, 0)
    offset = jnp.cumsum(degree) - degree
    owner = jnp.repeat(jnp.arange(capacity), degree, total_repeat_length=edge_capacity)
    slot = jnp.arange(edge_capacity)
    used = slot < degree.sum()
    position = jnp.where(used, first[owner] + slot - offset[owner], 0)
    receiver = jnp.where(used, layer.src[position], n)
    sent = infectiousness[senders[owner]]
    if layer.weight is not None:
        sent = sent * layer.weight[position]
    return jnp.zeros(n, infectiousness.dtype).at[receiver].add(sent, mode="drop")


def contact_pressure(
    infectiousness: jax.Array,
    layers: Mapping[str, ContactLayer],
    layer_scale: Mapping[str, jax.Array],
    method: str = "auto",
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

    Args:
        infectiousness: float ``[N]``.
        layers: ``{name: ContactLayer}``.
        layer_scale: ``{name: float scalar}`` today's multiplier per layer (1 = as built,
            0 = closed); layers missing from the mapping count with multiplier 1.
        method: ``"auto"`` or ``"dense"``.

    Returns:
        float32 ``[N]``.
    """
    if method not in CONTACT_METHODS:
        raise ValueError(f"unknown contact method {method!r}; choose one of {CONTACT_METHODS}")
    names = sorted(layers)
    scales = [jnp.asarray(layer_scale.get(name, 1.0), jnp.float32) for name in names]

    def dense(x):
        total = jnp.zeros_like(x)
        for name, scale in zip(names, scales):
            total = total + jax.lax.cond(
                scale != 0,
                lambda v, lay=layers[name], s=scale: s * layer_pressure(v, lay),
                jnp.zeros_like,
                x,
            )
        return total

    if method == "dense" or not names:
        return dense(infectiousness)

    n = infectiousness.shape[0]
    num_senders = jnp.sum(infectiousness != 0, dtype=jnp.int32)

    def push_tier(fraction):
        agent_cap = _tier_capacity(fraction, n, 16)

        def push(x):
            senders = jnp.nonzero(x != 0, size=agent_cap, fill_value=0)[0].astype(jnp.int32)
            total = jnp.zeros_like(x)
            for name, scale in zip(names, scales):
                cap = _tier_capacity(fraction, layers[name].num_directed_edges, 64)
                total = total + jax.lax.cond(
                    scale != 0,
                    lambda v, lay=layers[name], s=scale, c=cap: s
                    * layer_push(v, senders, num_senders, lay, c),
                    jnp.zeros_like,
                    x,
                )
            return total

        return push

    branches = [push_tier(fraction) for fraction in SPARSE_TIERS] + [dense]
    return jax.lax.switch(contact_tier(infectiousness, layers), branches, infectiousness)


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
