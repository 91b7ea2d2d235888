"""Willingness to work from a language model: one question per archetype per month.

The economy's counterpart of :class:`jaxsim.archetypes.ArchetypeLayer`, built from the
same pieces (:func:`jaxsim.archetypes.group_agents`, :class:`~jaxsim.archetypes.PromptTemplate`
with its literal-number check, :func:`jaxsim.llm.query.query_probabilities` with retry
and prior fall-back, the cached backends of :mod:`jaxsim.llm`). At the start of each
calendar month of a run the layer renders one prompt per archetype from the group's
labels and the month's signals, asks the model for the probability that a member is
willing to go to work this month, and writes the ``[G]`` answers into
``world.inputs["willingness"]``; inside ``jit`` each member of the labour force draws
its own willingness from its archetype's answer (:func:`jaxsim.economy.economy_model`
with ``policy="inputs"``). Model calls per simulated month = archetypes x samples.

The prompt (:data:`WORK_TEMPLATE`; placeholders in braces, no literal numbers)::

    system: You are simulating the economic decisions of people in New York City during
            the COVID-19 pandemic. Answer for the person described, with a JSON object
            {"probability": p} where p is a number between zero and one.
    user:   You are {age_phrase}, {gender_phrase}, living in {place}. It is {month_name}.
            Last month {cases_per_thousand} in every thousand residents of {place} were
            reported with COVID-19, {cases_change} the month before. The unemployment
            rate in {place} is {unemployment_rate}. Prices have {price_change} since the
            simulation started. {stimulus_news}If you have a job, what is the probability
            that you are willing to go to work this month rather than stay home? Answer
            with the JSON object only.

``{place}`` is the archetype's borough when the grouping includes ``county`` (or
``area``), else New York City, whose signals are then the city's. A failed or
unreadable reply falls back to the **prior**: the mean heuristic willingness of the
archetype's labour force under the same state (:func:`jaxsim.kernels.labour.heuristic_willingness`).
"""

from __future__ import annotations

import calendar
import datetime as _dt
import functools
import time
from dataclasses import dataclass, field
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim import archetypes, engine
from jaxsim.archetypes import ArchetypeError, Grouping, PromptTemplate
from jaxsim.boroughs import BOROUGH_NAMES, BOROUGHS, COUNTY_TO_BOROUGH, NTA_PREFIX_TO_BOROUGH
from jaxsim.economy import NUM_BOROUGHS, days_in_months, willingness_probability
from jaxsim.population import DEAD
from jaxsim.kernels import labour

#: Signals a work template may use (besides the grouping's attributes and ``<attr>_phrase``).
WORK_SIGNAL_FIELDS: tuple[str, ...] = (
    "month_name",          # "August 2020"
    "place",               # the archetype's borough ("Queens") or "New York City"
    "cases_per_thousand",  # reported cases per 1,000 residents last month, e.g. "2.4"
    "cases_change",        # "up 35% on" / "down 20% from" / "about the same as"
    "unemployment_rate",   # e.g. "12.3%"
    "price_change",        # "risen by 1.2%" / "fallen by 0.5%" / "stayed about the same"
    "stimulus_news",       # a sentence about this month's stimulus payment, or empty
)


@dataclass(frozen=True)
class WorkPromptTemplate(PromptTemplate):
    """A :class:`~jaxsim.archetypes.PromptTemplate` whose signals are
    :data:`WORK_SIGNAL_FIELDS` (not the weekly isolation signals)."""

    def check(self, attributes: Sequence[str]) -> None:
        """Raise :class:`~jaxsim.archetypes.ArchetypeError` for unknown placeholders or
        literal numbers (the latter checked by :meth:`PromptTemplate.check`)."""
        allowed = set(WORK_SIGNAL_FIELDS) | set(attributes) | {f"{a}_phrase" for a in attributes}
        unknown = sorted(self.fields() - allowed)
        if unknown:
            raise ArchetypeError(f"work prompt template: unknown placeholders {unknown}; available: {sorted(allowed)}")
        PromptTemplate.check(self, list(attributes) + list(WORK_SIGNAL_FIELDS))


_WORK_SYSTEM = (
    "You are simulating the economic decisions of people in New York City during the COVID-19 "
    "pandemic. Answer for the person described, with a JSON object "
    '{{"probability": p}} where p is a number between zero and one.'
)
_WORK_QUESTION = (
    "It is {month_name}. Last month {cases_per_thousand} in every thousand residents of {place} "
    "were reported with COVID-19, {cases_change} the month before. The unemployment rate in "
    "{place} is {unemployment_rate}. Prices have {price_change} since the simulation started. "
    "{stimulus_news}If you have a job, what is the probability that you are willing to go to "
    "work this month rather than stay home? Answer with the JSON object only."
)


def work_template(attributes: Sequence[str]) -> WorkPromptTemplate:
    """The willingness question for a grouping: the person is described by the phrases of
    whichever of ``age`` and ``gender`` the grouping has, and where they live."""
    described = [f"{{{a}_phrase}}" for a in ("age", "gender") if a in set(attributes)]
    who = f"You are {', '.join(described)}, living in {{place}}. " if described else "You live in {place}. "
    return WorkPromptTemplate(system=_WORK_SYSTEM, user=who + _WORK_QUESTION)


#: The question when grouping by age band and gender.
WORK_TEMPLATE = work_template(("age", "gender"))


def _borough_of_label(attribute: str, label: str) -> int | None:
    if attribute == "county":
        borough = COUNTY_TO_BOROUGH.get(" ".join(str(label).strip().lower().replace("_", " ").split()))
    elif attribute == "area":
        borough = NTA_PREFIX_TO_BOROUGH.get(str(label).strip()[:2].upper())
    else:
        return None
    return None if borough is None else BOROUGHS.index(borough)


@dataclass(frozen=True)
class MonthlySignals:
    """What the simulation tells the prompts at the start of a run month.

    Attributes:
        month: run month (0 = the first).
        date: its first day.
        case_signal: float ``[5]`` reported cases per 1,000 residents last month.
        previous_case_signal: float ``[5]`` the month before that (``None``: unknown).
        unemployment: float ``[5]`` unemployment rate now (fractions).
        labour_force, residents: float ``[5]`` weights for the city's figures.
        price_level: the price index (1 at the start).
        stimulus_usd: this month's stimulus payment per eligible adult (0: none).
    """

    month: int
    date: _dt.date
    case_signal: np.ndarray
    previous_case_signal: np.ndarray | None
    unemployment: np.ndarray
    labour_force: np.ndarray
    residents: np.ndarray
    price_level: float
    stimulus_usd: float = 0.0

    def values(self, borough: int | None) -> dict[str, object]:
        """Placeholder values for an archetype of ``borough`` (``None``: the whole city)."""
        if borough is None:
            weights = self.residents / max(float(self.residents.sum()), 1.0)
            cases = float(np.dot(weights, self.case_signal))
            before = None if self.previous_case_signal is None else float(np.dot(weights, self.previous_case_signal))
            force = self.labour_force
            rate = float(np.dot(force, self.unemployment) / max(float(force.sum()), 1.0))
            place = "New York City"
        else:
            cases = float(self.case_signal[borough])
            before = None if self.previous_case_signal is None else float(self.previous_case_signal[borough])
            rate = float(self.unemployment[borough])
            place = BOROUGH_NAMES[BOROUGHS[borough]]
        change = (self.price_level - 1.0) * 100.0
        return {
            "month_name": f"{calendar.month_name[self.date.month]} {self.date.year}",
            "place": place,
            "cases_per_thousand": f"{cases:.1f}",
            "cases_change": _change_phrase(cases, before),
            "unemployment_rate": f"{100 * rate:.1f}%",
            "price_change": (
                "stayed about the same" if abs(change) < 0.05
                else f"risen by {change:.1f}%" if change > 0 else f"fallen by {-change:.1f}%"
            ),
            "stimulus_news": (
                f"This month the government is sending a stimulus payment of ${self.stimulus_usd:,.0f} "
                "to eligible residents. " if self.stimulus_usd > 0 else ""
            ),
        }


def _change_phrase(now: float, before: float | None) -> str:
    if before is None or before <= 0:
        return "up from none in" if (before is not None and now > 0) else "about the same as"
    change = (now - before) / before
    if abs(change) < 0.05:
        return "about the same as"
    return f"up {change:.0%} on" if change > 0 else f"down {-change:.0%} from"


@dataclass
class WorkLayer(archetypes.TalliedLayer):
    """Asks a model for each archetype's monthly willingness to work.

    Attributes:
        grouping: the archetypes (:func:`jaxsim.archetypes.group_agents`).
        backend: a :class:`jaxsim.llm.backends.Backend`, normally a
            :class:`jaxsim.llm.cache.CachedBackend`.
        template: the prompt (checked against the grouping when the layer is made).
        settings: sampling settings (temperature 0 by default).
        samples: replies averaged per archetype per month.
    """

    grouping: Grouping
    backend: object
    template: PromptTemplate = None
    settings: object = None
    samples: int = 1
    history: list[dict] = field(default_factory=list)
    tally: archetypes.AnswerTally = field(default_factory=archetypes.AnswerTally)

    def __post_init__(self) -> None:
        from jaxsim.llm.backends import SamplingSettings

        if self.template is None:
            self.template = work_template(self.grouping.attributes)
        if self.settings is None:
            self.settings = SamplingSettings()
        if int(self.samples) < 1:
            raise ArchetypeError(f"samples per archetype must be >= 1, got {self.samples}")
        self.template.check(self.grouping.attributes)
        self.group_borough = []
        for labels in self.grouping.labels:
            found = None
            for attribute in ("county", "area"):
                if attribute in labels:
                    found = _borough_of_label(attribute, labels[attribute])
                    break
            self.group_borough.append(found)

    def prompts(self, signals: MonthlySignals) -> list[tuple[dict, ...]]:
        """One message list per archetype."""
        out = []
        for labels, borough in zip(self.grouping.labels, self.group_borough):
            out.append(self.template.render(signals.values(borough) | archetypes.label_values(labels)))
        return out

    def probabilities(self, signals: MonthlySignals, prior: np.ndarray) -> np.ndarray:
        """float32 ``[G]`` willingness for the month of ``signals``; ``prior`` ``[G]`` is the
        fall-back of archetypes without a readable answer. Recorded in :attr:`history`."""
        prior = np.asarray(prior, np.float64)
        probs, used_prior = self.tally.ask(self.backend, self.prompts(signals), self.settings, self.samples, prior)
        self.history.append({
            "month": signals.month,
            "month_name": signals.values(None)["month_name"],
            "probabilities": [round(float(p), 6) for p in probs],
            "prior": [round(float(p), 6) for p in prior],
            "fallbacks": used_prior.astype(int).tolist(),
        })
        return probs

    def report(self) -> dict:
        """The ``"llm"`` section of ``run.json``."""
        example = MonthlySignals(
            0, _dt.date(2020, 8, 1), np.zeros(NUM_BOROUGHS), None, np.zeros(NUM_BOROUGHS),
            np.ones(NUM_BOROUGHS), np.ones(NUM_BOROUGHS), 1.0,
        )
        return {
            **self.tally.counters(self.backend),
            "question": "willingness to work this month",
            "samples_per_archetype": int(self.samples),
            "temperature": float(self.settings.temperature),
            "archetype_attributes": list(self.grouping.attributes),
            "archetypes": self.grouping.names,
            "archetype_sizes": self.grouping.sizes.astype(int).tolist(),
            "example_prompt": list(self.prompts(example)[0]),
            "months": [
                {
                    "month": h["month"],
                    "month_name": h["month_name"],
                    "probabilities": dict(zip(self.grouping.names, h["probabilities"])),
                    "fell_back_to_prior": [n for n, f in zip(self.grouping.names, h["fallbacks"]) if f],
                }
                for h in self.history
            ],
        }


# ----------------------------------------------------------------------------- the run
@jax.jit
def _state_signals(employed, labour_force, alive, borough):
    active = labour_force * alive
    return labour.unemployment_rate(employed, active, borough, NUM_BOROUGHS)


@functools.partial(jax.jit, static_argnames="num_groups")
def _heuristic_group_prior(state, params, world, num_groups: int) -> jax.Array:
    """Mean heuristic willingness of each archetype's living labour force (``[G]``)."""
    econ = state.economy
    active = world.agents["labour_force"] * (state.covid.stage < DEAD).astype(jnp.float32)
    prob = willingness_probability("heuristic", econ, params.economy, world, jnp.int32(0))
    sums = labour.sum_by_code(jnp.stack([prob * active, active], axis=1), world.agents["work_group"], num_groups)
    return jnp.where(sums[:, 1] > 0, sums[:, 0] / jnp.maximum(sums[:, 1], 1.0), prob.mean())


@dataclass
class WorkLayerRun:
    """What :func:`run_with_work_layer` returns: the whole run as one
    :class:`jaxsim.engine.RunResult`, the ``[months, G]`` willingness table the layer
    set, and the host seconds spent asking."""

    result: engine.RunResult
    willingness: np.ndarray
    refresh_seconds: float


def run_with_work_layer(
    model: engine.Model,
    state,
    params,
    world: engine.World,
    key: jax.Array,
    start: _dt.date,
    months: int,
    layer: WorkLayer,
    *,
    progress: bool | str = False,
) -> WorkLayerRun:
    """Run ``months`` calendar months from ``start``, asking ``layer`` at each month's start.

    ``model`` must read willingness from ``world.inputs["willingness"]``
    (``economy.coupled_model(willingness_policy="inputs")``) with one column per archetype
    (``build_economy_world(..., work_groups=grouping.codes, ...)``). The run is one
    :func:`jaxsim.engine.run` in one-day chunks (one program for months of every length)
    whose ``before_chunk`` hook asks the layer on each month's first day.
    """
    months = int(months)
    groups = layer.grouping.num_groups
    table_in = archetypes.require_group_table(world, "willingness", "months", groups)
    table = np.zeros((max(months, table_in.shape[0]), groups), np.float32)
    # The run compiles with the table's final shape; the hook only changes its values.
    world = world.replace(inputs={**world.inputs, "willingness": jnp.asarray(table)})
    stimulus = params.economy.stimulus
    residents = np.asarray(world.inputs["borough_residents"])
    month_of_first_day = {days_in_months(start, m): m for m in range(months)}
    days = days_in_months(start, months)
    refresh_seconds, previous = 0.0, None

    def refresh(t: int, state, world: engine.World) -> engine.World:
        """At the first day of each month: ask the layer and write its answers."""
        nonlocal refresh_seconds, previous
        month = month_of_first_day.get(t)
        if month is None:
            return world
        begin = time.perf_counter()
        econ = state.economy
        rate, force = _state_signals(
            econ.employed, world.agents["labour_force"], (state.covid.stage < DEAD).astype(jnp.float32),
            world.agents["borough"],
        )
        paid = 0.0
        if stimulus is not None:
            schedule = np.asarray(stimulus.paid)
            paid = float(stimulus.amount) if month < schedule.shape[-1] and schedule[month] > 0.5 else 0.0
        case_signal = np.asarray(econ.case_signal, np.float64)
        signals = MonthlySignals(
            month=month, date=_add_months(start, month), case_signal=case_signal,
            previous_case_signal=previous, unemployment=np.asarray(rate, np.float64),
            labour_force=np.asarray(force, np.float64), residents=residents,
            price_level=float(econ.price_level), stimulus_usd=paid,
        )
        prior = np.asarray(_heuristic_group_prior(state, params, world, num_groups=groups))
        probs = layer.probabilities(signals, prior)
        previous = case_signal
        table[month:] = probs
        world = world.replace(inputs={**world.inputs, "willingness": jnp.asarray(table)})
        refresh_seconds += time.perf_counter() - begin
        return world

    # One-day chunks: one program serves months of every length, and the hook sees each
    # month's first day.
    combined = engine.run(
        model, state, params, world, key, days, progress=progress, chunk_days=1, before_chunk=refresh,
    )
    return WorkLayerRun(combined, table[:months], refresh_seconds)


def _add_months(start: _dt.date, months: int) -> _dt.date:
    month = start.month - 1 + int(months)
    return _dt.date(start.year + month // 12, month % 12 + 1, 1)


__all__ = [
    "MonthlySignals",
    "WORK_SIGNAL_FIELDS",
    "WORK_TEMPLATE",
    "WorkLayer",
    "WorkLayerRun",
    "WorkPromptTemplate",
    "run_with_work_layer",
    "work_template",
]
