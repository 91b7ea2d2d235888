"""The COVID-19 model: SEIRM over contact networks with isolation behaviour.

Each simulated day, in order (substep names in brackets):

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
``isolating``, ``new_infections_by_age`` ``[A]`` and ``isolation_prob`` ``[G]``.

Units: time in days (``t = 0`` is the first simulated day, a week is days ``7w .. 7w+6``);
probabilities per day unless stated; counts are agents.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name
import numpy as np
from flax import struct

from jaxsim import memory, sampling
from jaxsim.engine import Model, Substep, World, padded_size
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
    """

    stage: jax.Array
    day_infected: jax.Array
    isolating: jax.Array
    daily_exposures: jax.Array
    isolation_prob: jax.Array
    daily_cases: jax.Array


# --------------------------------------------------------------------------- substeps
def _week(t: jax.Array, num_weeks: int) -> jax.Array:
    return jnp.clip(t // 7, 0, num_weeks - 1)


def _day_index(t: jax.Array, length: int) -> jax.Array:
    """Index of day ``t`` in a per-day schedule of ``length`` days, repeated cyclically."""
    return t % length


def _sum_by_code(values: jax.Array, codes: jax.Array, num_codes: int) -> jax.Array:
    """``out[k] = sum(values[codes == k])``, float32 ``[num_codes]`` (one fused pass)."""
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
        isolates = sampling.bernoulli(key, p, estimator)
        return state.replace(isolating=isolates), {"isolating": isolates.sum()}

    return isolation


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
        # Agents outside their infectiousness window have x = 0 for any parameters, so the
        # gradient needs the contact sum only on those inside it (few), see contact_pressure.
        in_window = infectiousness_window(
            state.day_infected, t, params.infectiousness_profile.shape[0]
        )
        pressure = checkpoint_name(
            contact_pressure(x, world.graph, layer_scale, contact_method, in_window),
            "contact_pressure",
        )
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
        p = exposure_probability(
            pressure, rate, lookup(params.susceptibility, age), params.contact_normaliser, can_be_infected
        )
        exposed = sampling.bernoulli(key, p, estimator)
        hit = exposed > 0.5
        by_age = _sum_by_code(exposed, age, params.susceptibility.shape[0])
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
            capacity tier, else pull over every edge) or ``"dense"`` (always pull; best
            under ``vmap``). See :func:`jaxsim.kernels.contact_infection.contact_pressure`.
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
            Substep("isolation_policy", _isolation_policy_substep(policy)),
            Substep("progression", _progression_substep(estimator)),
            Substep("isolation", _isolation_substep(estimator)),
            Substep("infection", _infection_substep(estimator, contact_method)),
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

    for name in CovidParams.__dataclass_fields__:
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
        given = np.asarray(stages, np.int8)
        if given.shape != (num_agents,):
            raise ValueError(f"stages has shape {given.shape}, expected ({num_agents},)")
        stage = jnp.asarray(np.pad(given, (0, slots - num_agents)))
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
    prior = np.broadcast_to(np.asarray(prior_daily_cases, np.float32), (CASE_HISTORY_DAYS,))
    # Slot (d mod 28) holds day d; day -28 + i is the i-th oldest prior day.
    ring = np.empty(CASE_HISTORY_DAYS, np.float32)
    ring[(np.arange(CASE_HISTORY_DAYS) - CASE_HISTORY_DAYS) % CASE_HISTORY_DAYS] = prior
    return CovidState(
        stage=stage,
        day_infected=day_infected,
        isolating=jnp.zeros(slots, jnp.float32),
        daily_exposures=exposure_ring,
        isolation_prob=jnp.zeros(params.isolation_baseline.shape, jnp.float32),
        daily_cases=jnp.asarray(ring),
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
    for name in CovidParams.__dataclass_fields__:
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
    return report
