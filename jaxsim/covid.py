"""The COVID-19 model: SEIRM over contact networks with isolation behaviour.

Each simulated day, in order (substep names in brackets):

0. [interventions] with ``params.interventions`` (:mod:`jaxsim.interventions`) only:
   update each intervention's case condition; [testing] (after progression),
   [vaccination] (before infection) and [seeding] (after infection) likewise act only
   when the set holds their kind, and compliance, age-band isolation, contact scaling and
   vaccine protection change the isolation and infection substeps. Without a set the
   model is exactly the plain one.
1. [isolation_policy] on the first day of each week, set the per-group isolation
   probability: from the heuristic on the simulated case signal (``policy="heuristic"``)
   or from ``world.inputs["isolation_prob"][week]`` supplied from outside the simulation,
   e.g. by an LLM archetype layer (``policy="inputs"``).
2. [progression] E -> I once ``exposed_days`` have passed since exposure; I -> R or M
   once ``infected_days`` more have, dying with the age band's probability. An agent
   exposed on day ``t`` is E on days ``t .. t+4`` and I on days ``t+5 .. t+9`` (defaults).
3. [isolation] each living agent isolates today with its group's probability.
4. [infection] susceptible, non-isolating agents are exposed with probability
   ``1 - exp(-lambda_i)`` (see :mod:`jaxsim.kernels.contact_infection`), from the stages
   after today's progression.

Per-day metrics: ``susceptible, exposed, infected, recovered, dead`` (counts at the end of
the day), ``new_infections`` (S -> E), ``new_cases`` (E -> I onsets), ``new_deaths``,
``isolating``, ``new_infections_by_age`` ``[A]`` and ``isolation_prob`` ``[G]``. With
interventions also ``intervention_active`` ``[K]`` (1 on days intervention ``k`` acts) and,
with their kinds, ``tests`` and ``positive_tests`` (tests taken today), ``vaccinations``
(doses today) and ``vaccinated`` (agents vaccinated so far), ``imported_infections``
(seeded today; not in ``new_infections``, which counts transmission only).

Units: time in days (``t = 0`` is the first simulated day, a week is days ``7w .. 7w+6``);
probabilities per day unless stated; counts are agents.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name
import numpy as np
from flax import struct
from jax.custom_batching import custom_vmap

from jaxsim import interventions as iv_lib
from jaxsim import memory, sampling
from jaxsim.engine import Model, Substep, World, padded_size
from jaxsim.ensemble import member_batched_contact_pressure
from jaxsim.graph import ContactLayer, build_contact_graph, mean_contacts_per_day
from jaxsim.kernels.contact_infection import (
    CONTACT_METHODS,
    agent_infectiousness,
    contact_pressure,
    exposure_probability,
    infectiousness_window,
)
from jaxsim.kernels.infectiousness import gamma_infectiousness_profile
from jaxsim.kernels.isolation import heuristic_isolation_probability, weekly_case_signal
from jaxsim.kernels.lookup import lookup
from jaxsim.kernels.progression import seirm_progression
from jaxsim.population import (
    DEAD,
    EXPOSED,
    INFECTED,
    RECOVERED,
    STAGE_NAMES,
    SUSCEPTIBLE,
    Population,
    PopulationError,
)

# --------------------------------------------------------------------------- defaults
#: Relative susceptibility to infection per contact, by age band. From Davies et al.,
#: "Age-dependent effects in the transmission and control of COVID-19 epidemics",
#: Nature Medicine 26, 1205-1211 (2020), fig. 1 (posterior means per decade: 0-9 0.40,
#: 10-19 0.38, 20-29 0.79, 30-39 0.86, 40-49 0.80, 50-59 0.82, 60-69 0.88, 70+ 0.74),
#: averaged over the decades each band spans.
DEFAULT_SUSCEPTIBILITY: dict[str, float] = {
    "U19": 0.39,
    "20t29": 0.79,
    "30t39": 0.86,
    "40t49": 0.80,
    "50t64": 0.84,
    "65A": 0.80,
}

#: Probability that an infection ends in death (infection fatality ratio), by age band.
#: From Levin et al., "Assessing the age specificity of infection fatality rates for
#: COVID-19", European Journal of Epidemiology 35, 1123-1138 (2020): log10(IFR in
#: percent) = -3.27 + 0.0524 * age, evaluated at a representative age of each band
#: (U19: 10, 20t29: 25, 30t39: 35, 40t49: 45, 50t64: 57, 65A: 75) and divided by 100.
DEFAULT_MORTALITY: dict[str, float] = {
    "U19": 0.00002,
    "20t29": 0.0001,
    "30t39": 0.0004,
    "40t49": 0.0014,
    "50t64": 0.0054,
    "65A": 0.046,
}

#: Relative infectiousness per stage code (S, E, I, R, M): 0.33 for exposed
#: (pre-symptomatic) agents and 0.72 for infected ones, as in GradABM (Chopra et al.,
#: AAMAS 2023), after Ferretti et al., Science 368 (2020).
DEFAULT_STAGE_INFECTIOUSNESS: tuple[float, ...] = (0.0, 0.33, 0.72, 0.0, 0.0)

#: Daily isolation probability at a flat case trend, by age band. An assumption (no
#: survey gives it per band): older people isolate more (CDC COVID-19 mitigation
#: behaviour surveys, 2020, report higher adherence with age).
DEFAULT_ISOLATION_BASELINE: dict[str, float] = {
    "U19": 0.05,
    "20t29": 0.05,
    "30t39": 0.06,
    "40t49": 0.07,
    "50t64": 0.09,
    "65A": 0.12,
}
#: Log-odds change of isolating per unit log ratio of this week's cases to the 4-week mean.
DEFAULT_ISOLATION_RESPONSE = 1.0

#: Default R(t): a transmission scale, not a reproduction number. With the default
#: profile and stage infectiousness one infected agent with the mean number of contacts
#: infects about ``0.37 * R`` susceptible contacts (see :func:`expected_secondary_infections`).
DEFAULT_TRANSMISSION_RATE = 2.5

DEFAULT_EXPOSED_DAYS = 5
DEFAULT_INFECTED_DAYS = 5

#: ``day_infected`` of agents never infected.
NEVER = np.int16(-30000)
#: Length of the ``daily_exposures`` ring: covers the infectiousness profile and dwell times.
EXPOSURE_HISTORY_DAYS = 32
#: Stage code of padding slots (see :data:`jaxsim.engine.AGENT_ALIGNMENT`): never infected,
#: never infectious, never isolating, in no stage count.
ABSENT = 5
CASE_HISTORY_DAYS = 28


# ----------------------------------------------------------------------------- pytrees
@struct.dataclass
class CovidParams:
    """What calibration moves. Every array is indexed by *this population's* codes.

    Attributes:
        transmission_rate: float32 ``[W]`` ``R(t)`` for week ``w`` of the run (>= 0);
            days past the last week use the last value.
        susceptibility: float32 ``[A]`` ``sigma`` per age code (>= 0).
        mortality: float32 ``[A]`` probability that an infection ends in death, per age code.
        stage_infectiousness: float32 ``[5]`` ``alpha`` per stage code (S, E, I, R, M).
        infectiousness_profile: float32 ``[D]`` ``g[d]`` for ``d`` days since infection.
        contact_normaliser: float32 scalar ``c`` (> 0), mean contacts per agent per day.
        exposed_days: int32 scalar, days from exposure to onset (E -> I), >= 1.
        infected_days: int32 scalar, days from onset to recovery or death, >= 1.
        isolation_baseline: float32 ``[G]`` daily isolation probability at a flat trend.
        isolation_response: float32 ``[G]`` log-odds per unit log case ratio.
        isolation_alignment_scale, isolation_alignment_offset: float32 ``[G]`` the
            alignment ``a_g, b_g`` applied to each week's group probability ``p_g`` from
            either policy: ``p'_g = clip(a_g * p_g + b_g, 0, 1)`` (defaults 1 and 0: no
            change). Calibration fits them to align an LLM archetype layer's answers
            with observed data.
        initial_exposed_share, initial_infected_share: float32 scalars, share of agents
            in E and in I on day 0 when the population has no ``disease_stages``.
        interventions: an :class:`jaxsim.interventions.Interventions` set applied each
            day, or ``None`` (the default): the plain model, exactly.
    """

    transmission_rate: jax.Array
    susceptibility: jax.Array
    mortality: jax.Array
    stage_infectiousness: jax.Array
    infectiousness_profile: jax.Array
    contact_normaliser: jax.Array
    exposed_days: jax.Array
    infected_days: jax.Array
    isolation_baseline: jax.Array
    isolation_response: jax.Array
    isolation_alignment_scale: jax.Array
    isolation_alignment_offset: jax.Array
    initial_exposed_share: jax.Array
    initial_infected_share: jax.Array
    interventions: Any = None


#: The numeric leaves of :class:`CovidParams` (all but ``interventions``).
NUMERIC_PARAMS: tuple[str, ...] = tuple(
    name for name in CovidParams.__dataclass_fields__ if name != "interventions"
)


@struct.dataclass
class CovidState:
    """Agent arrays ``[N]`` plus the small per-run arrays the behaviour needs.

    Attributes:
        stage: int8 ``[N]`` stage codes (0 S, 1 E, 2 I, 3 R, 4 M).
        day_infected: int16 ``[N]`` day of exposure (``NEVER`` if not infected yet); the
            day a stage ends follows from it and the dwell times.
        isolating: float32 ``[N]`` 1 if isolating today, else 0 (a float so that isolation
            parameters get gradients in a differentiable run).
        daily_exposures: float32 ``[32]`` ring buffer, slot ``d mod 32`` holding the number
            of agents exposed on day ``d`` (days ``-9 .. -1`` from the initial state). In a
            differentiable run it carries the gradient of every exposure draw (hit or not)
            into later cases and infection pressure (see :func:`covid_model`).
        isolation_prob: float32 ``[G]`` this week's isolation probability per group.
        daily_cases: float32 ``[28]`` ring buffer of daily new cases (onsets), slot ``d mod 28``.

    With interventions (``params.interventions``), also (``None`` otherwise):
        intervention_condition: float32 ``[K]`` 1 while intervention ``k``'s case
            condition holds (always 1 for those without one), the hysteresis memory.
        vaccinated_day: int16 ``[N]`` day of the agent's dose (``NEVER``: none); with a
            vaccination campaign.
        test_result_day: int16 ``[N]`` day a pending positive result arrives (``NEVER``:
            none); with testing.
        isolate_until: int16 ``[N]`` the agent isolates after a positive test on days
            ``t < isolate_until``; with testing.
    """

    stage: jax.Array
    day_infected: jax.Array
    isolating: jax.Array
    daily_exposures: jax.Array
    isolation_prob: jax.Array
    daily_cases: jax.Array
    intervention_condition: jax.Array | None = None
    vaccinated_day: jax.Array | None = None
    test_result_day: jax.Array | None = None
    isolate_until: jax.Array | None = None


# --------------------------------------------------------------------------- substeps
def _week(t: jax.Array, num_weeks: int) -> jax.Array:
    return jnp.clip(t // 7, 0, num_weeks - 1)


def _day_index(t: jax.Array, length: int) -> jax.Array:
    """Index of day ``t`` in a per-day schedule of ``length`` days, repeated cyclically."""
    return t % length


def _sum_by_code(values: jax.Array, codes: jax.Array, num_codes: int) -> jax.Array:
    """``out[k] = sum(values[codes == k])``, float32 ``[num_codes]`` (one fused pass).

    Under ``vmap`` over members sharing ``codes`` it is one matrix product with the codes'
    one-hot matrix, built once for all members. Both forms add 0/1 draws, exactly (counts
    below 2**24), so a member's counts equal its single run's. Forward only: gradients go
    through :func:`_sum_by_code_differentiable`.
    """

    @custom_vmap
    def fused(v, c):
        return _sum_by_code_differentiable(v, c, num_codes)

    @fused.def_vmap
    def batched(axis_size, in_batched, v, c):
        values_batched, codes_batched = in_batched
        if codes_batched:  # members with codes of their own
            return jax.vmap(
                lambda a, b: _sum_by_code_differentiable(a, b, num_codes),
                in_axes=(0 if values_batched else None, 0), axis_size=axis_size,
            )(v, c), True
        if not values_batched:
            v = jnp.broadcast_to(v, (axis_size,) + v.shape)
        one_hot = (c[:, None] == jnp.arange(num_codes)[None, :]).astype(v.dtype)
        return jnp.dot(v, one_hot, precision=jax.lax.Precision.HIGHEST), True

    return fused(values, codes)


def _sum_by_code_differentiable(values: jax.Array, codes: jax.Array, num_codes: int) -> jax.Array:
    """:func:`_sum_by_code` as one fused broadcast-and-reduce, with gradients."""
    return jnp.sum(values[:, None] * (codes[:, None] == jnp.arange(num_codes)[None, :]), axis=0)


def aligned_isolation_probability(prob: jax.Array, scale: jax.Array, offset: jax.Array) -> jax.Array:
    """``clip(scale * prob + offset, 0, 1)``, float32 ``[G]``: per-group alignment of a
    policy's probabilities (identity for scale 1, offset 0)."""
    return jnp.clip(scale * prob + offset, 0.0, 1.0).astype(jnp.float32)


def _isolation_policy_substep(source: str):
    def isolation_policy(state: CovidState, params: CovidParams, key, t, world: World):
        if source == "heuristic":
            this_week, average = weekly_case_signal(state.daily_cases, t)
            new_prob = heuristic_isolation_probability(
                this_week, average, params.isolation_baseline, params.isolation_response
            )
        else:
            table = world.inputs["isolation_prob"]  # [weeks, G]
            new_prob = jnp.clip(table[_week(t, table.shape[0])], 0.0, 1.0).astype(jnp.float32)
        new_prob = aligned_isolation_probability(
            new_prob, params.isolation_alignment_scale, params.isolation_alignment_offset
        )
        prob = jnp.where(t % 7 == 0, new_prob, state.isolation_prob)
        return state.replace(isolation_prob=prob), {"isolation_prob": prob}

    return isolation_policy


def _isolation_substep(estimator: str):
    def isolation(state: CovidState, params: CovidParams, key, t, world: World):
        p = lookup(state.isolation_prob, world.agents["isolation_group"])
        p = jnp.where(state.stage >= DEAD, 0.0, p)  # the dead and padding slots
        interventions = params.interventions
        if interventions is not None:
            p = _intervened_isolation_probability(p, state, interventions, t, world)
        isolates = sampling.bernoulli(key, p, estimator)
        if state.isolate_until is not None:
            # Positives isolate, whatever their daily draw, until their isolation ends.
            after_test = (t < state.isolate_until.astype(jnp.int32)) & (state.stage < DEAD)
            isolates = jnp.maximum(isolates, after_test.astype(jnp.float32))
        return state.replace(isolating=isolates), {"isolating": isolates.sum()}

    return isolation


# ---------------------------------------------------------------------- interventions
def _active(state: CovidState, item, index: int, t) -> jax.Array:
    """bool scalar: intervention ``index`` acts today (in its window, condition on)."""
    return iv_lib.in_window(item.schedule, t) & (state.intervention_condition[index] > 0.5)


def _intervened_isolation_probability(p, state: CovidState, interventions, t, world: World):
    """Each agent's isolation probability after compliance and age-band interventions."""
    for index, item in interventions.of_kind(iv_lib.IsolationCompliance):
        scaled = jnp.clip(iv_lib.week_value(item.scale, t) * p + item.add, 0.0, 1.0)
        p = jnp.where(_active(state, item, index, t), scaled, p)
    for index, item in interventions.of_kind(iv_lib.AgeIsolation):
        in_band = lookup(item.in_band, world.agents["age"].astype(jnp.int32)) > 0.5
        p = jnp.where(_active(state, item, index, t) & in_band, jnp.maximum(p, item.probability), p)
    return jnp.where(state.stage >= DEAD, 0.0, p)


def _interventions_substep(state: CovidState, params: CovidParams, key, t, world: World):
    """Start of day: each intervention's case condition (hysteresis on the onsets of days
    ``t-7 .. t-1``); reports ``intervention_active`` ``[K]`` (window and condition)."""
    interventions = params.interventions
    if interventions is None or not interventions.items:
        return state, {}
    cases_week, _ = weekly_case_signal(state.daily_cases, t)
    held = jnp.stack([
        iv_lib.condition_holds(item.schedule, state.intervention_condition[k] > 0.5, cases_week)
        for k, item in enumerate(interventions.items)
    ]).astype(jnp.float32)
    state = state.replace(intervention_condition=held)
    active = jnp.stack([_active(state, item, k, t) for k, item in enumerate(interventions.items)])
    return state, {"intervention_active": active.astype(jnp.float32)}


def _testing_substep(state: CovidState, params: CovidParams, key, t, world: World):
    """Tests taken today (after progression) and results arriving today (see
    :class:`jaxsim.interventions.Testing`); reports ``tests`` and ``positive_tests``."""
    found = None if params.interventions is None else params.interventions.one(iv_lib.Testing)
    if found is None:
        return state, {}
    index, item = found
    on = _active(state, item, index, t)
    stage = state.stage
    waiting = state.test_result_day != NEVER
    isolating_after_test = t < state.isolate_until.astype(jnp.int32)
    eligible = on & (stage < DEAD) & ~waiting & ~isolating_after_test
    k_random, k_symptomatic, k_sensitivity = jax.random.split(key, 3)
    shape = stage.shape
    tested = (sampling.uniform(k_random, shape) < item.random_share) | (
        (stage == INFECTED) & (sampling.uniform(k_symptomatic, shape) < item.symptomatic_share)
    )
    tested = tested & eligible
    infected_now = (stage == EXPOSED) | (stage == INFECTED)
    positive = tested & infected_now & (sampling.uniform(k_sensitivity, shape) < item.sensitivity)
    day_type = state.test_result_day.dtype
    result_day = jnp.where(positive, (t + item.delay_days).astype(day_type), state.test_result_day)
    due = result_day.astype(jnp.int32) == t
    isolate_until = jnp.where(due, (t + item.isolation_days).astype(day_type), state.isolate_until)
    state = state.replace(
        test_result_day=jnp.where(due, NEVER, result_day).astype(day_type), isolate_until=isolate_until
    )
    return state, {
        "tests": tested.sum(dtype=jnp.float32),
        "positive_tests": positive.sum(dtype=jnp.float32),
    }


def _vaccination_substep(state: CovidState, params: CovidParams, key, t, world: World):
    """Today's doses, along the campaign's priority order (see
    :class:`jaxsim.interventions.Vaccination`); reports ``vaccinations`` (doses today)
    and ``vaccinated`` (agents vaccinated so far)."""
    found = None if params.interventions is None else params.interventions.one(iv_lib.Vaccination)
    if found is None:
        return state, {}
    index, item = found
    doses = jnp.where(_active(state, item, index, t), jnp.floor(item.daily_doses), 0.0)

    def give(vaccinated_day):
        stage = state.stage
        eligible = (
            (stage <= RECOVERED) & (stage != INFECTED) & (vaccinated_day == NEVER)
            & (item.rank < item.num_priority)
        )
        chosen = iv_lib.first_in_order(eligible, item.order, item.rank, doses)
        return jnp.where(chosen, t.astype(vaccinated_day.dtype), vaccinated_day), chosen.sum(dtype=jnp.float32)

    def skip(vaccinated_day):
        return vaccinated_day, jnp.float32(0.0)

    vaccinated_day, given = jax.lax.cond(
        iv_lib.in_window(item.schedule, t), give, skip, state.vaccinated_day
    )
    state = state.replace(vaccinated_day=vaccinated_day)
    return state, {
        "vaccinations": given,
        "vaccinated": (vaccinated_day != NEVER).sum(dtype=jnp.float32),
    }


def _vaccine_protection(state: CovidState, interventions, t) -> jax.Array | None:
    """float ``[N]`` susceptibility multiplier ``1 - efficacy`` for protected agents, 1
    otherwise; ``None`` without a campaign."""
    found = interventions.one(iv_lib.Vaccination)
    if found is None:
        return None
    _, item = found
    dosed = state.vaccinated_day != NEVER
    protected = dosed & (t - state.vaccinated_day.astype(jnp.int32) >= item.protection_delay_days)
    return 1.0 - item.efficacy * protected.astype(jnp.float32)


def _intervened_layer_scale(layer_scale: dict, state: CovidState, interventions, t) -> dict:
    """Today's per-layer multipliers times those of active contact interventions."""
    layer_scale = dict(layer_scale)
    for index, item in interventions.of_kind(iv_lib.ContactScale):
        factor = jnp.where(_active(state, item, index, t), item.scale, 1.0).astype(jnp.float32)
        layer_scale[item.layer] = layer_scale.get(item.layer, jnp.float32(1.0)) * factor
    return layer_scale


def _seeding_substep(state: CovidState, params: CovidParams, key, t, world: World):
    """Imported infections at the end of the day (see :class:`jaxsim.interventions.Seeding`):
    the chosen susceptible agents become exposed today; reports ``imported_infections``."""
    found = [] if params.interventions is None else params.interventions.of_kind(iv_lib.Seeding)
    if not found:
        return state, {}
    imported = jnp.float32(0.0)
    for index, item in found:
        count = jnp.where(_active(state, item, index, t), jnp.floor(item.cases), 0.0)

        def seed(carry, item=item, count=count, index=index):
            stage, day_infected = carry
            scores = sampling.uniform(jax.random.fold_in(key, index), stage.shape)
            chosen = iv_lib.smallest_scores(stage == SUSCEPTIBLE, scores, count, item.capacity)
            stage = jnp.where(chosen, jnp.int8(EXPOSED), stage).astype(carry[0].dtype)
            day_infected = jnp.where(chosen, t.astype(day_infected.dtype), day_infected)
            return (stage, day_infected), chosen.sum(dtype=jnp.float32)

        def skip(carry):
            return carry, jnp.float32(0.0)

        (stage, day_infected), n = jax.lax.cond(
            iv_lib.in_window(item.schedule, t), seed, skip, (state.stage, state.day_infected)
        )
        slot = t % EXPOSURE_HISTORY_DAYS
        state = state.replace(
            stage=stage, day_infected=day_infected,
            daily_exposures=state.daily_exposures.at[slot].add(n),
        )
        imported = imported + n
    return state, {"imported_infections": imported}


def stage_infectiousness_by_day(params: CovidParams) -> jax.Array:
    """``alpha(d)`` for ``d`` days since exposure, ``[D]`` like the profile: 0 on the day of
    exposure (not yet infectious), the E value while exposed, the I value while infected,
    0 after."""
    d = jnp.arange(params.infectiousness_profile.shape[0])
    alpha = jnp.where(
        d < params.exposed_days,
        params.stage_infectiousness[EXPOSED],
        jnp.where(d < params.exposed_days + params.infected_days, params.stage_infectiousness[INFECTED], 0.0),
    )
    return jnp.where(d == 0, 0.0, alpha)


def _mean_field_infectiousness(state: CovidState, params: CovidParams, t) -> jax.Array:
    """Total infectiousness today from the aggregate exposure history (a scalar):
    ``sum_d exposures(t - d) * alpha(d) * g(d)``."""
    d = jnp.arange(params.infectiousness_profile.shape[0])
    past = state.daily_exposures[(t - d) % EXPOSURE_HISTORY_DAYS]
    return jnp.sum(past * stage_infectiousness_by_day(params) * params.infectiousness_profile)


def _infection_substep(estimator: sampling.Estimator, contact_method: str = "auto"):
    differentiable = estimator.name != "none"

    def infection(state: CovidState, params: CovidParams, key, t, world: World):
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
            layer_scale = _intervened_layer_scale(layer_scale, state, interventions, t)
        # Agents outside their infectiousness window have x = 0 for any parameters, so the
        # gradient needs the contact sum only on those inside it (few), see contact_pressure.
        in_window = infectiousness_window(
            state.day_infected, t, params.infectiousness_profile.shape[0]
        )
        if differentiable:
            pressure = contact_pressure(x, world.graph, layer_scale, contact_method, in_window)
        else:
            # No gradient wanted: the kernel, with a batching rule that pushes the
            # infectious agents of all members of a vmapped ensemble in one pass.
            pressure = member_batched_contact_pressure(
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
        rate = params.transmission_rate[_week(t, params.transmission_rate.shape[0])]
        can_be_infected = (state.stage == SUSCEPTIBLE) * present
        susceptibility = lookup(params.susceptibility, age)
        if interventions is not None:
            protection = _vaccine_protection(state, interventions, t)
            if protection is not None:
                susceptibility = susceptibility * protection
        p = exposure_probability(
            pressure, rate, susceptibility, params.contact_normaliser, can_be_infected
        )
        exposed = sampling.bernoulli(key, p, estimator)
        hit = exposed > 0.5
        count = _sum_by_code_differentiable if differentiable else _sum_by_code
        by_age = count(exposed, age, params.susceptibility.shape[0])
        new_infections = by_age.sum()
        state = state.replace(
            stage=jnp.where(hit, jnp.int8(EXPOSED), state.stage),
            day_infected=jnp.where(hit, t.astype(state.day_infected.dtype), state.day_infected),
            daily_exposures=state.daily_exposures.at[t % EXPOSURE_HISTORY_DAYS].set(new_infections),
        )
        return state, {"new_infections": new_infections, "new_infections_by_age": by_age}

    return infection


def _progression_substep(estimator: sampling.Estimator):
    differentiable = estimator.name != "none"

    def progression(state: CovidState, params: CovidParams, key, t, world: World):
        age = world.agents["age"].astype(jnp.int32)
        dies = sampling.bernoulli(key, lookup(params.mortality, age), estimator)
        stage, events = seirm_progression(
            state.stage, state.day_infected, t, params.exposed_days, params.infected_days, dies
        )
        new_cases = events["onset"].sum()
        if differentiable:
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

    return progression


def observe_stage_counts(state: CovidState, world: World) -> dict[str, jax.Array]:
    """End-of-day counts per stage, as int32 scalars named after :data:`STAGE_NAMES`."""
    stage = state.stage.astype(jnp.int32)
    counts = jnp.sum(stage[:, None] == jnp.arange(5)[None, :], axis=0, dtype=jnp.int32)
    return {name: counts[i] for i, name in enumerate(STAGE_NAMES)}


ISOLATION_POLICIES = ("heuristic", "inputs")


def covid_model(
    policy: str = "heuristic",
    estimator: str | sampling.Estimator = "none",
    contact_method: str = "auto",
) -> Model:
    """The COVID model's step as a :class:`~jaxsim.engine.Model`.

    Args:
        policy: ``"heuristic"`` (isolation from the simulated case trend) or ``"inputs"``
            (per-week, per-group probabilities in ``world.inputs["isolation_prob"]``).
        estimator: gradient estimator for discrete events: ``"none"``,
            ``"straight_through"``, ``"gumbel_softmax"`` (or ``"gumbel_softmax:0.3"`` for a
            temperature), ``"stochastic"``, or a :class:`jaxsim.sampling.Estimator` (see
            :mod:`jaxsim.sampling`). With any estimator but ``"none"``, gradients also flow
            through time along two aggregate paths: today's cases are tied to the exposures
            ``exposed_days`` earlier, and each day's infection pressure to the total
            infectiousness of earlier exposures (a mean-field factor equal to 1 going
            forward). Forward values are the same for every estimator.
        contact_method: ``"auto"`` (push from the few infectious agents when they fit a
            capacity tier, else pull over every edge) or ``"dense"`` (always pull). See
            :func:`jaxsim.kernels.contact_infection.contact_pressure`. Forward runs
            (``estimator="none"``) under ``vmap`` compute all members' sums together
            (:func:`jaxsim.ensemble.member_batched_contact_pressure`, same values);
            differentiable runs under ``vmap`` should use ``"dense"``.
    """
    if policy not in ISOLATION_POLICIES:
        raise ValueError(f"unknown isolation policy {policy!r}; choose one of {ISOLATION_POLICIES}")
    if contact_method not in CONTACT_METHODS:
        raise ValueError(f"unknown contact method {contact_method!r}; choose one of {CONTACT_METHODS}")
    estimator = sampling.check_estimator(estimator)

    def validate(state: CovidState, params: CovidParams, world: World) -> None:
        validate_params(
            params, world.num_categories("age"), world.num_categories("isolation_group")
        )
        if state.stage.shape != (world.num_slots,):
            raise ValueError(
                f"state has {state.stage.shape[0]} agent slots, the world {world.num_slots}"
            )
        if params.interventions is not None:
            iv_lib.validate(params.interventions, world)
            if state.intervention_condition is None or (
                state.intervention_condition.shape != (len(params.interventions.items),)
            ):
                raise ValueError(
                    "the state was not made for these interventions: build it with "
                    "covid.initial_state(params, ...) from the params that hold them"
                )
        if policy == "inputs":
            table = world.inputs.get("isolation_prob")
            if table is None:
                raise ValueError(
                    "policy 'inputs' needs world.inputs['isolation_prob'] (build_world(..., isolation_prob=...))"
                )
            if table.shape[1] != world.num_categories("isolation_group"):
                raise ValueError(
                    f"isolation_prob has {table.shape[1]} groups, the world {world.num_categories('isolation_group')}"
                )

    return Model(
        substeps=(
            # Intervention substeps do nothing unless params.interventions holds their
            # kind; their names give them their own random numbers, so the others draw
            # exactly as without them (common random numbers).
            Substep("interventions", _interventions_substep),
            Substep("isolation_policy", _isolation_policy_substep(policy)),
            Substep("progression", _progression_substep(estimator)),
            Substep("testing", _testing_substep),
            Substep("isolation", _isolation_substep(estimator)),
            Substep("vaccination", _vaccination_substep),
            Substep("infection", _infection_substep(estimator, contact_method)),
            Substep("seeding", _seeding_substep),
        ),
        observe=observe_stage_counts,
        name=f"covid[{policy}, {estimator}]",
        validate=validate,
    )


# ------------------------------------------------------------------------ construction
def _table(
    population: Population, attribute: str, values: float | Mapping[str, float], what: str
) -> np.ndarray:
    """A per-code table of ``attribute`` from ``{label: value}`` or one value for all."""
    if attribute not in population.attributes:
        raise KeyError(
            f"{what}: population has no attribute {attribute!r}; it has {sorted(population.attributes)}"
        )
    if isinstance(values, Mapping):
        try:
            return population.table_by_label(attribute, values)
        except KeyError as err:
            raise KeyError(
                f"{what}: {err.args[0]}. Pass a table keyed by this population's {attribute!r} labels."
            ) from None
    return np.full(population.num_categories(attribute), float(values), np.float32)


def default_params(
    population: Population,
    weeks: int,
    *,
    contact_normaliser: float,
    transmission_rate: float | np.ndarray = DEFAULT_TRANSMISSION_RATE,
    susceptibility: Mapping[str, float] = DEFAULT_SUSCEPTIBILITY,
    mortality: Mapping[str, float] = DEFAULT_MORTALITY,
    isolation_groups: str = "age",
    isolation_baseline: float | Mapping[str, float] | None = None,
    isolation_response: float | Mapping[str, float] = DEFAULT_ISOLATION_RESPONSE,
    stage_infectiousness: tuple[float, ...] = DEFAULT_STAGE_INFECTIOUSNESS,
    infectiousness_profile: np.ndarray | None = None,
    exposed_days: int = DEFAULT_EXPOSED_DAYS,
    infected_days: int = DEFAULT_INFECTED_DAYS,
    initial_exposed_share: float = 0.0,
    initial_infected_share: float = 0.0,
    isolation_alignment_scale: float | Mapping[str, float] = 1.0,
    isolation_alignment_offset: float | Mapping[str, float] = 0.0,
) -> CovidParams:
    """Parameters for ``population`` with label-keyed tables resolved to its codes.

    Isolation groups are the categories of the attribute ``isolation_groups`` (default the
    age bands; must match :func:`build_world`). ``isolation_baseline`` and
    ``isolation_response`` are keyed by that attribute's labels, or one number for every
    group; the default baseline is :data:`DEFAULT_ISOLATION_BASELINE` for age groups and
    its mean for any other grouping. ``isolation_alignment_scale`` / ``_offset`` (the
    per-group ``a_g``, ``b_g``) are keyed the same way.
    """
    weeks = int(weeks)
    if weeks < 1:
        raise ValueError(f"weeks must be >= 1, got {weeks}")
    rate = np.broadcast_to(np.asarray(transmission_rate, np.float32), (weeks,)).copy()
    if isolation_baseline is None:
        isolation_baseline = (
            DEFAULT_ISOLATION_BASELINE if isolation_groups == "age"
            else float(np.mean(list(DEFAULT_ISOLATION_BASELINE.values())))
        )
    baseline = _table(population, isolation_groups, isolation_baseline, "isolation_baseline")
    response = _table(population, isolation_groups, isolation_response, "isolation_response")
    profile = (
        gamma_infectiousness_profile() if infectiousness_profile is None else infectiousness_profile
    )
    params = CovidParams(
        transmission_rate=jnp.asarray(rate),
        susceptibility=jnp.asarray(_table(population, "age", susceptibility, "susceptibility")),
        mortality=jnp.asarray(_table(population, "age", mortality, "mortality")),
        stage_infectiousness=jnp.asarray(np.asarray(stage_infectiousness, np.float32)),
        infectiousness_profile=jnp.asarray(np.asarray(profile, np.float32)),
        contact_normaliser=jnp.float32(contact_normaliser),
        exposed_days=jnp.int32(exposed_days),
        infected_days=jnp.int32(infected_days),
        isolation_baseline=jnp.asarray(baseline),
        isolation_response=jnp.asarray(response),
        isolation_alignment_scale=jnp.asarray(
            _table(population, isolation_groups, isolation_alignment_scale, "isolation_alignment_scale")
        ),
        isolation_alignment_offset=jnp.asarray(
            _table(population, isolation_groups, isolation_alignment_offset, "isolation_alignment_offset")
        ),
        initial_exposed_share=jnp.float32(initial_exposed_share),
        initial_infected_share=jnp.float32(initial_infected_share),
    )
    validate_params(
        params, population.num_categories("age"), population.num_categories(isolation_groups)
    )
    return params


def validate_params(params: CovidParams, num_ages: int, num_groups: int | None = None) -> None:
    """Raise ``ValueError`` naming the field and value when a parameter is out of range."""

    def arr(name):
        return np.asarray(getattr(params, name))

    def fail(name, msg):
        raise ValueError(f"CovidParams.{name}: {msg}")

    for name in NUMERIC_PARAMS:
        a = arr(name)
        if not np.all(np.isfinite(a)):
            fail(name, f"non-finite value in {a.tolist()}")
    for name in ("transmission_rate", "susceptibility", "stage_infectiousness",
                 "infectiousness_profile"):
        if np.any(arr(name) < 0):
            fail(name, f"negative value in {arr(name).tolist()}")
    for name in ("mortality", "isolation_baseline", "initial_exposed_share", "initial_infected_share"):
        a = arr(name)
        if np.any((a < 0) | (a > 1)):
            fail(name, f"probability outside [0, 1] in {a.tolist()}")
    if float(arr("initial_exposed_share")) + float(arr("initial_infected_share")) > 1:
        fail("initial_infected_share", "initial exposed + infected shares exceed 1")
    if float(arr("contact_normaliser")) <= 0:
        fail("contact_normaliser", f"must be > 0, got {float(arr('contact_normaliser'))}")
    for name in ("exposed_days", "infected_days"):
        if int(arr(name)) < 1:
            fail(name, f"must be >= 1 day, got {int(arr(name))}")
    if arr("stage_infectiousness").shape != (5,):
        fail("stage_infectiousness", f"needs one value per stage (5), got shape {arr('stage_infectiousness').shape}")
    for name in ("susceptibility", "mortality"):
        if arr(name).shape != (num_ages,):
            fail(name, f"needs one value per age code ({num_ages}), got shape {arr(name).shape}")
    groups = num_groups if num_groups is not None else arr("isolation_baseline").shape[0]
    for name in ("isolation_baseline", "isolation_response", "isolation_alignment_scale",
                 "isolation_alignment_offset"):
        if arr(name).shape != (groups,):
            fail(name, f"needs one value per isolation group ({groups}), got shape {arr(name).shape}")
    if arr("transmission_rate").ndim != 1 or arr("transmission_rate").size < 1:
        fail("transmission_rate", f"needs shape [weeks], got {arr('transmission_rate').shape}")


def build_world(
    population: Population,
    *,
    layers: list[str] | None = None,
    layer_scale: Mapping[str, np.ndarray] | None = None,
    isolation_groups: str = "age",
    isolation_prob: np.ndarray | None = None,
) -> World:
    """Device arrays for a run: age codes, isolation groups, contact graph, inputs.

    Args:
        layers: contact layers to use (default: all of the population's).
        layer_scale: ``{layer: float [P]}`` per-day multipliers (1 = as built, 0 = off),
            repeated every ``P`` days: a 7-entry schedule is a weekly pattern (e.g. one
            network per day of week), a schedule as long as the run is a timeline.
        isolation_groups: the attribute whose categories are the isolation groups.
        isolation_prob: float ``[weeks, G]`` externally supplied isolation probabilities
            per group (for ``policy="inputs"``); the last week repeats.
    """
    if "age" not in population.attributes:
        raise PopulationError("the COVID model needs an 'age' attribute in the population")
    memory.check_fits(
        memory.world_bytes(population, layers),
        f"the contact graph of {population.size:,} agents ({population.num_contacts:,} contacts)",
    )
    n = population.size
    slots = padded_size(n)
    dtype = np.int8 if population.num_categories("age") < 127 else np.int32
    age = np.zeros(slots, dtype)
    age[:n] = population.attributes["age"]
    if isolation_groups not in population.attributes:
        raise KeyError(
            f"isolation_groups: population has no attribute {isolation_groups!r}; "
            f"it has {sorted(population.attributes)}"
        )
    num_groups = population.num_categories(isolation_groups)
    group = np.zeros(slots, np.int32)
    group[:n] = population.attributes[isolation_groups]
    graph: dict[str, ContactLayer] = build_contact_graph(population, layers, num_slots=slots)
    inputs: dict = {}
    if layer_scale:
        unknown = sorted(set(layer_scale) - set(graph))
        if unknown:
            raise KeyError(f"layer_scale names unknown layers {unknown}; layers are {sorted(graph)}")
        inputs["layer_scale"] = {}
        for name, values in layer_scale.items():
            series = np.asarray(values, np.float32)
            if series.ndim != 1 or series.size == 0 or not np.all(np.isfinite(series)) or np.any(series < 0):
                raise ValueError(
                    f"layer_scale[{name!r}] must be a non-empty 1-D array of finite values >= 0"
                )
            inputs["layer_scale"][name] = jnp.asarray(series)
    if isolation_prob is not None:
        table = np.asarray(isolation_prob, np.float32)
        if table.ndim != 2 or table.shape[1] != num_groups:
            raise ValueError(
                f"isolation_prob must have shape [weeks, {num_groups}] (one column per "
                f"{isolation_groups!r} category), got {table.shape}"
            )
        if not np.all((table >= 0) & (table <= 1)):
            raise ValueError("isolation_prob: probabilities must lie in [0, 1]")
        inputs["isolation_prob"] = jnp.asarray(table)
    return World(
        agents={"age": jnp.asarray(age), "isolation_group": jnp.asarray(group.astype(dtype if num_groups < 127 else np.int32))},
        graph=graph,
        inputs=inputs,
        num_agents=n,
        categories=(("age", population.num_categories("age")), ("isolation_group", num_groups)),
    )


def default_contact_normaliser(world: World) -> float:
    """Mean weighted contacts per agent per day over the world's layers and schedule."""
    scale = world.inputs.get("layer_scale")
    return mean_contacts_per_day(
        world.graph, world.num_agents,
        None if scale is None else {k: np.asarray(v) for k, v in scale.items()},
    )


def initial_state(
    params: CovidParams,
    key: jax.Array,
    world: World,
    *,
    stages: np.ndarray | None = None,
    prior_daily_cases: float | np.ndarray = 0.0,
    estimator: str = "none",
) -> CovidState:
    """Day-0 state.

    Arrays have ``world.num_slots`` entries; padding slots get stage :data:`ABSENT`.
    Stages come from ``stages`` (e.g. a population's ``disease_stages``, ``[N]``) when given, else
    each agent is E with probability ``initial_exposed_share`` and I with probability
    ``initial_infected_share``. Agents already in E or I are spread uniformly over their
    stage's days, so the epidemic does not start in lockstep.

    Args:
        stages: may be a traced array (e.g. a jit argument of an ensemble).
        prior_daily_cases: cases per day over the 28 days before the run (scalar or
            ``[28]``, oldest first), the case signal the isolation heuristic starts from.
        estimator: gradient estimator of the initial E/I draws (see :mod:`jaxsim.sampling`),
            so that the initial shares can be calibrated; use the model's.
    """
    num_agents, slots = world.num_agents, world.num_slots
    real = jnp.arange(slots) < num_agents
    k_stage, k_offset = jax.random.split(key)
    u_offset = sampling.uniform(k_offset, (slots,))
    if stages is None:
        # Both draws use the same uniforms (same key): E if u < e, I if e <= u < e + i.
        e_share = jnp.broadcast_to(params.initial_exposed_share, (slots,))
        exposed = sampling.bernoulli(k_stage, e_share, estimator)
        infected = (
            sampling.bernoulli(k_stage, e_share + params.initial_infected_share, estimator) - exposed
        )
        exposed, infected = exposed * real, infected * real
        stage = jnp.where(exposed > 0.5, EXPOSED, jnp.where(infected > 0.5, INFECTED, SUSCEPTIBLE))
        ever_exposed = exposed + infected
    else:
        if np.shape(stages) != (num_agents,):
            raise ValueError(f"stages has shape {np.shape(stages)}, expected ({num_agents},)")
        given = jnp.asarray(stages).astype(jnp.int8)  # may be traced (a jit argument)
        stage = jnp.pad(given, (0, slots - num_agents))
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
    prior = jnp.broadcast_to(jnp.asarray(prior_daily_cases, jnp.float32), (CASE_HISTORY_DAYS,))
    # Slot (d mod 28) holds day d; day -28 + i is the i-th oldest prior day.
    ring = jnp.zeros(CASE_HISTORY_DAYS, jnp.float32).at[
        (np.arange(CASE_HISTORY_DAYS) - CASE_HISTORY_DAYS) % CASE_HISTORY_DAYS
    ].set(prior)
    extra = {}
    interventions = params.interventions
    if interventions is not None:
        iv_lib.require_set(interventions)
        extra["intervention_condition"] = jnp.zeros(len(interventions.items), jnp.float32)
        # Separate buffers (engine.run donates the state's buffers, each once).
        if interventions.one(iv_lib.Vaccination) is not None:
            extra["vaccinated_day"] = jnp.full(slots, NEVER, jnp.int16)
        if interventions.one(iv_lib.Testing) is not None:
            extra["test_result_day"] = jnp.full(slots, NEVER, jnp.int16)
            extra["isolate_until"] = jnp.full(slots, NEVER, jnp.int16)
    return CovidState(
        stage=stage,
        day_infected=day_infected,
        isolating=jnp.zeros(slots, jnp.float32),
        daily_exposures=exposure_ring,
        isolation_prob=jnp.zeros(params.isolation_baseline.shape, jnp.float32),
        daily_cases=ring,
        **extra,
    )


def expected_secondary_infections(params: CovidParams, week: int = 0) -> float:
    """Infections one agent causes over its course in a fully susceptible population
    (mean susceptibility, contacts equal to the normaliser, no isolation), for ``R(week)``.

    Useful to read ``R(t)`` as a reproduction number.
    """
    per_contact = float(jnp.sum(stage_infectiousness_by_day(params) * params.infectiousness_profile))
    rates = np.asarray(params.transmission_rate)
    return float(rates[min(week, len(rates) - 1)]) * float(np.mean(params.susceptibility)) * per_contact


__all__ = [
    "CovidParams",
    "CovidState",
    "covid_model",
    "default_params",
    "build_world",
    "initial_state",
    "validate_params",
    "default_contact_normaliser",
    "expected_secondary_infections",
    "stage_infectiousness_by_day",
    "observe_stage_counts",
    "params_report",
    "aligned_isolation_probability",
]


def params_report(params: CovidParams, population: Population, isolation_groups: str = "age") -> dict:
    """Parameters as JSON-friendly values, per-age and per-isolation-group tables keyed by
    this population's labels."""
    ages = population.category_labels("age")
    groups = population.category_labels(isolation_groups)
    p = jax.tree.map(np.asarray, params)
    by_age = {"susceptibility", "mortality"}
    by_group = {"isolation_baseline", "isolation_response", "isolation_alignment_scale",
                "isolation_alignment_offset"}
    report = {}
    for name in NUMERIC_PARAMS:
        value = getattr(p, name)
        if name in by_age and value.shape == (len(ages),):
            report[name] = {label: float(v) for label, v in zip(ages, value)}
        elif name in by_group and value.shape == (len(groups),):
            report[name] = {label: float(v) for label, v in zip(groups, value)}
        elif name == "stage_infectiousness":
            report[name] = {stage: float(v) for stage, v in zip(STAGE_NAMES, value)}
        else:
            report[name] = value.tolist()
    report["expected_secondary_infections_week0"] = expected_secondary_infections(params)
    report["interventions"] = None if params.interventions is None else params.interventions.describe()
    return report
