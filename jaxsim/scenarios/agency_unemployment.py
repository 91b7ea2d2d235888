"""The unemployment half of the limits-of-agency study (:mod:`jaxsim.scenarios.agency_study`):
willingness to work from the labour model's heuristic or from LLM archetypes, scored on
forecasts of each borough's unemployment rate over held-out months.

For each architecture (the heuristic; LLM archetypes at each of the study's granularities,
``area`` being the borough here) one forward run of the composed COVID-19 + labour model
(:func:`jaxsim.nyc.economy.economy_setup`) covers the span on a five-borough synthetic
population (:func:`jaxsim.nyc.boroughs.five_borough_population`). Its UI-claims input is
held at the span's first month, so no later observation enters it
(:func:`jaxsim.models.labour.forecast.with_claims_held`, as
:func:`~jaxsim.models.labour.forecast.simulate_signals` does). With an LLM each archetype
is asked, at the start of every month, for the probability that a member is willing to
go to work (:mod:`jaxsim.models.labour.behaviour`; calls = groups x samples a month
whatever the number of agents). The run's monthly willingness and case signals per
borough then drive the rolling-origin forecasts of
:func:`jaxsim.models.labour.forecast.rolling_origin`: at each origin month the labour
market is fitted to the observed rates up to it and the months after it are forecast as
an ensemble with only data known at the origin, next to last-value persistence. So the
architectures differ only in the willingness they feed the same fit and forecast. Every
row's fit (:data:`FIT`) moves the market's flows and the labour model's willingness
alignment ``sigmoid(a logit(w) + b)`` jointly: the alignment maps each architecture's
willingness (an LLM's answers, whose scale is the model's, or the heuristic's) onto the
observed market. With archetypes it is applied to each group's answer and then averaged
with the boroughs' shares of each group (the agent-based run's mean, up to deaths;
:class:`~jaxsim.models.labour.calibration.LabourCalibrationProblem`). The fitted ``a, b``
of every origin are in the run record's per-origin rows (``run.json``).

Per-agent rows have no unemployment part: a labour market of tens of agents has no
unemployment rate to speak of (the cases half shows their cost).

Shapes: series ``[months, 5]`` (boroughs in :data:`jaxsim.nyc.boroughs.BOROUGHS` order);
rates are fractions, scores in percentage points.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from jaxsim.errors import InputError

#: Span, origins and sizes of each ``--mode``: the span is ``start`` for ``months``
#: months; forecasts from every month ``first_origin`` .. ``last_origin``, ``horizon``
#: months ahead, fitted on up to ``train_months`` months up to the origin.
MODES = {
    # Eight origins: with the three of an earlier version (to 2021-03) one LLM row's lead over
    # the heuristic was luck that five more origins undid (benchmarks/RESULTS.md).
    "cpu": dict(agents=10_000, start="2020-08", months=17, first_origin="2021-01", last_origin="2021-08",
                horizon=4, train_months=9, members=400, fit_steps=1000),
    "city": dict(agents=200_000, start="2020-08", months=17, first_origin="2021-01", last_origin="2021-08",
                 horizon=4, train_months=9, members=400, fit_steps=1000),
}


#: What every row's rolling-origin fit moves: the labour market's flows and the willingness
#: alignment (names of :class:`jaxsim.models.labour.LabourParams`).
FIT: tuple[str, ...] = (
    "separation_logit", "hiring_logit", "separation_case_sensitivity", "hiring_claims_sensitivity",
    "willingness_alignment_scale", "willingness_alignment_offset",
)


@dataclass(frozen=True)
class UnemploymentSettings:
    """The unemployment half's span and sizes (see :data:`MODES`)."""

    agents: int
    start: str
    months: int
    first_origin: str
    last_origin: str
    horizon: int
    train_months: int
    members: int
    fit_steps: int
    seed: int = 0
    ascertainment: float = 0.25

    @property
    def origins(self) -> int:
        return pd.Period(self.last_origin, "M").ordinal - pd.Period(self.first_origin, "M").ordinal + 1


def unemployment_settings(mode: str, agents: int | None, *, seed: int, ascertainment: float) -> UnemploymentSettings:
    """The settings of ``mode`` (``--borough-agents`` overriding its population size);
    :class:`InputError` naming the flag when the population cannot hold five boroughs."""
    values = dict(MODES[mode])
    if agents is not None:
        if agents < 100:
            raise InputError(f"--borough-agents must be >= 100 (a labour force in each of the 5 boroughs), got {agents}")
        values["agents"] = int(agents)
    return UnemploymentSettings(**values, seed=int(seed), ascertainment=float(ascertainment))


@dataclass
class UnemploymentRow:
    """One architecture's unemployment scores.

    Attributes:
        summary: the model's ``nd``, ``mae``, ``wis`` (pp), ``coverage_50``, ``coverage_90``,
            ``beats_persistence_nd`` (share of origins), persistence's ``nd``/``wis``, and
            the fitted willingness alignment's ``alignment_scale``/``alignment_offset``
            (means over the origins; a scale near 0 flattens the answers' differences).
        per_origin, forecasts: :class:`jaxsim.models.labour.forecast.RollingOrigin` tables.
        willingness: float ``[months, 5]`` the run's monthly willingness to work.
        simulated_rate: float ``[months, 5]`` the run's own unemployment rate.
        group_share: float ``[5, G]`` each borough's labour force by archetype, with which
            the fits averaged the aligned answers (None for the heuristic).
    """

    name: str
    summary: dict
    per_origin: pd.DataFrame
    forecasts: pd.DataFrame
    willingness: np.ndarray
    simulated_rate: np.ndarray
    model_calls: int = 0
    calls_this_run: int = 0
    cache_hits: int = 0
    tokens: int | None = 0
    parse_failures: int = 0
    llm_seconds: float = 0.0
    wall_seconds: float = 0.0
    groups: int = 0
    group_share: np.ndarray | None = None


class UnemploymentHalf:
    """The population, data and origins shared by every architecture's unemployment run."""

    def __init__(self, settings: UnemploymentSettings) -> None:
        from jaxsim.models.labour import forecast as lf
        from jaxsim.nyc import boroughs
        from jaxsim.nyc import economy_data as data

        self.settings = settings
        unemployment = data.load_unemployment()
        self.start = data.parse_month(settings.start)
        first = data.parse_month(settings.first_origin)
        last = data.parse_month(settings.last_origin)
        offset = self.start.ordinal - unemployment.months[0].ordinal
        if offset < 0 or offset + settings.months > len(unemployment.months):
            raise InputError(f"unemployment span {self.start} + {settings.months} months: the data covers "
                             f"{unemployment.months[0]} to {unemployment.months[-1]}")
        self.months = unemployment.months[offset: offset + settings.months]
        self.origins = lf.origin_indices(self.months, first, last, horizon=settings.horizon,
                                         train_months=settings.train_months)
        self.observed = unemployment.window(self.start, settings.months)
        self.claims = data.load_ui_claims().claims_rate(unemployment, self.start, settings.months)
        self.population = boroughs.five_borough_population(settings.agents, seed=settings.seed)
        self.boroughs = boroughs.BOROUGHS

    def grouping(self, attributes):
        """The archetypes of a granularity on this population (``area``: the borough)."""
        from jaxsim import behaviour
        from jaxsim.population import Population

        pop = self.population
        keep = ("age", "gender", "area")
        table = Population(
            attributes={**{k: pop.attributes[k] for k in keep}, "everyone": np.zeros(pop.size, np.int32)},
            labels={**{k: list(pop.labels[k]) for k in keep}, "everyone": ["everyone"]},
        )
        return behaviour.group_agents(table, attributes)

    def setup(self, grouping=None):
        from jaxsim.nyc import economy as nyc_economy

        s = self.settings
        return nyc_economy.economy_setup(self.population, self.start, s.months, seed=s.seed,
                                         ascertainment=s.ascertainment, grouping=grouping, on_device=False)

    def run(self, name: str, *, layer_args=None, attributes=None, backend=None, samples: int = 1) -> UnemploymentRow:
        """One architecture: the heuristic (``attributes`` None) or LLM archetypes grouped by
        ``attributes``, asked through ``backend`` (a counting wrapper of the study's cached
        backend) with ``layer_args``' sampling settings."""
        import jax

        from jaxsim import behaviour, engine
        from jaxsim.llm import options as llm_options
        from jaxsim.models import labour
        from jaxsim.models.labour import forecast as lf
        from jaxsim.nyc import economy as nyc_economy

        begin = time.perf_counter()
        s = self.settings
        grouping = None if attributes is None else self.grouping(attributes)
        setup = self.setup(grouping)
        world = lf.with_claims_held(setup.world)
        init_key, run_key = jax.random.split(jax.random.key(s.seed))
        state = engine.initial_state(setup.model, init_key, setup.params, world)
        asking, report, layer = 0.0, None, None
        if grouping is None:
            result = engine.run(setup.model, run_key, state, setup.params, world, setup.days,
                                chunk_days=setup.days, progress=False)
        else:
            layer = behaviour.BehaviourLayer(
                policy=behaviour.policy_of(setup.model, "willingness"), grouping=grouping, backend=backend,
                options=dict(nyc_economy.WILLINGNESS_OPTIONS), settings=llm_options.sampling_from_args(layer_args),
                samples=samples,
            )
            answered = behaviour.run_with_behaviour(setup.model, run_key, state, setup.params, world, setup.days,
                                                    [layer])
            result, asking = answered.result, answered.refresh_seconds
            report = layer.report()
        signals = lf.signals_of(result, s.months)
        if grouping is not None:  # the fits align each archetype's answer, then average
            signals = signals.with_groups(answered.tables["willingness"], labour.work_group_share(world))
        rolled = lf.rolling_origin(
            setup.params.economy, self.months, self.observed, self.claims, signals, self.origins,
            region_names=self.boroughs, train_months=s.train_months, horizon=s.horizon, members=s.members,
            fit_names=FIT, steps=s.fit_steps, seed=s.seed, regions=setup.has_force,
        )
        table = lf.summarise(rolled.per_origin, rolled.forecasts).set_index("method")
        model, persistence = table.loc["model"], table.loc["persistence"]
        summary = {
            "nd": float(model["nd"]), "mae": float(model["mae"]), "wis": float(model["wis"]),
            "coverage_50": float(model["coverage_50"]), "coverage_90": float(model["coverage_90"]),
            "beats_persistence_nd": float(model["beats_persistence_nd"]),
            "persistence_nd": float(persistence["nd"]), "persistence_wis": float(persistence["wis"]),
            "relative_wis": float(model["wis"] / persistence["wis"]) if persistence["wis"] > 0 else float("nan"),
            "mean_willingness": float(np.mean(signals.willingness[:, setup.has_force])),
            **{key: _mean_fitted(rolled.per_origin, name)
               for key, name in (("alignment_scale", "willingness_alignment_scale"),
                                 ("alignment_offset", "willingness_alignment_offset"))},
        }
        per_origin = rolled.per_origin.assign(architecture=name)
        forecasts = rolled.forecasts.assign(architecture=name)
        return UnemploymentRow(
            name, summary, per_origin, forecasts, signals.willingness, signals.unemployment_rate,
            model_calls=getattr(backend, "requests", 0), calls_this_run=getattr(backend, "llm_calls", 0),
            cache_hits=getattr(backend, "cache_hits", 0), tokens=getattr(backend, "tokens", 0),
            parse_failures=0 if report is None else int(report["parse_failures"]),
            llm_seconds=asking, wall_seconds=time.perf_counter() - begin,
            groups=0 if grouping is None else grouping.num_groups, group_share=signals.group_share,
        )

    def describe(self) -> str:
        s = self.settings
        return (f"unemployment: {self.population.size:,} agents over the 5 boroughs, {self.months[0]}..{self.months[-1]}"
                f" ({s.months} months); forecasts from {self.months[self.origins[0]]}..{self.months[self.origins[-1]]}"
                f" ({len(self.origins)} origins), {s.horizon} months ahead, fitted on up to {s.train_months} months, "
                f"{s.members} members")


def _mean_fitted(per_origin: pd.DataFrame, name: str) -> float:
    """The mean over origins of the model's fitted ``name`` (NaN where it was not fitted)."""
    column = f"fitted_{name}"
    if column not in per_origin:
        return float("nan")
    return float(per_origin.loc[per_origin["method"] == "model", column].mean())


def columns(row: UnemploymentRow | None) -> dict:
    """study.csv's unemployment columns for an architecture's row (NaN where it has none)."""
    nan = float("nan")
    if row is None:
        return {"unemployment_nd": nan, "unemployment_wis": nan, "unemployment_coverage_50": nan,
                "unemployment_coverage_90": nan, "unemployment_persistence_nd": nan,
                "unemployment_persistence_wis": nan, "unemployment_relative_wis": nan,
                "unemployment_beats_persistence_nd": nan, "unemployment_model_calls": 0,
                "unemployment_model_calls_per_month": nan, "unemployment_tokens_this_run": nan,
                "unemployment_alignment_scale": nan, "unemployment_alignment_offset": nan,
                "unemployment_wall_seconds": nan}
    s = row.summary
    months = max(1, len(row.willingness))
    return {"unemployment_nd": s["nd"], "unemployment_wis": s["wis"], "unemployment_coverage_50": s["coverage_50"],
            "unemployment_coverage_90": s["coverage_90"], "unemployment_persistence_nd": s["persistence_nd"],
            "unemployment_persistence_wis": s["persistence_wis"], "unemployment_relative_wis": s["relative_wis"],
            "unemployment_beats_persistence_nd": s["beats_persistence_nd"],
            "unemployment_model_calls": row.model_calls, "unemployment_model_calls_per_month": row.model_calls / months,
            "unemployment_tokens_this_run": nan if row.tokens is None else row.tokens,
            "unemployment_alignment_scale": s["alignment_scale"], "unemployment_alignment_offset": s["alignment_offset"],
            "unemployment_wall_seconds": row.wall_seconds}


#: study.csv's unemployment score columns (a replay reproduces them exactly).
SCORE_COLUMNS = ("unemployment_nd", "unemployment_wis", "unemployment_coverage_50", "unemployment_coverage_90",
                 "unemployment_persistence_nd", "unemployment_persistence_wis", "unemployment_relative_wis")
