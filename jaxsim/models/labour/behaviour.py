"""Willingness to work set by a language model: the labour model's policy input ``willingness``.

With ``labour_model(policy="inputs")`` each member of the labour force draws its
willingness to work for a month from ``world.inputs["willingness"][month, group]``.
:data:`WILLINGNESS_POLICY` declares that input to the behaviour layer
(:mod:`jaxsim.behaviour`): at the start of each calendar month a
:class:`jaxsim.behaviour.BehaviourLayer` renders one prompt per archetype from the group's
labels and the month's signals, asks a model for the probability that a member is willing
to go to work this month, and writes the answers. Model calls per simulated month =
archetypes x samples.

The prompt (:func:`work_template`; placeholders in braces, no literal numbers)::

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

``{place}`` is the archetype's region when its labels name one (layer option
``region_of``: ``fn(labels) -> region code or None``; readable names in ``region_names``),
else the whole economy (option ``economy_name``, default ``"New York City"``), whose signals
are then the population-weighted means. A failed or unreadable reply falls back to the
**prior**: the mean heuristic willingness of the archetype's labour force under the same
state (:func:`jaxsim.kernels.labour.heuristic_willingness`).
"""

from __future__ import annotations

import calendar
import datetime as _dt
import functools
from dataclasses import dataclass
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.behaviour import PolicyInput, PromptTemplate
from jaxsim.kernels import labour
from jaxsim.models.labour.agents import civil_date

#: Signals a work template may use (besides the grouping's attributes and ``<attr>_phrase``).
SIGNAL_FIELDS: tuple[str, ...] = (
    "month_name",          # "August 2020"
    "place",               # the archetype's region ("Queens") or the whole economy
    "cases_per_thousand",  # reported cases per 1,000 residents last month, e.g. "2.4"
    "cases_change",        # "up 35% on" / "down 20% from" / "about the same as"
    "unemployment_rate",   # e.g. "12.3%"
    "price_change",        # "risen by 1.2%" / "fallen by 0.5%" / "stayed about the same"
    "stimulus_news",       # a sentence about this month's stimulus payment, or empty
)

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


def work_template(attributes: Sequence[str]) -> PromptTemplate:
    """The willingness question for a grouping: the person is described by the phrases of
    whichever of ``age`` and ``gender`` the grouping has, and where they live."""
    described = [f"{{{a}_phrase}}" for a in ("age", "gender") if a in set(attributes)]
    who = f"You are {', '.join(described)}, living in {{place}}. " if described else "You live in {place}. "
    return PromptTemplate(system=_WORK_SYSTEM, user=who + _WORK_QUESTION)


#: The question when grouping by age band and gender.
WORK_TEMPLATE = work_template(("age", "gender"))


def _change_phrase(now: float, before: float | None) -> str:
    if before is None or before <= 0:
        return "up from none in" if (before is not None and now > 0) else "about the same as"
    change = (now - before) / before
    if abs(change) < 0.05:
        return "about the same as"
    return f"up {change:.0%} on" if change > 0 else f"down {-change:.0%} from"


@dataclass(frozen=True)
class MonthlySignals:
    """What the simulation tells the prompts at the start of a run month.

    Attributes:
        month: run month (0 = the first).
        date: its first day.
        case_signal: float ``[R]`` reported cases per 1,000 residents last month.
        previous_case_signal: float ``[R]`` the month before that (``None``: unknown).
        unemployment: float ``[R]`` unemployment rate now (fractions).
        labour_force, residents: float ``[R]`` weights for the whole economy's figures.
        price_level: the price index (1 at the start).
        stimulus_usd: this month's stimulus payment per eligible adult (0: none).
        region_names: readable name of each region.
        economy_name: the whole economy's name.
        region_of: ``fn(labels) -> region code or None`` for an archetype's region.
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
    region_names: tuple[str, ...] = ()
    economy_name: str = "New York City"
    region_of: object = None

    def values(self, labels: Mapping[str, str] | None = None) -> dict[str, object]:
        """Placeholder values for the archetype with ``labels`` (its region's signals when
        it has one, else the whole economy's)."""
        region = None if (labels is None or self.region_of is None) else self.region_of(labels)
        if region is None:
            weights = self.residents / max(float(self.residents.sum()), 1.0)
            cases = float(np.dot(weights, self.case_signal))
            before = None if self.previous_case_signal is None else float(np.dot(weights, self.previous_case_signal))
            force = self.labour_force
            rate = float(np.dot(force, self.unemployment) / max(float(force.sum()), 1.0))
            place = self.economy_name
        else:
            cases = float(self.case_signal[region])
            before = None if self.previous_case_signal is None else float(self.previous_case_signal[region])
            rate = float(self.unemployment[region])
            place = self.region_names[region] if region < len(self.region_names) else str(region)
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

    def record(self) -> dict:
        return {"month": self.month, "month_name": self.values(None)["month_name"]}


# ----------------------------------------------------------------------- host signals
@jax.jit
def _state_signals(employed, labour_force, alive, region, num_regions_array):
    active = labour_force * alive
    return labour.unemployment_rate(employed, active, region, num_regions_array.shape[0])


@functools.partial(jax.jit, static_argnames="num_groups")
def _heuristic_group_prior(econ, params, world, num_groups: int) -> jax.Array:
    """Mean heuristic willingness of each archetype's living labour force (``[G]``)."""
    from jaxsim.models.labour.model import willingness_probability

    active = world.agents["labour_force"] * world.inputs["alive"]
    prob = willingness_probability("heuristic", econ, params, world, jnp.int32(0))
    sums = labour.sum_by_code(jnp.stack([prob * active, active], axis=1), world.agents["work_group"], num_groups)
    return jnp.where(sums[:, 1] > 0, sums[:, 0] / jnp.maximum(sums[:, 1], 1.0), prob.mean())


def run_month(t: int, world) -> int:
    """The run month of day ``t`` (host): calendar months from the start's month."""
    start = int(np.asarray(world.inputs["economy_start_day"]))
    y0, m0, _ = (int(v) for v in civil_date(np.int32(start)))
    y, m, _ = (int(v) for v in civil_date(np.int32(start + int(t))))
    return (y - y0) * 12 + (m - m0)


def _add_months(start: _dt.date, months: int) -> _dt.date:
    month = start.month - 1 + int(months)
    return _dt.date(start.year + month // 12, month % 12 + 1, 1)


def _signals(t, econ, params, world, options) -> MonthlySignals:
    month = run_month(t, world)
    start = _dt.date(1970, 1, 1) + _dt.timedelta(days=int(np.asarray(world.inputs["economy_start_day"])))
    num_regions = world.num_categories("region")
    rate, force = _state_signals(
        econ.employed, world.agents["labour_force"], world.inputs["alive"], world.agents["region"],
        jnp.zeros(num_regions),
    )
    paid = 0.0
    stimulus = params.stimulus
    if stimulus is not None:
        schedule = np.asarray(stimulus.paid)
        paid = float(stimulus.amount) if month < schedule.shape[-1] and schedule[month] > 0.5 else 0.0
    case_signal = np.asarray(econ.case_signal, np.float64)
    memory = options.setdefault("_previous_case_signal", {})
    previous = memory.get(month - 1)
    memory[month] = case_signal
    names = options.get("region_names") or world.category_labels("region")
    return MonthlySignals(
        month=month, date=_add_months(_dt.date(start.year, start.month, 1), month), case_signal=case_signal,
        previous_case_signal=previous, unemployment=np.asarray(rate, np.float64),
        labour_force=np.asarray(force, np.float64), residents=np.asarray(world.inputs["region_residents"]),
        price_level=float(econ.price_level), stimulus_usd=paid, region_names=tuple(names),
        economy_name=str(options.get("economy_name", "New York City")), region_of=options.get("region_of"),
    )


def _prior(signals, econ, params, world, grouping, options) -> np.ndarray:
    return np.asarray(_heuristic_group_prior(econ, params, world, num_groups=grouping.num_groups))


def _standalone(state, params, t, world):
    """Bridge defaults for the layer when the labour model runs alone."""
    from jaxsim.models.labour.model import REQUIRES

    missing = {name: fn(state, params, t, world) for name, fn in REQUIRES.items() if name not in world.inputs}
    return state, params, (world.with_inputs(**missing) if missing else world)


WILLINGNESS_POLICY = PolicyInput(
    name="willingness",
    groups="work_group",
    question="willingness to work this month",
    signal_fields=SIGNAL_FIELDS,
    template=work_template,
    signals=_signals,
    prior=_prior,
    period=run_month,
    chunk_days=1,
    period_name="month",
    adapter=_standalone,
)

__all__ = ["MonthlySignals", "SIGNAL_FIELDS", "WILLINGNESS_POLICY", "WORK_TEMPLATE", "run_month", "work_template"]
