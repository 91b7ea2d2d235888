#!/usr/bin/env python
"""The limits of agency: isolation behaviour from a heuristic, from LLM archetypes at several
granularities and from a language model asked per agent, compared on how well each
forecasts NYC neighbourhoods' COVID-19 cases and on what it costs.

    jaxsim agency_study [--mode cpu|city] [--ntas QN0103,BK1001] [--agents N]
                        [--granularities one,age,age+gender,age+gender+area]
                        [--per-agent-agents 30,90] [--start-week 202047]
                        [--train-weeks 4] [--test-weeks 2] [--steps 25] [--seeds 2] [--members 16]
                        [--behavior llm-local | --behavior llm --llm-url URL --llm-model NAME]
                        [--borough-agents N] [--no-unemployment]
                        [--llm-cache FILE] [--llm-replay] [--plan] [--out out/agency_study]
    jaxsim agency_study --published smollm2|qwen2.5-coder [--out DIR]

Question
--------
The reference experiment (Chopra et al., "On the limits of agency in agent-based models")
asks how much individual agency a population model needs: a cheap rule for everyone, one
language-model question per group of similar agents (an *archetype*), or one per agent.
More groups give more individual behaviour and cost more model calls; a model call per
agent does not scale to a city. This program measures the trade-off with jaxsim on the
NYC data shipped in the package: for each behaviour architecture, the accuracy of held-out
forecasts of weekly cases per neighbourhood, how the simulated isolation follows the
observed Google-mobility signal, the accuracy of forecasts of each borough's monthly
unemployment when the same architecture sets willingness to work, and the cost (behaviour
groups, model calls, seconds).

Methods
-------
Neighbourhoods and data. ``--ntas`` (NTA codes of the packaged weekly case file; default
in ``--mode cpu`` Astoria QN0103 and Bay Ridge BK1001, in ``--mode city`` all five with
data). Each neighbourhood is its own synthetic population
(:func:`jaxsim.nyc.synthesis.synthesize_nyc_population`), scaled down to ``--agents``
agents (cpu: 5,000) or whole (city), with its own contact network, its own day 0 from the
start week's cases and its own weekly R(t). Observed cases are multiplied by agents /
census people for the fit (the cases the agents stand for); forecasts are divided by the
same factor again, so every score is in the neighbourhood's reported cases. Weeks:
``--train-weeks`` from ``--start-week`` (202047) are fitted, the ``--test-weeks`` after
them are held out (cpu: 4 + 2, city: 4 + 4).

Architectures (rows of the study), every one on the same neighbourhoods and weeks:

- ``heuristic``: the COVID model's own case-trend isolation rule (per age band, inside the
  simulation); the weekly R(t) is fitted to the training weeks.
- ``llm: <granularity>`` for each of ``--granularities``: agents are grouped by the joint
  values of the attributes named (``one`` = a single group, every agent the same prompt;
  ``age``; ``age+gender``; ``age+gender+area``, ``area`` being the neighbourhood), across
  all the study's neighbourhoods. Once per simulated week each group is asked, by the
  behaviour layer (:class:`jaxsim.behaviour.BehaviourLayer`), the probability that a member
  stays home on a day this week. A group is told the reported cases of the neighbourhoods
  its members live in: a group split by ``area`` its own neighbourhood's cases and name, a
  group spanning several neighbourhoods their sum and "New York City" (so finer groups
  also see more local information). Cases quoted are at the neighbourhood's real size
  (simulated onsets x ascertainment / agent share). The answers are asked along one
  forward run of every neighbourhood in lockstep, week by week, with the weekly R(t) that
  the heuristic row fitted (so the case counts the model reads are of the right size),
  then held fixed while the weekly R(t) and each group's alignment ``p' = clip(a p + b)``
  (``isolation_alignment_scale``/``_offset``) are fitted jointly on the training weeks,
  as ``jaxsim calibrate_covid --behavior llm*`` does.
- ``llm: per-agent (N agents)`` for each of ``--per-agent-agents`` (cpu: 30 and 90;
  city: 250 and 500; totals over the neighbourhoods, shared equally): a small synthetic
  population in which every agent is asked about itself each week, from its own
  attributes (age band, gender, neighbourhood, household size, contacts outside the
  household) and its own situation (whether it or someone it lives with has symptoms).
  The prompts of a week go to the model as one batch (an OpenAI-compatible server's
  requests limited by ``--llm-concurrency``); identical prompts cost one call. Only the
  weekly R(t) is fitted (one alignment per agent would be more parameters than data).

Fits, forecasts and scores. Every fit is :func:`jaxsim.calibration.fit` (Adam, ``--steps``
steps of ``--seeds`` runs, straight-through gradients, Poisson loss, random-walk penalty
``--smoothing`` on log R(t)), from the same starting values for every architecture (the
model's default R(t), alignment 1 and 0). The held-out forecast is calibrate_covid's
default: ``--members`` runs, each member's held-out R(t) a mean-reverting log AR(1) path
from the last fitted week (:func:`jaxsim.forecasting.forecast_ensemble`), anchored to the
last two fitted weeks' level, with negative-binomial reporting noise whose dispersion is
estimated from the 8 weeks up to the last training week. Scores per neighbourhood on the
held-out weeks (:mod:`jaxsim.scoring`, :func:`jaxsim.calibration.heldout_metrics`): ND of
the ensemble mean, WIS (the Forecast Hub's 23 quantiles) and the share of weeks inside the
50% and 90% intervals; the baseline is last-value persistence (a point forecast: WIS =
MAE). A row's ND is the mean over neighbourhoods, its WIS the mean over every held-out
neighbourhood-week, ``relative_wis`` its WIS over persistence's.

Behaviour against mobility. For each row, ``min(4, --members)`` runs with the fitted
parameters give the share of agents isolating each week in each neighbourhood; it is
compared with the observed Google-mobility ``residential_change_week`` of the same
neighbourhood and week (in the packaged case file), pooled over neighbourhoods and weeks:
Pearson correlation, and the least-squares line ``residential = intercept + slope x
share`` with its R^2 (``pearson_r_within``: the same after removing each neighbourhood's
mean).

Costs. ``model_calls``: distinct requests the architecture needs (groups x
``--llm-samples`` per week, + retries of unreadable replies; identical prompts counted
once): the calls a cold cache makes. ``calls_this_run``: requests that reached the model
in this run (0 with a warm cache); ``cache_hits``. ``tokens_this_run``: prompt +
completion tokens the model reported for those requests (0 with a warm cache, empty when
the backend reports none, as in a replay; the published studies' answers were partly
recorded before tokens were counted). ``wall_seconds`` (the row's whole time), ``llm_seconds`` (asking the model,
cache look-ups included) and ``simulator_seconds`` (the rest: forward runs, fits,
forecasts, compilation included).

Unemployment (:mod:`jaxsim.scenarios.agency_unemployment`; ``--no-unemployment`` leaves
it out). The heuristic and each archetype row (not the per-agent rows) also set the
*willingness to work* of a five-borough population (``--borough-agents``; cpu 10,000,
city 200,000) in the composed COVID-19 + labour model: the labour model's heuristic, or
each archetype asked once a month (``area`` = the borough; calls = groups x samples a
month). One forward run per architecture (2020-08 .. 2021-12, its UI-claims input held at
the first month) gives the monthly willingness and case signals; at each origin month
(2021-01 .. 2021-08, 8 origins) the labour market and the willingness alignment
``sigmoid(a logit(w) + b)`` are fitted to the observed rates up to it (each archetype's
answer aligned, then averaged with the borough's share of the archetype) and each
borough's rate is forecast 4 months ahead (400 members), scored like the cases (ND, WIS
in percentage points, coverage) against last-value persistence. The architectures differ
only in the willingness they feed the same fit and forecast.

The best architecture (lowest held-out WIS) is then analysed three ways: retrospective
(its ensemble on the fitted weeks: ND and 90% band coverage, in-sample), counterfactual
(isolation compliance x ``--compliance``, 1.2 by default, over the whole window: paired
members on common random numbers, :func:`jaxsim.ensemble.run_ensemble` and
:func:`jaxsim.ensemble.compare`; reported cases averted across the neighbourhoods with the
90% interval of the mean) and prospective (its held-out forecast with its band).

Modes. ``--mode cpu`` (default) is sized for a 2-core CPU: about 1.5 minutes with a warm
LLM cache and compiled programs cached, 3 minutes with programs to compile
(``benchmarks/RESULTS.md``); a cold LLM cache adds the model calls (1,842 with the bundled
model, 0.5-2 s each on 2 cores). ``--mode city`` runs the five neighbourhoods with data whole
(281,346 agents), per-agent rows of 250 and 500 agents and the full fit and forecast
settings (60 steps x 4 seeds, 32 members, 4 + 4 weeks): meant for a GPU.
``--plan`` builds the populations and groupings, prints what would be run (groups and
model calls per week) and stops.

Reproducing without a model. Every run writes the model's answers it used to
``answers.jsonl`` (a text response cache); ``--llm-cache OUT/answers.jsonl --llm-replay``
with the same options runs the study again from them alone, bit for bit. Two published
studies ship with jaxsim (``jaxsim/scenarios/published/agency_study_<model>/``:
``config.toml``, ``answers.jsonl``, ``study.csv``); ``--published smollm2`` (or
``qwen2.5-coder``) replays one (its options, its answers; no model, no server) and
``benchmarks/bench_agency_study.py`` checks the table comes out equal.

Outputs (in ``--out``, default ``out/agency_study``; all or nothing): ``study.csv`` and
``study.parquet`` (one row per architecture), ``weekly.csv``/``.parquet`` (per
architecture, neighbourhood and epiweek: observed cases, forecast mean and 5-95% band,
simulated isolating share, residential mobility), ``study.png`` (accuracy against
behaviour groups and against model calls, and the mobility correlation), ``run.json``
(settings, every row with per-neighbourhood scores, fitted parameters and the LLM
report, the best architecture's three analyses, the unemployment half's per-origin scores
and willingness, the conclusion), ``unemployment.csv``/``.parquet`` (per architecture,
origin, method, borough and month ahead: observed rate, median and 5/25/75/95%
quantiles, percent), ``answers.jsonl`` and ``report.html``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from jaxsim import caches, outputs, progress
from jaxsim.errors import InputError
from jaxsim.llm import options as llm_options
from jaxsim.scenarios import agency_unemployment, arguments, command

#: Settings of each ``--mode`` that an option left unset takes.
MODES = {
    "cpu": dict(ntas=("QN0103", "BK1001"), agents=5000, per_agent=(30, 90), train=4, test=2, steps=25, seeds=2,
                members=16),
    "city": dict(ntas=None, agents=None, per_agent=(250, 500), train=4, test=4, steps=60, seeds=4, members=32),
}
#: Attributes an archetype granularity may combine ("one": a single group).
GRANULARITY_ATTRIBUTES = ("age", "gender", "area")
#: The forecast settings of calibrate_covid's defaults.
FORECAST = arguments.DEFAULT_FORECAST
REVERSION = 0.5
MIN_STEP_SD = 0.15
#: Fewest agents per neighbourhood of a per-agent row (fewer may have no contacts at all).
MIN_PER_AGENT = 3
#: Runs per row for the simulated isolating share (at most ``--members``).
MOBILITY_RUNS = 4
#: Index of ``residential_change_week`` in :data:`jaxsim.nyc.cases.MOBILITY_COLUMNS`.
RESIDENTIAL = "residential_change_week"
#: Where a group spanning several neighbourhoods lives, in its prompt.
CITY = "New York City"
LLM_FIT = ("transmission_rate", "isolation_alignment_offset", "isolation_alignment_scale")
RATE_FIT = ("transmission_rate",)
ARCHETYPE = "archetype"
#: Label of the worlds' isolation groups of the LLM rows (``"group 3"``; run.json names them).
GROUP_LABEL = "group"
#: Columns of study.csv holding scores (a replay must reproduce them exactly).
SCORE_COLUMNS = ("nd", "wis", "coverage_50", "coverage_90", "persistence_nd", "persistence_wis", "relative_nd",
                 "relative_wis", "train_nd", "mobility_pearson_r", "mobility_slope", "mobility_intercept",
                 "mobility_r2", "mean_isolating_share") + agency_unemployment.SCORE_COLUMNS


# ------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Architecture:
    """A row of the study: ``kind`` is ``heuristic``, ``archetypes`` or ``per-agent``."""

    name: str
    kind: str
    attributes: tuple[str, ...] = ()
    agents: int | None = None  # per-agent rows: agents over all neighbourhoods


@dataclass(frozen=True)
class Settings:
    mode: str
    ntas: tuple[str, ...]
    agents: int | None
    granularities: tuple[tuple[str, ...], ...]
    per_agent: tuple[int, ...]
    start_week: int
    train: int
    test: int
    steps: int
    seeds: int
    members: int
    learning_rate: float
    smoothing: float
    compliance: float
    ascertainment: float
    seed: int
    samples: int
    unemployment: agency_unemployment.UnemploymentSettings | None = None

    @property
    def weeks(self) -> int:
        return self.train + self.test

    @property
    def days(self) -> int:
        return 7 * self.weeks

    def architectures(self) -> list[Architecture]:
        rows = [Architecture("heuristic", "heuristic")]
        for attributes in self.granularities:
            label = "one group" if attributes == ("everyone",) else "+".join(attributes)
            rows.append(Architecture(f"llm: {label}", "archetypes", attributes))
        for n in self.per_agent:
            rows.append(Architecture(f"llm: per-agent ({n} agent{'' if n == 1 else 's'})", "per-agent",
                                     ("age", "gender", "agent"), n))
        return rows


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{flag} {text!r}: give whole numbers separated by commas") from None
    return values


def parse_granularities(text: str) -> tuple[tuple[str, ...], ...]:
    """``"one,age,age+gender"`` -> ``(("everyone",), ("age",), ("age", "gender"))``;
    :class:`InputError` naming the flag and the item for anything else."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise InputError("--granularities: name at least one, e.g. one,age,age+gender,age+gender+area")
    out = []
    for item in items:
        if item == "one":
            out.append(("everyone",))
            continue
        parts = tuple(p.strip() for p in item.split("+"))
        bad = [p for p in parts if p not in GRANULARITY_ATTRIBUTES]
        if bad or len(set(parts)) != len(parts):
            raise InputError(f"--granularities {text!r}: {item!r} is not 'one' or attributes from "
                             f"{'+'.join(GRANULARITY_ATTRIBUTES)} joined by '+', each once")
        out.append(parts)
    if len(set(out)) != len(out):
        raise InputError(f"--granularities {text!r}: a granularity is named twice")
    return tuple(out)


def check_settings(args) -> Settings:
    """The study's settings: ``--mode``'s defaults where an option is unset; one-line
    :class:`InputError` naming the option for anything out of range."""
    from jaxsim.nyc import cases as nyc_cases

    if args.behavior == "heuristic":
        raise InputError("--behavior heuristic: the study compares the heuristic with LLM behaviour; use "
                         "--behavior llm-local (default) or --behavior llm --llm-url URL --llm-model NAME")
    if args.archetypes != "age,gender":
        raise InputError("--archetypes does not apply to agency_study: its archetype groupings are "
                         "--granularities (e.g. one,age,age+gender,age+gender+area)")
    llm_options.check_llm_arguments(args)
    mode = MODES[args.mode]
    available = nyc_cases.available_ntas()
    if args.ntas:
        ntas = tuple(n.strip() for n in args.ntas.split(",") if n.strip())
    else:
        ntas = tuple(mode["ntas"] or available)
    unknown = [n for n in ntas if n not in available]
    if not ntas or unknown:
        raise InputError(f"--ntas {args.ntas!r}: {'no NTA named' if not ntas else f'no case data for {unknown}'}; "
                         f"the data covers {','.join(available)}")
    if len(set(ntas)) != len(ntas):
        raise InputError(f"--ntas {args.ntas!r}: an NTA is named twice")
    agents = args.agents if args.agents is not None else mode["agents"]
    if agents is not None and agents < 20:
        raise InputError(f"--agents must be >= 20 per neighbourhood, got {agents}")
    if args.per_agent_agents is None:
        per_agent = tuple(mode["per_agent"])
    elif args.per_agent_agents.strip().lower() in ("0", "none", ""):
        per_agent = ()
    else:
        per_agent = _ints(args.per_agent_agents, "--per-agent-agents")
    for n in per_agent:
        if n < MIN_PER_AGENT * len(ntas):
            raise InputError(f"--per-agent-agents {args.per_agent_agents!r}: {n} agents cannot be shared by the "
                             f"{len(ntas)} neighbourhood(s) (at least {MIN_PER_AGENT} each, to have contacts)")
    if len(set(per_agent)) != len(per_agent):
        raise InputError(f"--per-agent-agents {args.per_agent_agents!r}: a size is named twice")
    settings = Settings(
        mode=args.mode, ntas=ntas, agents=agents, granularities=parse_granularities(args.granularities),
        per_agent=tuple(sorted(per_agent)), start_week=args.start_week,
        train=args.train_weeks if args.train_weeks is not None else mode["train"],
        test=args.test_weeks if args.test_weeks is not None else mode["test"],
        steps=args.steps if args.steps is not None else mode["steps"],
        seeds=args.seeds if args.seeds is not None else mode["seeds"],
        members=args.members if args.members is not None else mode["members"],
        learning_rate=args.learning_rate, smoothing=args.smoothing, compliance=args.compliance,
        ascertainment=args.ascertainment, seed=args.seed, samples=args.llm_samples,
        unemployment=agency_unemployment.unemployment_settings(
            args.mode, getattr(args, "borough_agents", None), seed=args.seed, ascertainment=args.ascertainment,
        ) if getattr(args, "unemployment", True) else None,
    )
    for flag, value, low in (("--train-weeks", settings.train, 2), ("--test-weeks", settings.test, 1),
                             ("--steps", settings.steps, 1), ("--seeds", settings.seeds, 1),
                             ("--members", settings.members, 2)):
        if value < low:
            raise InputError(f"{flag} must be >= {low}, got {value}")
    return settings  # learning rate, smoothing, compliance, ascertainment: arguments.check_agency_study


# --------------------------------------------------------------------------------- sites
@dataclass
class Site:
    """One neighbourhood's population and observed weeks."""

    nta: str
    name: str  # "Astoria, Queens"
    population: object
    observed_cases: object  # jaxsim.nyc.cases.ObservedCases of this NTA
    start: int
    people: float
    weeks: int
    train: int

    @property
    def n(self) -> int:
        return int(self.population.size)

    @property
    def case_scale(self) -> float:
        """Agents per census person (at most 1)."""
        return min(1.0, self.n / self.people)

    @property
    def window(self) -> slice:
        return slice(self.start, self.start + self.weeks)

    @property
    def reported(self) -> np.ndarray:
        """``[weeks]`` the neighbourhood's reported cases."""
        return self.observed_cases.cases[self.window].astype(np.float64)

    @property
    def observed(self) -> np.ndarray:
        """``[weeks]`` reported cases scaled to the agents (what the fit sees)."""
        return self.reported * self.case_scale

    @property
    def history(self) -> np.ndarray:
        """Scaled cases of every week with a count up to the last training week."""
        known = self.observed_cases.cases[: self.start + self.train].astype(np.float64) * self.case_scale
        return known[np.isfinite(known)]

    @property
    def epiweeks(self) -> list[int]:
        return [int(w) for w in self.observed_cases.epiweeks[self.window]]

    @property
    def residential(self) -> np.ndarray:
        from jaxsim.nyc.cases import MOBILITY_COLUMNS

        return self.observed_cases.mobility[self.window, MOBILITY_COLUMNS.index(RESIDENTIAL)].astype(np.float64)

    @property
    def short_name(self) -> str:
        return self.name.split(",")[0]


def build_sites(settings: Settings, frame, total_agents: int | None = None) -> list[Site]:
    """One :class:`Site` per NTA: ``settings.agents`` agents each (whole NTAs when ``None``),
    or ``total_agents`` shared equally (the first NTAs get the remainder; a per-agent row)."""
    from jaxsim.nyc import cases as nyc_cases
    from jaxsim.nyc import synthesis
    from jaxsim.nyc.households import census_people
    from jaxsim.nyc.setup import fit_window

    names = nyc_cases.neighbourhood_names(settings.ntas, frame)
    sites = []
    for i, nta in enumerate(settings.ntas):
        observed, start, _ = fit_window(nta, settings.start_week, settings.weeks, frame)
        people = census_people(nta)
        agents = settings.agents
        if total_agents is not None:
            agents = total_agents // len(settings.ntas) + (1 if i < total_agents % len(settings.ntas) else 0)
        if agents is not None and agents > people:
            flag = "--agents" if total_agents is None else f"--per-agent-agents {total_agents}:"
            raise InputError(f"{flag} {agents} agents in {nta}, which has {int(people):,} people; ask for at most "
                             "that" + (" (or --mode city for whole neighbourhoods)" if total_agents is None else ""))
        population = synthesis.synthesize_nyc_population([nta], seed=settings.seed, max_agents=agents)
        if population.num_contacts == 0:
            flag = "--agents" if total_agents is None else f"--per-agent-agents {total_agents}:"
            raise InputError(f"{flag} the {population.size} synthetic agents of {nta} have no contacts: ask for more")
        sites.append(Site(nta, names[nta], population, observed, start, people, settings.weeks, settings.train))
    return sites


# ----------------------------------------------------------------------------- groupings
def union_population(sites: list[Site]):
    """The study's agents as one attribute table (no contacts), for grouping: ``everyone``
    (one group), ``age``, ``gender``, ``area`` (the site's NTA) and ``agent`` (its index in
    the union; site after site)."""
    from jaxsim.population import Population

    attributes, labels = {}, {}
    for name in ("age", "gender"):
        first = list(sites[0].population.labels[name])
        codes = []
        for site in sites:
            own = list(site.population.labels[name])
            index = np.array([first.index(label) if label in first else -1 for label in own])
            if np.any(index < 0):
                raise InputError(f"{site.nta}: {name} labels {own} differ from {sites[0].nta}'s {first}")
            codes.append(index[site.population.attributes[name]])
        attributes[name], labels[name] = np.concatenate(codes).astype(np.int32), first
    n = sum(site.n for site in sites)
    attributes["everyone"], labels["everyone"] = np.zeros(n, np.int32), ["everyone"]
    attributes["area"] = np.concatenate([np.full(site.n, k, np.int32) for k, site in enumerate(sites)])
    labels["area"] = [site.nta for site in sites]
    attributes["agent"], labels["agent"] = np.arange(n, dtype=np.int32), [str(i) for i in range(n)]
    return Population(attributes=attributes, labels=labels)


def offsets(sites: list[Site]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([site.n for site in sites])])


@dataclass
class People:
    """Per-agent facts of a per-agent row's agents (union order): neighbourhood, household
    size, contacts outside the household, and the site-local household ids."""

    site: np.ndarray
    household_size: np.ndarray
    contacts: np.ndarray
    households: list[np.ndarray]

    @staticmethod
    def of(sites: list[Site]) -> "People":
        site, size, contacts, households = [], [], [], []
        for k, s in enumerate(sites):
            pop = s.population
            household = pop.attributes["household"].astype(np.int64)
            _, inverse, counts = np.unique(household, return_inverse=True, return_counts=True)
            degree = np.zeros(pop.size, np.int64)
            for layer, edges in pop.networks.items():
                if layer != "household":
                    degree += np.bincount(edges.u, minlength=pop.size) + np.bincount(edges.v, minlength=pop.size)
            site.append(np.full(pop.size, k))
            size.append(counts[inverse.reshape(-1)])
            contacts.append(degree)
            households.append(inverse.reshape(-1))
        return People(np.concatenate(site), np.concatenate(size), np.concatenate(contacts), households)

    def health(self, states, sites: list[Site]) -> np.ndarray:
        """int ``[N]``: 2 when the agent has symptoms (stage I), 1 when someone it lives
        with has, else 0."""
        from jaxsim.models.covid import INFECTED

        out = []
        for state, household, site in zip(states, self.households, sites):
            sick = np.asarray(state.stage)[: site.n] == INFECTED
            home = np.bincount(household, weights=sick.astype(np.float64)) > 0
            out.append(np.where(sick, 2, np.where(home[household], 1, 0)))
        return np.concatenate(out)


# ------------------------------------------------------------------------------- prompts
_QUESTION = (
    "This week {cases_this_week} people in {counted_area} were reported with COVID-19, {cases_change} the "
    "average of the last four weeks. It is week {weeks_since_start} since we started watching. What is the "
    "probability that on a given day this week you stay home and isolate instead of going out? Answer with "
    "the JSON object only."
)
ARCHETYPE_FIELDS = ("cases_this_week", "cases_four_week_average", "cases_change", "weeks_since_start", "home",
                    "counted_area")
PERSON_FIELDS = ARCHETYPE_FIELDS + ("household_phrase", "contacts_phrase", "health_phrase")
_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _system() -> str:
    from jaxsim.models import covid

    return covid.isolation_template(()).system  # the COVID model's own system message


def archetype_template(attributes):
    """The question of an archetype: who it is (the phrases of its age and gender, when
    grouped by them), where it lives and the cases of its neighbourhoods."""
    from jaxsim.behaviour import PromptTemplate

    described = [f"{{{a}_phrase}}" for a in ("age", "gender") if a in set(attributes)]
    who = f"You are {', '.join(described)}, living in {{home}}. " if described else "You live in {home}. "
    return PromptTemplate(_system(), who + _QUESTION)


def person_template(attributes=()):
    """The question of one agent: its own attributes and situation."""
    from jaxsim.behaviour import PromptTemplate

    return PromptTemplate(
        _system(),
        "You are {age_phrase}, {gender_phrase}, living in {home} {household_phrase}. On a usual day you meet "
        "{contacts_phrase} outside your home. {health_phrase} " + _QUESTION,
    )


def household_phrase(size: int) -> str:
    if size <= 1:
        return "alone"
    others = size - 1
    words = _NUMBER_WORDS[others] if others < len(_NUMBER_WORDS) else "many"
    return f"with {words} other {'person' if others == 1 else 'people'}"


def contacts_phrase(degree: int) -> str:
    if degree <= 0:
        return "nobody"
    if degree <= 2:
        return "one or two people"
    if degree <= 5:
        return "a few people"
    if degree <= 10:
        return "several people"
    return "many people"


HEALTH_PHRASES = ("Nobody you live with is ill.", "Someone you live with has COVID-19 symptoms.",
                  "You have COVID-19 symptoms.")


@dataclass
class StudyView:
    """What the study's policy reads at a refresh: every neighbourhood's state."""

    states: list
    sites: list[Site]
    people: People | None = None


@dataclass(frozen=True)
class StudySignals:
    """The week's signals of every neighbourhood (:class:`jaxsim.behaviour.PolicyInput`'s
    ``signals`` object): onsets over the 7 days before the refresh and their 4-week mean
    (simulated, per site), the factor turning onsets into the neighbourhood's reported
    cases, names, and per-agent facts for per-agent rows."""

    week: int
    onsets: np.ndarray
    averages: np.ndarray
    to_reported: np.ndarray
    names: tuple[str, ...]
    short_names: tuple[str, ...]
    site_of_area: dict
    people: People | None = None
    health: np.ndarray | None = None

    def scope(self, labels) -> int:
        """The site a group's signal comes from (-1: every site)."""
        if "agent" in labels and self.people is not None:
            return int(self.people.site[int(labels["agent"])])
        if "area" in labels:
            return int(self.site_of_area[labels["area"]])
        return -1

    def reported(self, scope: int) -> tuple[float, float]:
        cases, average = self.onsets * self.to_reported, self.averages * self.to_reported
        if scope < 0:
            return float(cases.sum()), float(average.sum())
        return float(cases[scope]), float(average[scope])

    def values(self, labels) -> dict:
        from jaxsim.models.covid import WeeklySignals

        scope = self.scope(labels)
        cases, average = self.reported(scope)
        if scope < 0:
            home = CITY
            counted = " and ".join([", ".join(self.short_names[:-1]), self.short_names[-1]] if len(self.short_names) > 1
                                   else list(self.short_names))
        else:
            home, counted = self.names[scope], "your neighbourhood"
        out = {
            "cases_this_week": int(round(cases)),
            "cases_four_week_average": int(round(average)),
            "cases_change": WeeklySignals(self.week, cases, average, 1.0).change_phrase(),
            "weeks_since_start": self.week,
            "home": home,
            "counted_area": counted,
        }
        if "agent" in labels and self.people is not None:
            i = int(labels["agent"])
            out |= {
                "household_phrase": household_phrase(int(self.people.household_size[i])),
                "contacts_phrase": contacts_phrase(int(self.people.contacts[i])),
                "health_phrase": HEALTH_PHRASES[0 if self.health is None else int(self.health[i])],
            }
        return out

    def record(self) -> dict:
        cases = self.onsets * self.to_reported
        return {"week": self.week, "reported_cases": dict(zip(self.short_names, [round(float(c), 2) for c in cases]))}


def _signals(t, view: StudyView, params, world, options) -> StudySignals:
    from jaxsim.models.covid import WeeklySignals

    onsets, averages = [], []
    for state in view.states:
        signal = WeeklySignals.from_case_ring(np.asarray(state.daily_cases), int(t), 1.0)
        onsets.append(signal.onsets_this_week)
        averages.append(signal.onsets_four_week_average)
    ascertainment = float(options.get("ascertainment", arguments.DEFAULT_ASCERTAINMENT))
    return StudySignals(
        week=int(t) // 7, onsets=np.asarray(onsets), averages=np.asarray(averages),
        to_reported=np.array([ascertainment / site.case_scale for site in view.sites]),
        names=tuple(site.name for site in view.sites), short_names=tuple(site.short_name for site in view.sites),
        site_of_area={site.nta: k for k, site in enumerate(view.sites)}, people=view.people,
        health=None if view.people is None else view.people.health(view.states, view.sites),
    )


def _prior(signals: StudySignals, view, params, world, grouping, options) -> np.ndarray:
    """What the heuristic isolation rule would set for each group under its own signal."""
    from jaxsim.models import covid

    cached = options.setdefault("_prior", {})
    if id(grouping) not in cached:
        scopes = np.array([signals.scope(labels) for labels in grouping.labels])
        cached[id(grouping)] = (covid.heuristic_prior(grouping, covid.DEFAULT_ISOLATION_BASELINE,
                                                      covid.DEFAULT_ISOLATION_RESPONSE), scopes)
    prior, scopes = cached[id(grouping)]
    out = np.zeros(grouping.num_groups, np.float64)
    for scope in np.unique(scopes):
        onsets = signals.onsets.sum() if scope < 0 else signals.onsets[scope]
        average = signals.averages.sum() if scope < 0 else signals.averages[scope]
        values = np.asarray(prior(covid.WeeklySignals(signals.week, float(onsets), float(average))))
        out[scopes == scope] = values[scopes == scope]
    return out


def _check_options(options) -> None:
    from jaxsim.behaviour import ArchetypeError

    value = options.get("ascertainment", arguments.DEFAULT_ASCERTAINMENT)
    if not 0 < float(value) <= 1:
        raise ArchetypeError(f"ascertainment must lie in (0, 1], got {value!r}")


def study_policy(per_agent: bool):
    """The isolation question of the study's layer (the COVID model's ``isolation_prob``
    input, one column per group, weekly), reading every neighbourhood's signals."""
    from jaxsim.behaviour import PolicyInput

    return PolicyInput(
        name="isolation_prob", groups="isolation_group",
        question="probability that a member stays home and isolates on a day this week",
        signal_fields=PERSON_FIELDS if per_agent else ARCHETYPE_FIELDS,
        template=person_template if per_agent else archetype_template,
        signals=_signals, prior=_prior, period=lambda t, world: int(t) // 7, chunk_days=7, period_name="week",
        check_options=_check_options,
    )


class CallCounter:
    """The study's cached backend as one row sees it: counts the distinct requests the row
    asks (its model calls on a cold cache; identical requests in a batch once) and the
    calls and cache hits of the row alone."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.requests = 0
        self._calls, self._hits = backend.llm_calls, backend.cache_hits
        self._tokens = getattr(backend, "tokens", None)

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def model(self) -> str:
        return self.backend.model

    @property
    def llm_calls(self) -> int:
        return self.backend.llm_calls - self._calls

    @property
    def cache_hits(self) -> int:
        return self.backend.cache_hits - self._hits

    @property
    def tokens(self) -> int | None:
        """Tokens the model reported for this row's calls in this run (0 with a warm cache;
        ``None`` when the backend reports none)."""
        now = getattr(self.backend, "tokens", None)
        return None if now is None or self._tokens is None else now - self._tokens

    def cached_values(self, keys, read):
        pairs = self.backend.cached_values(keys, read)
        if pairs is not None:  # else the caller asks through chat, which counts them
            self.requests += len(set(keys))
        return pairs

    def chat(self, requests):
        from jaxsim.llm.cache import cache_key

        self.requests += len({cache_key(self.name, self.model, r) for r in requests})
        return self.backend.chat(requests)


# ------------------------------------------------------------------------- the pipeline
@dataclass
class SiteResult:
    """One architecture in one neighbourhood."""

    site: Site
    model: object
    world: object
    fit: object
    members: np.ndarray  # [M, weeks] forecast ensemble, neighbourhood's reported cases
    scores: dict
    persistence: dict
    train_scores: dict
    isolating: np.ndarray  # [weeks] mean share of agents isolating


@dataclass
class RowResult:
    arch: Architecture
    groups: int
    agents: int
    sites: list[SiteResult]
    llm: dict | None = None
    group_names: list[str] | None = None  # LLM rows: the name of each isolation group
    model_calls: int = 0
    calls_this_run: int = 0
    cache_hits: int = 0
    tokens: int | None = 0  # this run's, as the model reported them (None: not reported)
    llm_seconds: float = 0.0
    wall_seconds: float = 0.0
    summary: dict = field(default_factory=dict)
    mobility: dict = field(default_factory=dict)


def _on_step(label: str, steps: int):
    every = max(1, steps // 3)

    def on_step(step, value):
        if step % every == 0 or step == steps - 1:
            print(f"  {label}: step {step + 1}/{steps}, loss {value:.4f}", flush=True)

    return on_step


def fit_and_score(label: str, site: Site, model, world, params, names, settings: Settings) -> SiteResult:
    """Fit ``names`` to the site's training weeks, forecast the held-out weeks, score
    them and measure the isolating share of the fitted runs."""
    import jax

    from jaxsim import calibration, engine, forecasting, memory, scoring
    from jaxsim.transfer import tree_to_device
    from jaxsim.world import to_device

    memory.check_fits(memory.run_bytes(model, params, world, settings.days, differentiable=True),
                      f"fitting {site.n:,} agents of {site.nta}")
    world = to_device(world)
    problem = calibration.CalibrationProblem(
        model=model, world=world, params=params, observed=site.observed, train_periods=settings.train,
        observation=calibration.Observation("new_cases", 7, scale=settings.ascertainment),
        estimator="straight_through",
    )
    progress.now(f"compiling the fit of {label}")
    fit = calibration.fit(problem, names, steps=settings.steps, learning_rate=settings.learning_rate,
                          seeds_per_step=settings.seeds, loss="poisson", seed=settings.seed,
                          on_step=_on_step(label, settings.steps), smoothing=settings.smoothing)
    if fit.stopped != "completed":
        print(f"warning: {label}: the fit {fit.stopped}", file=sys.stderr)
    progress.now(f"forecasting {label}")
    history = site.history
    dispersion = forecasting.dispersion_from_history(history) if history.size >= 3 else None
    scaled = forecasting.forecast_ensemble(
        problem, fit.params, settings.members, parameter_forecast=FORECAST, reversion=REVERSION,
        dispersion=dispersion, anchor=site.observed, min_step_sd=MIN_STEP_SD, seed=settings.seed)
    members = scaled / site.case_scale
    reported, train = site.reported, settings.train
    scores = (calibration.heldout_metrics(members.mean(axis=0)[train:], reported[train:])
              | scoring.forecast_scores(members[:, train:], reported[train:]))
    persistence = calibration.persistence_forecast(reported[:train], settings.test)
    persistence_scores = calibration.heldout_metrics(persistence, reported[train:]) | {
        "wis": float(np.mean(scoring.weighted_interval_score(persistence[None], reported[train:])))}
    train_scores = calibration.heldout_metrics(members.mean(axis=0)[:train], reported[:train]) | {
        "coverage_90": scoring.coverage(members[:, :train], reported[:train], 0.9)}

    # The simulated isolating share with the fitted parameters (held-out weeks: the last rate).
    progress.now(f"isolating share of {label}")
    fitted = tree_to_device(calibration.extend_last_week(fit.params, train))
    shares = []
    for r in range(min(MOBILITY_RUNS, settings.members)):
        init_key, run_key = jax.random.split(jax.random.key(settings.seed + 500 + r))
        state = engine.initial_state(model, init_key, fitted, world)
        result = engine.run(model, run_key, state, fitted, world, settings.days, progress=False, chunk_days=7,
                            before_chunk=lambda t, s, w: w, donate=True)
        shares.append(result.metrics["isolating"].reshape(settings.weeks, 7).mean(axis=1) / site.n)
    return SiteResult(site, model, world, fit, members, scores, persistence_scores, train_scores,
                      np.mean(shares, axis=0))


def site_world(site: Site, settings: Settings, codes=None, labels=None):
    """The COVID world and default parameters of a site: heuristic isolation by age band,
    or (``codes``, ``labels``) the study's groups as isolation groups with an input table."""
    from jaxsim.nyc.setup import CaseWindow, covid_setup

    population, groups, table = site.population, "age", None
    if codes is not None:
        population = dataclasses.replace(
            population, attributes={**population.attributes, ARCHETYPE: np.asarray(codes, np.int32)},
            labels={**population.labels, ARCHETYPE: list(labels)})
        groups, table = ARCHETYPE, np.zeros((settings.weeks, len(labels)), np.float32)
    setup = covid_setup(population, CaseWindow(site.observed_cases, site.start, site.people, float(site.n)),
                        settings.weeks, ascertainment=settings.ascertainment, isolation_groups=groups,
                        isolation_prob=table, on_device=False)
    return setup.world, setup.params


def ask_along_run(layer, sites: list[Site], worlds: list, params: list, settings: Settings, label: str,
                  people: People | None, columns: int) -> tuple[np.ndarray, float]:
    """Every site's run in lockstep, week by week; at the start of each week the layer asks
    its groups (signals from every site) and the answers reach every site's table.
    Returns the ``[weeks, columns]`` table and the seconds spent asking."""
    import jax

    import jax.numpy as jnp

    from jaxsim import engine
    from jaxsim.models import covid
    from jaxsim.transfer import tree_to_device
    from jaxsim.world import to_device

    model = covid.covid_model(policy="inputs")
    table = np.zeros((settings.weeks, columns), np.float32)
    # On the device, as the fits' runs later are: the compiled weekly program is shared.
    worlds = [to_device(world) for world in worlds]
    params = [tree_to_device(p) for p in params]
    states = []
    for k, (world, p) in enumerate(zip(worlds, params)):
        init_key = jax.random.fold_in(jax.random.key(settings.seed + 1), k)
        states.append(engine.initial_state(model, init_key, p, world))
    asking = 0.0
    groups = layer.grouping.num_groups
    with progress.Progress(f"asking the model ({label})", total=settings.weeks, unit="weeks") as shown:
        for week in range(settings.weeks):
            t = 7 * week
            begin = time.perf_counter()
            progress.now(f"asking the model ({label}, week {week + 1})")
            answers = layer.answer(t, StudyView(states, sites, people), None, None)
            asking += time.perf_counter() - begin
            table[week:, :groups] = answers
            progress.now(f"simulating week {week + 1} ({label})")
            for k, (world, p) in enumerate(zip(worlds, params)):
                run_key = jax.random.fold_in(jax.random.key(settings.seed + 2), k)
                week_world = world.with_inputs(isolation_prob=jnp.asarray(table))
                result = engine.run(model, run_key, states[k], p, week_world, 7, start_day=t, progress=False,
                                    chunk_days=7, donate=True, validate=week == 0)
                states[k] = result.state
            shown.update(week + 1, calls=layer.backend.llm_calls)
    return table, asking


def run_heuristic(arch: Architecture, sites: list[Site], settings: Settings) -> RowResult:
    from jaxsim.models import covid

    start = time.perf_counter()
    model = covid.covid_model(policy="heuristic")
    results = []
    for site in sites:
        world, params = site_world(site, settings)
        results.append(fit_and_score(f"{arch.name}, {site.nta}", site, model, world, params, RATE_FIT, settings))
    groups = len(sites[0].population.labels["age"])
    return RowResult(arch, groups, sum(s.n for s in sites), results, wall_seconds=time.perf_counter() - start)


def run_llm(arch: Architecture, sites: list[Site], settings: Settings, backend, args, rates: dict,
            pad: int | None = None) -> RowResult:
    """An LLM row: group, ask along a lockstep run with the heuristic's fitted R(t), fit
    and score every site with the answers held fixed."""
    from jaxsim import behaviour
    from jaxsim.models import covid

    start = time.perf_counter()
    per_agent = arch.kind == "per-agent"
    union = union_population(sites)
    grouping = behaviour.group_agents(union, arch.attributes)
    columns = max(grouping.num_groups, pad or 0)
    # The worlds' isolation groups carry neutral labels, the same for every archetype row
    # (labels are static in a compiled program: equal ones let the rows share programs).
    labels = [f"{GROUP_LABEL} {i}" for i in range(columns)]
    people = People.of(sites) if per_agent else None
    counter = CallCounter(backend)
    policy = study_policy(per_agent)
    layer = behaviour.BehaviourLayer(
        policy=policy, grouping=grouping, backend=counter, options={"ascertainment": settings.ascertainment},
        settings=llm_options.sampling_from_args(args), samples=settings.samples,
    )
    cut = offsets(sites)
    worlds, start_params, fit_params = [], [], []
    for k, site in enumerate(sites):
        world, params = site_world(site, settings, grouping.codes[cut[k]:cut[k + 1]], labels)
        worlds.append(world)
        fit_params.append(params)
        start_params.append(params.replace(transmission_rate=np.asarray(rates[site.nta], np.float32)))
    print(f"{arch.name}: {grouping.num_groups} groups over {len(sites)} neighbourhood(s), {cut[-1]:,} agents; "
          f"asking {grouping.num_groups} x {settings.samples} sample(s) a week for {settings.weeks} weeks")
    table, asking = ask_along_run(layer, sites, worlds, start_params, settings, arch.name, people, columns)
    model = covid.covid_model(policy="inputs")
    results = []
    for k, site in enumerate(sites):
        world = worlds[k].with_inputs(isolation_prob=table)
        results.append(fit_and_score(f"{arch.name}, {site.nta}", site, model, world, fit_params[k],
                                     RATE_FIT if per_agent else LLM_FIT, settings))
    report = layer.report()
    if per_agent:  # 100s of groups: keep the answers' summary, not each agent's
        report["weeks"] = [{k: v for k, v in week.items() if k not in ("probabilities", "fell_back_to_prior")}
                           | {"mean_probability": float(np.mean(list(week["probabilities"].values()))),
                              "fell_back_to_prior": len(week["fell_back_to_prior"])}
                           for week in report["weeks"]]
        report["archetypes"] = f"{grouping.num_groups} agents"
        report["archetype_sizes"] = None
    report["answers_by_week"] = table[:, :grouping.num_groups].mean(axis=1).tolist()
    return RowResult(
        arch, grouping.num_groups, int(cut[-1]), results, llm=report, group_names=grouping.names,
        model_calls=counter.requests,
        calls_this_run=counter.llm_calls, cache_hits=counter.cache_hits, tokens=counter.tokens, llm_seconds=asking,
        wall_seconds=time.perf_counter() - start,
    )


# ------------------------------------------------------------------------------- scoring
def _finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def mobility_fit(shares: list[np.ndarray], residential: list[np.ndarray]) -> dict:
    """Simulated isolating share against observed residential mobility, pooled over sites
    and weeks: Pearson r, the least-squares line residential = intercept + slope x share,
    its R^2, and r within neighbourhoods (each site's means removed)."""
    x = np.concatenate([np.asarray(s, np.float64) for s in shares])
    y = np.concatenate([np.asarray(r, np.float64) for r in residential])
    ok = np.isfinite(x) & np.isfinite(y)
    out = {"points": int(ok.sum()), "pearson_r": None, "slope": None, "intercept": None, "r2": None,
           "pearson_r_within": None, "note": None}
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        out["note"] = "too few points, or a constant series: no correlation"
        return out
    r = float(np.corrcoef(x[ok], y[ok])[0, 1])
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    out |= {"pearson_r": r, "slope": float(slope), "intercept": float(intercept), "r2": r * r}
    xs = [np.asarray(s, np.float64) - np.nanmean(s) for s in shares]
    ys = [np.asarray(v, np.float64) - np.nanmean(v) for v in residential]
    xw, yw = np.concatenate(xs), np.concatenate(ys)
    okw = np.isfinite(xw) & np.isfinite(yw)
    if okw.sum() >= 3 and np.std(xw[okw]) > 0 and np.std(yw[okw]) > 0:
        out["pearson_r_within"] = float(np.corrcoef(xw[okw], yw[okw])[0, 1])
    return out


def summarise(row: RowResult, settings: Settings) -> None:
    """The row's scores over its sites (and its mobility comparison)."""
    sites = row.sites
    mean = lambda key, part="scores": float(np.mean([getattr(s, part)[key] for s in sites]))  # noqa: E731
    nd, wis = mean("nd"), mean("wis")
    pnd, pwis = mean("nd", "persistence"), mean("wis", "persistence")
    row.summary = {
        "nd": nd, "wis": wis, "coverage_50": mean("coverage_50"), "coverage_90": mean("coverage_90"),
        "persistence_nd": pnd, "persistence_wis": pwis,
        "relative_nd": nd / pnd if pnd > 0 else math.nan, "relative_wis": wis / pwis if pwis > 0 else math.nan,
        "train_nd": mean("nd", "train_scores"),
        "mean_isolating_share": float(np.mean([s.isolating.mean() for s in sites])),
    }
    row.mobility = mobility_fit([s.isolating for s in sites], [s.site.residential for s in sites])


def study_table(rows: list[RowResult], settings: Settings, unemployment: dict | None = None) -> pd.DataFrame:
    """One record per architecture; ``unemployment``: architecture name -> its
    :class:`~jaxsim.scenarios.agency_unemployment.UnemploymentRow` (columns NaN without)."""
    records = []
    unemployment = unemployment or {}
    for row in rows:
        m = row.mobility
        records.append({
            "architecture": row.arch.name, "kind": row.arch.kind,
            "attributes": "+".join(row.arch.attributes) if row.arch.kind != "heuristic" else "age (rule)",
            "groups": row.groups, "agents": row.agents, "neighbourhoods": len(row.sites),
            "weeks": settings.weeks, "samples": settings.samples if row.arch.kind != "heuristic" else 0,
            "model_calls": row.model_calls, "model_calls_per_week": row.model_calls / settings.weeks,
            "calls_this_run": row.calls_this_run, "cache_hits": row.cache_hits,
            "retries": 0 if row.llm is None else row.llm["retries"],
            "parse_failures": 0 if row.llm is None else row.llm["parse_failures"],
            "fallbacks_to_prior": 0 if row.llm is None else row.llm["fallbacks_to_prior"],
            "tokens_this_run": math.nan if row.tokens is None else row.tokens,
            **row.summary,
            "beats_persistence": bool(row.summary["wis"] < row.summary["persistence_wis"]),
            "mobility_pearson_r": _nan(m["pearson_r"]), "mobility_slope": _nan(m["slope"]),
            "mobility_intercept": _nan(m["intercept"]), "mobility_r2": _nan(m["r2"]),
            "mobility_r_within": _nan(m["pearson_r_within"]), "mobility_points": m["points"],
            "fit_steps": settings.steps, "wall_seconds": row.wall_seconds, "llm_seconds": row.llm_seconds,
            "simulator_seconds": row.wall_seconds - row.llm_seconds,
            **agency_unemployment.columns(unemployment.get(row.arch.name)),
        })
    return pd.DataFrame.from_records(records)


def _nan(value):
    return math.nan if value is None else float(value)


def weekly_table(rows: list[RowResult], settings: Settings) -> pd.DataFrame:
    records = []
    for row in rows:
        for s in row.sites:
            q05, q95 = np.quantile(s.members, [0.05, 0.95], axis=0)
            for w, epiweek in enumerate(s.site.epiweeks):
                records.append({
                    "architecture": row.arch.name, "nta": s.site.nta, "epiweek": epiweek,
                    "week_end": pd.Timestamp(s.site.observed_cases.week_end[s.site.start + w]).normalize(),
                    "split": "fitted" if w < settings.train else "held out",
                    "observed_cases": s.site.reported[w], "forecast_mean": float(s.members[:, w].mean()),
                    "forecast_q05": float(q05[w]), "forecast_q95": float(q95[w]),
                    "transmission_rate": float(np.asarray(s.fit.params.transmission_rate)[min(w, settings.train - 1)]),
                    "isolating_share": float(s.isolating[w]), RESIDENTIAL: float(s.site.residential[w]),
                })
    return pd.DataFrame.from_records(records)


# ----------------------------------------------------------------- the best architecture
def analyse_best(row: RowResult, settings: Settings) -> dict:
    """Retrospective (in-sample), counterfactual (isolation compliance x ``--compliance``,
    paired members) and prospective (held-out forecast) analyses of one row."""
    from jaxsim import calibration, ensemble, interventions
    from jaxsim.models import covid

    train = settings.train
    retrospective, prospective, per_site = {}, {}, {}
    base_totals, alt_totals, base_iso, alt_iso, base_ahead, alt_ahead = [], [], [], [], [], []
    held_out = slice(7 * train, settings.days)
    keys = ensemble.member_keys(settings.seed + 77, settings.members)
    label = f"isolation_x{settings.compliance:g}"
    for s in row.sites:
        site, members, reported = s.site, s.members, s.site.reported
        lo, hi = np.quantile(members[:, :train], [0.05, 0.95], axis=0)
        inside = (reported[:train] >= lo) & (reported[:train] <= hi)
        retrospective[site.nta] = {
            "epiweeks": site.epiweeks[:train], "observed": reported[:train], "mean": members[:, :train].mean(axis=0),
            "q05": lo, "q95": hi, "weeks_inside_90": int(inside.sum()), "weeks": train,
            "nd": s.train_scores["nd"],
        }
        q05, q95 = np.quantile(members[:, train:], [0.05, 0.95], axis=0)
        prospective[site.nta] = {
            "epiweeks": site.epiweeks[train:], "observed": reported[train:],
            "mean": members[:, train:].mean(axis=0), "q05": q05, "q95": q95,
            "persistence": np.full(settings.test, reported[train - 1]),
        } | s.scores
        progress.now(f"counterfactual in {site.nta}")
        fitted = calibration.extend_last_week(s.fit.params, train)
        sets = [fitted.replace(interventions=interventions.combine(
            covid.isolation_compliance(level, name="isolation_compliance"))) for level in (1.0, settings.compliance)]
        batch, all_keys, table = ensemble.cross(sets, keys, ["baseline", label])
        result = ensemble.run_ensemble(s.model, all_keys, batch, s.world, settings.days,
                                       metric_names=("new_cases", "new_infections", "new_deaths", "isolating"),
                                       members=table)
        by = result.split("set")
        per_site[site.nta] = ensemble.compare(by["baseline"], {label: by[label]})["differences"][label]
        to_reported = settings.ascertainment / site.case_scale
        base_totals.append(by["baseline"].totals("new_cases") * to_reported)
        alt_totals.append(by[label].totals("new_cases") * to_reported)
        base_ahead.append(by["baseline"].totals("new_cases", held_out) * to_reported)
        alt_ahead.append(by[label].totals("new_cases", held_out) * to_reported)
        base_iso.append(by["baseline"].totals("isolating") / site.case_scale)
        alt_iso.append(by[label].totals("isolating") / site.case_scale)
    averted = ensemble.paired_difference(np.sum(base_totals, axis=0), np.sum(alt_totals, axis=0))
    extra_isolation = ensemble.paired_difference(np.sum(alt_iso, axis=0), np.sum(base_iso, axis=0))
    averted_ahead = ensemble.paired_difference(np.sum(base_ahead, axis=0), np.sum(alt_ahead, axis=0))
    return {
        "architecture": row.arch.name,
        "retrospective": {
            "note": "in-sample: the fit saw these weeks",
            "weeks_inside_90": int(sum(v["weeks_inside_90"] for v in retrospective.values())),
            "weeks": int(sum(v["weeks"] for v in retrospective.values())),
            "nd": float(np.mean([v["nd"] for v in retrospective.values()])),
            "by_neighbourhood": retrospective,
        },
        "counterfactual": {
            "intervention": f"isolation compliance x {settings.compliance:g} (each agent's daily isolation "
                            "probability p -> clip(scale x p)) over every week of the window",
            "members": settings.members,
            "common_random_numbers": "member k of both scenarios uses key k; differences are paired",
            "reported_cases_averted": averted,
            "reported_cases_averted_held_out_weeks": averted_ahead,
            "extra_isolation_person_days": extra_isolation,
            "units": "reported cases and person-days of the neighbourhoods' real size (simulated / agent share)",
            "by_neighbourhood_simulated_agents": per_site,
        },
        "prospective": {
            "nd": row.summary["nd"], "wis": row.summary["wis"], "relative_wis": row.summary["relative_wis"],
            "coverage_50": row.summary["coverage_50"], "coverage_90": row.summary["coverage_90"],
            "by_neighbourhood": prospective,
        },
    }


def conclusion(rows: list[RowResult]) -> list[str]:
    """Honest lines on what the numbers say."""
    by = {r.arch.name: r.summary for r in rows}
    heuristic = by["heuristic"]
    lines = []
    archetypes = [r for r in rows if r.arch.kind == "archetypes"]
    if archetypes:
        best = min(archetypes, key=lambda r: r.summary["wis"])
        s = best.summary
        verdict = "beat" if s["wis"] < heuristic["wis"] else "do not beat"
        lines.append(
            f"LLM archetypes {verdict} the calibrated heuristic on held-out WIS: the best archetype row, "
            f"{best.arch.name} ({best.groups} group{'' if best.groups == 1 else 's'}), has WIS {s['wis']:.2f} "
            f"(relative {s['relative_wis']:.2f}) and ND {s['nd']:.3f} against the heuristic's WIS "
            f"{heuristic['wis']:.2f} (relative {heuristic['relative_wis']:.2f}) and ND {heuristic['nd']:.3f}")
    per_agent = sorted((r for r in rows if r.arch.kind == "per-agent"), key=lambda r: r.agents)
    weeks = rows[0].sites[0].site.weeks
    if archetypes:
        calls = [r.model_calls / weeks for r in archetypes]
        lines.append(f"archetype rows: {min(calls):.0f} to {max(calls):.0f} model calls per simulated week "
                     f"({min(r.groups for r in archetypes)} to {max(r.groups for r in archetypes)} groups) "
                     f"whatever the agents ({archetypes[0].agents:,} here)")
    if per_agent:
        lines.append("per-agent rows: " + ", ".join(
            f"{r.model_calls / weeks:.0f} model calls per simulated week for {r.agents:,} agents "
            f"(WIS {r.summary['wis']:.2f}, relative {r.summary['relative_wis']:.2f})" for r in per_agent)
            + ": calls grow with the agents")
        for r in per_agent:
            held_out = np.concatenate([s.members[:, s.site.train:].mean(axis=0) for s in r.sites])
            if held_out.size and np.mean(held_out == 0) >= 0.5:
                people = np.mean([s.site.people / s.site.n for s in r.sites])
                lines.append(
                    f"{r.arch.name}: the forecast is 0 cases in {np.mean(held_out == 0):.0%} of held-out "
                    f"neighbourhood-weeks: each agent stands for about {people:,.0f} residents, too few agents "
                    f"to carry the epidemic; its scores measure the population a per-agent budget buys, not the "
                    f"answers")
    beating = [r.arch.name for r in rows if r.summary["wis"] < r.summary["persistence_wis"]]
    if not beating:
        lines.append(f"no architecture beats last-value persistence on held-out WIS (persistence "
                     f"{heuristic['persistence_wis']:.2f})")
    else:
        lines.append(f"beating last-value persistence on held-out WIS: {', '.join(beating)}")
    return lines


def unemployment_conclusion(unemployment: dict) -> list[str]:
    """Honest lines on the unemployment half (none without it)."""
    if not unemployment:
        return []
    heuristic = unemployment.get("heuristic")
    llm = [r for name, r in unemployment.items() if name != "heuristic"]
    lines = []
    if heuristic is not None and llm:
        best = min(llm, key=lambda r: r.summary["wis"])
        s, h = best.summary, heuristic.summary
        verdict = "beats" if s["wis"] < h["wis"] else "does not beat"
        lines.append(
            f"unemployment: LLM archetypes' willingness to work {verdict} the heuristic's on held-out WIS: the "
            f"best, {best.name} ({best.groups} group{'' if best.groups == 1 else 's'}), {s['wis']:.3f} pp against "
            f"{h['wis']:.3f} pp (persistence {h['persistence_wis']:.3f} pp); ND {s['nd']:.3f} against {h['nd']:.3f}; "
            f"its fitted willingness alignment scale {s['alignment_scale']:.2f} (1 keeps the answers' spread, near 0 "
            f"flattens it)")
    beating = [name for name, r in unemployment.items() if r.summary["wis"] < r.summary["persistence_wis"]]
    first = next(iter(unemployment.values()))
    lines.append(f"unemployment: beating last-value persistence on held-out WIS: {', '.join(beating)}" if beating
                 else f"unemployment: no architecture beats last-value persistence on held-out WIS (persistence "
                      f"{first.summary['persistence_wis']:.3f} pp)")
    return lines


# ---------------------------------------------------------------------------------- plot
def plot_study(path: Path, table: pd.DataFrame, title: str) -> None:
    plt = outputs.pyplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    unemployment = table[np.isfinite(table["unemployment_wis"].astype(float))]
    fig, axes = plt.subplots(1, 4 if len(unemployment) else 3, figsize=(21 if len(unemployment) else 16, 4.8))
    heuristic = table[table["kind"] == "heuristic"].iloc[0]
    llm = table[table["kind"] != "heuristic"]
    colours = {"archetypes": "tab:blue", "per-agent": "tab:red"}
    for ax, x, xlabel in ((axes[0], "groups", "behaviour groups (log scale)"),
                          (axes[1], "model_calls_per_week", "model calls per simulated week (log scale)")):
        for kind, part in llm.groupby("kind"):
            ax.plot(part[x], part["relative_wis"], "o-", color=colours.get(kind, "k"), label=f"{kind}: WIS")
            ax.plot(part[x], part["relative_nd"], "s--", color=colours.get(kind, "k"), alpha=0.6,
                    label=f"{kind}: ND")
            for _, r in part.iterrows():
                short = r["architecture"].removeprefix("llm: ").replace(" agents)", ")").replace("agent)", ")")
                ax.annotate(short, (r[x], r["relative_wis"]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        ax.axhline(heuristic["relative_wis"], color="tab:green", lw=1.5, label="heuristic: WIS")
        ax.axhline(heuristic["relative_nd"], color="tab:green", lw=1, ls="--", label="heuristic: ND")
        ax.axhline(1.0, color="grey", lw=1, ls=":", label="persistence")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel("held-out score / persistence's")
    axes[0].plot([heuristic["groups"]], [heuristic["relative_wis"]], "*", color="tab:green", ms=12)
    axes[1].set_title("heuristic: no model calls (lines)", fontsize=9)
    axes[0].legend(fontsize=7, loc="best")
    r = table["mobility_pearson_r"].astype(float)
    axes[2].bar(range(len(table)), np.nan_to_num(r), color=["tab:green" if k == "heuristic" else
                                                            colours.get(k, "k") for k in table["kind"]])
    axes[2].set_xticks(range(len(table)))
    axes[2].set_xticklabels([a.removeprefix("llm: ") for a in table["architecture"]], rotation=35, ha="right",
                            fontsize=7)
    axes[2].axhline(0, color="grey", lw=1)
    axes[2].set_ylim(-1, 1)
    axes[2].set_ylabel("Pearson r: isolating share vs residential mobility")
    if len(unemployment):
        ax = axes[3]
        llm_rows = unemployment[unemployment["kind"] == "archetypes"]
        x = llm_rows["unemployment_model_calls_per_month"].to_numpy(float)
        ax.plot(x, llm_rows["unemployment_relative_wis"], "o-", color=colours["archetypes"], label="archetypes: WIS")
        for xi, (_, r) in zip(x, llm_rows.iterrows()):
            ax.annotate(r["architecture"].removeprefix("llm: "), (xi, r["unemployment_relative_wis"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        base = unemployment[unemployment["kind"] == "heuristic"]
        if len(base):
            ax.axhline(float(base["unemployment_relative_wis"].iloc[0]), color="tab:green", lw=1.5,
                       label="heuristic: WIS")
        ax.axhline(1.0, color="grey", lw=1, ls=":", label="persistence")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("model calls per simulated month (log scale)")
        ax.set_ylabel("unemployment: held-out WIS / persistence's")
        ax.set_title("unemployment per borough", fontsize=9)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- the program
def run_unemployment(half, archs: list[Architecture], backend, args, settings: Settings) -> dict:
    """The unemployment half for the heuristic and each archetype row (not per-agent):
    architecture name -> :class:`~jaxsim.scenarios.agency_unemployment.UnemploymentRow`."""
    out = {}
    for arch in archs:
        if arch.kind == "per-agent":
            continue
        progress.stage(f"unemployment: {arch.name}")
        if arch.kind == "heuristic":
            row = half.run(arch.name)
        else:
            row = half.run(arch.name, layer_args=args, attributes=arch.attributes, backend=CallCounter(backend),
                           samples=settings.samples)
        s = row.summary
        print(f"unemployment, {arch.name}: WIS {s['wis']:.3f} pp (persistence {s['persistence_wis']:.3f}), ND "
              f"{s['nd']:.3f}, 90% coverage {s['coverage_90']:.0%}; {row.model_calls} model calls "
              f"({row.calls_this_run} this run); {row.wall_seconds:.0f} s")
        out[arch.name] = row
    return out


def print_plan(settings: Settings, sites: list[Site], archs: list[Architecture], groups: dict,
               half=None) -> None:
    print(f"plan ({settings.mode} mode): {len(sites)} neighbourhood(s) "
          + ", ".join(f"{s.nta} {s.n:,} agents" for s in sites)
          + f"; epiweeks {sites[0].epiweeks[0]}..{sites[0].epiweeks[-1]} ({settings.train} fitted + "
          f"{settings.test} held out); fits {settings.steps} steps x {settings.seeds} seeds; "
          f"{settings.members} members")
    print(f"{'architecture':<34}{'groups':>8}{'agents':>10}{'calls/week':>12}")
    for arch in archs:
        g, n = groups[arch.name]
        calls = "0" if arch.kind == "heuristic" else (f"{g * settings.samples}" if arch.kind == "archetypes"
                                                      else f"<= {g * settings.samples}")
        print(f"{arch.name:<34}{g:>8}{n:>10,}{calls:>12}")
    if half is not None:
        print(half.describe())
        print(f"{'architecture':<34}{'groups':>8}{'agents':>10}{'calls/month':>12}")
        for arch in archs:
            if arch.kind == "per-agent":
                continue
            g = 0 if arch.kind == "heuristic" else half.grouping(arch.attributes).num_groups
            print(f"{arch.name:<34}{g if g else '(rule)':>8}{half.population.size:>10,}{g * settings.samples:>12}")


def print_table(table: pd.DataFrame) -> None:
    print(f"\n{'architecture':<30}{'groups':>7}{'agents':>8}{'calls/wk':>9}{'calls':>7}{'ND':>7}{'WIS':>8}"
          f"{'rel WIS':>8}{'cov50':>6}{'cov90':>6}{'mob r':>7}{'wall s':>8}{'sim s':>7}{'llm s':>7}")
    for _, r in table.iterrows():
        mob = "-" if not math.isfinite(r["mobility_pearson_r"]) else f"{r['mobility_pearson_r']:+.2f}"
        print(f"{r['architecture']:<30}{r['groups']:>7}{r['agents']:>8,}{r['model_calls_per_week']:>9.1f}"
              f"{r['model_calls']:>7}{r['nd']:>7.3f}{r['wis']:>8.2f}{r['relative_wis']:>8.2f}"
              f"{r['coverage_50']:>6.0%}{r['coverage_90']:>6.0%}{mob:>7}{r['wall_seconds']:>8.1f}"
              f"{r['simulator_seconds']:>7.1f}{r['llm_seconds']:>7.1f}")
    first = table.iloc[0]
    print(f"{'persistence (last value)':<30}{'':>7}{'':>8}{'':>9}{'':>7}{first['persistence_nd']:>7.3f}"
          f"{first['persistence_wis']:>8.2f}{1.0:>8.2f}")
    rows = table[np.isfinite(table["unemployment_wis"].astype(float))]
    if len(rows):
        print(f"\nunemployment per borough (held-out months, percentage points)")
        print(f"{'architecture':<30}{'calls/mo':>9}{'calls':>7}{'ND':>7}{'WIS':>7}{'rel WIS':>8}{'ND<pers':>8}"
              f"{'cov50':>6}{'cov90':>6}{'wall s':>8}")
        for _, r in rows.iterrows():
            print(f"{r['architecture']:<30}{r['unemployment_model_calls_per_month']:>9.1f}"
                  f"{r['unemployment_model_calls']:>7}{r['unemployment_nd']:>7.3f}{r['unemployment_wis']:>7.3f}"
                  f"{r['unemployment_relative_wis']:>8.2f}{r['unemployment_beats_persistence_nd']:>8.0%}"
                  f"{r['unemployment_coverage_50']:>6.0%}{r['unemployment_coverage_90']:>6.0%}"
                  f"{r['unemployment_wall_seconds']:>8.1f}")
        first = rows.iloc[0]
        print(f"{'persistence (last value)':<30}{'':>9}{'':>7}{first['unemployment_persistence_nd']:>7.3f}"
              f"{first['unemployment_persistence_wis']:>7.3f}{1.0:>8.2f}")


def _clean(value):
    """NaN -> None, recursively (run.json stays valid JSON)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return _clean(outputs.to_jsonable(value))
    if isinstance(value, (np.floating,)):
        return _clean(float(value))
    return value


#: Where the published studies live (one folder per model: config.toml, answers.jsonl, study.csv).
PUBLISHED = Path(__file__).resolve().parent / "published"


def published_args(args):
    """The options of the published study ``args.published`` replayed from its shipped
    answers (``--llm-replay --llm-cache .../answers.jsonl``), writing to ``args.out``
    (``--plan`` kept: the plan only)."""
    folder = PUBLISHED / f"agency_study_{args.published}"
    name, options = command.read_config(folder / command.CONFIG_FILE)
    argv = command.config_argv(name, options, source=str(folder / command.CONFIG_FILE))
    extra = ["--plan"] if args.plan else []
    return arguments.parse("agency_study", argv + ["--llm-replay", "--llm-cache", str(folder / ANSWERS_FILE),
                                                   "--out", str(args.out)] + extra)


def run(args) -> int:
    wall_start = time.perf_counter()
    if getattr(args, "published", None):
        published = args.published
        args = published_args(args)
        print(f"the published study {published}: its options, its answers (no model), writing to {args.out}")
    settings = check_settings(args)
    from jaxsim import behaviour, calibration
    from jaxsim.nyc import cases as nyc_cases
    from jaxsim.nyc import calibration as nyc_calibration
    from jaxsim.report import REPORT_FILE, write_report

    frame = nyc_cases.load_weekly_cases()
    progress.stage("building the populations")
    sites = build_sites(settings, frame)
    small = {n: build_sites(settings, frame, total_agents=n) for n in settings.per_agent}
    archs = settings.architectures()
    union = union_population(sites)
    groups = {}
    for arch in archs:
        if arch.kind == "heuristic":
            groups[arch.name] = (len(sites[0].population.labels["age"]), union.size)
        elif arch.kind == "archetypes":
            groups[arch.name] = (behaviour.group_agents(union, arch.attributes).num_groups, union.size)
        else:
            groups[arch.name] = (arch.agents, arch.agents)
    half = None
    if settings.unemployment is not None:
        progress.stage("building the five-borough population (unemployment)")
        half = agency_unemployment.UnemploymentHalf(settings.unemployment)
    print_plan(settings, sites, archs, groups, half)
    if args.plan:
        return 0
    pad = max((g for a in archs if a.kind == "archetypes" for g in [groups[a.name][0]]), default=0)

    backend = llm_options.backend_from_args(args)
    rows: list[RowResult] = []
    try:
        progress.stage(f"heuristic: fitting R(t) of {len(sites)} neighbourhood(s)")
        heuristic = run_heuristic(archs[0], sites, settings)
        rows.append(heuristic)
        rates = {s.site.nta: np.asarray(calibration.extend_last_week(s.fit.params, settings.train).transmission_rate,
                                        np.float32) for s in heuristic.sites}
        for arch in archs[1:]:
            progress.stage(arch.name)
            row_sites = sites if arch.kind == "archetypes" else small[arch.agents]
            rows.append(run_llm(arch, row_sites, settings, backend, args, rates,
                                pad=pad if arch.kind == "archetypes" else None))
        unemployment = run_unemployment(half, archs, backend, args, settings) if half is not None else {}
        for row in rows:
            summarise(row, settings)
        table = study_table(rows, settings, unemployment)
        best = rows[int(np.argmin([r.summary["wis"] for r in rows]))]
        progress.stage(f"best architecture ({best.arch.name}): counterfactual, {settings.members} paired members")
        best_start = time.perf_counter()
        analysis = analyse_best(best, settings)
        analysis["seconds"] = time.perf_counter() - best_start
        answers = export_answers(backend)
    finally:
        cache = getattr(backend, "cache", None)
        if cache is not None:
            cache.close()
    lines = conclusion(rows) + unemployment_conclusion(unemployment)

    progress.stage("writing the outputs")
    out = Path(args.out)
    title = (f"limits of agency: {', '.join(s.nta for s in sites)}, epiweeks {sites[0].epiweeks[0]}.."
             f"{sites[0].epiweeks[-1]} ({settings.train} fitted + {settings.test} held out), {settings.mode} mode")
    info = {
        "scenario": "agency_study",
        "mode": settings.mode,
        "conclusion": lines,
        "best_architecture": best.arch.name,
        "study": {r.arch.name: {k: v for k, v in rec.items() if k not in ("architecture",)}
                  for r, rec in zip(rows, table.to_dict("records"))},
        "retrospective": analysis["retrospective"],
        "counterfactual": analysis["counterfactual"],
        "prospective": analysis["prospective"],
        "settings": dataclasses.asdict(settings) | {
            "forecast": FORECAST, "reversion": REVERSION, "min_step_sd": MIN_STEP_SD, "anchor": "on",
            "observation_noise": "nb", "loss": "poisson", "estimator": "straight_through",
            "mobility_runs": min(MOBILITY_RUNS, settings.members),
            "llm_fit": list(LLM_FIT), "per_agent_fit": list(RATE_FIT), "heuristic_fit": list(RATE_FIT),
        },
        "arguments": vars(args),
        "neighbourhoods": [{
            "nta": s.nta, "name": s.name, "agents": s.n, "census_people": s.people, "case_scale": s.case_scale,
            "epiweeks": s.epiweeks, "reported_cases": s.reported, RESIDENTIAL: s.residential,
        } for s in sites],
        "rows": {r.arch.name: {
            "kind": r.arch.kind, "attributes": list(r.arch.attributes), "groups": r.groups, "agents": r.agents,
            "summary": r.summary, "mobility": r.mobility,
            "by_neighbourhood": {s.site.nta: {
                "agents": s.site.n, "scores": s.scores, "persistence": s.persistence, "train": s.train_scores,
                "fitted_parameters": named_groups(nyc_calibration.fitted_report(
                    calibration.extend_last_week(s.fit.params, settings.train), s.world, s.fit.names),
                    r.group_names),
                "loss_curve": s.fit.loss_curve, "fit_seconds": s.fit.seconds, "fit_stopped": s.fit.stopped,
                "isolating_share": s.isolating,
            } for s in r.sites},
            "llm": r.llm,
        } for r in rows},
        "tokens": "tokens_this_run: as the model reported them (usage.total_tokens) for this run's calls",
        "answers": None if answers is None else {
            "file": ANSWERS_FILE, "replies": answers[1], "backend": backend.name, "model": backend.model,
            "replay": f"--llm-cache {ANSWERS_FILE} --llm-replay (with the same options)"},
        "timing": {"total_seconds": None, "best_architecture_seconds": analysis["seconds"]}
        | {f"{r.arch.name} wall_seconds": r.wall_seconds for r in rows},
        "versions": outputs.package_versions(),
        "caches": caches.describe(),
    }
    weekly = weekly_table(rows, settings)
    if unemployment:
        info["unemployment"] = {
            "population": half.describe(),
            "months": [str(m) for m in half.months],
            "origins": [str(half.months[o]) for o in half.origins],
            "observed_rate": half.observed,
            "rows": {name: {"summary": r.summary, "groups": r.groups, "model_calls": r.model_calls,
                            "calls_this_run": r.calls_this_run, "cache_hits": r.cache_hits,
                            "parse_failures": r.parse_failures, "llm_seconds": r.llm_seconds,
                            "wall_seconds": r.wall_seconds, "willingness": r.willingness,
                            "simulated_rate": r.simulated_rate,
                            "per_origin": r.per_origin.to_dict("records")}
                     for name, r in unemployment.items()},
        }
        info["unemployment_scores"] = {name: r.summary for name, r in unemployment.items()}
    with outputs.StagedOutputs(out) as stage:
        outputs.write_table(table, stage.path, "study")
        outputs.write_table(weekly, stage.path, "weekly")
        if unemployment:
            outputs.write_table(pd.concat([r.forecasts for r in unemployment.values()], ignore_index=True),
                                stage.path, "unemployment")
        if answers is not None:
            shutil.move(str(answers[0]), stage.path / ANSWERS_FILE)
        plot_study(stage.path / "study.png", table, title)
        info["timing"]["total_seconds"] = time.perf_counter() - wall_start
        outputs.write_json(_clean(info), stage.path / "run.json")
        write_report(stage.path, title=f"agency_study: {title}", info=_clean(info), source="run.json",
                     sections=("study", "retrospective", "counterfactual", "prospective", "unemployment_scores",
                               "timing", "settings"),
                     notes=lines)

    print_table(table)
    for line in lines:
        print(f"note: {line}")
    retro, cf = analysis["retrospective"], analysis["counterfactual"]
    averted = cf["reported_cases_averted"]
    print(f"best architecture (lowest held-out WIS): {best.arch.name}")
    print(f"  retrospective (in-sample): {retro['weeks_inside_90']} of {retro['weeks']} fitted neighbourhood-weeks "
          f"inside the 90% band, ND {retro['nd']:.3f}")
    print(f"  counterfactual (isolation compliance x {settings.compliance:g}, {settings.members} paired members): "
          f"reported cases averted over the window {averted['mean']:.1f} (90% interval of the mean "
          f"{_fmt(averted['mean_ci_low'])} to {_fmt(averted['mean_ci_high'])}; members' central 90% "
          f"{averted['low']:.1f} to {averted['high']:.1f}); in the held-out weeks "
          f"{cf['reported_cases_averted_held_out_weeks']['mean']:.1f}")
    for nta, p in analysis["prospective"]["by_neighbourhood"].items():
        print(f"  prospective {nta} epiweeks {p['epiweeks'][0]}..{p['epiweeks'][-1]}: observed "
              f"{', '.join(f'{v:.0f}' for v in p['observed'])}; forecast mean "
              f"{', '.join(f'{v:.0f}' for v in p['mean'])} (90% band "
              f"{', '.join(f'{a:.0f}-{b:.0f}' for a, b in zip(p['q05'], p['q95']))}); WIS {p['wis']:.2f}")
    print(f"total {time.perf_counter() - wall_start:.0f} s")
    print(f"wrote {out / 'study.csv'} (and .parquet), {out / 'weekly.csv'}, "
          + (f"{out / 'unemployment.csv'}, " if unemployment else "")
          + f"{out / 'study.png'}, {out / 'run.json'}, {out / REPORT_FILE}")
    return 0


ANSWERS_FILE = "answers.jsonl"


def export_answers(backend) -> tuple[Path, int] | None:
    """The model's replies this run used (read from or stored in its response cache), as
    a JSON Lines text cache in a temporary file: ``(path, replies)``, or ``None`` without
    a cache. ``--llm-cache OUT/answers.jsonl --llm-replay`` runs the study again with them."""
    cache = getattr(backend, "cache", None)
    if cache is None or cache.mode == "off":
        return None
    handle, name = tempfile.mkstemp(suffix=".jsonl", prefix="answers-")
    os.close(handle)
    return Path(name), cache.export_jsonl(name, keys=cache.used)


def named_groups(report: dict, names: list[str] | None) -> dict:
    """A fitted-parameter report with the LLM rows' neutral group labels (``group 3``) replaced
    by the groups' names, and the padding groups left out."""
    if names is None:
        return report
    out = {}
    for key, value in report.items():
        if isinstance(value, dict) and value and all(str(k).startswith(f"{GROUP_LABEL} ") for k in value):
            value = {names[int(str(k).split()[-1])]: v for k, v in value.items()
                     if int(str(k).split()[-1]) < len(names)}
        out[key] = value
    return out


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv=None) -> int:
    """Parse ``argv`` and run (errors propagate; ``jaxsim agency_study`` and
    ``scenarios/agency_study.py`` report them in one line)."""
    return command.execute("agency_study", argv)
