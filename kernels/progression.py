"""SEIRM disease progression with fixed dwell times and age-dependent mortality."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxsim.population import DEAD, EXPOSED, INFECTED, RECOVERED


def seirm_progression(
    stage: jax.Array,
    day_next: jax.Array,
    t: jax.Array,
    infected_days: jax.Array,
    dies: jax.Array,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """Advance agents whose current stage ends today.

    ``E -> I`` when the exposed period ends (then ``day_next = t + infected_days``);
    ``I -> M`` (dead) or ``I -> R`` when the infected period ends, as ``dies`` says.
    Dead agents have infectiousness 0 and cannot be infected, so they leave the contact
    graph without the graph arrays changing shape.

    Args:
        stage: int8 ``[N]`` stage codes (0 S, 1 E, 2 I, 3 R, 4 M).
        day_next: int ``[N]`` day on which the current E or I stage ends.
        t: int scalar, today.
        infected_days: int scalar, days from onset (I) to recovery or death.
        dies: float ``[N]`` 0/1 death outcome for an agent whose I stage ends today
            (drawn by the caller through :mod:`jaxsim.sampling`, so that a gradient
            estimator can be attached); ignored for other agents.

    Returns:
        ``(stage, day_next, events)`` where events holds float32 ``[N]`` 0/1 arrays
        ``onset`` (E -> I today), ``death`` (I -> M today) and ``recovery`` (I -> R today).
    """
    due = day_next.astype(jnp.int32) <= t
    onset = (stage == EXPOSED) & due
    ends = (stage == INFECTED) & due
    death = jnp.where(ends, dies, 0.0)
    recovery = jnp.where(ends, 1.0 - dies, 0.0)
    new_stage = jnp.where(onset, INFECTED, stage)
    new_stage = jnp.where(ends, jnp.where(dies > 0.5, DEAD, RECOVERED), new_stage)
    new_day_next = jnp.where(onset, t + infected_days, day_next.astype(jnp.int32))
    events = {"onset": onset.astype(jnp.float32), "death": death, "recovery": recovery}
    return new_stage.astype(stage.dtype), new_day_next.astype(day_next.dtype), events
