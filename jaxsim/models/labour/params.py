"""The labour model's parameters: declared once, with cited defaults, bounds and units.

Tables keyed by label: ``by="age"`` (the world's age bands) and ``by="region"`` (the
world's regions, e.g. New York City's boroughs). Money is in US dollars (USD) per month at
the prices of the run's first month; probabilities are per month. Defaults describe New
York City in 2019-2020 (sources at each); :func:`default_params` resolves them for a world.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxsim.kernels import pytree as struct

from jaxsim import parameters
from jaxsim.errors import InputError
from jaxsim.parameters import param


class EconomyError(InputError):
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
#: month. Assumptions; a calibration fits them to observed unemployment per region.
DEFAULT_SEPARATION_LOGIT = float(np.log(0.015 / 0.985))
DEFAULT_HIRING_LOGIT = float(np.log(0.25 / 0.75))
DEFAULT_SEPARATION_CASE_SENSITIVITY = 0.3
DEFAULT_HIRING_CLAIMS_SENSITIVITY = -0.02
DEFAULT_QUIT_IF_UNWILLING = 0.2


# ------------------------------------------------------------------------------ pytrees
@struct.dataclass
class StimulusPayment:
    """A stimulus payment: ``amount`` USD to each eligible living adult at the end of each
    paid run month (an inflow from outside the economy, e.g. federal).

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


@parameters.params
class LabourParams:
    """What calibration and counterfactuals move; tables by the world's age codes ``[A]``
    and regions ``[R]``.

    Attributes:
        willingness_baseline: float32 ``[A]`` in (0, 1).
        willingness_case_sensitivity, willingness_price_sensitivity,
        willingness_savings_sensitivity: float32 scalars (log-odds per unit signal).
        willingness_alignment_scale, willingness_alignment_offset: float32 scalars ``a, b``:
            each agent's willingness probability ``p`` (from the heuristic or from a
            behaviour layer's answer) is used as ``sigmoid(a logit(p) + b)``
            (:func:`jaxsim.kernels.labour.aligned_willingness`; smooth, so a fit always has
            a gradient); 1 and 0 leave it as it is, bit for bit. ``a`` multiplies the
            log-odds (>= 0), ``b`` adds log-odds. Calibrating them maps a policy's answers
            onto the observed labour market (the alignment of LLM answers; the COVID
            model's ``isolation_alignment_*`` are a clipped linear map instead).
        separation_logit, hiring_logit: float32 ``[R]`` per region.
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

    willingness_baseline: jax.Array = param(DEFAULT_WILLINGNESS, by="age", bounds=(0.0, 1.0),
                                            units="probability of being willing to work in a month")
    willingness_case_sensitivity: jax.Array = param(DEFAULT_WILLINGNESS_CASE_SENSITIVITY, fit_bounds=(-5.0, 5.0),
                                                    units="log-odds per log1p(cases per 1,000 per month)")
    willingness_price_sensitivity: jax.Array = param(DEFAULT_WILLINGNESS_PRICE_SENSITIVITY, fit_bounds=(-10.0, 10.0),
                                                     units="log-odds per log(price level)")
    willingness_savings_sensitivity: jax.Array = param(DEFAULT_WILLINGNESS_SAVINGS_SENSITIVITY, fit_bounds=(-5.0, 5.0),
                                                       units="log-odds per log1p(savings in months of wages)")
    willingness_alignment_scale: jax.Array = param(1.0, bounds=(0.0, None), fit_bounds=(0.0, 3.0),
                                                   units="multiplier of the willingness log-odds")
    willingness_alignment_offset: jax.Array = param(0.0, fit_bounds=(-4.0, 4.0),
                                                    units="log-odds added to the willingness")
    separation_logit: jax.Array = param(DEFAULT_SEPARATION_LOGIT, by="region", fit_bounds=(-9.0, 0.0),
                                        units="log-odds of a layoff per month at no cases")
    hiring_logit: jax.Array = param(DEFAULT_HIRING_LOGIT, by="region", fit_bounds=(-6.0, 2.0),
                                    units="log-odds of a hire per month at no UI claims")
    separation_case_sensitivity: jax.Array = param(DEFAULT_SEPARATION_CASE_SENSITIVITY, fit_bounds=(-3.0, 3.0),
                                                   units="layoff log-odds per log1p(cases per 1,000 per month)")
    hiring_claims_sensitivity: jax.Array = param(DEFAULT_HIRING_CLAIMS_SENSITIVITY, fit_bounds=(-2.0, 2.0),
                                                 units="hiring log-odds per percentage point of UI claims")
    quit_if_unwilling: jax.Array = param(DEFAULT_QUIT_IF_UNWILLING, bounds=(0.0, 1.0),
                                         units="probability per month that an unwilling worker quits")
    tax_thresholds: jax.Array = param(DEFAULT_TAX_THRESHOLDS, bounds=(0.0, None), fit=False,
                                      units="USD per month (bracket lower edges)")
    tax_rates: jax.Array = param(DEFAULT_TAX_RATES, bounds=(0.0, 1.0), fit=False, units="marginal rate")
    ui_replacement: jax.Array = param(DEFAULT_UI_REPLACEMENT, bounds=(0.0, 1.0), units="share of the wage")
    ui_cap: jax.Array = param(DEFAULT_UI_CAP, bounds=(0.0, None), fit=False, units="USD per month")
    non_labour_income: jax.Array = param(DEFAULT_NON_LABOUR_INCOME, by="age", bounds=(0.0, None), fit=False,
                                         units="USD per month")
    subsistence: jax.Array = param(DEFAULT_SUBSISTENCE, bounds=(0.0, None), fit=False, units="USD per month")
    mpc: jax.Array = param(DEFAULT_MPC, bounds=(0.0, 1.0), units="share of income above subsistence spent")
    wealth_mpc: jax.Array = param(DEFAULT_WEALTH_MPC, bounds=(0.0, 1.0), units="share of savings spent per month")
    initial_savings_months: jax.Array = param(DEFAULT_INITIAL_SAVINGS_MONTHS, bounds=(0.0, None), fit=False,
                                              units="months of wage (or subsistence)")
    price_adjustment: jax.Array = param(DEFAULT_PRICE_ADJUSTMENT, bounds=(0.0, None), fit=False,
                                        units="log price change per log change of excess demand")
    max_monthly_price_change: jax.Array = param(DEFAULT_MAX_MONTHLY_PRICE_CHANGE, bounds=(0.0, None), fit=False,
                                                units="largest log price change per month")
    ascertainment: jax.Array = param(0.25, bounds=(0.0, 1.0), fit=False, units="reported share of symptom onsets")
    stimulus: Any = None


#: The numeric leaves of :class:`LabourParams` (all but ``stimulus``).
NUMERIC_PARAMS: tuple[str, ...] = tuple(parameters.specs(LabourParams))


def default_params(world, **values) -> LabourParams:
    """Labour parameters for ``world``: the declared defaults, with ``values`` (numbers,
    arrays, ``{age label: value}`` or ``{region label: value}`` tables) replacing them;
    validated (:func:`validate_params`)."""
    try:
        params = parameters.build(LabourParams, world, **values)
    except InputError as err:
        raise EconomyError(str(err)) from None
    validate_params(params, world.num_categories("age"), world.num_categories("region"))
    return params


def validate_params(params: LabourParams, num_ages: int | None = None, num_regions: int | None = None) -> None:
    """Raise :class:`EconomyError` naming the field and value when a parameter is unusable."""

    def arr(name):
        return np.asarray(getattr(params, name), np.float64)

    def fail(name, message):
        raise EconomyError(f"LabourParams.{name}: {message}")

    for name in NUMERIC_PARAMS:
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
    for name in ("willingness_alignment_scale", "willingness_alignment_offset"):
        if arr(name).shape != ():
            fail(name, f"must be one number (the same alignment for every agent), got shape {arr(name).shape}")
    ascertainment = float(arr("ascertainment"))
    if not 0 < ascertainment <= 1:
        fail("ascertainment", f"must lie in (0, 1], got {ascertainment}")
    thresholds, rates = arr("tax_thresholds"), arr("tax_rates")
    if thresholds.ndim != 1 or thresholds.size < 1 or thresholds.shape != rates.shape:
        fail("tax_thresholds", f"needs one lower edge per rate, got shapes {thresholds.shape} and {rates.shape}")
    if thresholds[0] != 0 or np.any(np.diff(thresholds) <= 0):
        fail("tax_thresholds", f"must start at 0 and increase, got {thresholds.tolist()}")
    if num_regions is not None:
        for name in ("separation_logit", "hiring_logit"):
            if arr(name).shape != (num_regions,):
                fail(name, f"needs one value per region ({num_regions}), got shape {arr(name).shape}")
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
            f"LabourParams.stimulus must be a StimulusPayment (labour.stimulus_payment(...)), got {type(stimulus).__name__}"
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
    "EconomyError", "LabourParams", "NUMERIC_PARAMS", "StimulusPayment", "check_stimulus", "default_params",
    "describe_stimulus", "no_stimulus", "stimulus_payment", "validate_params",
]
