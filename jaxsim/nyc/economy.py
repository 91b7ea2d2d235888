"""The COVID + labour model on New York City's five boroughs (host side): data windows,
the composed model's world, parameters and initial conditions, the paired stimulus
comparison and the unemployment plot.

:func:`economy_setup` is what ``scenarios/nyc_economy.py`` (and the studies built on it)
share: observed unemployment per borough (each borough's starting rate and the target),
UI claims (an input), the population's labour force and occupations, the epidemic's
setup from the case data (:func:`jaxsim.nyc.setup.covid_setup`), each borough's prior case
signal, and the labour model's world on top (regions = :data:`jaxsim.nyc.boroughs.BOROUGHS`).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from jaxsim import ensemble, interventions
from jaxsim.behaviour import Grouping
from jaxsim.coupling import Parts, compose
from jaxsim.engine import Model, World
from jaxsim.errors import InputError
from jaxsim.models import covid, labour
from jaxsim.nyc import boroughs
from jaxsim.nyc import cases as nyc_cases
from jaxsim.nyc import economy_data as data
from jaxsim.nyc.households import load_households
from jaxsim.nyc.setup import CaseWindow, covid_setup
from jaxsim.population import Population


def borough_case_signal(population: Population, start_date: dt.date) -> tuple[CaseWindow, np.ndarray]:
    """The case window of the population from the first week ending on or after
    ``start_date``, and each borough's reported cases per 1,000 residents over a month
    from its neighbourhoods' cases that week (the city's mean for boroughs without data;
    0 without any data)."""
    from jaxsim.nyc.setup import neighbourhoods_of

    areas = neighbourhoods_of(population)
    observed = nyc_cases.observed_cases(areas) if areas else None
    if observed is None:
        return CaseWindow(None), np.zeros(len(boroughs.BOROUGHS), np.float32)
    week_end = observed.week_end
    after = np.flatnonzero(np.asarray(week_end.date) >= start_date)
    if after.size == 0:
        raise InputError(
            f"--start-month {start_date:%Y-%m}: the case data for {list(observed.ntas)} ends with the "
            f"week of {week_end[-1]:%Y-%m-%d}"
        )
    start_index = int(after[0])
    households = load_households()
    census = float(households.loc[list(observed.ntas), "people"].sum())
    codes = [population.code("area", nta) for nta in observed.ntas]
    agents_observed = float(np.isin(population.attributes["area"], codes).sum())
    signal = np.full(len(boroughs.BOROUGHS), np.nan, np.float32)
    for b, name in enumerate(boroughs.BOROUGHS):
        ntas = [n for n in observed.ntas if boroughs.NTA_PREFIX_TO_BOROUGH.get(n[:2]) == name]
        if not ntas:
            continue
        one = nyc_cases.observed_cases(ntas)
        cases = one.cases[min(start_index, len(one.cases) - 1)]
        people = float(households.loc[ntas, "people"].sum())
        if np.isfinite(cases) and people > 0:
            signal[b] = cases * (30.4 / 7.0) / people * 1000.0
    fill = float(np.nanmean(signal)) if np.isfinite(signal).any() else 0.0
    window = CaseWindow(observed, start_index, census, agents_observed)
    return window, np.where(np.isfinite(signal), signal, fill).astype(np.float32)


@dataclass
class EconomySetup:
    """The composed COVID + labour run on NYC data.

    Attributes:
        model: ``compose({"covid": ..., "economy": ...})``.
        world, params: for the run (``params`` a :class:`jaxsim.coupling.Parts`).
        start, months, days: the first month, the number of months, the days they hold.
        observed_rate: float ``[months, 5]`` observed unemployment (fractions, NaN unknown).
        attributes: the labour force, occupations and wages.
        has_force: bool ``[5]`` boroughs with a labour force.
        prior_signal: float ``[5]`` the case signal before the first month.
        epidemic_source: where the epidemic's day 0 came from.
    """

    model: Model
    world: World
    params: Parts
    start: pd.Period
    months: int
    days: int
    observed_rate: np.ndarray
    attributes: labour.LabourAttributes
    has_force: np.ndarray
    prior_signal: np.ndarray
    epidemic_source: str

    @property
    def start_date(self) -> dt.date:
        return dt.date(self.start.year, self.start.month, 1)


def economy_setup(
    population: Population,
    start: pd.Period,
    months: int,
    *,
    seed: int = 0,
    ascertainment: float = nyc_cases.DEFAULT_ASCERTAINMENT,
    transmission_rate: float = covid.DEFAULT_TRANSMISSION_RATE,
    imported_infections: int = 1,
    stimulus: labour.StimulusPayment | None = None,
    grouping: Grouping | None = None,
    on_device: bool = True,
) -> EconomySetup:
    """The composed model, world, parameters and initial conditions for ``months`` calendar
    months from ``start`` on ``population`` (agents need a borough: ``county`` or NTA
    ``area``).

    Args:
        imported_infections: infections brought in from outside each day (a
            :func:`jaxsim.models.covid.seeding` intervention; 0 for none).
        stimulus: the payment (default one of nothing, so that runs with and without a
            payment share one compiled program).
        grouping: archetypes for willingness set by a behaviour layer (``None``: the
            heuristic); the world then holds a ``[months, G]`` willingness table.
    """
    months = int(months)
    start_date = dt.date(start.year, start.month, 1)
    days = labour.days_in_months(start_date, months)
    weeks = math.ceil(days / 7)
    unemployment = data.load_unemployment()
    observed_rate = unemployment.window(start, months)
    if not np.all(np.isfinite(observed_rate[0])):
        raise InputError(
            f"--start-month {start}: the unemployment data covers {unemployment.months[0]} to "
            f"{unemployment.months[-1]}; the first month's rate starts each borough"
        )
    claims_rate = data.load_ui_claims().claims_rate(unemployment, start, months)
    borough_of_agent = boroughs.borough_codes(population)
    attributes = labour.labour_attributes(population, borough_of_agent, seed=seed)
    has_force = np.bincount(borough_of_agent[attributes.labour_force], minlength=len(boroughs.BOROUGHS)) > 0
    window, prior_signal = borough_case_signal(population, start_date)
    epidemic = covid_setup(population, window, weeks, ascertainment=ascertainment,
                           transmission_rate=transmission_rate, on_device=on_device)
    covid_params = epidemic.params
    if imported_infections > 0:
        covid_params = covid_params.replace(interventions=interventions.combine(
            covid.seeding(imported_infections, start=0, name="imported_infections")
        ))
    work_groups = work_labels = table = None
    if grouping is not None:
        work_groups, work_labels = grouping.codes, grouping.names
        table = np.zeros((months, grouping.num_groups), np.float32)
    world = labour.build_world(
        epidemic.world, population, attributes, regions=boroughs.BOROUGHS, start=start_date,
        claims_rate=claims_rate, initial_unemployment=observed_rate[0].astype(np.float32),
        prior_case_signal=prior_signal, work_groups=work_groups, work_group_labels=work_labels,
        willingness=table,
    )
    economy_params = labour.default_params(
        world, ascertainment=ascertainment, stimulus=stimulus if stimulus is not None else labour.no_stimulus(months),
    )
    model = compose({
        "covid": covid.covid_model(),
        "economy": labour.labour_model("heuristic" if grouping is None else "inputs"),
    })
    return EconomySetup(model, world, Parts(covid=covid_params, economy=economy_params), start, months, days,
                        observed_rate, attributes, has_force, prior_signal, epidemic.initial_source)


def monthly(metrics, months: int) -> dict[str, np.ndarray]:
    """Month-end rows of a run's metrics: ``{name: [months, ...]}`` of the labour model's
    monthly metrics."""
    rows = labour.monthly_rows(metrics)
    if len(rows) != months:
        raise AssertionError(f"expected {months} month ends, found {len(rows)}")
    return {k: np.asarray(metrics[k])[rows] for k in labour.REGION_METRICS + labour.CITY_METRICS}


def fit_to_observed(simulated: np.ndarray, observed: np.ndarray, has_force: np.ndarray) -> dict | None:
    """Fit of simulated to observed rates over months 1.. (month 0 starts at the data)."""
    from jaxsim.calibration import heldout_metrics

    keep = np.isfinite(observed[1:]) & has_force[None, :]
    if not keep.any():
        return None
    return heldout_metrics(100 * simulated[1:][keep], 100 * observed[1:][keep]) | {
        "units": "percentage points", "points": int(keep.sum()),
    }


def stimulus_comparison(setup: EconomySetup, members: int, seed: int) -> dict:
    """Paired runs without (amount 0) and with the stimulus of ``setup.params`` on the same
    member keys (:func:`jaxsim.ensemble.cross`), compared with
    :func:`jaxsim.ensemble.compare` and, month by month, with
    :func:`jaxsim.ensemble.paired_difference`."""
    begin = time.perf_counter()
    params = setup.params
    stimulus = params.economy.stimulus
    baseline = params.replace(economy=params.economy.replace(stimulus=labour.no_stimulus(setup.months)))
    keys = ensemble.member_keys(seed + 1, members)
    batch, all_keys, labels = ensemble.cross([baseline, params], keys, set_labels=["baseline", "stimulus"])
    names = ["month_end", "city_unemployed", "city_labour_force", "city_consumption", "stimulus_paid"]
    result = ensemble.run_ensemble(setup.model, all_keys, batch, setup.world, setup.days, metric_names=names,
                                   members=labels)
    parts = result.split("set")
    compared = ensemble.compare(
        parts["baseline"], {"stimulus": parts["stimulus"]},
        outcomes={
            "extra_consumption_usd": ("city_consumption", -1),
            "extra_unemployed_person_months": ("city_unemployed", -1),
        },
    )
    rows = labour.monthly_rows({"month_end": parts["baseline"].metrics["month_end"][0]})
    by_month = []
    for m, row in enumerate(rows):
        def rate(part):
            return part.metrics["city_unemployed"][:, row] / np.maximum(part.metrics["city_labour_force"][:, row], 1.0)

        by_month.append({
            "run_month": m,
            "extra_unemployment_rate_pp": ensemble.paired_difference(
                100 * rate(parts["stimulus"]), 100 * rate(parts["baseline"])
            ),
            "extra_consumption_usd": ensemble.paired_difference(
                parts["stimulus"].metrics["city_consumption"][:, row], parts["baseline"].metrics["city_consumption"][:, row]
            ),
        })
    paid = parts["stimulus"].metrics["stimulus_paid"].sum(axis=(1, 2))
    return {
        "stimulus": labour.describe_stimulus(stimulus),
        "members": members,
        "method": "paired runs on the same member keys (common random numbers), jaxsim.ensemble.cross/compare; "
                  "differences are stimulus minus baseline",
        "stimulus_paid_usd_mean": float(paid.mean()),
        "differences": compared["differences"],
        "totals": compared["totals"],
        "by_month": by_month,
        "interval": compared["interval"],
        "compile_seconds": result.compile_seconds,
        "seconds": time.perf_counter() - begin,
    }


def month_dates(months: Sequence) -> np.ndarray | None:
    """The first days (``datetime64[D]``) of ``months`` (periods, ``"2020-03"`` strings or
    dates); ``None`` when they are not all months."""
    try:
        return pd.PeriodIndex([pd.Period(m, freq="M") for m in months]).to_timestamp().to_numpy().astype(
            "datetime64[D]")
    except (TypeError, ValueError):
        return None


def plot_unemployment(path, months: Sequence, simulated, observed, has_force, *, title, train_months=None,
                      expected=None):
    """One panel per borough: simulated vs observed unemployment (% of the labour force),
    by calendar month (each month's value at its first day; a month without observed data
    is a gap, not a zero); the legend and title in the sixth, empty panel. Returns the
    figure (saved to ``path`` and closed)."""
    from jaxsim.outputs import format_date_axis, pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
    dates = month_dates(months)
    x = np.arange(len(months)) if dates is None else dates
    simulated = np.asarray(simulated, np.float64)
    observed = np.asarray(observed, np.float64)
    for b, name in enumerate(boroughs.BOROUGHS):
        ax = axes.flat[b]
        if has_force[b]:
            ax.plot(x, 100 * simulated[:, b], marker="o", label="simulated (agents)")
            if expected is not None:
                ax.plot(x, 100 * np.asarray(expected, np.float64)[:, b], linestyle=":", label="expected flows (fit)")
        else:
            ax.text(0.5, 0.95, "no agents", transform=ax.transAxes, ha="center", va="top", color="grey")
        ax.plot(x, 100 * observed[:, b], color="black", marker="s", markersize=3, label="observed")
        if train_months is not None and 0 < train_months < len(months):
            split = x[train_months - 1] + (x[train_months] - x[train_months - 1]) / 2
            ax.axvline(split, color="grey", linestyle="--", linewidth=1, label="train | held out")
        ax.set_title(boroughs.BOROUGH_NAMES[name])
        ax.set_ylabel("unemployment (% of labour force)", fontsize=9)
    ax = axes.flat[5]
    ax.axis("off")
    handles, names = axes.flat[int(np.argmax(has_force))].get_legend_handles_labels()
    ax.legend(handles, names, loc="center")
    ax.set_title(title, fontsize=9)
    axes[0, 2].xaxis.set_tick_params(labelbottom=True)  # nothing below it shows the months
    for a in axes.flat[2:5]:
        if dates is None:
            step = max(1, len(months) // 6)
            a.set_xticks(x[::step])
            a.set_xticklabels([str(m) for m in months][::step], rotation=45, fontsize=8)
            a.set_xlabel("month of the run")
        else:
            format_date_axis(a, months=len(months))
            a.set_xlabel("month")
    fig.tight_layout()
    save_figure(fig, path)
    return fig


#: Options of the labour model's willingness layer for NYC archetypes (their borough from
#: ``county`` or ``area`` labels, its readable name).
WILLINGNESS_OPTIONS = {
    "region_of": boroughs.borough_of_labels,
    "region_names": tuple(boroughs.BOROUGH_NAMES[b] for b in boroughs.BOROUGHS),
    "economy_name": "New York City",
}

__all__ = [
    "EconomySetup",
    "WILLINGNESS_OPTIONS",
    "borough_case_signal",
    "economy_setup",
    "fit_to_observed",
    "month_dates",
    "monthly",
    "plot_unemployment",
    "stimulus_comparison",
]
