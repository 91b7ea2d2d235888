"""The COVID model's parameters: declared once, with cited defaults, bounds and units.

Every table is keyed by label (``by="age"``: the world's age bands; ``by="isolation_group"``:
whatever attribute the world groups isolation by) and resolved to the world's codes by
:func:`default_params` (:func:`jaxsim.parameters.build`). What a calibration moves is
exactly one of these fields; its search range is the declared ``fit_bounds``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim import parameters
from jaxsim.errors import InputError
from jaxsim.graph import mean_contacts_per_day
from jaxsim.kernels.infectiousness import gamma_infectiousness_profile
from jaxsim.kernels.progression import STAGE_NAMES
from jaxsim.parameters import param

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

#: Days from exposure to symptom onset (E -> I), and from onset to recovery or death
#: (I -> R/M): a 5-day incubation period (Lauer et al., Annals of Internal Medicine 172,
#: 577-582, 2020: median 5.1 days) and 5 days of symptomatic infectiousness.
DEFAULT_EXPOSED_DAYS = 5
DEFAULT_INFECTED_DAYS = 5


def default_contact_normaliser(world) -> float:
    """Mean weighted contacts per agent per day over the world's layers and schedule."""
    scale = world.inputs.get("layer_scale")
    return mean_contacts_per_day(
        world.graph, world.num_agents,
        None if scale is None else {k: np.asarray(v) for k, v in scale.items()},
    )


def default_isolation_baseline(world):
    """:data:`DEFAULT_ISOLATION_BASELINE` when the isolation groups are the age bands, else
    its mean for every group."""
    labels = set(world.category_labels("isolation_group"))
    if labels == set(DEFAULT_ISOLATION_BASELINE):
        return DEFAULT_ISOLATION_BASELINE
    return float(np.mean(list(DEFAULT_ISOLATION_BASELINE.values())))


# ----------------------------------------------------------------------------- pytree
@parameters.params
class CovidParams:
    """What calibration moves. Every array is indexed by *this world's* codes.

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
            change). Calibration fits them to align a behaviour layer's answers with
            observed data.
        initial_exposed_share, initial_infected_share: float32 scalars, share of agents
            in E and in I on day 0 when the world has no ``initial_stage``.
        interventions: a :class:`jaxsim.interventions.Interventions` set applied each
            day, or ``None`` (the default): the plain model, exactly.
    """

    transmission_rate: jax.Array = param(
        DEFAULT_TRANSMISSION_RATE, per="week", bounds=(0.0, None), fit_bounds=(0.0, 20.0),
        units="transmission scale R(t) per week of the run", doc="weekly transmission rate")
    susceptibility: jax.Array = param(
        DEFAULT_SUSCEPTIBILITY, by="age", bounds=(0.0, None), fit_bounds=(0.0, 3.0),
        units="relative susceptibility per contact", doc="Davies et al. 2020")
    mortality: jax.Array = param(
        DEFAULT_MORTALITY, by="age", bounds=(0.0, 1.0), fit_bounds=(0.0, 0.5),
        units="probability of death per infection", doc="Levin et al. 2020")
    stage_infectiousness: jax.Array = param(
        DEFAULT_STAGE_INFECTIOUSNESS, labels=STAGE_NAMES, bounds=(0.0, None), fit=False,
        units="relative infectiousness per stage", doc="GradABM, after Ferretti et al. 2020")
    infectiousness_profile: jax.Array = param(
        lambda world: gamma_infectiousness_profile(), bounds=(0.0, None), fit=False,
        units="share of infectiousness on each day since infection", doc="Gamma(5.5, 2.4) days")
    contact_normaliser: jax.Array = param(
        default_contact_normaliser, bounds=(0.0, None), fit=False,
        units="contacts per agent per day", doc="mean weighted contacts per agent per day")
    exposed_days: jax.Array = param(DEFAULT_EXPOSED_DAYS, dtype="int32", bounds=(1, None),
                                    units="days", doc="exposure to onset")
    infected_days: jax.Array = param(DEFAULT_INFECTED_DAYS, dtype="int32", bounds=(1, None),
                                     units="days", doc="onset to recovery or death")
    isolation_baseline: jax.Array = param(
        default_isolation_baseline, by="isolation_group", bounds=(0.0, 1.0), fit_bounds=(0.0, 1.0),
        units="probability of isolating per day at a flat case trend")
    isolation_response: jax.Array = param(
        DEFAULT_ISOLATION_RESPONSE, by="isolation_group", fit_bounds=(-5.0, 5.0),
        units="log-odds per unit log ratio of this week's cases to the 4-week mean")
    isolation_alignment_scale: jax.Array = param(
        1.0, by="isolation_group", fit_bounds=(0.0, 3.0), units="multiplier of the policy's probability")
    isolation_alignment_offset: jax.Array = param(
        0.0, by="isolation_group", fit_bounds=(-0.5, 0.5), units="probability per day added")
    initial_exposed_share: jax.Array = param(
        0.0, bounds=(0.0, 1.0), fit_bounds=(0.0, 0.05), units="share of agents exposed on day 0")
    initial_infected_share: jax.Array = param(
        0.0, bounds=(0.0, 1.0), fit_bounds=(0.0, 0.05), units="share of agents infected on day 0")
    interventions: Any = None


#: The numeric leaves of :class:`CovidParams` (all but ``interventions``).
NUMERIC_PARAMS: tuple[str, ...] = tuple(parameters.specs(CovidParams))


def default_params(world, weeks: int, **values) -> CovidParams:
    """Parameters for ``world`` over ``weeks`` weeks: the declared defaults, with
    ``values`` (numbers, arrays, or ``{label: value}`` tables keyed by the world's labels)
    replacing them; validated (:func:`validate_params`)."""
    weeks = int(weeks)
    if weeks < 1:
        raise InputError(f"weeks must be >= 1, got {weeks}")
    params = parameters.build(CovidParams, world, periods={"week": weeks}, **values)
    validate_params(params, world.num_categories("age"), world.num_categories("isolation_group"))
    return params


def validate_params(params: CovidParams, num_ages: int, num_groups: int | None = None) -> None:
    """Raise :class:`InputError` naming the field and value when a parameter is out of range."""

    def arr(name):
        return np.asarray(getattr(params, name))

    def fail(name, msg):
        raise InputError(f"CovidParams.{name}: {msg}")

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


def stage_infectiousness_by_day(params: CovidParams) -> jax.Array:
    """``alpha(d)`` for ``d`` days since exposure, ``[D]`` like the profile: 0 on the day of
    exposure (not yet infectious), the E value while exposed, the I value while infected,
    0 after."""
    from jaxsim.kernels.progression import EXPOSED, INFECTED

    d = jnp.arange(params.infectiousness_profile.shape[0])
    alpha = jnp.where(
        d < params.exposed_days,
        params.stage_infectiousness[EXPOSED],
        jnp.where(d < params.exposed_days + params.infected_days, params.stage_infectiousness[INFECTED], 0.0),
    )
    return jnp.where(d == 0, 0.0, alpha)


@jax.jit
def _per_contact_infectiousness(params: CovidParams) -> jax.Array:
    """``sum_d alpha(d) * profile(d)`` in one compiled program (eagerly, about ten)."""
    return jnp.sum(stage_infectiousness_by_day(params) * params.infectiousness_profile)


def expected_secondary_infections(params: CovidParams, week: int = 0) -> float:
    """Infections one agent causes over its course in a fully susceptible population
    (mean susceptibility, contacts equal to the normaliser, no isolation), for ``R(week)``.

    Useful to read ``R(t)`` as a reproduction number.
    """
    per_contact = float(_per_contact_infectiousness(params))
    rates = np.asarray(params.transmission_rate)
    return float(rates[min(week, len(rates) - 1)]) * float(np.mean(np.asarray(params.susceptibility))) * per_contact


__all__ = [
    "CovidParams",
    "DEFAULT_EXPOSED_DAYS",
    "DEFAULT_INFECTED_DAYS",
    "DEFAULT_ISOLATION_BASELINE",
    "DEFAULT_ISOLATION_RESPONSE",
    "DEFAULT_MORTALITY",
    "DEFAULT_STAGE_INFECTIOUSNESS",
    "DEFAULT_SUSCEPTIBILITY",
    "DEFAULT_TRANSMISSION_RATE",
    "NUMERIC_PARAMS",
    "default_contact_normaliser",
    "default_isolation_baseline",
    "default_params",
    "expected_secondary_infections",
    "stage_infectiousness_by_day",
    "validate_params",
]
