"""Setting up runs on New York City data (host side): the observed-case window of a
population and the COVID model's world, parameters and initial conditions from it.

Shared by every NYC scenario, so that none of them repeats the census scaling or the
case window:

- :func:`case_window`: the observed weekly cases covering a population's neighbourhoods,
  the start week, the census people of those neighbourhoods and the share of them the
  population's agents stand for.
- :func:`covid_setup`: the COVID world (contacts, isolation groups, day-0 stages or the
  prior case signal), default parameters and day-0 shares from the start week's reported
  cases (:func:`jaxsim.nyc.cases.seeding_from_cases`), or from the population's
  ``disease_stages.csv`` when it has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from jaxsim.engine import World
from jaxsim.errors import InputError
from jaxsim.kernels.progression import INFECTED
from jaxsim.models import covid
from jaxsim.models.covid import CovidParams
from jaxsim.nyc import cases as nyc_cases
from jaxsim.nyc.households import load_households
from jaxsim.population import Population


def neighbourhoods_of(population: Population) -> list[str]:
    """NTA codes of the population's areas (labels of its ``area`` attribute)."""
    if "area" not in population.attributes or "area" not in population.labels:
        return []
    return list(population.labels["area"])


@dataclass(frozen=True)
class CaseWindow:
    """The observed weekly cases that cover a population, from a start week.

    Attributes:
        observed: the cases summed over the population's neighbourhoods with data, or
            ``None`` when no data covers it.
        start_index: the start week's position in ``observed``.
        census_people: census people of the neighbourhoods the data covers.
        agents_observed: the population's agents in those neighbourhoods.
    """

    observed: nyc_cases.ObservedCases | None
    start_index: int = 0
    census_people: float = 0.0
    agents_observed: float = 0.0

    @property
    def start_date(self) -> pd.Timestamp | None:
        """The first day (Sunday) of the start week."""
        if self.observed is None:
            return None
        return self.observed.week_end[self.start_index] - pd.Timedelta(days=6)

    @property
    def start_epiweek(self) -> int | None:
        return None if self.observed is None else int(self.observed.epiweeks[self.start_index])

    @property
    def agent_share(self) -> float:
        """Agents per census person of the observed neighbourhoods (1 for a synthetic
        population of whole NTAs)."""
        return self.agents_observed / self.census_people if self.census_people > 0 else 0.0

    def weekly_cases(self, weeks: int, *, offset: int = 0, scaled: bool = True) -> np.ndarray:
        """Observed cases of ``weeks`` weeks from the start (plus ``offset``), scaled to the
        agents that represent the neighbourhoods (``scaled``); shorter where the data ends."""
        if self.observed is None:
            return np.zeros(0)
        begin = self.start_index + int(offset)
        values = np.asarray(self.observed.cases[max(begin, 0): begin + int(weeks)], np.float64)
        return values * (self.agent_share if scaled else 1.0)

    def weekly_mobility(self, weeks: int, *, offset: int = 0) -> np.ndarray:
        """Mobility changes ``[weeks, 6]`` (percent) of the same weeks."""
        if self.observed is None:
            return np.zeros((0, len(nyc_cases.MOBILITY_COLUMNS)))
        begin = self.start_index + int(offset)
        return np.asarray(self.observed.mobility[max(begin, 0): begin + int(weeks)], np.float64)

    def epiweeks(self, weeks: int, *, offset: int = 0) -> list[int]:
        if self.observed is None:
            return []
        begin = self.start_index + int(offset)
        return [int(e) for e in self.observed.epiweeks[max(begin, 0): begin + int(weeks)]]

    def summary(self, weeks: int) -> dict | None:
        """JSON-friendly: NTAs, epiweeks and (scaled) weekly cases of the run's weeks."""
        if self.observed is None:
            return None
        return {
            "ntas": list(self.observed.ntas),
            "epiweek": self.epiweeks(weeks),
            "cases_week": self.weekly_cases(weeks).tolist(),
            "agents_per_census_person": self.agent_share,
        }


def case_window(population: Population, start_week: int | None = None, *,
                ntas: Sequence[str] | None = None) -> CaseWindow:
    """The case window of ``population`` (its ``area`` labels, or ``ntas``) from
    ``start_week`` (an epiweek such as 202047; default the first week with data).

    Raises:
        InputError: a start week not in the data, or a start week for a population that
            no case data covers (the message lists the neighbourhoods with data).
    """
    areas = list(ntas) if ntas is not None else neighbourhoods_of(population)
    observed = nyc_cases.observed_cases(areas) if areas else None
    if observed is None:
        if start_week:
            raise nyc_cases.CaseDataError(
                f"--start-week {start_week}: no case data covers this population's areas "
                f"(data covers {nyc_cases.available_ntas()})"
            )
        return CaseWindow(None)
    start_index = observed.week_index(start_week) if start_week else 0
    area = population.attributes["area"]
    codes = [population.code("area", nta) for nta in observed.ntas]
    agents_observed = float(np.isin(area, codes).sum())
    census = float(load_households().loc[list(observed.ntas), "people"].sum())
    return CaseWindow(observed, start_index, census, agents_observed)


def fit_window(nta: str, start_week: int, weeks: int, frame: pd.DataFrame | None = None):
    """The observed weekly cases of one NTA for a fit: ``(observed, start_index,
    previous_index)`` over ``weeks`` weeks from ``start_week``, every week with a count.
    ``previous_index`` is the week before the window (the network's first features), or
    the start week where the data starts at the window or that week has no count.

    Raises:
        InputError: naming the option (``--nta``, ``--start-week``, ``--train-weeks`` ...)
            when the NTA has no data, the start week is not in it, the window runs past
            its end or misses a week.
    """
    frame = nyc_cases.load_weekly_cases() if frame is None else frame
    available = nyc_cases.available_ntas(frame)
    if nta not in available:
        raise InputError(f"--nta {nta}: no case data for this NTA; the data covers {available}")
    observed = nyc_cases.observed_cases([nta], frame)
    try:
        start = observed.week_index(start_week)
    except nyc_cases.CaseDataError as err:
        raise InputError(f"--start-week {start_week}: {err}") from None
    left = len(observed.epiweeks) - start
    if weeks > left:
        raise InputError(
            f"{weeks} weeks (--train-weeks + --test-weeks) from epiweek {start_week} run past the end of the "
            f"data: {left} weeks are available ({start_week}..{int(observed.epiweeks[-1])})"
        )
    cases = observed.cases[start: start + weeks]
    missing = observed.epiweeks[start: start + weeks][~np.isfinite(cases)]
    if missing.size:
        raise InputError(
            f"{nta}: no case count for epiweek(s) {[int(w) for w in missing]} inside the window "
            f"{start_week}..{int(observed.epiweeks[start + weeks - 1])}"
        )
    previous = start - 1 if start > 0 and np.isfinite(observed.cases[start - 1]) else start
    return observed, start, previous


@dataclass(frozen=True)
class CovidSetup:
    """What a COVID run on NYC data needs besides the model and the random key.

    Attributes:
        world: for :func:`jaxsim.engine.run` (with the day-0 stages or the prior signal).
        params: default parameters over the run's weeks, day-0 shares from the cases.
        initial_source: where the initial conditions came from, for reports.
        window: the case window.
    """

    world: World
    params: CovidParams
    initial_source: str
    window: CaseWindow


def covid_setup(
    population: Population,
    window: CaseWindow,
    weeks: int,
    *,
    ascertainment: float = nyc_cases.DEFAULT_ASCERTAINMENT,
    transmission_rate: float | np.ndarray = covid.DEFAULT_TRANSMISSION_RATE,
    isolation_groups: str = "age",
    isolation_prob: np.ndarray | None = None,
    layer_scale: Mapping[str, np.ndarray] | None = None,
    on_device: bool = True,
    **params,
) -> CovidSetup:
    """World, default parameters (``weeks`` weekly rates) and initial conditions.

    Day 0 comes from the population's ``disease_stages.csv`` when it has one (the prior
    case signal then from its infected agents), else from the start week's reported cases
    over ``ascertainment`` per census person of the neighbourhoods (shares of exposed and
    infected agents, and the 4 weeks before as the prior signal). ``params`` override
    other defaults (:func:`jaxsim.models.covid.default_params`). ``on_device=False`` keeps
    the world on the host (check a run's memory, then :func:`jaxsim.world.to_device`).
    """
    stages = population.initial_states.get("disease_stage")
    seeding = nyc_cases.seeding_from_cases(
        window.observed, window.start_index, window.census_people,
        exposed_days=covid.DEFAULT_EXPOSED_DAYS, infected_days=covid.DEFAULT_INFECTED_DAYS,
        ascertainment=ascertainment,
    )
    if stages is None:
        prior = seeding.prior_daily_case_share * population.size
        source = seeding.source
    else:
        # The stage file's infected agents set the prior case signal: onsets per day.
        prior = float(np.sum(np.asarray(stages) == INFECTED)) / covid.DEFAULT_INFECTED_DAYS
        source = "disease_stages.csv"
    world = covid.build_world(
        population, isolation_groups=isolation_groups, isolation_prob=isolation_prob, layer_scale=layer_scale,
        initial_stages=stages, prior_daily_cases=prior, on_device=on_device,
    )
    values = dict(transmission_rate=transmission_rate, initial_exposed_share=seeding.exposed_share,
                  initial_infected_share=seeding.infected_share)
    values.update(params)
    return CovidSetup(world, covid.default_params(world, weeks, **values), source, window)


__all__ = ["CaseWindow", "CovidSetup", "case_window", "covid_setup", "fit_window", "neighbourhoods_of"]
