"""Setting up the COVID model for a population from observed case data (host side).

Shared by the scenario scripts: the world (device arrays), default parameters and the
initial conditions, from the population's ``disease_stages.csv`` when it has one, else
from the start week's reported cases (see :func:`jaxsim.nyc_cases.seeding_from_cases`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jaxsim import covid, nyc_cases
from jaxsim.covid import CovidParams
from jaxsim.engine import World
from jaxsim.population import INFECTED, Population


@dataclass(frozen=True)
class CovidSetup:
    """What a COVID run needs besides the model and the random key.

    Attributes:
        world, params: for :func:`jaxsim.engine.run` / :func:`jaxsim.engine.simulate`.
        stages: the population's initial stages, or ``None`` (initial shares in ``params``).
        prior_daily_cases: the isolation heuristic's case signal before day 0 (cases/day).
        initial_source: where the initial conditions came from, for reports.
    """

    world: World
    params: CovidParams
    stages: np.ndarray | None
    prior_daily_cases: float | np.ndarray
    initial_source: str


def covid_setup_from_cases(
    population: Population,
    observed: nyc_cases.ObservedCases | None,
    start_index: int,
    census_people: float,
    weeks: int,
    *,
    ascertainment: float = nyc_cases.DEFAULT_ASCERTAINMENT,
    transmission_rate: float | np.ndarray = covid.DEFAULT_TRANSMISSION_RATE,
    isolation_groups: str = "age",
    isolation_prob: np.ndarray | None = None,
) -> CovidSetup:
    """World, default parameters (``weeks`` weekly rates) and initial conditions.

    Args:
        observed, start_index: the case data covering the population (or ``None``) and
            the index of the start week in it.
        census_people: census people of the neighbourhoods the data covers (shares of
            exposed/infected agents are per person).
        isolation_groups, isolation_prob: as :func:`covid.build_world` (e.g. the
            ``"archetype"`` attribute and a ``[weeks, G]`` table for an archetype layer).
    """
    world = covid.build_world(population, isolation_groups=isolation_groups, isolation_prob=isolation_prob)
    seeding = nyc_cases.seeding_from_cases(
        observed, start_index, census_people,
        exposed_days=covid.DEFAULT_EXPOSED_DAYS, infected_days=covid.DEFAULT_INFECTED_DAYS,
        ascertainment=ascertainment,
    )
    params = covid.default_params(
        population, weeks,
        contact_normaliser=covid.default_contact_normaliser(world),
        transmission_rate=transmission_rate,
        isolation_groups=isolation_groups,
        initial_exposed_share=seeding.exposed_share,
        initial_infected_share=seeding.infected_share,
    )
    stages = population.disease_stages
    if stages is None:
        return CovidSetup(world, params, None, seeding.prior_daily_case_share * population.size, seeding.source)
    # The stage file's infected agents set the prior case signal: onsets per day.
    prior = float(np.sum(stages == INFECTED)) / covid.DEFAULT_INFECTED_DAYS
    return CovidSetup(world, params, stages, prior, "disease_stages.csv")
