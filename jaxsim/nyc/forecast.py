"""Calibration problems for forecasting one NYC neighbourhood's weekly cases (host side).

:func:`case_calibration` builds, for one NTA, a start week and a split into fitted and
held-out weeks, the COVID model's calibration problem exactly as
``scenarios/calibrate_covid.py`` does with the case-trend isolation heuristic: observed
cases scaled to the agents (agents / census people when the population is smaller than
the NTA), day-0 shares and the prior case signal from the start week's reported cases,
reported cases = simulated onsets x ascertainment. The rolling-origin benchmark
(``benchmarks/bench_forecast.py``) builds one per origin on the same population, so every
fit after the first reuses the compiled programs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from jaxsim import calibration
from jaxsim.models import covid
from jaxsim.nyc import cases as nyc_cases
from jaxsim.nyc.households import census_people
from jaxsim.nyc.setup import CaseWindow, covid_setup, fit_window
from jaxsim.population import Population
from jaxsim.world import to_device


@dataclass
class CaseCalibration:
    """A case-forecasting problem and what scoring it needs.

    Attributes:
        problem: the calibration problem (weekly R(t) per week of the window).
        observed: ``[train + test]`` observed cases, scaled to the agents.
        history: ``[weeks]`` the scaled observed cases of every week with a count up to the
            last training week (what is known at the forecast origin).
        epiweeks: the window's epiweeks.
        case_scale: agents per census person (at most 1).
        initial_source: where day 0 came from.
    """

    problem: calibration.CalibrationProblem
    observed: np.ndarray
    history: np.ndarray
    epiweeks: list[int]
    case_scale: float
    initial_source: str

    @property
    def train(self) -> int:
        return self.problem.train_periods


def case_calibration(population: Population, nta: str, start_week: int, train_weeks: int, test_weeks: int, *,
                     frame: pd.DataFrame | None = None, ascertainment: float = nyc_cases.DEFAULT_ASCERTAINMENT,
                     estimator: str = "straight_through") -> CaseCalibration:
    """The calibration problem of ``nta``'s weekly cases: ``train_weeks`` fitted from
    ``start_week``, ``test_weeks`` held out after them, on ``population`` (agents of that
    NTA, e.g. :func:`jaxsim.nyc.synthesis.synthesize_nyc_population`).

    Raises:
        InputError: naming the NTA or week when the data does not cover the window.
    """
    frame = nyc_cases.load_weekly_cases() if frame is None else frame
    total = train_weeks + test_weeks
    observed_cases, start, _ = fit_window(nta, start_week, total, frame)
    people = census_people(nta)
    case_scale = min(1.0, population.size / people)
    window = slice(start, start + total)
    observed = observed_cases.cases[window].astype(np.float64) * case_scale
    known = observed_cases.cases[: start + train_weeks].astype(np.float64) * case_scale
    setup = covid_setup(population, CaseWindow(observed_cases, start, people, float(population.size)), total,
                        ascertainment=ascertainment, on_device=False)
    problem = calibration.CalibrationProblem(
        model=covid.covid_model(policy="heuristic"), world=to_device(setup.world), params=setup.params,
        observed=observed, train_periods=train_weeks,
        observation=calibration.Observation("new_cases", 7, scale=ascertainment), estimator=estimator,
    )
    return CaseCalibration(problem, observed, known[np.isfinite(known)],
                           [int(w) for w in observed_cases.epiweeks[window]], case_scale, setup.initial_source)


__all__ = ["CaseCalibration", "case_calibration"]
