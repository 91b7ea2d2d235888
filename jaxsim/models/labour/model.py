"""The labour model: a regional labour market and household economy, daily accounts and a
monthly settlement, in one ``lax.scan``.

Time. The model keeps daily accounts and settles monthly. Day ``t`` of a run is the
calendar date ``start + t`` (``world.inputs["economy_start_day"]``: days since 1970-01-01
of day 0); its calendar month, weekday and whether it is the last day of its month are
computed inside ``jit`` (:func:`.agents.calendar_of_day`), so runs of any length and runs
split in chunks see the same calendar. "Run month" ``m`` is the ``m``-th calendar month
from the start's month. Working days are Monday to Friday (public holidays are not
modelled). A run should start on the first of a month.

Each day, in order (the monthly substeps run under ``lax.cond``, on their days only):

1. [economy_month_start] on the first day of a run month: each member of the labour
   force draws whether it is willing to work this month, with probability from the
   heuristic (:func:`jaxsim.kernels.labour.heuristic_willingness`: its age band's
   baseline, its region's reported cases last month, the price level, its savings) or
   from ``world.inputs["willingness"][m, group]`` set by a behaviour layer
   (:mod:`.behaviour`). The month's accumulators reset.
2. [work] an agent works today if it has a job, is willing this month, is *available*
   (its health lets it work today) and it is a working day; days worked accumulate.
3. [economy_month_end] on the last day of a month: each region's reported cases per
   1,000 residents in the month (its agents' symptom onsets this month x ascertainment);
   then, for living agents: gross earnings ``wage * days_worked / working days``; UI
   benefits for the unemployed; a progressive income tax on earnings, all of it
   redistributed equally to living adults (money conserved); pensions for those outside
   the labour force; a stimulus payment where one is scheduled; consumption and savings
   (``income = consumption + change in savings`` for every agent); the price index; then
   each region's job flows (layoffs rising with cases, hiring falling with the UI claims
   rate, quits of the unwilling), drawn through :mod:`jaxsim.sampling`.

Bridges (``Model.requires``): ``alive``, ``available`` and ``onset_day`` per agent. An
epidemic model composed with this one provides them (the COVID model does:
:func:`jaxsim.coupling.compose`); alone, every real agent is alive and available and
nobody has symptoms. The coupling is one way: work does not change contacts.

Monthly metrics are reported on the month's last day (zeros on other days, flagged by
``month_end``): per region ``[R]`` ``unemployment_rate`` (during the month, before its
end-of-month flows), ``labour_force``, ``unemployed``, ``willingness``, ``case_signal``,
``claims_rate``, ``earnings``, ``ui_benefits``, ``tax``, ``transfers``, ``pensions``,
``stimulus_paid``, ``consumption``, ``savings`` (USD, totals over the region's agents),
and scalars ``price_level``, ``city_unemployed``, ``city_labour_force``,
``city_consumption``, ``city_tax``, ``city_transfers``, ``month_index``. Daily:
``working`` (agents at work today) and ``month_end``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxsim.kernels import pytree as struct

from jaxsim import sampling
from jaxsim.engine import Metric, Model, Substep, World
from jaxsim.errors import InputError
from jaxsim.kernels import labour
from jaxsim.kernels.lookup import lookup
from jaxsim.models.labour.agents import calendar_of_day
from jaxsim.models.labour.params import EconomyError, LabourParams, StimulusPayment, validate_params


# ------------------------------------------------------------------------------ state
@struct.dataclass
class LabourState:
    """Agent arrays ``[S]`` and the economy's monthly signals.

    Attributes:
        employed: float32 ``[S]`` 1 if the agent holds a job.
        willing: float32 ``[S]`` 1 if willing to work this month (drawn at the month's start).
        worked_today: float32 ``[S]`` 1 if the agent worked today.
        days_worked: float32 ``[S]`` days worked so far this month.
        savings: float32 ``[S]`` USD.
        workdays: float32 scalar, working days so far this month.
        month_first_day: int32 scalar, the run day on which this month's accounts began.
        case_signal: float32 ``[R]`` reported cases per 1,000 residents in the last
            completed month (before the first: ``world.inputs["prior_case_signal"]``).
        month_willingness: float32 ``[R]`` mean willingness probability of this month's
            labour force per region.
        price_level: float32 scalar, 1 in the first month.
        demand_ratio: float32 scalar, consumption / earnings of the last completed month
            (0 before the first).
        drawn_month: int32 scalar, the run month whose willingness was drawn (-1 before).
    """

    employed: jax.Array
    willing: jax.Array
    worked_today: jax.Array
    days_worked: jax.Array
    savings: jax.Array
    workdays: jax.Array
    month_first_day: jax.Array
    case_signal: jax.Array
    month_willingness: jax.Array
    price_level: jax.Array
    demand_ratio: jax.Array
    drawn_month: jax.Array


def initial_state(key: jax.Array, params: LabourParams, world: World) -> LabourState:
    """Day-0 state (the model's ``init``): each member of the labour force is unemployed
    with its region's ``world.inputs["initial_unemployment"]`` (e.g. the observed rate of
    the first month), savings of ``initial_savings_months`` wages (or subsistence for
    adults outside the labour force), price level 1, and the case signal
    ``world.inputs["prior_case_signal"]``. The employment draw uses the run's estimator."""
    agents = world.agents
    lf = agents["labour_force"]
    region = agents["region"]
    num_regions = world.num_categories("region")
    unemployment = jnp.asarray(world.inputs["initial_unemployment"], jnp.float32)
    employed = sampling.bernoulli(key, (1.0 - lookup(unemployment, region)) * lf) * lf
    savings = params.initial_savings_months * jnp.where(
        lf > 0.5, agents["wage"], params.subsistence * agents["adult"]
    )
    slots = lf.shape[0]
    # Separate buffers for every leaf: engine.run may donate the state's buffers, each once.
    return LabourState(
        employed=employed.astype(jnp.float32),
        willing=jnp.zeros(slots, jnp.float32),
        worked_today=jnp.zeros(slots, jnp.float32),
        days_worked=jnp.zeros(slots, jnp.float32),
        savings=savings.astype(jnp.float32),
        workdays=jnp.float32(0.0),
        month_first_day=jnp.int32(0),
        case_signal=jnp.array(jnp.broadcast_to(jnp.asarray(world.inputs["prior_case_signal"], jnp.float32),
                                               (num_regions,))),
        month_willingness=jnp.zeros(num_regions, jnp.float32),
        price_level=jnp.float32(1.0),
        demand_ratio=jnp.float32(0.0),
        drawn_month=jnp.int32(-1),
    )


# -------------------------------------------------------------------- bridge defaults
def real_agents(state: LabourState, params, t, world: World) -> jax.Array:
    """Default of ``alive`` and ``available`` when no epidemic is composed: every real agent."""
    return world.real_agents().astype(jnp.float32)


def no_onsets(state: LabourState, params, t, world: World) -> jax.Array:
    """Default of ``onset_day`` when no epidemic is composed: nobody has symptoms."""
    return jnp.full(world.num_slots, -60000, jnp.int32)


REQUIRES = {"alive": real_agents, "available": real_agents, "onset_day": no_onsets}


# ---------------------------------------------------------------------------- substeps
def willingness_probability(source: str, econ: LabourState, params: LabourParams, world: World, run_month):
    """float32 ``[S]`` each agent's probability of being willing to work in ``run_month``:
    the heuristic (``source="heuristic"``) or its work group's entry of
    ``world.inputs["willingness"]`` (``"inputs"``), through the calibratable alignment
    ``sigmoid(a logit(p) + b)`` (``willingness_alignment_scale``/``_offset``; 1 and 0: ``p``)."""
    agents = world.agents
    if source == "heuristic":
        cushion = econ.savings / jnp.maximum(agents["wage"], 100.0)
        prob = labour.heuristic_willingness(
            lookup(params.willingness_baseline, agents["age"]),
            lookup(econ.case_signal, agents["region"]),
            econ.price_level,
            cushion,
            params.willingness_case_sensitivity,
            params.willingness_price_sensitivity,
            params.willingness_savings_sensitivity,
        )
        return labour.aligned_willingness(prob, params.willingness_alignment_scale,
                                          params.willingness_alignment_offset)
    table = world.inputs["willingness"]
    row = labour.aligned_willingness(table[jnp.clip(run_month, 0, table.shape[0] - 1)],
                                     params.willingness_alignment_scale, params.willingness_alignment_offset)
    return lookup(row, agents["work_group"])


def month_start_substep(source: str):
    def economy_month_start(key, econ: LabourState, p: LabourParams, t, world: World):
        cal = calendar_of_day(t, world.inputs["economy_start_day"])
        num_regions = world.num_categories("region")
        alive = world.inputs["alive"]

        def draw(econ: LabourState) -> LabourState:
            active = world.agents["labour_force"] * alive
            prob = willingness_probability(source, econ, p, world, cal["run_month"]) * active
            willing = sampling.bernoulli(key, prob) * active
            sums = labour.sum_by_code(jnp.stack([prob, active], axis=1), world.agents["region"], num_regions)
            mean_w = jnp.where(sums[:, 1] > 0, sums[:, 0] / jnp.maximum(sums[:, 1], 1.0), 0.0)
            return econ.replace(
                willing=willing,
                days_worked=jnp.zeros_like(econ.days_worked),
                workdays=jnp.zeros_like(econ.workdays),
                month_first_day=jnp.asarray(t, jnp.int32),
                month_willingness=mean_w.astype(jnp.float32),
                drawn_month=cal["run_month"],
            )

        # Only on the first day of a run month (under vmap both branches run, then a select).
        econ = jax.lax.cond(cal["run_month"] != econ.drawn_month, draw, lambda e: e, econ)
        return econ, {}

    return economy_month_start


def work(key, econ: LabourState, params: LabourParams, t, world: World):
    cal = calendar_of_day(t, world.inputs["economy_start_day"])
    works = labour.works_today(econ.employed, econ.willing, world.inputs["available"], cal["workday"])
    econ = econ.replace(
        worked_today=works,
        days_worked=econ.days_worked + works,
        workdays=econ.workdays + cal["workday"],
    )
    return econ, {"working": works.sum(), "month_end": cal["month_end"].astype(jnp.float32)}


def _stimulus_paid(stimulus: StimulusPayment, run_month, earnings, recipients, unemployed) -> jax.Array:
    """USD ``[S]`` paid this month to each agent (0 outside paid months)."""
    months = stimulus.paid.shape[-1]
    in_month = jnp.where(run_month < months, stimulus.paid[jnp.clip(run_month, 0, months - 1)], 0.0)
    eligible = recipients * (earnings <= stimulus.max_earnings)
    eligible = eligible * jnp.where(stimulus.unemployed_only > 0.5, unemployed, 1.0)
    return (stimulus.amount * in_month * eligible).astype(jnp.float32)


def settle(econ: LabourState, p: LabourParams, key, t, month, world: World):
    """The month's accounts and job flows: ``(state, monthly metrics)``."""
    agents = world.agents
    region = agents["region"]
    num_regions = world.num_categories("region")
    alive = world.inputs["alive"]
    active = agents["labour_force"] * alive
    unemployed = active * (1.0 - econ.employed)
    # Symptom onsets this month: agents whose onset day falls in the month so far.
    onset_day = world.inputs["onset_day"]
    onset = ((onset_day >= econ.month_first_day) & (onset_day <= t)).astype(jnp.float32)

    # Money: earnings, benefits, tax and its redistribution, pensions, stimulus.
    earnings = labour.monthly_earnings(agents["wage"], econ.days_worked, econ.workdays) * alive
    ui = labour.unemployment_benefit(unemployed, agents["wage"], p.ui_replacement, p.ui_cap)
    tax = labour.progressive_tax(earnings, p.tax_thresholds, p.tax_rates)
    recipients = agents["adult"] * alive
    transfers = labour.redistribute(jnp.sum(tax), recipients)
    pension = lookup(p.non_labour_income, agents["age"]) * alive * (1.0 - agents["labour_force"])
    stimulus = (
        jnp.zeros_like(earnings) if p.stimulus is None
        else _stimulus_paid(p.stimulus, month, earnings, recipients, unemployed)
    )
    income = earnings - tax + transfers + ui + pension + stimulus
    consumption, savings = labour.consumption_and_savings(
        income, econ.savings, p.subsistence * recipients, econ.price_level, p.mpc, p.wealth_mpc
    )
    consumption = consumption * alive
    savings = jnp.where(alive > 0.5, savings, econ.savings)

    # Prices: the change in excess demand since last month.
    demand, output = jnp.sum(consumption), jnp.sum(earnings)
    price, ratio = labour.price_update(
        econ.price_level, demand, output, econ.demand_ratio, p.price_adjustment, p.max_monthly_price_change
    )

    # Per-region totals of the month, in one pass.
    columns = (active, unemployed, earnings, ui, tax, transfers, pension, stimulus, consumption, savings, onset)
    totals = labour.sum_by_code(jnp.stack(columns, axis=1), region, num_regions)  # [R, 11]
    (force, unemployed_b, earnings_b, ui_b, tax_b, transfers_b, pension_b, stimulus_b, consumption_b, savings_b,
     onsets_b) = (
        totals[:, i] for i in range(len(columns))
    )

    # The labour market: this month's rate, then the month's job flows.
    rate = jnp.clip(jnp.where(force > 0, unemployed_b / jnp.maximum(force, 1.0), 0.0), 0.0, 1.0)
    residents = world.inputs["region_residents"]
    case_signal = jnp.where(
        residents > 0, onsets_b * p.ascertainment / jnp.maximum(residents, 1.0) * 1000.0, 0.0
    )
    claims_table = world.inputs["claims_rate"]
    claims = claims_table[jnp.clip(month, 0, claims_table.shape[0] - 1)]
    leave, hire = labour.job_flow_probabilities(
        region, econ.willing, p.separation_logit, p.hiring_logit, case_signal, claims,
        p.separation_case_sensitivity, p.hiring_claims_sensitivity, p.quit_if_unwilling,
    )
    k_leave, k_hire = jax.random.split(key)
    leaves = sampling.bernoulli(k_leave, leave * active)
    hired = sampling.bernoulli(k_hire, hire * active)
    employed = jnp.where(active > 0.5, labour.next_employment(econ.employed, leaves, hired), econ.employed)

    metrics = {
        "unemployment_rate": rate,
        "labour_force": force,
        "unemployed": unemployed_b,
        "willingness": econ.month_willingness,
        "case_signal": case_signal,
        "claims_rate": claims,
        "earnings": earnings_b,
        "ui_benefits": ui_b,
        "tax": tax_b,
        "transfers": transfers_b,
        "pensions": pension_b,
        "stimulus_paid": stimulus_b,
        "consumption": consumption_b,
        "savings": savings_b,
        "price_level": econ.price_level,  # during the month
        "city_unemployed": unemployed_b.sum(),
        "city_labour_force": force.sum(),
        "city_consumption": demand,
        "city_tax": jnp.sum(tax),
        "city_transfers": jnp.sum(transfers),
        "month_index": month.astype(jnp.float32),
    }
    econ = econ.replace(
        employed=employed, savings=savings, price_level=price, demand_ratio=ratio, case_signal=case_signal,
    )
    return econ, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}


def economy_month_end(key, econ: LabourState, params: LabourParams, t, world: World):
    cal = calendar_of_day(t, world.inputs["economy_start_day"])
    month = cal["run_month"]

    def skip(econ):
        _, shapes = jax.eval_shape(lambda s: settle(s, params, key, t, month, world), econ)
        return econ, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

    # Only on the last day of a month (under vmap both branches run, then a select):
    # monthly metrics are zeros on other days.
    return jax.lax.cond(cal["month_end"], lambda s: settle(s, params, key, t, month, world), skip, econ)


# ------------------------------------------------------------------------------ model
WILLINGNESS_POLICIES = ("heuristic", "inputs")

#: Metrics reported per region (``[R]``) on month-end days.
REGION_METRICS: tuple[str, ...] = (
    "unemployment_rate", "labour_force", "unemployed", "willingness", "case_signal", "claims_rate",
    "earnings", "ui_benefits", "tax", "transfers", "pensions", "stimulus_paid", "consumption", "savings",
)
#: Scalar metrics reported on month-end days.
CITY_METRICS: tuple[str, ...] = (
    "price_level", "city_unemployed", "city_labour_force", "city_consumption", "city_tax",
    "city_transfers", "month_index",
)

_UNITS = {
    "unemployment_rate": ("level", "fraction of the labour force"),
    "labour_force": ("level", "agents"), "unemployed": ("level", "agents"),
    "willingness": ("probability", "per month"), "case_signal": ("level", "reported cases per 1,000 residents"),
    "claims_rate": ("level", "UI beneficiaries per labour-force member"),
    "earnings": ("amount", "USD"), "ui_benefits": ("amount", "USD"), "tax": ("amount", "USD"),
    "transfers": ("amount", "USD"), "pensions": ("amount", "USD"), "stimulus_paid": ("amount", "USD"),
    "consumption": ("amount", "USD"), "savings": ("level", "USD"),
    "price_level": ("level", "index (1 in the first month)"), "city_unemployed": ("level", "agents"),
    "city_labour_force": ("level", "agents"), "city_consumption": ("amount", "USD"),
    "city_tax": ("amount", "USD"), "city_transfers": ("amount", "USD"), "month_index": ("level", "run month"),
}

METRICS: tuple[Metric, ...] = (
    Metric("working", "flow", "agents", doc="agents at work today"),
    Metric("month_end", "level", "0/1", doc="1 on the last day of a calendar month"),
    *(Metric(name, _UNITS[name][0], _UNITS[name][1], by="region") for name in REGION_METRICS),
    *(Metric(name, _UNITS[name][0], _UNITS[name][1]) for name in CITY_METRICS),
)

#: A stimulus compared with a baseline: differences of totals over the run.
OUTCOMES: dict[str, tuple[str, int]] = {
    "consumption_gained": ("city_consumption", -1),
    "unemployed_months_averted": ("city_unemployed", +1),
}


def _validate_factory(policy: str):
    def validate(state: LabourState, params: LabourParams, world: World) -> None:
        if not isinstance(params, LabourParams):
            raise EconomyError(f"the labour model needs LabourParams, got {type(params).__name__}")
        for name in ("region", "labour_force", "adult", "wage", "work_group"):
            if name not in world.agents:
                raise EconomyError(f"the world has no economy array {name!r}: build it with labour.build_world")
        for name in ("economy_start_day", "claims_rate", "region_residents", "initial_unemployment",
                     "prior_case_signal"):
            if name not in world.inputs:
                raise EconomyError(f"the world has no economy input {name!r}: build it with labour.build_world")
        validate_params(params, world.num_categories("age"), world.num_categories("region"))
        if state.employed.shape != (world.num_slots,):
            raise EconomyError(
                f"the economy state has {state.employed.shape[0]} agent slots, the world {world.num_slots}"
            )
        if policy == "inputs":
            table = world.inputs.get("willingness")
            if table is None:
                raise EconomyError("policy 'inputs' needs world.inputs['willingness'] (labour.build_world(..., willingness=...))")
            if table.shape[1] != world.num_categories("work_group"):
                raise EconomyError(
                    f"willingness has {table.shape[1]} groups, the world {world.num_categories('work_group')}"
                )

    return validate


def labour_model(policy: str = "heuristic") -> Model:
    """The labour model as a :class:`~jaxsim.engine.Model` on a :class:`LabourState`.

    Args:
        policy: willingness to work from the ``"heuristic"`` or from
            ``world.inputs["willingness"]`` (``"inputs"``, one column per work group, set by
            a behaviour layer: :data:`jaxsim.models.labour.behaviour.WILLINGNESS_POLICY`).

    Compose it with an epidemic (``compose({"covid": covid_model(), "economy":
    labour_model()})``) and the epidemic's ``alive``, ``available`` and ``onset_day``
    drive who works and the case signal; alone, nobody is sick.
    """
    if policy not in WILLINGNESS_POLICIES:
        raise EconomyError(f"unknown willingness policy {policy!r}; choose one of {WILLINGNESS_POLICIES}")
    from jaxsim.models.labour.behaviour import WILLINGNESS_POLICY

    return Model(
        name=f"labour[{policy}]",
        substeps=(
            Substep("economy_month_start", month_start_substep(policy)),
            Substep("work", work),
            Substep("economy_month_end", economy_month_end),
        ),
        init=initial_state,
        validate=_validate_factory(policy),
        params_type=LabourParams,
        metrics=METRICS,
        outcomes=OUTCOMES,
        requires=REQUIRES,
        policies=(WILLINGNESS_POLICY,) if policy == "inputs" else (),
        working_bytes_per_agent=64,
    )


def monthly_rows(metrics) -> np.ndarray:
    """Day positions of month-end rows in a run's metrics (``month_end == 1``)."""
    return np.flatnonzero(np.asarray(metrics["month_end"]) > 0.5)


__all__ = [
    "CITY_METRICS",
    "LabourState",
    "METRICS",
    "OUTCOMES",
    "REGION_METRICS",
    "REQUIRES",
    "WILLINGNESS_POLICIES",
    "initial_state",
    "labour_model",
    "monthly_rows",
    "settle",
    "willingness_probability",
]
