"""The COVID model's substeps, each ``fn(key, state, params, t, world) -> (state, metrics)``.

Each simulated day, in order (substep names in brackets):

0. [interventions] with ``params.interventions`` only: each intervention's case condition
   (:func:`jaxsim.interventions.conditions_substep` on the ``weekly_onsets`` signal).
1. [isolation_policy] on the first day of each week, set the per-group isolation
   probability: from the heuristic on the simulated case signal (``policy="heuristic"``)
   or from ``world.inputs["isolation_prob"][week]`` supplied from outside the simulation,
   e.g. by a behaviour layer asking a language model (``policy="inputs"``).
2. [progression] E -> I once ``exposed_days`` have passed since exposure; I -> R or M
   once ``infected_days`` more have, dying with the age band's probability. An agent
   exposed on day ``t`` is E on days ``t .. t+4`` and I on days ``t+5 .. t+9`` (defaults).
3. [after_progression] intervention phase (testing).
4. [isolation] each living agent isolates today with its group's probability.
5. [before_infection] intervention phase (vaccination).
6. [infection] susceptible, non-isolating agents are exposed with probability
   ``1 - exp(-lambda_i)`` (see :mod:`jaxsim.kernels.contact_infection`), from the stages
   after today's progression.
7. [after_infection] intervention phase (imported infections).

Differentiable runs (any estimator but ``"none"``, :func:`jaxsim.sampling.differentiable`)
add two aggregate paths for the gradient through time: today's cases are tied to the
exposures ``exposed_days`` earlier, and each day's infection pressure to the total
infectiousness of earlier exposures (a mean-field factor equal to 1 going forward).
Forward values are the same for every estimator.

Units: time in days (``t = 0`` is the first simulated day, a week is days ``7w .. 7w+6``);
probabilities per day unless stated; counts are agents.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name
from jax.custom_batching import custom_vmap

from jaxsim import interventions as iv
from jaxsim import sampling
from jaxsim.kernels.contact_infection import (
    agent_infectiousness,
    exposure_probability,
    infectiousness_window,
)
from jaxsim.kernels.isolation import heuristic_isolation_probability, weekly_case_signal
from jaxsim.kernels.lookup import lookup
from jaxsim.kernels.neighbour_sums import neighbour_sum
from jaxsim.kernels.progression import DEAD, EXPOSED, STAGE_NAMES, SUSCEPTIBLE, seirm_progression
from jaxsim.models.covid.params import CovidParams, stage_infectiousness_by_day
from jaxsim.models.covid.state import CASE_HISTORY_DAYS, EXPOSURE_HISTORY_DAYS, CovidState


def week_of(t: jax.Array, num_weeks: int) -> jax.Array:
    """Week ``t // 7`` clipped to ``0 .. num_weeks - 1`` (later days read the last week)."""
    return jnp.clip(t // 7, 0, num_weeks - 1)


def _day_index(t: jax.Array, length: int) -> jax.Array:
    """Index of day ``t`` in a per-day schedule of ``length`` days, repeated cyclically."""
    return t % length


def sum_by_code(values: jax.Array, codes: jax.Array, num_codes: int) -> jax.Array:
    """``out[k] = sum(values[codes == k])``, float32 ``[num_codes]`` (one fused pass).

    Under ``vmap`` over members sharing ``codes`` it is one matrix product with the codes'
    one-hot matrix, built once for all members. Both forms add 0/1 draws, exactly (counts
    below 2**24), so a member's counts equal its single run's. Forward only: gradients go
    through :func:`sum_by_code_differentiable`.
    """

    @custom_vmap
    def fused(v, c):
        return sum_by_code_differentiable(v, c, num_codes)

    @fused.def_vmap
    def batched(axis_size, in_batched, v, c):
        values_batched, codes_batched = in_batched
        if codes_batched:  # members with codes of their own
            return jax.vmap(
                lambda a, b: sum_by_code_differentiable(a, b, num_codes),
                in_axes=(0 if values_batched else None, 0), axis_size=axis_size,
            )(v, c), True
        if not values_batched:
            v = jnp.broadcast_to(v, (axis_size,) + v.shape)
        one_hot = (c[:, None] == jnp.arange(num_codes)[None, :]).astype(v.dtype)
        return jnp.dot(v, one_hot, precision=jax.lax.Precision.HIGHEST), True

    return fused(values, codes)


def sum_by_code_differentiable(values: jax.Array, codes: jax.Array, num_codes: int) -> jax.Array:
    """:func:`sum_by_code` as one fused broadcast-and-reduce, with gradients."""
    return jnp.sum(values[:, None] * (codes[:, None] == jnp.arange(num_codes)[None, :]), axis=0)


def aligned_isolation_probability(prob: jax.Array, scale: jax.Array, offset: jax.Array) -> jax.Array:
    """``clip(scale * prob + offset, 0, 1)``, float32 ``[G]``: per-group alignment of a
    policy's probabilities (identity for scale 1, offset 0)."""
    return jnp.clip(scale * prob + offset, 0.0, 1.0).astype(jnp.float32)


def weekly_onsets(state: CovidState, params: CovidParams, t, world) -> jax.Array:
    """The model's signal for intervention conditions: onsets over days ``t-7 .. t-1``."""
    return weekly_case_signal(state.daily_cases, t)[0]


#: The intervention phases of the COVID step and its hook points (see
#: :mod:`jaxsim.models.covid.interventions`).
PHASES = ("after_progression", "before_infection", "after_infection")
HOOKS = ("isolation_probability", "isolating", "layer_scale", "susceptibility")


def interventions_substep():
    return iv.conditions_substep({"weekly_onsets": weekly_onsets})


def isolation_policy_substep(source: str):
    def isolation_policy(key, state: CovidState, params: CovidParams, t, world):
        if source == "heuristic":
            this_week, average = weekly_case_signal(state.daily_cases, t)
            new_prob = heuristic_isolation_probability(
                this_week, average, params.isolation_baseline, params.isolation_response
            )
        else:
            table = world.inputs["isolation_prob"]  # [weeks, G]
            new_prob = jnp.clip(table[week_of(t, table.shape[0])], 0.0, 1.0).astype(jnp.float32)
        new_prob = aligned_isolation_probability(
            new_prob, params.isolation_alignment_scale, params.isolation_alignment_offset
        )
        prob = jnp.where(t % 7 == 0, new_prob, state.isolation_prob)
        return state.replace(isolation_prob=prob), {"isolation_prob": prob}

    return isolation_policy


def isolation(key, state: CovidState, params: CovidParams, t, world):
    p = lookup(state.isolation_prob, world.agents["isolation_group"])
    p = jnp.where(state.stage >= DEAD, 0.0, p)  # the dead and padding slots
    if params.interventions is not None:
        p = iv.apply_hooks(params, state, "isolation_probability", p, t, world)
        p = jnp.where(state.stage >= DEAD, 0.0, p)
    isolates = sampling.bernoulli(key, p)
    if params.interventions is not None:
        isolates = iv.apply_hooks(params, state, "isolating", isolates, t, world)
    return state.replace(isolating=isolates), {"isolating": isolates.sum()}


def _mean_field_infectiousness(state: CovidState, params: CovidParams, t) -> jax.Array:
    """Total infectiousness today from the aggregate exposure history (a scalar):
    ``sum_d exposures(t - d) * alpha(d) * g(d)``."""
    d = jnp.arange(params.infectiousness_profile.shape[0])
    past = state.daily_exposures[(t - d) % EXPOSURE_HISTORY_DAYS]
    return jnp.sum(past * stage_infectiousness_by_day(params) * params.infectiousness_profile)


def infection_substep(contact_method: str = "auto"):
    def infection(key, state: CovidState, params: CovidParams, t, world):
        differentiable = sampling.differentiable()
        present = 1.0 - state.isolating
        x = agent_infectiousness(
            state.stage,
            state.day_infected,
            present,
            t,
            params.stage_infectiousness,
            params.infectiousness_profile,
        )
        layer_scale = {
            name: series[_day_index(t, series.shape[0])]
            for name, series in world.inputs.get("layer_scale", {}).items()
        }
        interventions = params.interventions
        if interventions is not None:
            layer_scale = iv.apply_hooks(params, state, "layer_scale", layer_scale, t, world)
        if differentiable:
            # Agents outside their infectiousness window have x = 0 for any parameters, so
            # the gradient needs the contact sum only on those inside it (few).
            in_window = infectiousness_window(state.day_infected, t, params.infectiousness_profile.shape[0])
            pressure = neighbour_sum(x, world.graph, layer_scale, contact_method, in_window)
        else:
            pressure = neighbour_sum(
                jax.lax.stop_gradient(x), world.graph,
                {name: jax.lax.stop_gradient(s) for name, s in layer_scale.items()}, contact_method,
            )
        pressure = checkpoint_name(pressure, "contact_pressure")
        if differentiable:
            # Mean-field path for the gradient through time: scale the pressure by
            # total / stop_gradient(total), exactly 1 going forward, whose gradient says how
            # the day's infectiousness moves with every earlier exposure draw (an agent
            # that was not infected carries no per-agent path to later days).
            total = _mean_field_infectiousness(state, params, t)
            safe = jnp.where(total > 0, total, 1.0)
            pressure = pressure * jnp.where(total > 0, safe / jax.lax.stop_gradient(safe), 1.0)
        age = world.agents["age"].astype(jnp.int32)
        rate = params.transmission_rate[week_of(t, params.transmission_rate.shape[0])]
        can_be_infected = (state.stage == SUSCEPTIBLE) * present
        susceptibility = lookup(params.susceptibility, age)
        if interventions is not None:
            susceptibility = iv.apply_hooks(params, state, "susceptibility", susceptibility, t, world)
        p = exposure_probability(
            pressure, rate, susceptibility, params.contact_normaliser, can_be_infected
        )
        exposed = sampling.bernoulli(key, p)
        hit = exposed > 0.5
        count = sum_by_code_differentiable if differentiable else sum_by_code
        by_age = count(exposed, age, params.susceptibility.shape[0])
        new_infections = by_age.sum()
        state = state.replace(
            stage=jnp.where(hit, jnp.int8(EXPOSED), state.stage),
            day_infected=jnp.where(hit, t.astype(state.day_infected.dtype), state.day_infected),
            daily_exposures=state.daily_exposures.at[t % EXPOSURE_HISTORY_DAYS].set(new_infections),
        )
        return state, {"new_infections": new_infections, "new_infections_by_age": by_age}

    return infection


def progression(key, state: CovidState, params: CovidParams, t, world):
    age = world.agents["age"].astype(jnp.int32)
    dies = sampling.bernoulli(key, lookup(params.mortality, age))
    stage, events = seirm_progression(
        state.stage, state.day_infected, t, params.exposed_days, params.infected_days, dies
    )
    new_cases = events["onset"].sum()
    if sampling.differentiable():
        # Today's onsets are exactly the agents exposed ``exposed_days`` ago; adding
        # (that count - itself) keeps the value and routes its gradient to every
        # exposure draw of that day.
        exposed_then = state.daily_exposures[(t - params.exposed_days) % EXPOSURE_HISTORY_DAYS]
        new_cases = new_cases + (exposed_then - jax.lax.stop_gradient(exposed_then))
    state = state.replace(
        stage=stage,
        daily_cases=state.daily_cases.at[t % CASE_HISTORY_DAYS].set(new_cases),
    )
    return state, {"new_cases": new_cases, "new_deaths": events["death"].sum()}


def observe_stage_counts(state: CovidState, params, world) -> dict[str, jax.Array]:
    """End-of-day counts per stage, as int32 scalars named after :data:`STAGE_NAMES`."""
    stage = state.stage.astype(jnp.int32)
    counts = jnp.sum(stage[:, None] == jnp.arange(5)[None, :], axis=0, dtype=jnp.int32)
    return {name: counts[i] for i, name in enumerate(STAGE_NAMES)}


__all__ = [
    "HOOKS",
    "PHASES",
    "aligned_isolation_probability",
    "infection_substep",
    "interventions_substep",
    "isolation",
    "isolation_policy_substep",
    "observe_stage_counts",
    "progression",
    "sum_by_code",
    "sum_by_code_differentiable",
    "week_of",
    "weekly_onsets",
]
