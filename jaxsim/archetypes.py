"""LLM archetypes: one language-model question per group of similar agents, per week.

An *archetype* is a group of agents that share the values of some categorical attributes
(e.g. age band x gender, optionally x neighbourhood). Each refresh (weekly by default) the
layer renders one prompt per archetype from the group's labels and the simulation's
signals (this week's reported cases, their change against the 4-week average, weeks since
the start, the neighbourhood), asks a model (see :mod:`jaxsim.llm`) for the probability
that a member isolates on a day this week, and hands the ``[G]`` probabilities to the
jitted simulation as an input array. Inside ``jit`` each agent reads its group's
probability (``p'_g = clip(a_g p_g + b_g, 0, 1)`` with the calibratable alignment
parameters of :class:`jaxsim.covid.CovidParams`) and draws its own isolation.

Model calls per simulated week = archetypes x samples (+ retries of unparseable replies),
independent of the number of agents; with a warm cache, none.

Pieces, one job each:

- :func:`group_agents` -> :class:`Grouping`: a group id per agent from attribute codes
  (vectorized), with the labels of each group from ``mapping.json``.
- :class:`PromptTemplate`: system + user text with ``{placeholders}``; checked for unknown
  placeholders and for literal numbers (small models copy example numbers).
- :class:`WeeklySignals`: what the simulation tells the prompts.
- :class:`ArchetypeLayer`: renders, asks, parses, falls back to a prior, records history.
- :func:`run_with_archetypes`: the host loop over refresh periods around
  :func:`jaxsim.engine.run` (the days of each period are one compiled ``lax.scan``).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim import engine
from jaxsim.kernels.isolation import heuristic_isolation_probability
from jaxsim.population import Population

#: Name of the attribute :func:`with_archetype_attribute` adds to a population.
ARCHETYPE_ATTRIBUTE = "archetype"


class ArchetypeError(ValueError):
    """An archetype grouping, template or layer is misconfigured (the message says how)."""


# ----------------------------------------------------------------------------- grouping
@dataclass(frozen=True)
class Grouping:
    """Agents grouped by the joint values of categorical attributes.

    Attributes:
        attributes: the attributes grouped by, in order.
        codes: int32 ``[N]`` the group id of each agent (``0 .. G-1``).
        labels: ``G`` dicts ``{attribute: label}``, the labels of each group (from the
            population's ``mapping.json``; plain codes where an attribute has none).
        sizes: int64 ``[G]`` agents per group.

    Only combinations that occur in the population are groups, numbered in the order of
    the attributes' codes (the first attribute varies slowest).
    """

    attributes: tuple[str, ...]
    codes: np.ndarray
    labels: tuple[dict, ...]
    sizes: np.ndarray

    @property
    def num_groups(self) -> int:
        return len(self.labels)

    def name(self, group: int) -> str:
        """``"age=20t29|gender=female"``: a stable, readable name of a group."""
        return "|".join(f"{a}={self.labels[group][a]}" for a in self.attributes)

    @property
    def names(self) -> list[str]:
        return [self.name(g) for g in range(self.num_groups)]


def group_agents(population: Population, attributes: Sequence[str]) -> Grouping:
    """Group agents by the joint values of ``attributes`` (no loop over agents).

    Raises:
        ArchetypeError: no attributes, a repeated one, or one the population lacks (the
            message lists the population's attributes).
    """
    attributes = tuple(attributes)
    if not attributes:
        raise ArchetypeError("archetype attributes: name at least one attribute, e.g. ('age', 'gender')")
    repeated = sorted({a for a in attributes if attributes.count(a) > 1})
    if repeated:
        raise ArchetypeError(f"archetype attributes: {repeated} named more than once")
    missing = [a for a in attributes if a not in population.attributes]
    if missing:
        raise ArchetypeError(
            f"archetype attributes {missing} are not attributes of the population; "
            f"it has {sorted(population.attributes)}"
        )
    # Mixed-radix code of each agent's combination, then the combinations that occur.
    combined = np.zeros(population.size, np.int64)
    radices = []
    for name in attributes:
        k = population.num_categories(name)
        radices.append(k)
        combined = combined * k + population.attributes[name].astype(np.int64)
    present, codes, sizes = np.unique(combined, return_inverse=True, return_counts=True)
    labels = []
    for value in present:
        digits = []
        for k in reversed(radices):
            digits.append(int(value % k))
            value //= k
        digits.reverse()
        labels.append({
            name: population.category_labels(name)[d] for name, d in zip(attributes, digits)
        })
    return Grouping(attributes, codes.astype(np.int32).reshape(-1), tuple(labels), sizes)


def with_archetype_attribute(population: Population, grouping: Grouping) -> Population:
    """A shallow copy of ``population`` with the attribute ``"archetype"`` (labels: the
    group names), so that the COVID world and parameters can use it as isolation groups."""
    if grouping.codes.shape != (population.size,):
        raise ArchetypeError(
            f"grouping has {grouping.codes.shape[0]} agents, the population {population.size}"
        )
    return replace(
        population,
        attributes={**population.attributes, ARCHETYPE_ATTRIBUTE: grouping.codes},
        labels={**population.labels, ARCHETYPE_ATTRIBUTE: grouping.names},
    )


# ----------------------------------------------------------------------------- prompts
#: How the NYC populations' labels read in a sentence (others read as they are).
LABEL_PHRASES: dict[str, dict[str, str]] = {
    "age": {
        "U19": "under twenty years old",
        "20t29": "in your twenties",
        "30t39": "in your thirties",
        "40t49": "in your forties",
        "50t64": "between fifty and sixty-four years old",
        "65A": "sixty-five or older",
    },
    "gender": {"male": "a man", "female": "a woman"},
}

#: Signals every template may use (besides the grouping's attributes and ``<attr>_phrase``).
SIGNAL_FIELDS: tuple[str, ...] = (
    "cases_this_week",       # reported cases this week in the simulated area (integer)
    "cases_four_week_average",  # mean weekly reported cases over the last four weeks
    "cases_change",          # e.g. "up 35% on" / "down 20% from" / "about the same as"
    "weeks_since_start",     # whole weeks since day 0 (0 in the first week)
    "neighbourhood",         # e.g. "Astoria, Queens"
)


#: A number standing alone in prompt text ("0.3", "30%", "7"), not part of a name such as
#: "COVID-19" or "H1N1".
_LITERAL_NUMBER = re.compile(r"(?<![\w-])\d+(?:[.,]\d+)?(?![\w])")


@dataclass(frozen=True)
class PromptTemplate:
    """A chat prompt with ``{placeholders}``: a system message and a user message.

    Placeholders are the grouping's attributes (``{age}`` gives the label, ``{age_phrase}``
    the readable phrase of :data:`LABEL_PHRASES`) and the signals in
    :data:`SIGNAL_FIELDS`. The literal text may not contain digits: small models copy
    example numbers into their answers, so numbers reach the prompt only through
    placeholders.
    """

    system: str
    user: str

    def fields(self) -> set[str]:
        names = set()
        for text in (self.system, self.user):
            for _, name, spec, conversion in string.Formatter().parse(text):
                if name is not None:
                    if not name.isidentifier():
                        raise ArchetypeError(
                            f"prompt template: placeholder {{{name}}} is not a plain name"
                        )
                    names.add(name)
        return names

    def check(self, attributes: Sequence[str]) -> None:
        """Raise :class:`ArchetypeError` for unknown placeholders or literal digits."""
        allowed = set(SIGNAL_FIELDS) | set(attributes) | {f"{a}_phrase" for a in attributes}
        unknown = sorted(self.fields() - allowed)
        if unknown:
            raise ArchetypeError(
                f"prompt template: unknown placeholders {unknown}; available: {sorted(allowed)}"
            )
        for part, text in (("system", self.system), ("user", self.user)):
            literal = "".join(piece for piece, *_ in string.Formatter().parse(text))
            number = _LITERAL_NUMBER.search(literal)
            if number:
                at = number.start()
                raise ArchetypeError(
                    f"prompt template ({part} message): literal number near "
                    f"{literal[max(0, at - 20): at + 20]!r}; example numbers make small models "
                    "copy them — pass numbers through placeholders"
                )

    def render(self, values: Mapping[str, object]) -> tuple[dict, ...]:
        """The messages with placeholders filled from ``values``."""
        return (
            {"role": "system", "content": self.system.format_map(values)},
            {"role": "user", "content": self.user.format_map(values)},
        )

    def bind(self, values: Mapping[str, object]) -> "PromptTemplate":
        """This template with the placeholders named in ``values`` filled in and the others
        kept: ``t.bind(a).render(b) == t.render(a | b)`` for ``a`` and ``b`` naming
        different placeholders (an archetype's labels are bound once, the weekly signals
        rendered each refresh)."""
        return PromptTemplate(system=_bind_text(self.system, values), user=_bind_text(self.user, values))


def _escape_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


_CONVERSIONS = {"r": repr, "s": str, "a": ascii}


def _bind_text(text: str, values: Mapping[str, object]) -> str:
    """``text`` (a ``str.format`` template) with the fields named in ``values`` formatted
    (conversion and format spec applied) and the others left as fields."""
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(text):
        out.append(_escape_braces(literal))
        if name is None:
            continue
        field_text = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if name not in values:
            out.append(field_text)
            continue
        if "{" in spec:
            raise ArchetypeError(f"prompt template: nested format spec in {field_text} is not supported")
        value = values[name]
        if conversion:
            value = _CONVERSIONS[conversion](value)
        out.append(_escape_braces(format(value, spec)))
    return "".join(out)


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


def default_template(attributes: Sequence[str]) -> PromptTemplate:
    """:func:`isolation_template` for ``attributes``."""
    return isolation_template(attributes)


# ----------------------------------------------------------------------------- signals
#: One compiled call for the prior (eager jnp would dispatch each operation separately).
_heuristic = jax.jit(heuristic_isolation_probability)


@dataclass(frozen=True)
class WeeklySignals:
    """What the simulation tells the prompts at a refresh.

    Attributes:
        week: index of the week being decided (0 = days 0..6).
        onsets_this_week: simulated case onsets over the 7 days before the refresh
            (before day 0: the prior the run started from).
        onsets_four_week_average: mean weekly onsets over the 28 days before.
        ascertainment: reported share of onsets; the prompts quote reported cases.
    """

    week: int
    onsets_this_week: float
    onsets_four_week_average: float
    ascertainment: float = 1.0

    @property
    def cases_this_week(self) -> float:
        """Reported cases this week (onsets x ascertainment)."""
        return self.onsets_this_week * self.ascertainment

    @property
    def cases_four_week_average(self) -> float:
        """Mean weekly reported cases over the last four weeks."""
        return self.onsets_four_week_average * self.ascertainment

    @staticmethod
    def from_case_ring(daily_cases: np.ndarray, day: int, ascertainment: float) -> "WeeklySignals":
        """From the model's ring of daily onsets (``CovidState.daily_cases``) on ``day``: the
        signal the heuristic policy reads inside the simulation
        (:func:`jaxsim.kernels.isolation.weekly_case_signal`)."""
        # On the host (one small transfer): the formula of weekly_case_signal.
        ring = np.asarray(daily_cases, np.float32)
        if ring.ndim != 1 or ring.shape[0] < 28:
            raise ArchetypeError(f"the case ring needs at least 28 days, got shape {ring.shape}")
        recent = ring[(day - 1 - np.arange(28)) % ring.shape[0]]
        this_week, average = recent[:7].sum(dtype=np.float32), recent.sum(dtype=np.float32) / np.float32(4)
        return WeeklySignals(day // 7, float(this_week), float(average), float(ascertainment))

    def change_phrase(self) -> str:
        """``"up 35% on"``, ``"down 20% from"`` or ``"about the same as"`` (within 5%)."""
        base = self.cases_four_week_average
        if base <= 0:
            return "up from none in" if self.cases_this_week > 0 else "about the same as"
        change = (self.cases_this_week - base) / base
        if abs(change) < 0.05:
            return "about the same as"
        return f"up {change:.0%} on" if change > 0 else f"down {-change:.0%} from"

    def values(self) -> dict[str, object]:
        return {
            "cases_this_week": int(round(self.cases_this_week)),
            "cases_four_week_average": int(round(self.cases_four_week_average)),
            "cases_change": self.change_phrase(),
            "weeks_since_start": self.week,
        }


# ----------------------------------------------------------------------------- asking
def label_values(labels: Mapping[str, str]) -> dict[str, str]:
    """Placeholder values of one archetype: ``{attribute: label, attribute_phrase: phrase}``
    (phrases from :data:`LABEL_PHRASES`, else the label itself)."""
    values = {}
    for attribute, label in labels.items():
        values[attribute] = label
        values[f"{attribute}_phrase"] = LABEL_PHRASES.get(attribute, {}).get(label, label)
    return values


@dataclass
class AnswerTally:
    """Asks a backend for one probability per archetype and keeps the run's counts.

    Attributes:
        parse_failures: samples without a readable probability (after the retry).
        retries: retry requests sent for unreadable replies.
        fallbacks: archetype-refreshes that fell back to their prior.
        errors: distinct backend error messages met.
    """

    parse_failures: int = 0
    retries: int = 0
    fallbacks: int = 0
    errors: set = field(default_factory=set)

    def ask(self, backend, prompts, settings, samples: int, prior) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities float32 [G] in [0, 1], used_prior bool [G])`` for ``prompts``
        (see :func:`jaxsim.llm.query.query_probabilities`); ``prior`` is ``[G]`` or a
        function returning it, called only when some archetype needs it."""
        from jaxsim.llm.query import query_probabilities

        def checked_prior():
            values = np.asarray(prior() if callable(prior) else prior, np.float64)
            if values.shape != (len(prompts),):
                raise ArchetypeError(f"prior has shape {values.shape}, expected ({len(prompts)},)")
            return values

        answers = query_probabilities(
            backend, prompts, settings, samples=int(samples),
            prior=checked_prior if callable(prior) else checked_prior(),
        )
        self.parse_failures += int(answers.parse_failures)
        self.retries += int(answers.retries)
        self.fallbacks += int(np.sum(answers.used_prior))
        self.errors.update(answers.errors)
        probs = np.clip(np.asarray(answers.probabilities, np.float32), 0.0, 1.0)
        return probs, np.asarray(answers.used_prior, bool)

    def counters(self, backend) -> dict:
        """The counters of a run's ``"llm"`` report (model calls and cache hits from a
        :class:`jaxsim.llm.cache.CachedBackend`)."""
        return {
            "llm_calls": int(getattr(backend, "llm_calls", 0)),
            "cache_hits": int(getattr(backend, "cache_hits", 0)),
            "parse_failures": int(self.parse_failures),
            "retries": int(self.retries),
            "fallbacks_to_prior": int(self.fallbacks),
            "backend_errors": sorted(self.errors)[:20],
            "backend": getattr(backend, "name", type(backend).__name__),
            "model": getattr(backend, "model", None),
        }


class TalliedLayer:
    """The counts of a layer's :class:`AnswerTally` (attribute ``tally``) as attributes."""

    tally: AnswerTally

    @property
    def parse_failures(self) -> int:
        return self.tally.parse_failures

    @property
    def retries(self) -> int:
        return self.tally.retries

    @property
    def fallbacks(self) -> int:
        return self.tally.fallbacks


# ----------------------------------------------------------------------------- the layer
@dataclass
class ArchetypeLayer(TalliedLayer):
    """Asks a model for each archetype's isolation probability on a cadence.

    Attributes:
        grouping: the archetypes.
        backend: a :class:`jaxsim.llm.backends.Backend`, normally a
            :class:`jaxsim.llm.cache.CachedBackend` (counts calls and cache hits).
        template: the prompt (checked against the grouping when the layer is made).
        neighbourhood: how the prompts name where the agents live (e.g. "Astoria, Queens").
        prior: ``fn(signals) -> float [G]``, the fallback of an archetype whose replies
            cannot be parsed (by default the heuristic policy's probability for the same
            signal, see :func:`heuristic_prior`).
        settings: sampling settings (temperature 0 by default: deterministic answers).
        samples: replies averaged per archetype per refresh (distinct sample indices).
        ascertainment: reported share of simulated onsets, for the case signal.
        cadence_weeks: weeks between refreshes (1: weekly).
        area_names: ``{area label: readable name}``; when the grouping includes the
            attribute ``area``, each archetype's ``{neighbourhood}`` is its own area's name.
    """

    grouping: Grouping
    backend: object
    template: PromptTemplate
    neighbourhood: str
    prior: Callable[[WeeklySignals], np.ndarray]
    settings: object = None
    samples: int = 1
    ascertainment: float = 0.25
    cadence_weeks: int = 1
    area_names: Mapping[str, str] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    tally: AnswerTally = field(default_factory=AnswerTally)

    def __post_init__(self) -> None:
        from jaxsim.llm.backends import SamplingSettings

        if self.settings is None:
            self.settings = SamplingSettings()
        if int(self.samples) < 1:
            raise ArchetypeError(f"samples per archetype must be >= 1, got {self.samples}")
        if int(self.cadence_weeks) < 1:
            raise ArchetypeError(f"cadence_weeks must be >= 1, got {self.cadence_weeks}")
        if not 0 < self.ascertainment <= 1:
            raise ArchetypeError(f"ascertainment must lie in (0, 1], got {self.ascertainment}")
        self.template.check(self.grouping.attributes)
        # Each archetype's template with the values that do not change between refreshes
        # (its labels, where it lives) filled in once.
        self._bound_templates = []
        for labels in self.grouping.labels:
            values = {"neighbourhood": self.neighbourhood} | label_values(labels)
            if "area" in labels:
                values["neighbourhood"] = self.area_names.get(labels["area"], labels["area"])
            self._bound_templates.append(self.template.bind(values))

    def prompts(self, signals: WeeklySignals) -> list[tuple[dict, ...]]:
        """One message list per archetype for ``signals``."""
        shared = signals.values()
        return [template.render(shared) for template in self._bound_templates]

    def probabilities(self, signals: WeeklySignals) -> np.ndarray:
        """float32 ``[G]`` isolation probabilities for the week of ``signals``; recorded in
        :attr:`history`."""
        probs, used_prior = self.tally.ask(
            self.backend, self.prompts(signals), self.settings, self.samples, lambda: self.prior(signals)
        )
        self.history.append({
            "week": signals.week,
            "cases_this_week": signals.cases_this_week,
            "cases_four_week_average": signals.cases_four_week_average,
            "probabilities": [round(p, 6) for p in probs.tolist()],
            "fallbacks": used_prior.astype(int).tolist(),
        })
        return probs

    def report(self) -> dict:
        """The ``"llm"`` section of ``run.json``: counters first, then per-week answers."""
        return self.tally.counters(self.backend) | {
            "samples_per_archetype": int(self.samples),
            "cadence_weeks": int(self.cadence_weeks),
            "temperature": float(self.settings.temperature),
            "archetype_attributes": list(self.grouping.attributes),
            "archetypes": self.grouping.names,
            "archetype_sizes": self.grouping.sizes.astype(int).tolist(),
            "example_prompt": list(self.prompts(WeeklySignals(0, 0.0, 0.0, self.ascertainment))[0]),
            "weeks": [
                {
                    "week": h["week"],
                    "cases_this_week": h["cases_this_week"],
                    "cases_four_week_average": h["cases_four_week_average"],
                    "probabilities": dict(zip(self.grouping.names, h["probabilities"])),
                    "fell_back_to_prior": [n for n, f in zip(self.grouping.names, h["fallbacks"]) if f],
                }
                for h in self.history
            ],
        }


def heuristic_prior(
    grouping: Grouping,
    baseline_by_age: Mapping[str, float],
    response: float,
) -> Callable[[WeeklySignals], np.ndarray]:
    """The fallback of :class:`ArchetypeLayer`: what the heuristic isolation policy would
    set for each archetype under the same case signal (:func:`heuristic_isolation_probability`
    with the archetype's age band baseline, or the mean baseline without an age attribute).
    """
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


# ----------------------------------------------------------------------------- the run
@dataclass
class ArchetypeRun:
    """What :func:`run_with_archetypes` returns.

    Attributes:
        result: the whole run as one :class:`jaxsim.engine.RunResult` (metrics of all
            periods concatenated; compile and run seconds summed).
        isolation_prob: float32 ``[weeks, G]`` the probabilities the layer set per week
            (before alignment), as passed to the simulation.
        refresh_seconds: host time spent rendering prompts and asking the model.
    """

    result: engine.RunResult
    isolation_prob: np.ndarray
    refresh_seconds: float


def require_group_table(world: engine.World, name: str, rows: str, groups: int, hint: str = ""):
    """``world.inputs[name]``, which must be a ``[rows, groups]`` table (one column per
    archetype; ``rows`` names its periods, e.g. ``"weeks"``); else :class:`ArchetypeError`
    with its shape and ``hint``."""
    table = world.inputs.get(name)
    if table is None or table.ndim != 2 or table.shape[1] != groups:
        raise ArchetypeError(
            f"the world needs inputs[{name!r}] of shape [{rows}, {groups}] (one column per archetype); "
            f"got {None if table is None else tuple(table.shape)}{hint}"
        )
    return table


def run_with_archetypes(
    model: engine.Model,
    state,
    params,
    world: engine.World,
    key: jax.Array,
    days: int,
    layer: ArchetypeLayer,
    *,
    progress: bool | str = False,
) -> ArchetypeRun:
    """Run ``days`` days, refreshing the archetypes' probabilities every ``cadence_weeks``.

    ``model`` must read its isolation probabilities from ``world.inputs["isolation_prob"]``
    (``covid_model(policy="inputs")``) with one column per archetype. Before each period the
    layer reads the case signal from the state (``state.daily_cases``), asks the model and
    writes the answers into the input table (a ``before_chunk`` hook of
    :func:`jaxsim.engine.run`); each period's days then run as one call of one compiled
    program.
    """
    import time

    days = int(days)
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    weeks = -(-days // 7)
    groups = layer.grouping.num_groups
    table_in = require_group_table(
        world, "isolation_prob", "weeks", groups,
        ". Build it with covid.build_world(..., isolation_groups='archetype', isolation_prob=...)",
    )
    # The input table keeps the world's shape (the compiled program's); weeks past its last
    # row read the last row, which then holds the latest answer.
    table = np.zeros(table_in.shape, np.float32)
    answered = np.zeros((weeks, groups), np.float32)
    refresh_seconds = 0.0

    def refresh(t0: int, state, world: engine.World) -> engine.World:
        nonlocal refresh_seconds
        start = time.perf_counter()
        signals = WeeklySignals.from_case_ring(state.daily_cases, t0, layer.ascertainment)
        probs = layer.probabilities(signals)
        week = t0 // 7
        table[min(week, table.shape[0] - 1):] = probs  # later weeks: the latest answer until refreshed
        answered[week:] = probs
        # A host array: the compiled call copies it in (cheaper than jnp.asarray first).
        world = world.replace(inputs={**world.inputs, "isolation_prob": table.copy()})
        refresh_seconds += time.perf_counter() - start
        return world

    combined = engine.run(
        model, state, params, world, key, days, chunk_days=7 * int(layer.cadence_weeks),
        progress=progress, before_chunk=refresh,
    )
    return ArchetypeRun(combined, answered, refresh_seconds)


__all__ = [
    "ARCHETYPE_ATTRIBUTE",
    "ArchetypeError",
    "Grouping",
    "group_agents",
    "with_archetype_attribute",
    "LABEL_PHRASES",
    "SIGNAL_FIELDS",
    "PromptTemplate",
    "ISOLATION_TEMPLATE",
    "isolation_template",
    "default_template",
    "WeeklySignals",
    "ArchetypeLayer",
    "AnswerTally",
    "TalliedLayer",
    "label_values",
    "heuristic_prior",
    "ArchetypeRun",
    "require_group_table",
    "run_with_archetypes",
]
