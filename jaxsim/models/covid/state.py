"""The COVID model's state and its day-0 state (the model's ``init``)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxsim.kernels import pytree as struct

from jaxsim import interventions as iv
from jaxsim import sampling
from jaxsim.kernels.progression import EXPOSED, INFECTED, SUSCEPTIBLE
from jaxsim.models.covid.params import CovidParams

#: ``day_infected`` of agents never infected.
NEVER = np.int16(-30000)
#: Length of the ``daily_exposures`` ring: covers the infectiousness profile and dwell times.
EXPOSURE_HISTORY_DAYS = 32
#: Stage code of padding slots (see :data:`jaxsim.engine.AGENT_ALIGNMENT`): never infected,
#: never infectious, never isolating, in no stage count.
ABSENT = 5
#: Length of the ``daily_cases`` ring: the isolation heuristic reads four weeks back.
CASE_HISTORY_DAYS = 28


@struct.dataclass
class CovidState:
    """Agent arrays ``[S]`` plus the small per-run arrays the behaviour needs.

    Attributes:
        stage: int8 ``[S]`` stage codes (0 S, 1 E, 2 I, 3 R, 4 M; 5 padding).
        day_infected: int16 ``[S]`` day of exposure (``NEVER`` if not infected yet); the
            day a stage ends follows from it and the dwell times.
        isolating: float32 ``[S]`` 1 if isolating today, else 0 (a float so that isolation
            parameters get gradients in a differentiable run).
        daily_exposures: float32 ``[32]`` ring buffer, slot ``d mod 32`` holding the number
            of agents exposed on day ``d`` (days ``-9 .. -1`` from the initial state). In a
            differentiable run it carries the gradient of every exposure draw (hit or not)
            into later cases and infection pressure (see :mod:`.substeps`).
        isolation_prob: float32 ``[G]`` this week's isolation probability per group.
        daily_cases: float32 ``[28]`` ring buffer of daily new cases (onsets), slot ``d mod 28``.
        interventions: the run state of ``params.interventions``
            (:class:`jaxsim.interventions.InterventionState`: each item's condition and
            own state, e.g. a vaccination's dose days), or ``None`` without a set.
    """

    stage: jax.Array
    day_infected: jax.Array
    isolating: jax.Array
    daily_exposures: jax.Array
    isolation_prob: jax.Array
    daily_cases: jax.Array
    interventions: Any = None


def initial_state(key: jax.Array, params: CovidParams, world) -> CovidState:
    """Day-0 state (the model's ``init(key, params, world)``).

    Arrays have ``world.num_slots`` entries; padding slots get stage :data:`ABSENT`.
    Stages come from ``world.agents["initial_stage"]`` (e.g. a population's
    ``disease_stages.csv``, see :func:`jaxsim.models.covid.build_world`) when the world has
    them, else each agent is E with probability ``initial_exposed_share`` and I with
    probability ``initial_infected_share``. Agents already in E or I are spread uniformly
    over their stage's days, so the epidemic does not start in lockstep.

    ``world.inputs["prior_daily_cases"]`` (scalar or ``[28]``, oldest first; default 0) is
    the case signal the isolation heuristic starts from: cases per day over the 28 days
    before the run. The initial E/I draws use the run's gradient estimator, so that the
    initial shares can be calibrated.
    """
    num_agents, slots = world.num_agents, world.num_slots
    real = jnp.arange(slots) < num_agents
    k_stage, k_offset = jax.random.split(key)
    u_offset = sampling.uniform(k_offset, (slots,))
    stages = world.agents.get("initial_stage")
    if stages is None:
        # Both draws use the same uniforms (same key): E if u < e, I if e <= u < e + i.
        e_share = jnp.broadcast_to(params.initial_exposed_share, (slots,))
        exposed = sampling.bernoulli(k_stage, e_share)
        infected = sampling.bernoulli(k_stage, e_share + params.initial_infected_share) - exposed
        exposed, infected = exposed * real, infected * real
        stage = jnp.where(exposed > 0.5, EXPOSED, jnp.where(infected > 0.5, INFECTED, SUSCEPTIBLE))
        ever_exposed = exposed + infected
    else:
        stage = stages.astype(jnp.int8)
        ever_exposed = ((stage == EXPOSED) | (stage == INFECTED)).astype(jnp.float32)
    stage = jnp.where(real, stage, ABSENT).astype(jnp.int8)
    e_days, i_days = params.exposed_days, params.infected_days
    # The state at the start of day 0 (progression runs first each day): E agents were
    # exposed 1 .. exposed_days days ago, I agents exposed_days + 1 .. exposed_days +
    # infected_days days ago (defaults: E on days -1..-5, I on days -6..-10).
    into_e = jnp.floor(u_offset * e_days).astype(jnp.int32) + 1
    into_i = jnp.floor(u_offset * i_days).astype(jnp.int32)
    day_infected = jnp.select(
        [stage == EXPOSED, stage == INFECTED], [-into_e, -(e_days + into_i + 1)], NEVER
    ).astype(jnp.int16)
    # Exposures on days -1, -2, ... of the agents in E or I at day 0 (their history).
    days_back = -day_infected.astype(jnp.int32)
    lookback = EXPOSURE_HISTORY_DAYS - 1
    by_day = jnp.sum(
        ever_exposed[:, None] * (days_back[:, None] == jnp.arange(1, lookback + 1)[None, :]), axis=0
    )
    if stages is None:
        # Keep the counts, but let their gradient be that of the expected counts: N x share
        # spread evenly over each stage's days (only agents drawn infected have a day, so
        # the count alone would carry the gradient of those few draws only).
        d = jnp.arange(1, lookback + 1)
        expected = num_agents * (
            jnp.where(d <= e_days, params.initial_exposed_share / e_days, 0.0)
            + jnp.where((d > e_days) & (d <= e_days + i_days), params.initial_infected_share / i_days, 0.0)
        )
        by_day = by_day + (expected - jax.lax.stop_gradient(expected))
    exposure_ring = jnp.zeros(EXPOSURE_HISTORY_DAYS, jnp.float32).at[
        (-jnp.arange(1, lookback + 1)) % EXPOSURE_HISTORY_DAYS
    ].set(by_day)
    prior_cases = world.inputs.get("prior_daily_cases", 0.0)
    prior = jnp.broadcast_to(jnp.asarray(prior_cases, jnp.float32), (CASE_HISTORY_DAYS,))
    # Slot (d mod 28) holds day d; day -28 + i is the i-th oldest prior day.
    ring = jnp.zeros(CASE_HISTORY_DAYS, jnp.float32).at[
        (np.arange(CASE_HISTORY_DAYS) - CASE_HISTORY_DAYS) % CASE_HISTORY_DAYS
    ].set(prior)
    return CovidState(
        stage=stage,
        day_infected=day_infected,
        isolating=jnp.zeros(slots, jnp.float32),
        daily_exposures=exposure_ring,
        isolation_prob=jnp.zeros(params.isolation_baseline.shape, jnp.float32),
        daily_cases=ring,
        interventions=iv.initial_state(params.interventions, world),
    )


__all__ = ["ABSENT", "CASE_HISTORY_DAYS", "CovidState", "EXPOSURE_HISTORY_DAYS", "NEVER", "initial_state"]
