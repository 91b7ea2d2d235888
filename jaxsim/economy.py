"""The economy of New York City's boroughs, coupled with the COVID model in one daily scan.

Time. The epidemic steps daily; the economy keeps daily accounts and settles monthly,
inside the same ``lax.scan``. Day ``t`` of a run is the calendar date ``start + t``
(``world.inputs["economy_start_day"]``: days since 1970-01-01 of day 0); its calendar
month, weekday and whether it is the last day of its month are computed inside ``jit``
from that integer (:func:`civil_date`), so runs of any length and runs split in chunks
(``engine.run(..., start_day=...)``) see the same calendar. "Run month" ``m`` is the
``m``-th calendar month from the start's month (0 = the first). Working days are Monday
to Friday (public holidays are not modelled). A run should start on the first of a month:
the first month's accounts cover the days from the start.

Each day, after the COVID substeps (isolation, progression, infection), in order (the
monthly substeps run under ``lax.cond``, on their days only):

1. [economy_month_start] on the first day of a run month: each member of the labour
   force draws whether it is willing to work this month, with probability from the
   heuristic (:func:`jaxsim.kernels.labour.heuristic_willingness`: its age band's
   baseline, its borough's reported cases last month, the price level, its savings) or
   from ``world.inputs["willingness"][m, group]`` supplied from outside, e.g. by an LLM
   archetype layer (:mod:`jaxsim.work_archetypes`). The month's accumulators reset.
2. [work] an agent works today if it has a job, is willing this month, is neither sick
   (stage I) nor dead nor isolating today, and it is a working day; days worked accumulate.
3. [economy_month_end] on the last day of a month: each borough's reported cases per
   1,000 residents in the month (its agents' symptom onsets this month x ascertainment);
   then, for living agents: gross earnings
   ``wage * days_worked / working days``; UI benefits for the unemployed; a progressive
   income tax on earnings, all of it redistributed equally to living adults (money
   conserved: the transfers add up to the tax collected); pensions for those outside
   the labour force; a stimulus payment where one is scheduled
   (:class:`StimulusPayment`); consumption and savings (``income = consumption + change
   in savings`` for every agent); the price index from the change in excess demand
   (:func:`jaxsim.kernels.labour.price_update`); then the borough
   labour market's job flows (layoffs rising with cases, hiring falling with the UI
   claims rate, quits of the unwilling; :func:`jaxsim.kernels.labour.job_flow_probabilities`),
   drawn through :mod:`jaxsim.sampling`.

Monthly metrics are reported on the month's last day (zeros on other days, flagged by
``month_end``): per borough ``[5]`` (order :data:`jaxsim.boroughs.BOROUGHS`)
``unemployment_rate`` (during the month, before its end-of-month flows),
``labour_force``, ``unemployed``, ``willingness`` (mean probability over the labour
force), ``case_signal`` (reported cases per 1,000 residents in the month), ``claims_rate``,
``earnings``, ``ui_benefits``, ``tax``, ``transfers``, ``pensions``, ``stimulus_paid``,
``consumption``, ``savings`` (USD, totals over the borough's agents; savings at the month's
end), and scalars ``price_level``,
``city_unemployed``, ``city_labour_force``, ``city_consumption``, ``city_tax``,
``city_transfers``, ``month_index``. Daily: ``working`` (agents at work today) and
``month_end``.

The coupling is one way: the epidemic (stages and isolation) changes who works; work
does not change contacts. The combined state is :class:`CoupledState` and the model
:func:`coupled_model`; the epidemic in it draws exactly the numbers of the plain COVID
model (substep keys come from names, see :mod:`jaxsim.coupling`).

Units: USD (nominal, at the prices of the month), months, agents; see
:mod:`jaxsim.kernels.labour`.
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxsim import coupling, covid, sampling
from jaxsim.boroughs import BOROUGHS, borough_codes
from jaxsim.engine import Model, Substep, World
from jaxsim.kernels import labour
from jaxsim.kernels.lookup import lookup
from jaxsim.population import DEAD, Population, PopulationError

NUM_BOROUGHS = len(BOROUGHS)
#: Borough code of padding slots (in no borough).
NO_BOROUGH = NUM_BOROUGHS


class EconomyError(ValueError):
    """An economy parameter, population column or intervention is unusable; the message
    names the field and the value."""


# ------------------------------------------------------------------------------ defaults
#: Share of each age band in the labour force. From the US Current Population Survey,
#: 2019 annual averages (BLS, "Employment status of the civilian noninstitutional
#: population by age", table 3): participation about 35% at 16-19, 71% at 20-24, 83% at
#: 25-34, 82% at 35-44, 81% at 45-54, 66% at 55-64 and 20% at 65+, grouped into the bands
#: (weights by the bands' ages, rounded); for U19 only the 16-19-year-olds (about a fifth
#: of the band) can participate. A modelling input: NYC's rates are close to these.
DEFAULT_PARTICIPATION: dict[str, float] = {
    "U19": 0.07,
    "20t29": 0.77,
    "30t39": 0.82,
    "40t49": 0.81,
    "50t64": 0.72,
    "65A": 0.20,
}

#: Occupation groups: the five major groups of the American Community Survey's occupation
#: tables (S2401), by SOC 2018 major group (first two digits of a ``soc_code``).
OCCUPATIONS: tuple[str, ...] = (
    "management_professional",   # SOC 11-29: management, business, science and arts
    "service",                   # SOC 31-39 (and 55, military, grouped with protective service)
    "sales_office",              # SOC 41-43
    "construction_maintenance",  # SOC 45-49: natural resources, construction, maintenance
    "production_transport",      # SOC 51-53: production, transportation, material moving
)
SOC_MAJOR_TO_OCCUPATION: dict[str, str] = {
    **{code: "management_professional" for code in ("11", "13", "15", "17", "19", "21", "23", "25", "27", "29")},
    **{code: "service" for code in ("31", "33", "35", "37", "39", "55")},
    **{code: "sales_office" for code in ("41", "43")},
    **{code: "construction_maintenance" for code in ("45", "47", "49")},
    **{code: "production_transport" for code in ("51", "53")},
}
#: Share of employed New Yorkers in each occupation group, used when a population has no
#: ``soc_code``: approximately the ACS 2019 5-year estimates for New York City (table
#: S2401, civilian employed population 16+), rounded to whole percent. Citywide; the
#: boroughs differ (Manhattan more management, the Bronx more service).
DEFAULT_OCCUPATION_SHARES: dict[str, float] = {
    "management_professional": 0.41,
    "service": 0.22,
    "sales_office": 0.20,
    "construction_maintenance": 0.07,
    "production_transport": 0.10,
}
#: Typical monthly wage of full-time work in each group (USD per month, 2019-20): about
#: the groups' median annual earnings in New York City (ACS 2019 5-year, table S2411),
#: divided by 12 and rounded. Each worker's wage is this times a log-normal factor
#: (:data:`WAGE_DISPERSION`).
DEFAULT_MONTHLY_WAGE: dict[str, float] = {
    "management_professional": 7000.0,
    "service": 2600.0,
    "sales_office": 3700.0,
    "construction_maintenance": 4100.0,
    "production_transport": 3300.0,
}
#: Standard deviation of the log wage within an occupation group (an assumption; US
#: within-occupation log-wage dispersion is about 0.4-0.6).
WAGE_DISPERSION = 0.5

#: Monthly willingness to work at no cases, first-month prices and no savings, by age
#: band. An assumption: older workers, at higher risk, somewhat less willing.
DEFAULT_WILLINGNESS: dict[str, float] = {
    "U19": 0.97,
    "20t29": 0.97,
    "30t39": 0.97,
    "40t49": 0.96,
    "50t64": 0.94,
    "65A": 0.88,
}
#: Log-odds per unit of log1p(reported cases per 1,000 residents last month) (an assumption).
DEFAULT_WILLINGNESS_CASE_SENSITIVITY = 0.4
#: Log-odds per unit of log(price level) (an assumption).
DEFAULT_WILLINGNESS_PRICE_SENSITIVITY = 2.0
#: Log-odds per unit of log1p(savings in months of wages) (an assumption).
DEFAULT_WILLINGNESS_SAVINGS_SENSITIVITY = 0.3

#: A stylised progressive schedule on monthly earnings (USD per month, marginal rates),
#: standing for federal, state and city income tax together; not the statutory schedule.
DEFAULT_TAX_THRESHOLDS: tuple[float, ...] = (0.0, 1000.0, 4000.0, 8000.0, 16000.0)
DEFAULT_TAX_RATES: tuple[float, ...] = (0.0, 0.12, 0.22, 0.30, 0.37)

#: New York's weekly UI benefit is about half the claimant's weekly wage (1/26 of the
#: highest quarter's wages), at most $504 a week in 2020 (NY Department of Labor):
#: $504 x 52 / 12 = $2,184 a month.
DEFAULT_UI_REPLACEMENT = 0.5
DEFAULT_UI_CAP = 2184.0

#: Monthly income of those outside the labour force, by age band (USD): 65+ receive about
#: the average Social Security retired-worker benefit (SSA, January 2020: $1,503).
DEFAULT_NON_LABOUR_INCOME: dict[str, float] = {
    "U19": 0.0, "20t29": 0.0, "30t39": 0.0, "40t49": 0.0, "50t64": 0.0, "65A": 1503.0,
}
#: Spending an adult needs per month at first-month prices (USD); an assumption.
DEFAULT_SUBSISTENCE = 1200.0
#: Marginal propensity to consume out of income above subsistence, and share of savings
#: spent per month (assumptions in the range of the consumption literature).
DEFAULT_MPC = 0.8
DEFAULT_WEALTH_MPC = 0.02
#: Savings at the start, in months of wage (workers) or of subsistence (others); an assumption.
DEFAULT_INITIAL_SAVINGS_MONTHS = 2.0
#: Price elasticity to the change in excess demand and the largest monthly log change
#: (+-1%); assumptions.
DEFAULT_PRICE_ADJUSTMENT = 0.1
DEFAULT_MAX_MONTHLY_PRICE_CHANGE = 0.01

#: Labour market before calibration: pre-pandemic-like flows, a monthly layoff
#: probability of 1.5% and a hiring probability of 25% for a willing job seeker (US JOLTS
#: and CPS monthly flows are of this order), layoffs rising with cases, hiring slightly
#: lower where more of the labour force claims UI, a fifth of the unwilling quitting each
#: month. Assumptions; ``--calibrate`` fits them to the boroughs' observed unemployment.
DEFAULT_SEPARATION_LOGIT = float(np.log(0.015 / 0.985))
DEFAULT_HIRING_LOGIT = float(np.log(0.25 / 0.75))
DEFAULT_SEPARATION_CASE_SENSITIVITY = 0.3
DEFAULT_HIRING_CLAIMS_SENSITIVITY = -0.02
DEFAULT_QUIT_IF_UNWILLING = 0.2


# ------------------------------------------------------------------------------ pytrees
@struct.dataclass
class StimulusPayment:
    """A stimulus payment: ``amount`` USD to each eligible living adult at the end of each
    paid run month (an inflow from outside the city's economy, e.g. federal).

    Attributes:
        amount: float32 scalar, USD per eligible adult per paid month (>= 0).
        paid: float32 ``[M]`` 1 for run months in which it is paid (month 0 = the run's
            first); months past the end are not paid.
        max_earnings: float32 scalar, eligible when the month's gross earnings are at most
            this (USD per month; ``inf``: everyone).
        unemployed_only: float32 scalar, 1 to pay only unemployed members of the labour force.
        name: static label.
    """

    amount: jax.Array
    paid: jax.Array
    max_earnings: jax.Array
    unemployed_only: jax.Array
    name: str = struct.field(pytree_node=False, default="stimulus")


@struct.dataclass
class EconomyParams:
    """What calibration and counterfactuals move; arrays by this population's age codes
    ``[A]`` and by borough ``[5]``.

    Attributes:
        willingness_baseline: float32 ``[A]`` in (0, 1).
        willingness_case_sensitivity, willingness_price_sensitivity,
        willingness_savings_sensitivity: float32 scalars (log-odds per unit signal).
        separation_logit, hiring_logit: float32 ``[5]`` per borough.
        separation_case_sensitivity: float32 scalar, layoff log-odds per unit of
            log1p(cases per 1,000 residents in the month).
        hiring_claims_sensitivity: float32 scalar, hiring log-odds per percentage point
            of the UI claims rate.
        quit_if_unwilling: float32 scalar in [0, 1], monthly probability that an
            unwilling worker quits.
        tax_thresholds, tax_rates: float32 ``[K]`` bracket lower edges (USD/month, from
            0, increasing) and marginal rates in [0, 1].
        ui_replacement, ui_cap: float32 scalars: share of the wage replaced, and the most
            paid per month (USD).
        non_labour_income: float32 ``[A]`` USD/month for living agents outside the labour force.
        subsistence: float32 scalar, USD/month an adult needs at price level 1.
        mpc, wealth_mpc: float32 scalars in [0, 1].
        initial_savings_months: float32 scalar >= 0.
        price_adjustment, max_monthly_price_change: float32 scalars >= 0.
        ascertainment: float32 scalar in (0, 1], reported share of symptom onsets (the
            case signal is reported cases).
        stimulus: a :class:`StimulusPayment` or ``None`` (none: the plain model, exactly).
    """

    willingness_baseline: jax.Array
    willingness_case_sensitivity: jax.Array
    willingness_price_sensitivity: jax.Array
    willingness_savings_sensitivity: jax.Array
    separation_logit: jax.Array
    hiring_logit: jax.Array
    separation_case_sensitivity: jax.Array
    hiring_claims_sensitivity: jax.Array
    quit_if_unwilling: jax.Array
    tax_thresholds: jax.Array
    tax_rates: jax.Array
    ui_replacement: jax.Array
    ui_cap: jax.Array
    non_labour_income: jax.Array
    subsistence: jax.Array
    mpc: jax.Array
    wealth_mpc: jax.Array
    initial_savings_months: jax.Array
    price_adjustment: jax.Array
    max_monthly_price_change: jax.Array
    ascertainment: jax.Array
    stimulus: Any = None


#: The numeric leaves of :class:`EconomyParams` (all but ``stimulus``).
NUMERIC_ECONOMY_PARAMS: tuple[str, ...] = tuple(
    name for name in EconomyParams.__dataclass_fields__ if name != "stimulus"
)


@struct.dataclass
class EconomyState:
    """Agent arrays ``[S]`` (slots, as the COVID state) and the city's monthly signals.

    Attributes:
        employed: float32 ``[S]`` 1 if the agent holds a job.
        willing: float32 ``[S]`` 1 if willing to work this month (drawn at the month's start).
        worked_today: float32 ``[S]`` 1 if the agent worked today.
        days_worked: float32 ``[S]`` days worked so far this month.
        savings: float32 ``[S]`` USD.
        workdays: float32 scalar, working days so far this month.
        month_first_day: int32 scalar, the run day on which this month's accounts began.
        case_signal: float32 ``[5]`` reported cases per 1,000 residents in the last
            completed month (before the first: the prior given to :func:`initial_economy_state`).
        month_willingness: float32 ``[5]`` mean willingness probability of this month's
            labour force per borough.
        price_level: float32 scalar, 1 in the first month.
        demand_ratio: float32 scalar, consumption / earnings of the last completed month
            (0 before the first).
        drawn_month: int32 scalar, the run month whose willingness was drawn (-1 before).
    """

    employed: jax.Array
    willing: jax.Array
    worked_today: jax.Array
    days_worked: jax.Array
    savings: jax.Array
    workdays: jax.Array
    month_first_day: jax.Array
    case_signal: jax.Array
    month_willingness: jax.Array
    price_level: jax.Array
    demand_ratio: jax.Array
    drawn_month: jax.Array


@struct.dataclass
class CoupledState:
    """The state of the coupled model: ``covid`` (:class:`jaxsim.covid.CovidState`) and
    ``economy`` (:class:`EconomyState`)."""

    covid: Any
    economy: EconomyState


@struct.dataclass
class CoupledParams:
    """The parameters of the coupled model: ``covid`` and ``economy``."""

    covid: Any
    economy: EconomyParams


# ----------------------------------------------------------------------------- calendar
_EPOCH = _dt.date(1970, 1, 1)


def epoch_day(date: _dt.date | str) -> int:
    """Days since 1970-01-01 of ``date`` (a ``datetime.date`` or ``"YYYY-MM-DD"``)."""
    if isinstance(date, str):
        date = _dt.date.fromisoformat(date)
    return (date - _EPOCH).days


def civil_date(days: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(year, month 1-12, day 1-31)`` of ``days`` since 1970-01-01 (int32, >= 0), with
    integer arithmetic only (H. Hinnant's ``civil_from_days``), so it runs inside ``jit``."""
    z = jnp.asarray(days, jnp.int32) + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = jnp.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2).astype(jnp.int32)
    return year, month, day


def calendar_of_day(t: jax.Array, start_day: jax.Array) -> dict[str, jax.Array]:
    """Calendar facts of run day ``t`` for a run whose day 0 is ``start_day`` (days since
    1970-01-01): ``run_month`` (int32, 0 = the start's month), ``workday`` (float32 1 on
    Monday-Friday), ``month_end`` (bool, the last day of its month)."""
    today = start_day + t
    year, month, _ = civil_date(today)
    year0, month0, _ = civil_date(start_day)
    _, _, tomorrow = civil_date(today + 1)
    weekday = (today + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    return {
        "run_month": ((year - year0) * 12 + (month - month0)).astype(jnp.int32),
        "workday": (weekday < 5).astype(jnp.float32),
        "month_end": tomorrow == 1,
    }


def days_in_months(start: _dt.date, months: int) -> int:
    """Days from ``start`` (the first of a month) to the end of the ``months``-th month."""
    year, month = start.year, start.month + int(months)
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return (_dt.date(year, month, 1) - start).days


# ---------------------------------------------------------------------- occupations
_SOC = re.compile(r"^\s*(\d{2})(?:-?\d{4}|-?\d{2}(?:\.\d+)?|)\s*$")
_BLANK = {"", "na", "nan", "none", "null", "n/a"}


def occupations_from_soc(codes: np.ndarray, *, agent_ids: np.ndarray | None = None) -> np.ndarray:
    """Occupation group codes (index into :data:`OCCUPATIONS`) from SOC codes; -1 where
    the code is blank (no occupation recorded).

    Accepts ``"15-1252"``, ``"151252"`` and a bare major group ``"15"``.

    Raises:
        EconomyError: a code that is not a SOC code, or whose major group is unknown;
            the message names the column ``soc_code``, the agent and the value.
    """
    out = np.full(len(codes), -1, np.int8)
    for i, raw in enumerate(codes):
        text = "" if raw is None else str(raw)
        if text.strip().lower() in _BLANK:
            continue
        match = _SOC.match(text)
        agent = int(agent_ids[i]) if agent_ids is not None else i
        if not match:
            raise EconomyError(
                f"column 'soc_code', agent {agent}: {text!r} is not a SOC occupation code (e.g. '15-1252')"
            )
        group = SOC_MAJOR_TO_OCCUPATION.get(match.group(1))
        if group is None:
            raise EconomyError(
                f"column 'soc_code', agent {agent}: {text!r} has unknown SOC major group {match.group(1)!r} "
                f"(known: {sorted(SOC_MAJOR_TO_OCCUPATION)})"
            )
        out[i] = OCCUPATIONS.index(group)
    return out


@dataclass(frozen=True)
class LabourAttributes:
    """Each agent's place in the labour market, fixed for a run (host numpy, ``[N]``).

    Attributes:
        labour_force: bool, member of the labour force.
        occupation: int8 occupation group code (index into :data:`OCCUPATIONS`), -1 outside
            the labour force.
        wage: float32 USD per month of full-time work (0 outside the labour force).
        borough: int8 borough code.
        source: how occupations were obtained ("soc_code" or "sampled").
    """

    labour_force: np.ndarray
    occupation: np.ndarray
    wage: np.ndarray
    borough: np.ndarray
    source: str

    def summary(self) -> dict:
        lf = self.labour_force
        return {
            "source": self.source,
            "labour_force": int(lf.sum()),
            "labour_force_by_borough": {
                b: int(lf[self.borough == i].sum()) for i, b in enumerate(BOROUGHS)
            },
            "occupations": {
                name: int((self.occupation == k).sum()) for k, name in enumerate(OCCUPATIONS)
            },
            "mean_monthly_wage": float(self.wage[lf].mean()) if lf.any() else None,
        }


def labour_attributes(
    population: Population,
    *,
    seed: int = 0,
    participation: Mapping[str, float] = DEFAULT_PARTICIPATION,
    occupation_shares: Mapping[str, float] = DEFAULT_OCCUPATION_SHARES,
    monthly_wage: Mapping[str, float] = DEFAULT_MONTHLY_WAGE,
    wage_dispersion: float = WAGE_DISPERSION,
) -> LabourAttributes:
    """Labour force, occupation and wage of every agent (host, from ``np.random.default_rng(seed)``).

    With a ``soc_code`` column the population says who works and as what: agents with a
    code are in the labour force, in its occupation group; blank codes are outside it.
    Without one, each agent joins the labour force with its age band's participation
    (:data:`DEFAULT_PARTICIPATION`) and draws an occupation group from
    ``occupation_shares``. Wages: the group's monthly wage times ``exp(sigma Z -
    sigma^2 / 2)`` (mean-preserving log-normal, ``sigma = wage_dispersion``).

    Raises:
        EconomyError / PopulationError / KeyError: a malformed ``soc_code``, no ``age``
            attribute, an age label without a participation rate, shares that are not
            a distribution, or a population without boroughs.
    """
    borough = borough_codes(population)
    if "age" not in population.attributes:
        raise PopulationError("the economy needs an 'age' attribute in the population")
    _check_distribution(occupation_shares, "occupation_shares")
    unknown = sorted(set(monthly_wage) ^ set(OCCUPATIONS))
    if unknown:
        raise EconomyError(f"monthly_wage: needs exactly the groups {list(OCCUPATIONS)}, differs in {unknown}")
    if not np.isfinite(wage_dispersion) or wage_dispersion < 0:
        raise EconomyError(f"wage_dispersion must be a finite number >= 0, got {wage_dispersion!r}")
    rng = np.random.default_rng(seed)
    n = population.size
    if "soc_code" in population.strings:
        ids = population.user_ids if population.user_ids is not None else None
        occupation = occupations_from_soc(population.strings["soc_code"], agent_ids=ids)
        labour_force = occupation >= 0
        source = "soc_code"
    else:
        try:
            rate = population.table_by_label("age", participation)
        except KeyError as err:
            raise EconomyError(f"participation: {err.args[0]}") from None
        if np.any((rate < 0) | (rate > 1)):
            raise EconomyError(f"participation: rates must lie in [0, 1], got {dict(participation)}")
        labour_force = rng.random(n) < rate[population.attributes["age"]]
        shares = np.asarray([occupation_shares[o] for o in OCCUPATIONS], np.float64)
        drawn = rng.choice(len(OCCUPATIONS), size=n, p=shares / shares.sum()).astype(np.int8)
        occupation = np.where(labour_force, drawn, -1).astype(np.int8)
        source = "sampled"
    base = np.asarray([monthly_wage[o] for o in OCCUPATIONS], np.float64)
    if np.any(~np.isfinite(base) | (base <= 0)):
        raise EconomyError(f"monthly_wage: wages must be finite and > 0, got {dict(monthly_wage)}")
    factor = np.exp(wage_dispersion * rng.standard_normal(n) - wage_dispersion**2 / 2)
    wage = np.where(labour_force, base[np.maximum(occupation, 0)] * factor, 0.0).astype(np.float32)
    return LabourAttributes(labour_force, occupation, wage, borough, source)


def _check_distribution(shares: Mapping[str, float], what: str) -> None:
    missing = [o for o in OCCUPATIONS if o not in shares]
    extra = sorted(set(shares) - set(OCCUPATIONS))
    if missing or extra:
        raise EconomyError(f"{what}: needs one share per group {list(OCCUPATIONS)}; missing {missing}, unknown {extra}")
    values = np.asarray([shares[o] for o in OCCUPATIONS], np.float64)
    if np.any(~np.isfinite(values) | (values < 0)) or values.sum() <= 0:
        raise EconomyError(f"{what}: shares must be finite, >= 0 and not all 0, got {dict(shares)}")


# ------------------------------------------------------------------------------- world
def build_economy_world(
    world: World,
    population: Population,
    attributes: LabourAttributes,
    *,
    start: _dt.date,
    claims_rate: np.ndarray,
    work_groups: np.ndarray | None = None,
    num_work_groups: int | None = None,
    willingness: np.ndarray | None = None,
) -> World:
    """The COVID ``world`` with the economy's arrays added.

    Args:
        attributes: from :func:`labour_attributes`.
        start: the calendar date of day 0 (normally the first of a month).
        claims_rate: float ``[M, 5]`` UI beneficiaries per person in the labour force, by
            run month and borough (months past the last repeat it).
        work_groups: int ``[N]`` archetype of each agent for willingness supplied from
            outside (default: the age code); ``num_work_groups`` their number.
        willingness: float ``[M, G]`` willingness per run month and group, for the
            ``"inputs"`` policy (see :func:`economy_model`).

    Adds ``world.agents``: ``borough`` (int8, padding :data:`NO_BOROUGH`),
    ``labour_force``, ``adult`` (float32 0/1), ``wage`` (float32 USD/month),
    ``work_group`` (int32); ``world.inputs``: ``economy_start_day`` (int32 scalar),
    ``claims_rate`` ``[M, 5]``, ``borough_residents`` ``[5]`` and, when given,
    ``willingness`` ``[M, G]``.
    """
    n, slots = population.size, world.num_slots
    if world.num_agents != n:
        raise EconomyError(f"the world has {world.num_agents} agents, the population {n}")

    def pad(values, fill, dtype):
        out = np.full(slots, fill, dtype)
        out[:n] = values
        return out

    claims = np.asarray(claims_rate, np.float32)
    if claims.ndim != 2 or claims.shape[1] != NUM_BOROUGHS or claims.shape[0] < 1:
        raise EconomyError(f"claims_rate must have shape [months, {NUM_BOROUGHS}], got {claims.shape}")
    if not np.all(np.isfinite(claims)) or np.any(claims < 0) or np.any(claims > 1):
        raise EconomyError("claims_rate: beneficiaries per labour-force member must lie in [0, 1]")
    u19 = population.code("age", "U19") if "U19" in population.category_labels("age") else -1
    adult = population.attributes["age"] != u19
    if work_groups is None:
        work_groups = population.attributes["age"]
        num_work_groups = population.num_categories("age")
    work_groups = np.asarray(work_groups)
    if work_groups.shape != (n,):
        raise EconomyError(f"work_groups has shape {work_groups.shape}, expected ({n},)")
    num_work_groups = int(num_work_groups if num_work_groups is not None else work_groups.max() + 1)
    if work_groups.size and (work_groups.min() < 0 or work_groups.max() >= num_work_groups):
        raise EconomyError(f"work_groups: codes must lie in 0..{num_work_groups - 1}")
    agents = {
        **world.agents,
        "borough": jnp.asarray(pad(attributes.borough, NO_BOROUGH, np.int8)),
        "labour_force": jnp.asarray(pad(attributes.labour_force, 0, np.float32)),
        "adult": jnp.asarray(pad(adult, 0, np.float32)),
        "wage": jnp.asarray(pad(attributes.wage, 0, np.float32)),
        "work_group": jnp.asarray(pad(work_groups, 0, np.int32)),
    }
    residents = np.bincount(attributes.borough, minlength=NUM_BOROUGHS).astype(np.float32)
    inputs = {
        **world.inputs,
        "economy_start_day": jnp.int32(epoch_day(start)),
        "claims_rate": jnp.asarray(claims),
        "borough_residents": jnp.asarray(residents),
    }
    if willingness is not None:
        table = np.asarray(willingness, np.float32)
        if table.ndim != 2 or table.shape[1] != num_work_groups:
            raise EconomyError(f"willingness must have shape [months, {num_work_groups}], got {table.shape}")
        if not np.all((table >= 0) & (table <= 1)):
            raise EconomyError("willingness: probabilities must lie in [0, 1]")
        inputs["willingness"] = jnp.asarray(table)
    categories = tuple(c for c in world.categories if c[0] not in ("borough", "work_group")) + (
        ("borough", NUM_BOROUGHS), ("work_group", num_work_groups),
    )
    return world.replace(agents=agents, inputs=inputs, categories=categories)


# ------------------------------------------------------------------------------ params
def _by_age(population: Population, values: float | Mapping[str, float], what: str) -> np.ndarray:
    if isinstance(values, Mapping):
        try:
            return population.table_by_label("age", values)
        except KeyError as err:
            raise EconomyError(f"{what}: {err.args[0]}") from None
    return np.full(population.num_categories("age"), float(values), np.float32)


def _by_borough(values: float | Mapping[str, float] | Sequence[float], what: str) -> np.ndarray:
    if isinstance(values, Mapping):
        unknown = sorted(set(values) - set(BOROUGHS))
        missing = [b for b in BOROUGHS if b not in values]
        if unknown or missing:
            raise EconomyError(f"{what}: needs one value per borough {list(BOROUGHS)}; missing {missing}, unknown {unknown}")
        return np.asarray([values[b] for b in BOROUGHS], np.float32)
    array = np.asarray(values, np.float32)
    if array.ndim == 0:
        return np.full(NUM_BOROUGHS, float(array), np.float32)
    if array.shape != (NUM_BOROUGHS,):
        raise EconomyError(f"{what}: needs {NUM_BOROUGHS} values (one per borough), got shape {array.shape}")
    return array


def default_economy_params(
    population: Population,
    *,
    willingness_baseline: float | Mapping[str, float] = DEFAULT_WILLINGNESS,
    willingness_case_sensitivity: float = DEFAULT_WILLINGNESS_CASE_SENSITIVITY,
    willingness_price_sensitivity: float = DEFAULT_WILLINGNESS_PRICE_SENSITIVITY,
    willingness_savings_sensitivity: float = DEFAULT_WILLINGNESS_SAVINGS_SENSITIVITY,
    separation_logit: float | Mapping[str, float] | Sequence[float] = DEFAULT_SEPARATION_LOGIT,
    hiring_logit: float | Mapping[str, float] | Sequence[float] = DEFAULT_HIRING_LOGIT,
    separation_case_sensitivity: float = DEFAULT_SEPARATION_CASE_SENSITIVITY,
    hiring_claims_sensitivity: float = DEFAULT_HIRING_CLAIMS_SENSITIVITY,
    quit_if_unwilling: float = DEFAULT_QUIT_IF_UNWILLING,
    tax_thresholds: Sequence[float] = DEFAULT_TAX_THRESHOLDS,
    tax_rates: Sequence[float] = DEFAULT_TAX_RATES,
    ui_replacement: float = DEFAULT_UI_REPLACEMENT,
    ui_cap: float = DEFAULT_UI_CAP,
    non_labour_income: float | Mapping[str, float] = DEFAULT_NON_LABOUR_INCOME,
    subsistence: float = DEFAULT_SUBSISTENCE,
    mpc: float = DEFAULT_MPC,
    wealth_mpc: float = DEFAULT_WEALTH_MPC,
    initial_savings_months: float = DEFAULT_INITIAL_SAVINGS_MONTHS,
    price_adjustment: float = DEFAULT_PRICE_ADJUSTMENT,
    max_monthly_price_change: float = DEFAULT_MAX_MONTHLY_PRICE_CHANGE,
    ascertainment: float = 0.25,
    stimulus: StimulusPayment | None = None,
) -> EconomyParams:
    """Economy parameters for ``population``: age-keyed tables resolved to its codes,
    borough tables as ``{borough: value}``, ``[5]`` or one value; validated."""
    f32 = np.float32
    params = EconomyParams(
        willingness_baseline=jnp.asarray(_by_age(population, willingness_baseline, "willingness_baseline")),
        willingness_case_sensitivity=jnp.float32(willingness_case_sensitivity),
        willingness_price_sensitivity=jnp.float32(willingness_price_sensitivity),
        willingness_savings_sensitivity=jnp.float32(willingness_savings_sensitivity),
        separation_logit=jnp.asarray(_by_borough(separation_logit, "separation_logit")),
        hiring_logit=jnp.asarray(_by_borough(hiring_logit, "hiring_logit")),
        separation_case_sensitivity=jnp.float32(separation_case_sensitivity),
        hiring_claims_sensitivity=jnp.float32(hiring_claims_sensitivity),
        quit_if_unwilling=jnp.float32(quit_if_unwilling),
        tax_thresholds=jnp.asarray(np.asarray(tax_thresholds, f32)),
        tax_rates=jnp.asarray(np.asarray(tax_rates, f32)),
        ui_replacement=jnp.float32(ui_replacement),
        ui_cap=jnp.float32(ui_cap),
        non_labour_income=jnp.asarray(_by_age(population, non_labour_income, "non_labour_income")),
        subsistence=jnp.float32(subsistence),
        mpc=jnp.float32(mpc),
        wealth_mpc=jnp.float32(wealth_mpc),
        initial_savings_months=jnp.float32(initial_savings_months),
        price_adjustment=jnp.float32(price_adjustment),
        max_monthly_price_change=jnp.float32(max_monthly_price_change),
        ascertainment=jnp.float32(ascertainment),
        stimulus=stimulus,
    )
    validate_economy_params(params, population.num_categories("age"))
    return params


def validate_economy_params(params: EconomyParams, num_ages: int | None = None) -> None:
    """Raise :class:`EconomyError` naming the field and value when a parameter is unusable."""

    def arr(name):
        return np.asarray(getattr(params, name), np.float64)

    def fail(name, message):
        raise EconomyError(f"EconomyParams.{name}: {message}")

    for name in NUMERIC_ECONOMY_PARAMS:
        a = arr(name)
        if not np.all(np.isfinite(a)):
            fail(name, f"non-finite value in {a.tolist()}")
    for name in ("willingness_baseline",):
        a = arr(name)
        if np.any((a <= 0) | (a >= 1)):
            fail(name, f"probabilities must lie strictly between 0 and 1, got {a.tolist()}")
    for name in ("quit_if_unwilling", "ui_replacement", "mpc", "wealth_mpc", "tax_rates"):
        a = arr(name)
        if np.any((a < 0) | (a > 1)):
            fail(name, f"must lie in [0, 1], got {a.tolist()}")
    for name in ("ui_cap", "non_labour_income", "subsistence", "initial_savings_months",
                 "price_adjustment", "max_monthly_price_change"):
        a = arr(name)
        if np.any(a < 0):
            fail(name, f"must be >= 0, got {a.tolist()}")
    ascertainment = float(arr("ascertainment"))
    if not 0 < ascertainment <= 1:
        fail("ascertainment", f"must lie in (0, 1], got {ascertainment}")
    thresholds, rates = arr("tax_thresholds"), arr("tax_rates")
    if thresholds.ndim != 1 or thresholds.size < 1 or thresholds.shape != rates.shape:
        fail("tax_thresholds", f"needs one lower edge per rate, got shapes {thresholds.shape} and {rates.shape}")
    if thresholds[0] != 0 or np.any(np.diff(thresholds) <= 0):
        fail("tax_thresholds", f"must start at 0 and increase, got {thresholds.tolist()}")
    for name in ("separation_logit", "hiring_logit"):
        if arr(name).shape != (NUM_BOROUGHS,):
            fail(name, f"needs one value per borough ({NUM_BOROUGHS}), got shape {arr(name).shape}")
    if num_ages is not None:
        for name in ("willingness_baseline", "non_labour_income"):
            if arr(name).shape != (num_ages,):
                fail(name, f"needs one value per age code ({num_ages}), got shape {arr(name).shape}")
    if params.stimulus is not None:
        check_stimulus(params.stimulus)


# ----------------------------------------------------------------------------- stimulus
def stimulus_payment(
    amount: float,
    months: Sequence[int],
    *,
    num_months: int,
    max_earnings: float | None = None,
    unemployed_only: bool = False,
    name: str = "stimulus",
) -> StimulusPayment:
    """A :class:`StimulusPayment` of ``amount`` USD per eligible adult in each run month
    of ``months`` (0 = the first month of the run), for a run of ``num_months`` months.

    Raises:
        EconomyError: naming the stimulus, the field and the value (a negative or
            non-finite amount, a month outside ``0 .. num_months - 1`` or repeated, no
            months, a negative income limit).
    """
    num_months = int(num_months)
    if num_months < 1:
        raise EconomyError(f"stimulus {name!r}: num_months must be >= 1, got {num_months}")
    try:
        months = [int(m) for m in months]
    except (TypeError, ValueError):
        raise EconomyError(f"stimulus {name!r}: months must be whole run-month numbers, got {months!r}") from None
    paid = np.zeros(num_months, np.float32)
    if not months:
        raise EconomyError(f"stimulus {name!r}: months: name at least one run month to pay in")
    for m in months:
        if not 0 <= m < num_months:
            raise EconomyError(
                f"stimulus {name!r}: month {m} is outside the run's months 0..{num_months - 1}"
            )
        if paid[m]:
            raise EconomyError(f"stimulus {name!r}: month {m} is listed twice")
        paid[m] = 1.0
    payment = StimulusPayment(
        amount=jnp.float32(amount),
        paid=jnp.asarray(paid),
        max_earnings=jnp.float32(np.inf if max_earnings is None else max_earnings),
        unemployed_only=jnp.float32(1.0 if unemployed_only else 0.0),
        name=name,
    )
    return check_stimulus(payment)


def no_stimulus(num_months: int, name: str = "stimulus") -> StimulusPayment:
    """A stimulus that pays nothing (amount 0, no paid month): a baseline with the same
    pytree structure as :func:`stimulus_payment`'s, so that runs with and without a
    payment share one compiled program (and its random numbers)."""
    return StimulusPayment(
        amount=jnp.float32(0.0), paid=jnp.zeros(int(num_months), jnp.float32),
        max_earnings=jnp.float32(np.inf), unemployed_only=jnp.float32(0.0), name=name,
    )


def check_stimulus(stimulus: StimulusPayment) -> StimulusPayment:
    """Raise :class:`EconomyError` naming the stimulus and field for unusable values."""
    if not isinstance(stimulus, StimulusPayment):
        raise EconomyError(
            f"EconomyParams.stimulus must be a StimulusPayment (economy.stimulus_payment(...)), got {type(stimulus).__name__}"
        )
    name = stimulus.name
    amount = np.asarray(stimulus.amount, np.float64)
    if not np.all(np.isfinite(amount)) or np.any(amount < 0):
        raise EconomyError(f"stimulus {name!r}: amount must be a finite number of USD >= 0, got {amount.tolist()}")
    paid = np.asarray(stimulus.paid, np.float64)
    if paid.ndim < 1 or paid.shape[-1] < 1 or not np.all((paid == 0) | (paid == 1)):
        raise EconomyError(f"stimulus {name!r}: paid must be a [months] array of 0/1, got {paid.tolist()}")
    limit = np.asarray(stimulus.max_earnings, np.float64)
    if np.any(np.isnan(limit)) or np.any(limit < 0):
        raise EconomyError(f"stimulus {name!r}: max_earnings must be >= 0 USD per month (or inf), got {limit.tolist()}")
    flag = np.asarray(stimulus.unemployed_only, np.float64)
    if not np.all((flag == 0) | (flag == 1)):
        raise EconomyError(f"stimulus {name!r}: unemployed_only must be 0 or 1, got {flag.tolist()}")
    return stimulus


def _stimulus_paid(stimulus: StimulusPayment, run_month, earnings, recipients, unemployed) -> jax.Array:
    """USD ``[S]`` paid this month to each agent (0 outside paid months)."""
    months = stimulus.paid.shape[-1]
    in_month = jnp.where(run_month < months, stimulus.paid[jnp.clip(run_month, 0, months - 1)], 0.0)
    eligible = recipients * (earnings <= stimulus.max_earnings)
    eligible = eligible * jnp.where(stimulus.unemployed_only > 0.5, unemployed, 1.0)
    return (stimulus.amount * in_month * eligible).astype(jnp.float32)


# ------------------------------------------------------------------------- initial state
def initial_economy_state(
    params: EconomyParams,
    key: jax.Array,
    world: World,
    *,
    initial_unemployment: np.ndarray | jax.Array,
    prior_case_signal: np.ndarray | jax.Array | float = 0.0,
    estimator: str = "none",
) -> EconomyState:
    """Day-0 economy state: each member of the labour force is unemployed with its
    borough's ``initial_unemployment`` (float ``[5]``, fractions; e.g. the observed rate
    of the first month), savings of ``initial_savings_months`` wages (or subsistence for
    adults outside the labour force), price level 1, and the case signal
    ``prior_case_signal`` (``[5]`` or scalar, reported cases per 1,000 residents in the
    month before the run). Traceable (the arguments may be jit arguments)."""
    agents = world.agents
    lf = agents["labour_force"]
    borough = agents["borough"]
    unemployment = jnp.asarray(initial_unemployment, jnp.float32)
    employed = sampling.bernoulli(key, (1.0 - lookup(unemployment, borough)) * lf, estimator) * lf
    savings = params.initial_savings_months * jnp.where(
        lf > 0.5, agents["wage"], params.subsistence * agents["adult"]
    )
    slots = lf.shape[0]
    # Separate buffers for every leaf: engine.run donates the state's buffers, each once.
    return EconomyState(
        employed=employed.astype(jnp.float32),
        willing=jnp.zeros(slots, jnp.float32),
        worked_today=jnp.zeros(slots, jnp.float32),
        days_worked=jnp.zeros(slots, jnp.float32),
        savings=savings.astype(jnp.float32),
        workdays=jnp.float32(0.0),
        month_first_day=jnp.int32(0),
        case_signal=jnp.broadcast_to(jnp.asarray(prior_case_signal, jnp.float32), (NUM_BOROUGHS,)),
        month_willingness=jnp.zeros(NUM_BOROUGHS, jnp.float32),
        price_level=jnp.float32(1.0),
        demand_ratio=jnp.float32(0.0),
        drawn_month=jnp.int32(-1),
    )


def coupled_initial_state(params: CoupledParams, key: jax.Array, world: World, init_args: Mapping) -> CoupledState:
    """Initial :class:`CoupledState` (the ensemble module's ``init`` signature):
    ``split(key)`` gives the epidemic's and the economy's keys. ``init_args``:
    ``stages`` or ``None``, ``prior_daily_cases``, ``initial_unemployment`` ``[5]``,
    ``prior_case_signal`` ``[5]`` and optionally ``estimator``."""
    init_args = dict(init_args)
    estimator = init_args.get("estimator", "none")
    k_covid, k_economy = jax.random.split(key)
    return CoupledState(
        covid=covid.initial_state(
            params.covid, k_covid, world, stages=init_args.get("stages"),
            prior_daily_cases=init_args.get("prior_daily_cases", 0.0), estimator=estimator,
        ),
        economy=initial_economy_state(
            params.economy, k_economy, world,
            initial_unemployment=init_args["initial_unemployment"],
            prior_case_signal=init_args.get("prior_case_signal", 0.0), estimator=estimator,
        ),
    )


# ------------------------------------------------------------------------------ substeps
def _alive(stage: jax.Array) -> jax.Array:
    return (stage < DEAD).astype(jnp.float32)


def willingness_probability(source: str, econ: EconomyState, params: EconomyParams, world: World, run_month):
    """float32 ``[S]`` each agent's probability of being willing to work in ``run_month``:
    the heuristic (``source="heuristic"``) or its work group's entry of
    ``world.inputs["willingness"]`` (``"inputs"``)."""
    agents = world.agents
    if source == "heuristic":
        cushion = econ.savings / jnp.maximum(agents["wage"], 100.0)
        return labour.heuristic_willingness(
            lookup(params.willingness_baseline, agents["age"]),
            lookup(econ.case_signal, agents["borough"]),
            econ.price_level,
            cushion,
            params.willingness_case_sensitivity,
            params.willingness_price_sensitivity,
            params.willingness_savings_sensitivity,
        )
    table = world.inputs["willingness"]
    row = table[jnp.clip(run_month, 0, table.shape[0] - 1)]
    return lookup(jnp.clip(row, 0.0, 1.0), agents["work_group"])


def _month_start_substep(source: str, estimator: sampling.Estimator):
    def economy_month_start(state: CoupledState, params: CoupledParams, key, t, world: World):
        econ, p = state.economy, params.economy
        cal = calendar_of_day(t, world.inputs["economy_start_day"])

        def draw(econ: EconomyState) -> EconomyState:
            active = world.agents["labour_force"] * _alive(state.covid.stage)
            prob = willingness_probability(source, econ, p, world, cal["run_month"]) * active
            willing = sampling.bernoulli(key, prob, estimator) * active
            sums = labour.sum_by_code(jnp.stack([prob, active], axis=1), world.agents["borough"], NUM_BOROUGHS)
            mean_w = jnp.where(sums[:, 1] > 0, sums[:, 0] / jnp.maximum(sums[:, 1], 1.0), 0.0)
            return econ.replace(
                willing=willing,
                days_worked=jnp.zeros_like(econ.days_worked),
                workdays=jnp.zeros_like(econ.workdays),
                month_first_day=jnp.asarray(t, jnp.int32),
                month_willingness=mean_w.astype(jnp.float32),
                drawn_month=cal["run_month"],
            )

        # Only on the first day of a run month (under vmap both branches run, then a select).
        econ = jax.lax.cond(cal["run_month"] != econ.drawn_month, draw, lambda e: e, econ)
        return state.replace(economy=econ), {}

    return economy_month_start


def _work_substep(state: CoupledState, params: CoupledParams, key, t, world: World):
    econ, epi = state.economy, state.covid
    cal = calendar_of_day(t, world.inputs["economy_start_day"])
    able = labour.can_work_today(epi.stage, epi.isolating)
    works = labour.works_today(econ.employed, econ.willing, able, cal["workday"])
    econ = econ.replace(
        worked_today=works,
        days_worked=econ.days_worked + works,
        workdays=econ.workdays + cal["workday"],
    )
    return state.replace(economy=econ), {"working": works.sum(), "month_end": cal["month_end"].astype(jnp.float32)}


def _month_end_substep(estimator: sampling.Estimator):
    def settle(state: CoupledState, params: CoupledParams, key, t, month, world: World):
        """The month's accounts and job flows: ``(economy state, monthly metrics)``."""
        econ, p, agents = state.economy, params.economy, world.agents
        borough = agents["borough"]
        alive = _alive(state.covid.stage)
        active = agents["labour_force"] * alive
        unemployed = active * (1.0 - econ.employed)
        # Symptom onsets this month (SEIRM: one onset per agent, on day day_infected +
        # exposed_days; the agent has been in I, R or M since).
        stage = state.covid.stage
        onset_day = state.covid.day_infected.astype(jnp.int32) + params.covid.exposed_days
        onset = ((stage >= covid.INFECTED) & (stage <= covid.DEAD)
                 & (onset_day >= econ.month_first_day) & (onset_day <= t)).astype(jnp.float32)

        # Money: earnings, benefits, tax and its redistribution, pensions, stimulus.
        earnings = labour.monthly_earnings(agents["wage"], econ.days_worked, econ.workdays) * alive
        ui = labour.unemployment_benefit(unemployed, agents["wage"], p.ui_replacement, p.ui_cap)
        tax = labour.progressive_tax(earnings, p.tax_thresholds, p.tax_rates)
        recipients = agents["adult"] * alive
        transfers = labour.redistribute(jnp.sum(tax), recipients)
        pension = lookup(p.non_labour_income, agents["age"]) * alive * (1.0 - agents["labour_force"])
        stimulus = (
            jnp.zeros_like(earnings) if p.stimulus is None
            else _stimulus_paid(p.stimulus, month, earnings, recipients, unemployed)
        )
        income = earnings - tax + transfers + ui + pension + stimulus
        consumption, savings = labour.consumption_and_savings(
            income, econ.savings, p.subsistence * recipients, econ.price_level, p.mpc, p.wealth_mpc
        )
        consumption = consumption * alive
        savings = jnp.where(alive > 0.5, savings, econ.savings)

        # Prices: the change in excess demand since last month.
        demand, output = jnp.sum(consumption), jnp.sum(earnings)
        price, ratio = labour.price_update(
            econ.price_level, demand, output, econ.demand_ratio, p.price_adjustment, p.max_monthly_price_change
        )

        # Per-borough totals of the month, in one pass.
        columns = (active, unemployed, earnings, ui, tax, transfers, pension, stimulus, consumption, savings, onset)
        totals = labour.sum_by_code(jnp.stack(columns, axis=1), borough, NUM_BOROUGHS)  # [5, 11]
        (force, unemployed_b, earnings_b, ui_b, tax_b, transfers_b, pension_b, stimulus_b, consumption_b, savings_b,
         onsets_b) = (
            totals[:, i] for i in range(len(columns))
        )

        # The labour market: this month's rate, then the month's job flows.
        rate = jnp.clip(jnp.where(force > 0, unemployed_b / jnp.maximum(force, 1.0), 0.0), 0.0, 1.0)
        residents = world.inputs["borough_residents"]
        case_signal = jnp.where(
            residents > 0, onsets_b * p.ascertainment / jnp.maximum(residents, 1.0) * 1000.0, 0.0
        )
        claims_table = world.inputs["claims_rate"]
        claims = claims_table[jnp.clip(month, 0, claims_table.shape[0] - 1)]
        leave, hire = labour.job_flow_probabilities(
            borough, econ.willing, p.separation_logit, p.hiring_logit, case_signal, claims,
            p.separation_case_sensitivity, p.hiring_claims_sensitivity, p.quit_if_unwilling,
        )
        k_leave, k_hire = jax.random.split(key)
        leaves = sampling.bernoulli(k_leave, leave * active, estimator)
        hired = sampling.bernoulli(k_hire, hire * active, estimator)
        employed = jnp.where(active > 0.5, labour.next_employment(econ.employed, leaves, hired), econ.employed)

        metrics = {
            "unemployment_rate": rate,
            "labour_force": force,
            "unemployed": unemployed_b,
            "willingness": econ.month_willingness,
            "case_signal": case_signal,
            "claims_rate": claims,
            "earnings": earnings_b,
            "ui_benefits": ui_b,
            "tax": tax_b,
            "transfers": transfers_b,
            "pensions": pension_b,
            "stimulus_paid": stimulus_b,
            "consumption": consumption_b,
            "savings": savings_b,
            "price_level": econ.price_level,  # during the month
            "city_unemployed": unemployed_b.sum(),
            "city_labour_force": force.sum(),
            "city_consumption": demand,
            "city_tax": jnp.sum(tax),
            "city_transfers": jnp.sum(transfers),
            "month_index": month.astype(jnp.float32),
        }
        econ = econ.replace(
            employed=employed, savings=savings, price_level=price, demand_ratio=ratio, case_signal=case_signal,
        )
        return econ, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

    def economy_month_end(state: CoupledState, params: CoupledParams, key, t, world: World):
        cal = calendar_of_day(t, world.inputs["economy_start_day"])
        month = cal["run_month"]

        def skip(state):
            _, shapes = jax.eval_shape(lambda s: settle(s, params, key, t, month, world), state)
            return state.economy, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

        # Only on the last day of a month (under vmap both branches run, then a select):
        # monthly metrics are zeros on other days.
        econ, metrics = jax.lax.cond(
            cal["month_end"], lambda s: settle(s, params, key, t, month, world), skip, state
        )
        return state.replace(economy=econ), metrics

    return economy_month_end


WILLINGNESS_POLICIES = ("heuristic", "inputs")

#: Metrics reported per borough (``[5]``) on month-end days.
BOROUGH_METRICS: tuple[str, ...] = (
    "unemployment_rate", "labour_force", "unemployed", "willingness", "case_signal", "claims_rate",
    "earnings", "ui_benefits", "tax", "transfers", "pensions", "stimulus_paid", "consumption", "savings",
)
#: Scalar metrics reported on month-end days.
CITY_METRICS: tuple[str, ...] = (
    "price_level", "city_unemployed", "city_labour_force", "city_consumption", "city_tax",
    "city_transfers", "month_index",
)


def economy_model(policy: str = "heuristic", estimator: str | sampling.Estimator = "none") -> Model:
    """The economy's substeps on a :class:`CoupledState` (they read the epidemic's stages
    and isolation and write the economy), as a :class:`~jaxsim.engine.Model`.

    Args:
        policy: willingness to work from the ``"heuristic"`` or from
            ``world.inputs["willingness"]`` (``"inputs"``, one column per work group).
        estimator: gradient estimator of the willingness and job-flow draws (see
            :mod:`jaxsim.sampling`); forward values are the same for every estimator.
    """
    if policy not in WILLINGNESS_POLICIES:
        raise EconomyError(f"unknown willingness policy {policy!r}; choose one of {WILLINGNESS_POLICIES}")
    estimator = sampling.check_estimator(estimator)

    def validate(state: CoupledState, params: CoupledParams, world: World) -> None:
        validate_economy_params(params.economy, world.num_categories("age"))
        for name in ("borough", "labour_force", "adult", "wage", "work_group"):
            if name not in world.agents:
                raise EconomyError(f"the world has no economy array {name!r}: build it with economy.build_economy_world")
        for name in ("economy_start_day", "claims_rate", "borough_residents"):
            if name not in world.inputs:
                raise EconomyError(f"the world has no economy input {name!r}: build it with economy.build_economy_world")
        if state.economy.employed.shape != (world.num_slots,):
            raise EconomyError(
                f"the economy state has {state.economy.employed.shape[0]} agent slots, the world {world.num_slots}"
            )
        if policy == "inputs":
            table = world.inputs.get("willingness")
            if table is None:
                raise EconomyError("policy 'inputs' needs world.inputs['willingness'] (build_economy_world(..., willingness=...))")
            if table.shape[1] != world.num_categories("work_group"):
                raise EconomyError(
                    f"willingness has {table.shape[1]} groups, the world {world.num_categories('work_group')}"
                )

    return Model(
        substeps=(
            Substep("economy_month_start", _month_start_substep(policy, estimator)),
            Substep("work", _work_substep),
            Substep("economy_month_end", _month_end_substep(estimator)),
        ),
        name=f"economy[{policy}, {estimator}]",
        validate=validate,
    )


@functools.lru_cache(maxsize=32)
def coupled_model(
    isolation_policy: str = "heuristic",
    willingness_policy: str = "heuristic",
    estimator: str | sampling.Estimator = "none",
    contact_method: str = "auto",
) -> Model:
    """The COVID model (lifted onto ``state.covid``) followed by the economy, one model.

    The same arguments give the same model object, so that :func:`jaxsim.engine.run`
    reuses its compiled programs across runs (seeds, counterfactuals, calibration)."""
    epidemic = coupling.lift_model(
        covid.covid_model(policy=isolation_policy, estimator=estimator, contact_method=contact_method), "covid"
    )
    economy = economy_model(willingness_policy, estimator)
    return coupling.compose([epidemic, economy], name=f"{epidemic.name} + {economy.name}")


# ------------------------------------------------------------------------------- reports
def monthly_rows(metrics: Mapping[str, np.ndarray]) -> np.ndarray:
    """Day positions of month-end rows in a run's metrics (``month_end == 1``)."""
    return np.flatnonzero(np.asarray(metrics["month_end"]) > 0.5)


def economy_params_report(params: EconomyParams, population: Population) -> dict:
    """Parameters as JSON-friendly values: per-age tables keyed by age labels, per-borough
    tables by borough, the tax schedule as brackets, the stimulus described."""
    ages = population.category_labels("age")
    p = jax.tree.map(np.asarray, params)
    report: dict = {}
    for name in NUMERIC_ECONOMY_PARAMS:
        value = getattr(p, name)
        if name in ("willingness_baseline", "non_labour_income"):
            report[name] = {a: float(v) for a, v in zip(ages, value)}
        elif name in ("separation_logit", "hiring_logit"):
            report[name] = {b: float(v) for b, v in zip(BOROUGHS, value)}
        else:
            report[name] = value.tolist()
    report["monthly_layoff_probability_at_no_cases"] = {
        b: float(1 / (1 + np.exp(-v))) for b, v in zip(BOROUGHS, p.separation_logit)
    }
    report["monthly_hiring_probability_at_no_claims"] = {
        b: float(1 / (1 + np.exp(-v))) for b, v in zip(BOROUGHS, p.hiring_logit)
    }
    report["stimulus"] = None if params.stimulus is None else describe_stimulus(params.stimulus)
    return report


def describe_stimulus(stimulus: StimulusPayment) -> dict:
    limit = float(np.asarray(stimulus.max_earnings))
    return {
        "name": stimulus.name,
        "usd_per_eligible_adult_per_paid_month": float(np.asarray(stimulus.amount)),
        "paid_run_months": np.flatnonzero(np.asarray(stimulus.paid) > 0.5).tolist(),
        "max_monthly_earnings_usd": None if not np.isfinite(limit) else limit,
        "unemployed_only": bool(np.asarray(stimulus.unemployed_only) > 0.5),
    }


__all__ = [
    "BOROUGH_METRICS",
    "CITY_METRICS",
    "CoupledParams",
    "CoupledState",
    "EconomyError",
    "EconomyParams",
    "EconomyState",
    "LabourAttributes",
    "OCCUPATIONS",
    "StimulusPayment",
    "build_economy_world",
    "calendar_of_day",
    "check_stimulus",
    "civil_date",
    "coupled_initial_state",
    "coupled_model",
    "days_in_months",
    "default_economy_params",
    "describe_stimulus",
    "economy_model",
    "economy_params_report",
    "epoch_day",
    "initial_economy_state",
    "labour_attributes",
    "monthly_rows",
    "no_stimulus",
    "occupations_from_soc",
    "stimulus_payment",
    "validate_economy_params",
    "willingness_probability",
]
