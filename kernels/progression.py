"""SEIRM disease progression with fixed dwell times and age-dependent mortality."""

from __future__ import annotations

import jax
import jax.numpy as jnp

#: Stage codes of the SEIRM kernels (and of the field's ``disease_stages.csv``).
STAGE_NAMES: tuple[str, ...] = ("susceptible", "exposed", "infected", "recovered", "dead")
SUSCEPTIBLE, EXPOSED, INFECTED, RECOVERED, DEAD = range(5)


def seirm_progression(
    stage: jax.Array,
    day_infected: jax.Array,
    t: jax.Array,
    exposed_days: jax.Array,
    infected_days: jax.Array,
    dies: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Advance agents whose current stage ends today.

    ``E -> I`` on day ``day_infected + exposed_days``; ``I -> M`` (dead) or ``I -> R`` on
    day ``day_infected + exposed_days + infected_days``, as ``dies`` says. Dead agents have
    infectiousness 0 and cannot be infected, so they leave the contact graph without the
    graph arrays changing shape.

    Args:
        stage: int8 ``[N]`` stage codes (0 S, 1 E, 2 I, 3 R, 4 M).
        day_infected: int ``[N]`` day of exposure (negative: before the run).
        t: int scalar, today.
        exposed_days: int scalar, days from exposure to onset (E -> I).
        infected_days: int scalar, days from onset to recovery or death.
        dies: float ``[N]`` 0/1 death outcome for an agent whose I stage ends today
            (drawn by the caller through :mod:`jaxsim.sampling`, so that a gradient
            estimator can be attached); ignored for other agents.

    Returns:
        ``(stage, events)`` where events holds float32 ``[N]`` 0/1 arrays ``onset``
        (E -> I today), ``death`` (I -> M today) and ``recovery`` (I -> R today).
    """
    days_since = t - day_infected.astype(jnp.int32)
    onset = (stage == EXPOSED) & (days_since >= exposed_days)
    ends = (stage == INFECTED) & (days_since >= exposed_days + infected_days)
    death = jnp.where(ends, dies, 0.0)
    new_stage = jnp.where(onset, jnp.int8(INFECTED), stage)
    new_stage = jnp.where(ends, jnp.where(dies > 0.5, jnp.int8(DEAD), jnp.int8(RECOVERED)), new_stage)
    events = {
        "onset": onset.astype(jnp.float32),
        "death": death,
        "recovery": jnp.where(ends, 1.0 - dies, 0.0),
    }
    return new_stage.astype(stage.dtype), events
