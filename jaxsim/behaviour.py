"""The behaviour layer: a language model asked once per group of similar agents, for any
model that declares a per-group policy input.

A model declares a :class:`PolicyInput` (``Model.policies``): a table
``world.inputs[name]`` of shape ``[periods, G]`` that its step reads, one column per group
of agents (``world.agents[groups]`` holds each agent's group), with the signals a prompt
may quote, a prior (what the model's own heuristic would set), a default question and the
cadence of its periods (weeks, calendar months, ...). A :class:`BehaviourLayer` then asks a
language model, at the start of each period, one question per group (an *archetype*:
agents sharing the values of some categorical attributes), parses each answer into a
probability and writes the ``[G]`` answers into the table; inside ``jit`` each agent reads
its group's value and draws its own behaviour. The COVID model's isolation
(``isolation_prob``, weekly) and the labour model's willingness to work (``willingness``,
monthly) are two uses of this one layer.

Model calls per period = groups x samples (+ retries of unparseable replies), whatever the
number of agents; with a warm cache, none. An unreadable reply is asked again once, then
the group falls back to the policy's prior, and the run goes on (:mod:`jaxsim.llm.query`).

Pieces, one job each:

- :func:`group_agents` -> :class:`Grouping`: a group id per agent from attribute codes
  (vectorized), with the labels of each group from ``mapping.json``.
- :class:`PromptTemplate`: system + user text with ``{placeholders}``; checked for unknown
  placeholders and for literal numbers (small models copy example numbers).
- :class:`PolicyInput`: what a model declares.
- :class:`BehaviourLayer`: renders, asks, parses, falls back to the prior, records history.
- :func:`run_with_behaviour`: one :func:`jaxsim.engine.run` whose ``before_chunk`` hook
  lets each layer refresh its table at the start of its periods.
"""

from __future__ import annotations

import dataclasses
import re
import string
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from jaxsim import engine
from jaxsim.errors import InputError
from jaxsim.population import Population

#: Name of the attribute :func:`with_group_attribute` adds to a population by default.
ARCHETYPE_ATTRIBUTE = "archetype"


class ArchetypeError(InputError):
    """An archetype grouping, template, policy or layer is misconfigured (the message says how)."""


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


def with_group_attribute(population: Population, grouping: Grouping, name: str = ARCHETYPE_ATTRIBUTE) -> Population:
    """A shallow copy of ``population`` with the attribute ``name`` (labels: the group
    names), so that a model's world can use it as the groups of a policy input."""
    if grouping.codes.shape != (population.size,):
        raise ArchetypeError(
            f"grouping has {grouping.codes.shape[0]} agents, the population {population.size}"
        )
    return replace(
        population,
        attributes={**population.attributes, name: grouping.codes},
        labels={**population.labels, name: grouping.names},
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

#: A number standing alone in prompt text ("0.3", "30%", "7"), not part of a name such as
#: "COVID-19" or "H1N1".
_LITERAL_NUMBER = re.compile(r"(?<![\w-])\d+(?:[.,]\d+)?(?![\w])")


@dataclass(frozen=True)
class PromptTemplate:
    """A chat prompt with ``{placeholders}``: a system message and a user message.

    Placeholders are the grouping's attributes (``{age}`` gives the label, ``{age_phrase}``
    the readable phrase of :data:`LABEL_PHRASES`) and the policy's signals
    (:attr:`PolicyInput.signal_fields`). The literal text may not contain digits: small
    models copy example numbers into their answers, so numbers reach the prompt only
    through placeholders.
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

    def check(self, attributes: Sequence[str], signal_fields: Sequence[str] = ()) -> None:
        """Raise :class:`ArchetypeError` for unknown placeholders or literal digits."""
        allowed = set(signal_fields) | set(attributes) | {f"{a}_phrase" for a in attributes}
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
        different placeholders (a group's labels are bound once, the signals rendered each
        refresh)."""
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


def label_values(labels: Mapping[str, str]) -> dict[str, str]:
    """Placeholder values of one group: ``{attribute: label, attribute_phrase: phrase}``
    (phrases from :data:`LABEL_PHRASES`, else the label itself)."""
    values = {}
    for attribute, label in labels.items():
        values[attribute] = label
        values[f"{attribute}_phrase"] = LABEL_PHRASES.get(attribute, {}).get(label, label)
    return values


# ------------------------------------------------------------------------ the protocol
@dataclass(frozen=True)
class PolicyInput:
    """A per-group input a model reads each period, which a :class:`BehaviourLayer` can set.

    Attributes:
        name: the ``world.inputs`` key of the ``[periods, G]`` table the step reads.
        groups: the ``world.agents`` array holding each agent's group (its column).
        question: what is asked, in words (for reports).
        signal_fields: the placeholders (besides the group's labels) its prompts may use.
        template: ``fn(attributes) -> PromptTemplate``, the default question for a grouping.
        signals: ``fn(t, state, params, world, options) -> signals`` on the host at the
            start of a period: an object with ``values(labels) -> {placeholder: value}``
            for the group with ``labels`` and ``record() -> dict`` for the history.
        prior: ``fn(signals, state, params, world, grouping, options) -> [G]``: the
            fall-back of groups without a readable answer (the model's own heuristic).
        period: ``fn(t, world) -> int``: the period day ``t`` belongs to (a row of the table).
        chunk_days: days per compiled chunk so that every period starts a chunk (7 for
            weeks, 1 for calendar months).
        period_name: what a period is called (``"week"``, ``"month"``), for reports and errors.
        check_options: ``fn(options)`` raising :class:`ArchetypeError` for unusable layer options.
        adapter: ``fn(state, params, t, world) -> (state, params, world)`` applied before
            ``signals`` and ``prior`` (set by :func:`jaxsim.coupling.compose` for a part).
    """

    name: str
    groups: str
    question: str
    signal_fields: tuple[str, ...]
    template: Callable[[Sequence[str]], PromptTemplate]
    signals: Callable
    prior: Callable
    period: Callable[[int, Any], int]
    chunk_days: int = 7
    period_name: str = "period"
    check_options: Callable | None = None
    adapter: Callable | None = None

    def adapt(self, state, params, t, world):
        if self.adapter is None:
            return state, params, world
        return self.adapter(state, params, t, world)


def policy_of(model: engine.Model, name: str) -> PolicyInput:
    """The model's declared policy input ``name``."""
    for policy in model.policies:
        if policy.name == name:
            return policy
    raise ArchetypeError(
        f"model {model.name!r} declares no policy input {name!r}; it declares "
        f"{[p.name for p in model.policies]}"
    )


@dataclass
class AnswerTally:
    """Asks a backend for one probability per group and keeps the run's counts.

    Attributes:
        parse_failures: samples without a readable probability (after the retry).
        retries: retry requests sent for unreadable replies.
        fallbacks: group-refreshes that fell back to their prior.
        errors: distinct backend error messages met.
    """

    parse_failures: int = 0
    retries: int = 0
    fallbacks: int = 0
    errors: set = field(default_factory=set)

    def ask(self, backend, prompts, settings, samples: int, prior) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities float32 [G] in [0, 1], used_prior bool [G])`` for ``prompts``
        (see :func:`jaxsim.llm.query.query_probabilities`); ``prior`` is ``[G]`` or a
        function returning it, called only when some group needs it."""
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


# ----------------------------------------------------------------------------- the layer
@dataclass
class BehaviourLayer:
    """Asks a model for each group's value of a policy input at the start of its periods.

    Attributes:
        policy: the model's :class:`PolicyInput` (e.g. ``policy_of(model, "isolation_prob")``).
        grouping: the groups (their order is the table's columns: build the world's
            ``groups`` array from ``grouping.codes``, e.g. with :func:`with_group_attribute`).
        backend: a :class:`jaxsim.llm.backends.Backend`, normally a
            :class:`jaxsim.llm.cache.CachedBackend` (counts calls and cache hits).
        template: the prompt (default: the policy's question for the grouping); checked
            against the grouping and the policy's signals when the layer is made.
        options: settings the policy's signals and prior read (e.g. ``ascertainment``,
            ``neighbourhood``, ``area_names`` for the COVID isolation policy).
        settings: sampling settings (temperature 0 by default: deterministic answers).
        samples: replies averaged per group per refresh (distinct sample indices).
        every: periods between refreshes (1: every period; later periods read the latest
            answer until refreshed).
    """

    policy: PolicyInput
    grouping: Grouping
    backend: object
    template: PromptTemplate | None = None
    options: Mapping = field(default_factory=dict)
    settings: object = None
    samples: int = 1
    every: int = 1
    history: list[dict] = field(default_factory=list)
    tally: AnswerTally = field(default_factory=AnswerTally)

    def __post_init__(self) -> None:
        from jaxsim.llm.backends import SamplingSettings

        if not isinstance(self.policy, PolicyInput):
            raise ArchetypeError(f"policy must be a PolicyInput (jaxsim.behaviour.policy_of(model, name)), "
                                 f"got {type(self.policy).__name__}")
        if self.template is None:
            self.template = self.policy.template(self.grouping.attributes)
        if self.settings is None:
            self.settings = SamplingSettings()
        if int(self.samples) < 1:
            raise ArchetypeError(f"samples per archetype must be >= 1, got {self.samples}")
        if int(self.every) < 1:
            raise ArchetypeError(
                f"a layer refreshes every >= 1 {self.policy.period_name}s (every=), got {self.every}")
        self.options = dict(self.options)
        if self.policy.check_options is not None:
            self.policy.check_options(self.options)
        self.template.check(self.grouping.attributes, self.policy.signal_fields)
        self._example = None
        # Each group's template with the values that do not change between refreshes (its
        # labels) filled in once.
        self._bound = [self.template.bind(label_values(labels)) for labels in self.grouping.labels]

    # counters
    @property
    def parse_failures(self) -> int:
        return self.tally.parse_failures

    @property
    def retries(self) -> int:
        return self.tally.retries

    @property
    def fallbacks(self) -> int:
        return self.tally.fallbacks

    def prompts(self, signals) -> list[tuple[dict, ...]]:
        """One message list per group for ``signals``."""
        return [
            template.render(signals.values(labels))
            for template, labels in zip(self._bound, self.grouping.labels)
        ]

    def answer(self, t: int, state, params, world) -> np.ndarray:
        """float32 ``[G]`` the groups' values for the period starting on day ``t`` (host);
        recorded in :attr:`history`."""
        state, params, world = self.policy.adapt(state, params, t, world)
        signals = self.policy.signals(t, state, params, world, self.options)

        def prior():
            return self.policy.prior(signals, state, params, world, self.grouping, self.options)

        prompts = self.prompts(signals)
        if self._example is None:
            self._example = list(prompts[0])
        probs, used_prior = self.tally.ask(self.backend, prompts, self.settings, self.samples, prior)
        self.history.append({
            "period": int(self.policy.period(t, world)),
            **signals.record(),
            "probabilities": [round(float(p), 6) for p in probs.tolist()],
            "fallbacks": used_prior.astype(int).tolist(),
        })
        return probs

    def report(self) -> dict:
        """The ``"llm"`` section of a run's report: counters first, then the answers."""
        return self.tally.counters(self.backend) | {
            "policy_input": self.policy.name,
            "question": self.policy.question,
            "samples_per_archetype": int(self.samples),
            f"refresh_every_{self.policy.period_name}s": int(self.every),
            "temperature": float(self.settings.temperature),
            "archetype_attributes": list(self.grouping.attributes),
            "archetypes": self.grouping.names,
            "archetype_sizes": self.grouping.sizes.astype(int).tolist(),
            "example_prompt": self._example,
            f"{self.policy.period_name}s": [
                {k: v for k, v in h.items() if k not in ("probabilities", "fallbacks")}
                | {
                    "probabilities": dict(zip(self.grouping.names, h["probabilities"])),
                    "fell_back_to_prior": [n for n, f in zip(self.grouping.names, h["fallbacks"]) if f],
                }
                for h in self.history
            ],
        }


# ----------------------------------------------------------------------------- the run
@dataclass
class BehaviourRun:
    """What :func:`run_with_behaviour` returns.

    Attributes:
        result: the whole run as one :class:`jaxsim.engine.RunResult`.
        tables: ``{policy input: float32 [periods, G]}`` the values the layers set per
            period, as passed to the simulation.
        refresh_seconds: host time spent building prompts and asking the models.
    """

    result: engine.RunResult
    tables: dict[str, np.ndarray]
    refresh_seconds: float


def require_group_table(world: engine.World, name: str, rows: str, groups: int, hint: str = ""):
    """``world.inputs[name]``, which must be a ``[rows, groups]`` table (one column per
    group; ``rows`` names its periods, e.g. ``"weeks"``); else :class:`ArchetypeError`
    with its shape and ``hint``."""
    table = world.inputs.get(name)
    if table is None or table.ndim != 2 or table.shape[1] != groups:
        raise ArchetypeError(
            f"the world needs inputs[{name!r}] of shape [{rows}, {groups}] (one column per archetype); "
            f"got {None if table is None else tuple(table.shape)}{hint}"
        )
    return table


def run_with_behaviour(
    model: engine.Model,
    key: jax.Array,
    state,
    params,
    world: engine.World,
    days: int,
    layers: Sequence[BehaviourLayer],
    *,
    start_day: int = 0,
    progress: bool | str = False,
    estimator=None,
    donate: bool = False,
) -> BehaviourRun:
    """Run ``days`` days; each layer refreshes its policy input's table at the start of
    its periods (every ``layer.every`` periods).

    The world's table of each policy input keeps its shape (the compiled program's), grown
    first when the run has more periods than rows; rows past the last refresh read the
    latest answer. The run is one :func:`jaxsim.engine.run` in chunks of the layers'
    smallest ``chunk_days`` whose ``before_chunk`` hook asks the layers whose period starts.
    ``donate=True`` lets it reuse the buffers of ``state`` (see :func:`jaxsim.engine.run`).
    """
    days = int(days)
    if days < 1:
        raise InputError(f"days must be >= 1, got {days}")
    layers = list(layers)
    if not layers:
        raise ArchetypeError("run_with_behaviour: give at least one BehaviourLayer")
    names = [layer.policy.name for layer in layers]
    if len(set(names)) != len(names):
        raise ArchetypeError(f"two layers set the same policy input: {names}")
    last_day = start_day + days - 1
    tables, answered = {}, {}
    for layer in layers:
        policy = layer.policy
        groups = layer.grouping.num_groups
        given = require_group_table(
            world, policy.name, f"{policy.period_name}s", groups,
            f". Build the world with inputs[{policy.name!r}] of one column per archetype (e.g. groups from "
            "with_group_attribute)",
        )
        if world.num_categories(policy.groups) != groups:
            raise ArchetypeError(
                f"world.agents[{policy.groups!r}] has {world.num_categories(policy.groups)} groups, "
                f"the grouping {groups}: build the world from the grouping's codes"
            )
        periods = int(policy.period(last_day, world)) + 1
        tables[policy.name] = np.zeros((max(periods, given.shape[0]), groups), np.float32)
        answered[policy.name] = np.zeros((periods, groups), np.float32)
    world = world.with_inputs(**{name: np.array(table) for name, table in tables.items()})
    chunk_days = min(layer.policy.chunk_days for layer in layers)
    first = {layer.policy.name: int(layer.policy.period(start_day, world)) for layer in layers}
    seen: dict[str, int] = {}
    refresh_seconds = 0.0

    def refresh(t: int, state, world: engine.World) -> engine.World:
        nonlocal refresh_seconds
        begin = time.perf_counter()
        changed = {}
        for layer in layers:
            policy = layer.policy
            period = int(policy.period(t, world))
            if seen.get(policy.name) == period:
                continue
            seen[policy.name] = period
            if (period - first[policy.name]) % int(layer.every):
                continue
            probs = layer.answer(t, state, params, world)
            table = tables[policy.name]
            table[min(period, table.shape[0] - 1):] = probs
            answered[policy.name][period:] = probs
            # A host array: the compiled call copies it in (cheaper than jnp.asarray first).
            changed[policy.name] = table.copy()
        if changed:
            world = world.with_inputs(**changed)
        refresh_seconds += time.perf_counter() - begin
        return world

    result = engine.run(
        model, key, state, params, world, days, chunk_days=chunk_days, progress=progress,
        before_chunk=refresh, start_day=start_day, estimator=estimator, donate=donate,
    )
    return BehaviourRun(result, answered, refresh_seconds)


__all__ = [
    "ARCHETYPE_ATTRIBUTE",
    "AnswerTally",
    "ArchetypeError",
    "BehaviourLayer",
    "BehaviourRun",
    "Grouping",
    "LABEL_PHRASES",
    "PolicyInput",
    "PromptTemplate",
    "group_agents",
    "label_values",
    "policy_of",
    "require_group_table",
    "run_with_behaviour",
    "with_group_attribute",
]
