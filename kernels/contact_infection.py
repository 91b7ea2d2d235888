"""Contact infection on undirected contact graphs.

For a susceptible, non-isolating agent ``i`` on day ``t``::

    lambda_i = R(t) * sigma[age_i] * sum_l s_l(t) * sum_{j in N_l(i)} alpha[stage_j] * g(t - t_inf_j) * w_ij / c
    P(exposed_i) = 1 - exp(-lambda_i)

where ``l`` runs over the contact layers active that day with multiplier ``s_l(t)``,
``alpha`` is the per-stage infectiousness, ``g`` the infectiousness profile over days since
infection, ``w_ij`` the edge weight and ``c`` the normalising mean number of contacts.
Isolating agents neither infect nor get infected. The sum over neighbours is
:func:`jaxsim.kernels.neighbour_sums.neighbour_sum`; this module holds the COVID-specific
pieces around it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxsim.kernels.lookup import lookup


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


def exposure_probability(
    pressure: jax.Array,
    transmission_rate: jax.Array,
    susceptibility: jax.Array,
    contact_normaliser: jax.Array,
    can_be_infected: jax.Array,
) -> jax.Array:
    """``P(exposed_i) = 1 - exp(-R(t) * sigma_i * pressure_i / c)`` for agents that can be infected.

    Args:
        pressure: float ``[N]`` from :func:`jaxsim.kernels.neighbour_sums.neighbour_sum`.
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
