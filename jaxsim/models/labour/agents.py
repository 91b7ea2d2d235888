"""The labour model's agents and world: who is in the labour force, as what, for what wage;
the calendar of a run; the world arrays the substeps read (host side).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.engine import World, pad_agents
from jaxsim.errors import LabelError
from jaxsim.models.labour.params import (
    DEFAULT_MONTHLY_WAGE,
    DEFAULT_OCCUPATION_SHARES,
    DEFAULT_PARTICIPATION,
    OCCUPATIONS,
    SOC_MAJOR_TO_OCCUPATION,
    WAGE_DISPERSION,
    EconomyError,
)
from jaxsim.population import Population, PopulationError
from jaxsim.population_io import column_source


# ----------------------------------------------------------------------------- calendar
_EPOCH = _dt.date(1970, 1, 1)


def epoch_day(date: _dt.date | str) -> int:
    """Days since 1970-01-01 of ``date`` (a ``datetime.date`` or ``"YYYY-MM-DD"``)."""
    if isinstance(date, str):
        date = _dt.date.fromisoformat(date)
    return (date - _EPOCH).days


def civil_date(days: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(year, month 1-12, day 1-31)`` of ``days`` since 1970-01-01 (int32, >= 0), with
    integer arithmetic only (H. Hinnant's ``civil_from_days``), so it runs inside ``jit``."""
    z = jnp.asarray(days, jnp.int32) + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = jnp.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2).astype(jnp.int32)
    return year, month, day


def calendar_of_day(t: jax.Array, start_day: jax.Array) -> dict[str, jax.Array]:
    """Calendar facts of run day ``t`` for a run whose day 0 is ``start_day`` (days since
    1970-01-01): ``run_month`` (int32, 0 = the start's month), ``workday`` (float32 1 on
    Monday-Friday), ``month_end`` (bool, the last day of its month)."""
    today = start_day + t
    year, month, _ = civil_date(today)
    year0, month0, _ = civil_date(start_day)
    _, _, tomorrow = civil_date(today + 1)
    weekday = (today + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    return {
        "run_month": ((year - year0) * 12 + (month - month0)).astype(jnp.int32),
        "workday": (weekday < 5).astype(jnp.float32),
        "month_end": tomorrow == 1,
    }


def days_in_months(start: _dt.date, months: int) -> int:
    """Days from ``start`` (the first of a month) to the end of the ``months``-th month."""
    year, month = start.year, start.month + int(months)
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return (_dt.date(year, month, 1) - start).days


# ---------------------------------------------------------------------- occupations
#: A SOC 2018 code with or without its dash (``15-1252``, ``151252``), an O*NET-SOC code
#: (``15-1252.00``, ``13-2099.01``: the SOC code and a two-digit O*NET suffix), a bare
#: major group (``15``), or a major and minor group (``15-12``).
_SOC = re.compile(r"^\s*(\d{2})(?:-?(\d{4})(?:\.\d{2})?|-?\d{2}(?:\.\d+)?|)\s*$")
_BLANK = {"", "na", "nan", "none", "null", "n/a"}
_SOC_FORMS = "a SOC 2018 code such as '15-1252' or '151252', or an O*NET-SOC code such as '13-2099.01'"


def soc_code(code) -> str | None:
    """The SOC 2018 code an occupation code stands for: ``"13-2099"`` for ``"13-2099"``,
    ``"132099"`` and the O*NET-SOC ``"13-2099.01"``; the major group (``"13"``) for a
    bare or a major-and-minor group code; ``None`` for a blank cell (``""``, ``"NA"``, ...).

    Raises:
        EconomyError: ``code`` is none of these (the message names the value only;
            :func:`occupations_from_soc` adds the file, column and agent).
    """
    text = "" if code is None else str(code)
    if text.strip().lower() in _BLANK:
        return None
    match = _SOC.match(text)
    if not match:
        raise EconomyError(f"{text!r} is not a SOC occupation code ({_SOC_FORMS})")
    major, detail = match.group(1), match.group(2)
    return f"{major}-{detail}" if detail else major


def occupations_from_soc(
    codes: np.ndarray, *, agent_ids: np.ndarray | None = None, source: str | None = None
) -> np.ndarray:
    """Occupation group codes (index into :data:`OCCUPATIONS`) from SOC codes; -1 where
    the code is blank (no occupation recorded).

    Accepts every form :func:`soc_code` reads: ``"15-1252"``, ``"151252"``, the O*NET-SOC
    ``"15-1252.00"`` / ``"13-2099.01"`` (the field's populations carry these) and a bare
    major group ``"15"``; only the major group decides the occupation group.

    Args:
        agent_ids: the id of each row's agent, for messages (default: the row).
        source: the file the codes were read from, for messages
            (:func:`jaxsim.population_io.column_source`).

    Raises:
        EconomyError: a code that is not a SOC code, or whose major group is unknown; one
            line naming the file (when known), the column ``soc_code``, the agent and the
            value.
    """
    out = np.full(len(codes), -1, np.int8)
    where = f"{source}: column 'soc_code'" if source else "column 'soc_code'"
    for i, raw in enumerate(codes):
        text = "" if raw is None else str(raw)
        if text.strip().lower() in _BLANK:
            continue
        match = _SOC.match(text)
        agent = int(agent_ids[i]) if agent_ids is not None else i
        if not match:
            raise EconomyError(
                f"{where}, agent {agent}: {text!r} is not a SOC occupation code ({_SOC_FORMS})"
            )
        group = SOC_MAJOR_TO_OCCUPATION.get(match.group(1))
        if group is None:
            raise EconomyError(
                f"{where}, agent {agent}: {text!r} has unknown SOC major group {match.group(1)!r} "
                f"(known: {sorted(SOC_MAJOR_TO_OCCUPATION)})"
            )
        out[i] = OCCUPATIONS.index(group)
    return out


@dataclass(frozen=True)
class LabourAttributes:
    """Each agent's place in the labour market, fixed for a run (host numpy, ``[N]``).

    Attributes:
        labour_force: bool, member of the labour force.
        occupation: int8 occupation group code (index into :data:`OCCUPATIONS`), -1 outside
            the labour force.
        wage: float32 USD per month of full-time work (0 outside the labour force).
        region: int8 region code (e.g. a borough).
        source: how occupations were obtained ("soc_code" or "sampled").
    """

    labour_force: np.ndarray
    occupation: np.ndarray
    wage: np.ndarray
    region: np.ndarray
    source: str

    def summary(self, region_labels: Sequence[str] | None = None) -> dict:
        lf = self.labour_force
        labels = list(region_labels) if region_labels is not None else [
            str(r) for r in range(int(self.region.max()) + 1 if self.region.size else 0)]
        return {
            "source": self.source,
            "labour_force": int(lf.sum()),
            "labour_force_by_region": {
                b: int(lf[self.region == i].sum()) for i, b in enumerate(labels)
            },
            "occupations": {
                name: int((self.occupation == k).sum()) for k, name in enumerate(OCCUPATIONS)
            },
            "mean_monthly_wage": float(self.wage[lf].mean()) if lf.any() else None,
        }


def labour_attributes(
    population: Population,
    region: np.ndarray,
    *,
    seed: int = 0,
    participation: Mapping[str, float] = DEFAULT_PARTICIPATION,
    occupation_shares: Mapping[str, float] = DEFAULT_OCCUPATION_SHARES,
    monthly_wage: Mapping[str, float] = DEFAULT_MONTHLY_WAGE,
    wage_dispersion: float = WAGE_DISPERSION,
) -> LabourAttributes:
    """Labour force, occupation and wage of every agent (host, from ``np.random.default_rng(seed)``);
    ``region`` int ``[N]`` is each agent's region code (e.g. its borough).

    With a ``soc_code`` column the population says who works and as what: agents with a
    code are in the labour force, in its occupation group; blank codes are outside it.
    Without one, each agent joins the labour force with its age band's participation
    (:data:`DEFAULT_PARTICIPATION`) and draws an occupation group from
    ``occupation_shares``. Wages: the group's monthly wage times ``exp(sigma Z -
    sigma^2 / 2)`` (mean-preserving log-normal, ``sigma = wage_dispersion``).

    Raises:
        EconomyError / PopulationError / KeyError: a malformed ``soc_code``, no ``age``
            attribute, an age label without a participation rate, shares that are not
            a distribution, or regions of the wrong shape.
    """
    region = np.asarray(region)
    if region.shape != (population.size,) or (region.size and region.min() < 0):
        raise EconomyError(f"region codes must be [N] whole numbers >= 0, got shape {region.shape}")
    if "age" not in population.attributes:
        where = column_source(population, "age") or "the population"
        raise PopulationError(
            f"{where}: no column 'age', which the labour model needs (each agent's age band); "
            f"columns: {sorted([*population.attributes, *population.strings])}"
        )
    _check_distribution(occupation_shares, "occupation_shares")
    unknown = sorted(set(monthly_wage) ^ set(OCCUPATIONS))
    if unknown:
        raise EconomyError(f"monthly_wage: needs exactly the groups {list(OCCUPATIONS)}, differs in {unknown}")
    if not np.isfinite(wage_dispersion) or wage_dispersion < 0:
        raise EconomyError(f"wage_dispersion must be a finite number >= 0, got {wage_dispersion!r}")
    rng = np.random.default_rng(seed)
    n = population.size
    if "soc_code" in population.strings:
        ids = population.user_ids if population.user_ids is not None else None
        occupation = occupations_from_soc(
            population.strings["soc_code"], agent_ids=ids, source=column_source(population, "soc_code")
        )
        labour_force = occupation >= 0
        source = "soc_code"
    else:
        try:
            rate = population.table_by_label("age", participation)
        except KeyError as err:
            raise EconomyError(f"participation: {err.args[0]}") from None
        if np.any((rate < 0) | (rate > 1)):
            raise EconomyError(f"participation: rates must lie in [0, 1], got {dict(participation)}")
        labour_force = rng.random(n) < rate[population.attributes["age"]]
        shares = np.asarray([occupation_shares[o] for o in OCCUPATIONS], np.float64)
        drawn = rng.choice(len(OCCUPATIONS), size=n, p=shares / shares.sum()).astype(np.int8)
        occupation = np.where(labour_force, drawn, -1).astype(np.int8)
        source = "sampled"
    base = np.asarray([monthly_wage[o] for o in OCCUPATIONS], np.float64)
    if np.any(~np.isfinite(base) | (base <= 0)):
        raise EconomyError(f"monthly_wage: wages must be finite and > 0, got {dict(monthly_wage)}")
    factor = np.exp(wage_dispersion * rng.standard_normal(n) - wage_dispersion**2 / 2)
    wage = np.where(labour_force, base[np.maximum(occupation, 0)] * factor, 0.0).astype(np.float32)
    return LabourAttributes(labour_force, occupation, wage, region.astype(np.int8 if region.max(initial=0) < 127 else np.int32), source)


def _check_distribution(shares: Mapping[str, float], what: str) -> None:
    missing = [o for o in OCCUPATIONS if o not in shares]
    extra = sorted(set(shares) - set(OCCUPATIONS))
    if missing or extra:
        raise EconomyError(f"{what}: needs one share per group {list(OCCUPATIONS)}; missing {missing}, unknown {extra}")
    values = np.asarray([shares[o] for o in OCCUPATIONS], np.float64)
    if np.any(~np.isfinite(values) | (values < 0)) or values.sum() <= 0:
        raise EconomyError(f"{what}: shares must be finite, >= 0 and not all 0, got {dict(shares)}")


# ------------------------------------------------------------------------------- world
def build_world(
    world: World,
    population: Population,
    attributes: LabourAttributes,
    *,
    regions: Sequence[str],
    start: _dt.date,
    claims_rate: np.ndarray,
    initial_unemployment: np.ndarray,
    prior_case_signal: np.ndarray | float = 0.0,
    work_groups: np.ndarray | None = None,
    work_group_labels: Sequence[str] | None = None,
    willingness: np.ndarray | None = None,
) -> World:
    """``world`` (e.g. an epidemic model's, or :func:`jaxsim.world.make_world`'s) with the
    labour model's arrays added.

    Args:
        attributes: from :func:`labour_attributes`.
        regions: labels of the region codes (``R``; e.g. New York City's boroughs).
        start: the calendar date of day 0 (normally the first of a month).
        claims_rate: float ``[M, R]`` UI beneficiaries per person in the labour force, by
            run month and region (months past the last repeat it).
        initial_unemployment: float ``[R]`` each region's unemployment rate on day 0.
        prior_case_signal: float ``[R]`` (or one value) reported cases per 1,000 residents
            in the month before the run.
        work_groups: int ``[N]`` group of each agent for willingness supplied from outside
            (default: the age code), with ``work_group_labels``.
        willingness: float ``[M, G]`` willingness per run month and group, for the
            ``"inputs"`` policy (see :func:`jaxsim.models.labour.labour_model`).

    Adds ``world.agents``: ``region`` (int8, padding ``R``), ``labour_force``, ``adult``
    (float32 0/1), ``wage`` (float32 USD/month), ``work_group`` (int32); ``world.inputs``:
    ``economy_start_day`` (int32 scalar), ``claims_rate`` ``[M, R]``, ``region_residents``
    ``[R]``, ``initial_unemployment`` ``[R]``, ``prior_case_signal`` ``[R]`` and, when
    given, ``willingness`` ``[M, G]``.
    """
    n, slots = population.size, world.num_slots
    if world.num_agents != n:
        raise EconomyError(f"the world has {world.num_agents} agents, the population {n}")
    regions = tuple(str(r) for r in regions)
    num_regions = len(regions)
    if num_regions < 1:
        raise EconomyError("regions: name at least one region")
    if attributes.region.size and attributes.region.max() >= num_regions:
        raise EconomyError(f"region codes reach {int(attributes.region.max())}, but {num_regions} regions are named")
    claims = np.asarray(claims_rate, np.float32)
    if claims.ndim != 2 or claims.shape[1] != num_regions or claims.shape[0] < 1:
        raise EconomyError(f"claims_rate must have shape [months, {num_regions}], got {claims.shape}")
    if not np.all(np.isfinite(claims)) or np.any(claims < 0) or np.any(claims > 1):
        raise EconomyError("claims_rate: beneficiaries per labour-force member must lie in [0, 1]")
    unemployment = np.asarray(initial_unemployment, np.float32)
    if unemployment.shape != (num_regions,) or not np.all((unemployment >= 0) & (unemployment <= 1)):
        raise EconomyError(f"initial_unemployment must be {num_regions} fractions in [0, 1], got {unemployment.tolist()}")
    prior = np.broadcast_to(np.asarray(prior_case_signal, np.float32), (num_regions,)).copy()
    if not np.all(np.isfinite(prior)) or np.any(prior < 0):
        raise EconomyError(f"prior_case_signal must be {num_regions} numbers >= 0, got {prior.tolist()}")
    labels = population.category_labels("age")
    u19 = labels.index("U19") if "U19" in labels else -1
    adult = population.attributes["age"] != u19
    if work_groups is None:
        work_groups = population.attributes["age"]
        work_group_labels = labels
    work_groups = np.asarray(work_groups)
    if work_groups.shape != (n,):
        raise EconomyError(f"work_groups has shape {work_groups.shape}, expected ({n},)")
    if work_group_labels is None:
        work_group_labels = [str(g) for g in range(int(work_groups.max()) + 1 if work_groups.size else 0)]
    num_work_groups = len(work_group_labels)
    if work_groups.size and (work_groups.min() < 0 or work_groups.max() >= num_work_groups):
        raise EconomyError(f"work_groups: codes must lie in 0..{num_work_groups - 1}")
    agents = {
        **world.agents,
        "region": jnp.asarray(pad_agents(attributes.region, slots, num_regions, np.int8 if num_regions < 127 else np.int32)),
        "labour_force": jnp.asarray(pad_agents(attributes.labour_force, slots, 0, np.float32)),
        "adult": jnp.asarray(pad_agents(adult, slots, 0, np.float32)),
        "wage": jnp.asarray(pad_agents(attributes.wage, slots, 0, np.float32)),
        "work_group": jnp.asarray(pad_agents(work_groups, slots, 0, np.int32)),
    }
    residents = np.bincount(attributes.region, minlength=num_regions).astype(np.float32)
    inputs = {
        **world.inputs,
        "economy_start_day": jnp.int32(epoch_day(start)),
        "claims_rate": jnp.asarray(claims),
        "region_residents": jnp.asarray(residents),
        "initial_unemployment": jnp.asarray(unemployment),
        "prior_case_signal": jnp.asarray(prior),
    }
    if willingness is not None:
        table = np.asarray(willingness, np.float32)
        if table.ndim != 2 or table.shape[1] != num_work_groups:
            raise EconomyError(f"willingness must have shape [months, {num_work_groups}], got {table.shape}")
        if not np.all((table >= 0) & (table <= 1)):
            raise EconomyError("willingness: probabilities must lie in [0, 1]")
        inputs["willingness"] = jnp.asarray(table)
    replaced = ("region", "work_group")
    categories = tuple(c for c in world.categories if c[0] not in replaced) + (
        ("region", num_regions), ("work_group", num_work_groups),
    )
    all_labels = tuple(c for c in world.labels if c[0] not in replaced) + (
        ("region", regions), ("work_group", tuple(str(g) for g in work_group_labels)),
    )
    return world.replace(agents=agents, inputs=inputs, categories=categories, labels=all_labels)


def work_group_share(world: World) -> np.ndarray:
    """float32 ``[R, G]``: each region's labour force split by work group (rows sum to 1;
    0 for a region without a labour force), from a world of :func:`build_world`. With a
    behaviour layer's willingness per group ``w [G]``, ``share @ w`` is each region's
    mean willingness (what the labour calibration's ``group_share`` takes)."""
    force = np.asarray(world.agents["labour_force"], np.float64)
    region = np.asarray(world.agents["region"], np.int64)
    group = np.asarray(world.agents["work_group"], np.int64)
    num_regions, num_groups = world.num_categories("region"), world.num_categories("work_group")
    counts = np.zeros((num_regions, num_groups))
    real = (region >= 0) & (region < num_regions) & (group >= 0) & (group < num_groups)  # not padding slots
    np.add.at(counts, (region[real], group[real]), force[real])
    totals = counts.sum(axis=1, keepdims=True)
    return np.where(totals > 0, counts / np.maximum(totals, 1e-12), 0.0).astype(np.float32)


__all__ = [
    "LabourAttributes",
    "build_world",
    "calendar_of_day",
    "civil_date",
    "days_in_months",
    "epoch_day",
    "labour_attributes",
    "occupations_from_soc",
    "work_group_share",
]
