"""Isolation set by a language model: the COVID model's policy input ``isolation_prob``.

With ``covid_model(policy="inputs")`` the step reads each week's isolation probability per
group from ``world.inputs["isolation_prob"]`` (``[weeks, G]``). :data:`ISOLATION_POLICY`
declares that input to the behaviour layer (:mod:`jaxsim.behaviour`): once a week a
:class:`jaxsim.behaviour.BehaviourLayer` renders one prompt per archetype from the group's
labels and the simulation's signals (this week's reported cases, their change against the
4-week average, weeks since the start, the neighbourhood's name), asks a model for the
probability that a member stays home on a day this week, and writes the answers; inside
``jit`` each agent reads its group's probability, adjusted by the calibratable alignment
``p' = clip(a_g p + b_g, 0, 1)`` (:class:`.params.CovidParams`), and draws its own isolation.

Layer options read here: ``ascertainment`` (reported share of onsets; the prompts quote
reported cases; default 0.25), ``neighbourhood`` (how the prompts name where the agents
live), ``area_names`` (``{area label: name}``, for groupings by ``area``),
``baseline_by_age`` and ``response`` (the heuristic prior; default the model's defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.behaviour import ArchetypeError, Grouping, PolicyInput, PromptTemplate
from jaxsim.kernels.isolation import heuristic_isolation_probability
from jaxsim.models.covid.params import DEFAULT_ISOLATION_BASELINE, DEFAULT_ISOLATION_RESPONSE

#: Signals every isolation template may use (besides the grouping's attributes and ``<attr>_phrase``).
SIGNAL_FIELDS: tuple[str, ...] = (
    "cases_this_week",       # reported cases this week in the simulated area (integer)
    "cases_four_week_average",  # mean weekly reported cases over the last four weeks
    "cases_change",          # e.g. "up 35% on" / "down 20% from" / "about the same as"
    "weeks_since_start",     # whole weeks since day 0 (0 in the first week)
    "neighbourhood",         # e.g. "Astoria, Queens"
)

_ISOLATION_SYSTEM = (
    "You are simulating how people in New York City behave during the COVID-19 "
    "pandemic. Answer for the person described, with a JSON object "
    '{{"probability": p}} where p is a number between zero and one.'
)
_ISOLATION_QUESTION = (
    "This week {cases_this_week} people in your neighbourhood were reported with "
    "COVID-19, {cases_change} the average of the last four weeks. "
    "It is week {weeks_since_start} since we started watching. "
    "What is the probability that on a given day this week you stay home and "
    "isolate instead of going out? Answer with the JSON object only."
)


def isolation_template(attributes: Sequence[str]) -> PromptTemplate:
    """The default isolation question for a grouping: the person is described by the
    phrases of whichever of ``age`` and ``gender`` the grouping has, and where they live
    (``{neighbourhood}``: the archetype's own area when grouping by ``area``)."""
    described = [f"{{{a}_phrase}}" for a in ("age", "gender") if a in set(attributes)]
    who = f"You are {', '.join(described)}, living in {{neighbourhood}}. " if described else (
        "You live in {neighbourhood}. "
    )
    return PromptTemplate(system=_ISOLATION_SYSTEM, user=who + _ISOLATION_QUESTION)


#: The default question when grouping by age band and gender.
ISOLATION_TEMPLATE = isolation_template(("age", "gender"))


@dataclass(frozen=True)
class WeeklySignals:
    """What the simulation tells the prompts at a refresh.

    Attributes:
        week: index of the week being decided (0 = days 0..6).
        onsets_this_week: simulated case onsets over the 7 days before the refresh
            (before day 0: the prior the run started from).
        onsets_four_week_average: mean weekly onsets over the 28 days before.
        ascertainment: reported share of onsets; the prompts quote reported cases.
        neighbourhood: how the prompts name where the agents live.
        area_names: ``{area label: name}`` for archetypes grouped by ``area``.
    """

    week: int
    onsets_this_week: float
    onsets_four_week_average: float
    ascertainment: float = 1.0
    neighbourhood: str = "New York City"
    area_names: Mapping[str, str] | None = None

    @property
    def cases_this_week(self) -> float:
        """Reported cases this week (onsets x ascertainment)."""
        return self.onsets_this_week * self.ascertainment

    @property
    def cases_four_week_average(self) -> float:
        """Mean weekly reported cases over the last four weeks."""
        return self.onsets_four_week_average * self.ascertainment

    @staticmethod
    def from_case_ring(daily_cases: np.ndarray, day: int, ascertainment: float, **naming) -> "WeeklySignals":
        """From the model's ring of daily onsets (``CovidState.daily_cases``) on ``day``: the
        signal the heuristic policy reads inside the simulation
        (:func:`jaxsim.kernels.isolation.weekly_case_signal`)."""
        # On the host (one small transfer): the formula of weekly_case_signal.
        ring = np.asarray(daily_cases, np.float32)
        if ring.ndim != 1 or ring.shape[0] < 28:
            raise ArchetypeError(f"the case ring needs at least 28 days, got shape {ring.shape}")
        recent = ring[(day - 1 - np.arange(28)) % ring.shape[0]]
        this_week, average = recent[:7].sum(dtype=np.float32), recent.sum(dtype=np.float32) / np.float32(4)
        return WeeklySignals(day // 7, float(this_week), float(average), float(ascertainment), **naming)

    def change_phrase(self) -> str:
        """``"up 35% on"``, ``"down 20% from"`` or ``"about the same as"`` (within 5%)."""
        base = self.cases_four_week_average
        if base <= 0:
            return "up from none in" if self.cases_this_week > 0 else "about the same as"
        change = (self.cases_this_week - base) / base
        if abs(change) < 0.05:
            return "about the same as"
        return f"up {change:.0%} on" if change > 0 else f"down {-change:.0%} from"

    def values(self, labels: Mapping[str, str] | None = None) -> dict[str, object]:
        """Placeholder values for the group with ``labels`` (its own neighbourhood when
        grouped by ``area``)."""
        neighbourhood = self.neighbourhood
        if labels and "area" in labels:
            neighbourhood = (self.area_names or {}).get(labels["area"], labels["area"])
        return {
            "cases_this_week": int(round(self.cases_this_week)),
            "cases_four_week_average": int(round(self.cases_four_week_average)),
            "cases_change": self.change_phrase(),
            "weeks_since_start": self.week,
            "neighbourhood": neighbourhood,
        }

    def record(self) -> dict:
        return {
            "week": self.week,
            "cases_this_week": self.cases_this_week,
            "cases_four_week_average": self.cases_four_week_average,
        }


#: One compiled call for the prior (eager jnp would dispatch each operation separately).
_heuristic = jax.jit(heuristic_isolation_probability)


def heuristic_prior(grouping: Grouping, baseline_by_age: Mapping[str, float], response: float):
    """``fn(signals) -> [G]``: what the heuristic isolation policy would set for each
    archetype under the same case signal (its age band's baseline, or the mean baseline
    without an ``age`` attribute)."""
    if "age" in grouping.attributes:
        try:
            baseline = np.array([baseline_by_age[g["age"]] for g in grouping.labels], np.float32)
        except KeyError as err:
            raise ArchetypeError(f"heuristic prior: no isolation baseline for age band {err.args[0]!r}") from None
    else:
        baseline = np.full(grouping.num_groups, np.mean(list(baseline_by_age.values())), np.float32)

    def prior(signals: WeeklySignals) -> np.ndarray:
        return np.asarray(_heuristic(
            jnp.float32(signals.onsets_this_week), jnp.float32(signals.onsets_four_week_average),
            jnp.asarray(baseline), jnp.float32(response),
        ))

    return prior


def _signals(t, state, params, world, options) -> WeeklySignals:
    return WeeklySignals.from_case_ring(
        state.daily_cases, t, float(options.get("ascertainment", 0.25)),
        neighbourhood=str(options.get("neighbourhood", "New York City")),
        area_names=dict(options.get("area_names", {})),
    )


def _prior(signals, state, params, world, grouping, options) -> np.ndarray:
    cached = options.setdefault("_prior", {})
    key = id(grouping)
    if key not in cached:
        cached[key] = heuristic_prior(
            grouping, options.get("baseline_by_age", DEFAULT_ISOLATION_BASELINE),
            float(options.get("response", DEFAULT_ISOLATION_RESPONSE)),
        )
    return cached[key](signals)


def _week(t: int, world) -> int:
    return int(t) // 7


def _check_options(options) -> None:
    ascertainment = options.get("ascertainment", 0.25)
    try:
        value = float(ascertainment)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0 < value <= 1:
        raise ArchetypeError(f"ascertainment must lie in (0, 1], got {ascertainment!r}")
    for name in ("neighbourhood",):
        if name in options and not isinstance(options[name], str):
            raise ArchetypeError(f"option {name!r} must be a text, got {options[name]!r}")


ISOLATION_POLICY = PolicyInput(
    name="isolation_prob",
    groups="isolation_group",
    question="probability that a member stays home and isolates on a day this week",
    signal_fields=SIGNAL_FIELDS,
    template=isolation_template,
    signals=_signals,
    prior=_prior,
    period=_week,
    chunk_days=7,
    period_name="week",
    check_options=_check_options,
)

__all__ = [
    "ISOLATION_POLICY",
    "ISOLATION_TEMPLATE",
    "SIGNAL_FIELDS",
    "WeeklySignals",
    "heuristic_prior",
    "isolation_template",
]
