"""Synthetic New York City populations built from neighbourhood (NTA) household counts.

:func:`synthesize_nyc_population` turns rows of ``households_by_nta.csv`` (see
:func:`jaxsim.nyc.households.load_households`) into a :class:`~jaxsim.population.Population` with
households, ages, genders and two contact layers. :func:`synthesize_population_of_size`
builds a population of an exact size for benchmarks. Everything is vectorised numpy driven
by one ``np.random.default_rng(seed)``: the same arguments and seed give identical output.
Python loops run over NTAs (at most 262) and never over agents or households.

Households (per NTA; columns of the CSV in ``code`` style)
----------------------------------------------------------
* ``people`` agents and ``households`` households, exactly, when the row is consistent.
* ``householders_living_alone`` households have one member. The other households have
  two members plus a share of the remaining people: the ``people - 2 * multi`` extra people
  are dropped one by one into the multi-person households (a multinomial draw, i.e.
  ``2 + Poisson``-like sizes conditioned on the exact total), households with children with
  weight :data:`CHILD_HOUSEHOLD_SIZE_WEIGHT` and the others with weight 1, so families with
  children are larger on average. No size cap: the rare large households are kept.
* ``family_households_with_own_children_under_18`` of the multi-person households are
  households with children: their second member is aged ``U19``, and further ``U19`` agents
  go to the other non-householder places of these households first.
* ``households_with_member_65_and_over``: in this file the column is never larger than
  ``householders_living_alone`` (every row; it sums to 386,737, 11.9 % of households), so it
  matches the ACS DP02 line *householder living alone, 65 years and over* rather than
  *households with one or more people 65+* (about 30 % of NYC households). It is used that
  way: that many one-person households get a ``65A`` householder; the other one-person
  households get a householder aged 20-64. Should a row hold more such households than
  one-person households, the excess get a ``65A`` householder among multi-person households
  without children first. The remaining ``65A`` quota goes to random free places in
  multi-person households.
* Rows that cannot be met exactly (e.g. ``BK5691``: 20 people in 12 households, none living
  alone) are repaired with the fewest changes: fewer multi-person households so that each
  has at least two members; such NTAs are listed in ``metadata["household_adjustments"]``.
* Agents of a household are contiguous, households are numbered contiguously across the
  population (attribute ``household``), and the agents of an NTA are contiguous, NTAs in the
  order requested; households are shuffled within their NTA. The first agent of each
  household is its householder and is always an adult (20+), so every ``U19`` agent lives in
  a household of size >= 2 with an adult.

Ages and genders
----------------
Each NTA's ages follow the citywide marginals :data:`AGE_SHARES` (apportioned to the NTA's
size by largest remainder), subject to the household constraints above; when a constraint
forces more ``U19``/``65A`` agents than the quota (or leaves no room for them) the
difference is taken from (given to) the 20-64 bands. Gender is an independent draw with
:data:`FEMALE_SHARE`, independent of age (a simplification).

Contact layers
--------------
* ``household``: every pair of members of every household (cliques,
  :func:`jaxsim.generators.household_cliques`); edges come out sorted by ``(u, v)``.
* ``community``: a configuration-model graph. Each agent draws a negative-binomial number of
  stubs with mean :data:`DEFAULT_COMMUNITY_MEAN_CONTACTS` for its age band and dispersion
  ``k`` (:data:`DEFAULT_COMMUNITY_DISPERSION`; variance ``mu + mu**2 / k``). A binomial
  share ``cross_nta_share`` of each agent's stubs is paired across the whole population,
  the others are shuffled and paired within the agent's NTA (an odd stub left in an NTA joins
  the cross-NTA pool; an odd stub left in that pool is dropped). Self-loops and duplicate
  edges are dropped by :meth:`EdgeList.from_pairs`, so the realised mean degree is a hair
  below the configured one (noticeably only in NTAs of a few dozen people).

Both layers carry no weights (every contact has weight 1). No initial states: initial
stages are the scenario's business.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from jaxsim import generators
from jaxsim.nyc.households import DATA_DIR, HOUSEHOLDS_FILE, load_households
from jaxsim.population import EdgeList, Population
from jaxsim.errors import InputError

__all__ = [
    "AGE_LABELS",
    "AGE_SHARES",
    "GENDER_LABELS",
    "FEMALE_SHARE",
    "COUNTY_LABELS",
    "COUNTY_BY_PREFIX",
    "DEFAULT_COMMUNITY_MEAN_CONTACTS",
    "DEFAULT_COMMUNITY_DISPERSION",
    "DEFAULT_CROSS_NTA_SHARE",
    "CHILD_HOUSEHOLD_SIZE_WEIGHT",
    "SIZE_ORDER_START",
    "synthesize_nyc_population",
    "synthesize_population_of_size",
    "size_order",
]

# ------------------------------------------------------------------------------ constants
#: Age bands in code order, matching the field's population files (code = index).
AGE_LABELS: tuple[str, ...] = ("20t29", "30t39", "40t49", "50t64", "65A", "U19")

#: Citywide age shares, New York City, ACS 2019 5-year estimates, table S0101 (Age and sex),
#: grouped into the bands above (U19 = under 20 years).
AGE_SHARES: dict[str, float] = {
    "U19": 0.232,
    "20t29": 0.150,
    "30t39": 0.153,
    "40t49": 0.126,
    "50t64": 0.185,
    "65A": 0.154,
}

GENDER_LABELS: tuple[str, ...] = ("male", "female")
#: Share of females, New York City, ACS 2019 5-year estimates, table S0101 (male 47.7 %).
FEMALE_SHARE: float = 0.523

#: County (borough) of an NTA from the first two letters of its code.
COUNTY_BY_PREFIX: dict[str, str] = {
    "BX": "Bronx",
    "BK": "Kings",
    "MN": "New York",
    "QN": "Queens",
    "SI": "Richmond",
}
#: Labels of the ``county`` attribute (all five boroughs, whatever NTAs are present).
COUNTY_LABELS: tuple[str, ...] = ("Bronx", "Kings", "New York", "Queens", "Richmond")

#: Mean community (outside-home) contacts per agent per day by age band. A modelling choice
#: inspired by contact surveys: POLYMOD (Mossong et al. 2008, PLoS Med 5(3):e74; 13.4 contacts
#: per participant per day on average over 8 countries, most at school and working ages,
#: fewest at 65+) and the projected contact matrices of Prem, Cook & Jit (2017, PLoS Comput
#: Biol 13(9):e1005697), whose non-household (school, work, other) contacts follow the same
#: age pattern. With NYC household sizes (2.6 household contacts per agent on average) these
#: give 13.8 contacts per agent per day over both layers for all of NYC (measured; 11.2 of
#: them in the community layer). The figures are a modelling choice, not estimates taken from
#: those papers.
DEFAULT_COMMUNITY_MEAN_CONTACTS: dict[str, float] = {
    "U19": 13.0,
    "20t29": 13.0,
    "30t39": 13.0,
    "40t49": 12.0,
    "50t64": 10.0,
    "65A": 6.0,
}
#: Negative-binomial dispersion ``k`` of community degrees (variance ``mu + mu**2/k``):
#: contact counts in surveys are strongly over-dispersed (a few people report very many
#: contacts); k = 3 gives a coefficient of variation of about 0.65 at mu = 13.
DEFAULT_COMMUNITY_DISPERSION: float = 3.0
#: Share of community stubs paired with agents anywhere in the population rather than in the
#: agent's own NTA (travel to work/school in other neighbourhoods); a modelling choice.
DEFAULT_CROSS_NTA_SHARE: float = 0.10
#: Relative weight of a household with children when extra members are dealt to
#: multi-person households (others weigh 1).
CHILD_HOUSEHOLD_SIZE_WEIGHT: float = 2.0

#: :func:`synthesize_population_of_size` takes NTAs in code order starting here (Astoria).
SIZE_ORDER_START = "QN0103"

_U19 = AGE_LABELS.index("U19")
_A65 = AGE_LABELS.index("65A")
_ADULT_20_64 = np.array(
    [AGE_LABELS.index(b) for b in ("20t29", "30t39", "40t49", "50t64")], dtype=np.int8
)
_UNSET, _ADULT_PENDING = -1, -2  # internal age placeholders


# --------------------------------------------------------------------------- NTA plans
@dataclass(frozen=True)
class _NTAPlan:
    """The CSV counts used for one NTA (possibly scaled down)."""

    code: str
    people: int
    households: int
    alone: int
    with_children: int
    alone_65: int
    scale: float = 1.0


def _plan_from_row(code: str, row: pd.Series) -> _NTAPlan:
    return _NTAPlan(
        code=code,
        people=int(row["people"]),
        households=int(row["households"]),
        alone=int(row["householders_living_alone"]),
        with_children=int(row["family_households_with_own_children_under_18"]),
        alone_65=int(row["households_with_member_65_and_over"]),
    )


def _scaled(plan: _NTAPlan, people: int) -> _NTAPlan:
    """``plan`` with exactly ``people`` agents and every other count scaled alike."""
    f = people / plan.people

    def r(x: int) -> int:
        return int(np.floor(x * f + 0.5))

    return _NTAPlan(
        plan.code, people, max(r(plan.households), 1), r(plan.alone),
        r(plan.with_children), r(plan.alone_65), scale=f,
    )


# ------------------------------------------------------------------------------ helpers
def _apportion(total: int, shares: np.ndarray) -> np.ndarray:
    """Integers summing to ``total`` proportional to ``shares`` (largest remainder)."""
    shares = np.asarray(shares, dtype=np.float64)
    raw = total * shares / shares.sum()
    base = np.floor(raw).astype(np.int64)
    short = int(total - base.sum())
    if short > 0:
        order = np.argsort(-(raw - base), kind="stable")
        base[order[:short]] += 1
    return base


def _age_share_vector() -> np.ndarray:
    return np.array([AGE_SHARES[b] for b in AGE_LABELS], dtype=np.float64)


def _build_households(
    rng: np.random.Generator, plan: _NTAPlan
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict | None]:
    """Household sizes and flags (children, 65+ householder) of one NTA, shuffled.

    Returns ``(sizes int32 [H], has_children bool [H], old_head bool [H], adjustment)``
    where ``adjustment`` describes departures from the CSV counts (``None`` if none).
    """
    P = plan.people
    if P == 0:
        e = np.zeros(0, dtype=np.int32)
        return e, e.astype(bool), e.astype(bool), None
    H = min(max(plan.households, 1), P)
    n1 = min(plan.alone, H)
    m = H - n1
    rest = P - n1
    if m == 0 and rest > 0:  # more people than one-person households can hold
        n1 -= 1
        m = 1
        rest += 1
    if rest < 2 * m:  # too few people for every multi-person household to have two
        m = rest // 2
        if m == 0 and rest == 1:
            n1 += 1
            rest = 0
    n_child = min(plan.with_children, m)
    n_old = min(plan.alone_65, n1 + m)

    has_child = np.zeros(n1 + m, dtype=bool)
    has_child[n1 + rng.permutation(m)[:n_child]] = True
    sizes = np.ones(n1 + m, dtype=np.int32)
    if m:
        extra = rest - 2 * m
        weight = np.where(has_child[n1:], CHILD_HOUSEHOLD_SIZE_WEIGHT, 1.0)
        cdf = np.cumsum(weight)
        dealt = np.searchsorted(cdf, rng.random(extra) * cdf[-1], side="right")
        sizes[n1:] = 2 + np.bincount(np.minimum(dealt, m - 1), minlength=m)
    old = np.zeros(n1 + m, dtype=bool)
    old[rng.permutation(n1)[: min(n_old, n1)]] = True
    if n_old > n1:  # only in rows/scalings where 65+ households outnumber one-person ones
        key = rng.random(m) + has_child[n1:]  # households without children first
        old[n1 + np.argsort(key, kind="stable")[: n_old - n1]] = True

    adjustment = None
    if (n1, n1 + m) != (plan.alone, plan.households) or n_child != plan.with_children or (
        n_old != plan.alone_65
    ):
        adjustment = {
            "households": [plan.households, n1 + m],
            "one_person": [plan.alone, n1],
            "with_children": [plan.with_children, n_child],
            "one_person_65A": [plan.alone_65, n_old],
        }
    order = rng.permutation(n1 + m)
    return sizes[order], has_child[order], old[order], adjustment


def _assign_ages(
    rng: np.random.Generator,
    sizes: np.ndarray,
    has_child: np.ndarray,
    old: np.ndarray,
    shares: np.ndarray,
) -> np.ndarray:
    """Age codes (int8, ``AGE_LABELS`` order) of one NTA's agents, household by household."""
    P = int(sizes.sum())
    H = sizes.shape[0]
    starts = np.cumsum(sizes, dtype=np.int64) - sizes
    hh = np.repeat(np.arange(H, dtype=np.int32), sizes)
    rank = np.arange(P, dtype=np.int64) - starts[hh]
    quota = _apportion(P, shares)
    age = np.full(P, _UNSET, dtype=np.int8)

    age[starts[has_child] + 1] = _U19  # a child in every household with children
    age[starts[old]] = _A65  # the 65+ householders
    age[starts[(sizes == 1) & ~old]] = _ADULT_PENDING  # other people living alone: 20-64

    need = int(quota[_U19] - has_child.sum())
    if need > 0:  # more U19: non-householder places, households with children first
        cand = np.flatnonzero((age == _UNSET) & (rank >= 1))
        key = rng.random(cand.shape[0]) + ~has_child[hh[cand]]
        age[cand[np.argsort(key, kind="stable")[:need]]] = _U19
    need = int(quota[_A65] - old.sum())
    if need > 0:  # more 65+: any free place in a multi-person household
        cand = np.flatnonzero(age == _UNSET)
        age[rng.choice(cand, size=min(need, cand.shape[0]), replace=False)] = _A65

    rest = np.flatnonzero(age < 0)
    counts = _apportion(rest.shape[0], shares[_ADULT_20_64])
    fill = np.repeat(_ADULT_20_64, counts)
    rng.shuffle(fill)
    age[rest] = fill
    return age


def _community_graph(
    rng: np.random.Generator,
    age: np.ndarray,
    nta_sizes: Sequence[int],
    mean_by_code: np.ndarray,
    dispersion: float,
    cross_share: float,
) -> EdgeList:
    """Configuration model: negative-binomial stubs, paired within NTA or across NTAs
    (:func:`jaxsim.generators.grouped_configuration_model`)."""
    degrees = generators.negative_binomial_degrees(rng, mean_by_code[age], dispersion)
    return generators.grouped_configuration_model(rng, degrees, nta_sizes, cross_share)


# ------------------------------------------------------------------------------- inputs
def _resolve_ntas(ntas: Sequence[str] | str, table: pd.DataFrame) -> list[str]:
    valid = list(table.index)
    if isinstance(ntas, str):
        if ntas.strip().lower() == "all":
            return sorted(valid)
        ntas = [ntas]
    codes = [str(c).strip().upper() for c in ntas]
    if not codes:
        raise InputError("no NTA codes given; pass a list of codes such as ['QN0103'] or 'all'")
    seen: set[str] = set()
    dups = sorted({c for c in codes if c in seen or seen.add(c)})
    if dups:
        raise InputError(f"NTA codes repeated: {dups}")
    unknown = [c for c in codes if c not in table.index]
    if unknown:
        hints = {c: difflib.get_close_matches(c, valid, n=3) for c in unknown[:5]}
        hint_txt = "; ".join(f"{c}: did you mean {h}?" for c, h in hints.items() if h)
        raise InputError(
            f"unknown NTA code(s) {unknown[:10]}{' ...' if len(unknown) > 10 else ''}; "
            f"valid codes are the {len(valid)} NTAs of the households file, e.g. "
            f"{sorted(valid)[:5]} (see jaxsim.nyc.households.nta_codes_with_people())"
            + (f". {hint_txt}" if hint_txt else "")
        )
    return codes


def _resolve_means(
    community_mean_contacts: Mapping[str, float] | None,
) -> dict[str, float]:
    means = dict(DEFAULT_COMMUNITY_MEAN_CONTACTS)
    if community_mean_contacts is not None:
        unknown = sorted(set(map(str, community_mean_contacts)) - set(AGE_LABELS))
        if unknown:
            raise InputError(
                f"community_mean_contacts: unknown age bands {unknown}; bands are {list(AGE_LABELS)}"
            )
        for band, value in community_mean_contacts.items():
            value = float(value)
            if not np.isfinite(value) or value < 0:
                raise InputError(
                    f"community_mean_contacts[{band!r}] = {value}: must be finite and >= 0"
                )
            means[str(band)] = value
    return {b: means[b] for b in AGE_LABELS}


# ---------------------------------------------------------------------------- public API
def synthesize_nyc_population(
    ntas: Sequence[str] | str,
    *,
    seed: int = 0,
    max_agents: int | None = None,
    community_mean_contacts: Mapping[str, float] | None = None,
    community_dispersion: float = DEFAULT_COMMUNITY_DISPERSION,
    cross_nta_share: float = DEFAULT_CROSS_NTA_SHARE,
    households_path: str | Path | None = None,
) -> Population:
    """Build a synthetic population of the given NYC neighbourhoods (see module docstring).

    Args:
        ntas: NTA codes (e.g. ``["QN0103", "MN0702"]``), one code, or ``"all"`` for every
            NTA of the households file in code order. Agents are laid out NTA by NTA in
            this order. NTAs with no people (parks, airports) contribute no agents.
        seed: seed of ``np.random.default_rng``; equal seeds give identical populations.
        max_agents: cap on the number of agents. If the NTAs hold more people, NTAs are
            taken in the given order, the last one taken is scaled down (all its counts
            multiplied by the same factor) so that the population has exactly
            ``max_agents`` agents, and the later NTAs are dropped.
        community_mean_contacts: mean community contacts per day by age band; bands left
            out keep :data:`DEFAULT_COMMUNITY_MEAN_CONTACTS`.
        community_dispersion: negative-binomial ``k`` of community degrees (> 0).
        cross_nta_share: share of community stubs paired across NTAs, in ``[0, 1]``.
        households_path: households CSV; default the packaged ``households_by_nta.csv``.

    Returns:
        A :class:`Population` with int32 attributes ``age``, ``gender``, ``area`` (labels:
        the NTA codes kept), ``county`` (labels :data:`COUNTY_LABELS`) and ``household``
        (contiguous ids, no labels); layers ``household`` and ``community``.

    Raises:
        ValueError: unknown or repeated NTA codes, no people in the chosen NTAs, or a bad
            parameter; :class:`jaxsim.nyc.households.NYCDataError` for a malformed data file.
    """
    if community_dispersion is None or not np.isfinite(community_dispersion) or community_dispersion <= 0:
        raise InputError(f"community_dispersion must be > 0, got {community_dispersion}")
    if not 0.0 <= float(cross_nta_share) <= 1.0:
        raise InputError(f"cross_nta_share must be in [0, 1], got {cross_nta_share}")
    if max_agents is not None and int(max_agents) < 1:
        raise InputError(f"max_agents must be >= 1, got {max_agents}")
    means = _resolve_means(community_mean_contacts)
    table = load_households(households_path)
    codes = _resolve_ntas(ntas, table)

    plans = [_plan_from_row(c, table.loc[c]) for c in codes]
    total = sum(p.people for p in plans)
    if total == 0:
        raise InputError(f"the NTAs {codes[:10]} have no people; choose populated NTAs")
    scaled_nta = None
    if max_agents is not None and total > max_agents:
        kept: list[_NTAPlan] = []
        room = int(max_agents)
        for p in plans:
            if room == 0:
                break
            if p.people <= room:
                kept.append(p)
                room -= p.people
            else:
                kept.append(_scaled(p, room))
                scaled_nta = {"nta": p.code, "people": room, "of": p.people}
                room = 0
        plans = kept
    codes = [p.code for p in plans]

    rng = np.random.default_rng(seed)
    shares = _age_share_vector()
    size_parts, age_parts, adjustments = [], [], {}
    for p in plans:
        sizes, has_child, old, adj = _build_households(rng, p)
        size_parts.append(sizes)
        age_parts.append(_assign_ages(rng, sizes, has_child, old, shares))
        if adj is not None:
            adjustments[p.code] = adj
    sizes = np.concatenate(size_parts)
    age = np.concatenate(age_parts)
    del size_parts, age_parts
    nta_people = [p.people for p in plans]
    n = int(age.shape[0])
    assert n == sum(nta_people)

    gender = (rng.random(n) < FEMALE_SHARE).astype(np.int32)  # 0 male, 1 female
    area = np.repeat(np.arange(len(codes), dtype=np.int32), nta_people)
    county_of_area = np.array(
        [COUNTY_LABELS.index(COUNTY_BY_PREFIX[c[:2]]) for c in codes], dtype=np.int32
    )
    county = county_of_area[area]
    household = np.repeat(np.arange(sizes.shape[0], dtype=np.int32), sizes)

    household_layer = generators.household_cliques(sizes)
    mean_by_code = np.array([means[b] for b in AGE_LABELS], dtype=np.float64)
    community_layer = _community_graph(
        rng, age, nta_people, mean_by_code, float(community_dispersion), float(cross_nta_share)
    )

    metadata = {
        "generator": "jaxsim.nyc.synthesis",
        "ntas": codes,
        "seed": int(seed),
        "max_agents": None if max_agents is None else int(max_agents),
        "scaled_nta": scaled_nta,
        "community_mean_contacts": means,
        "community_dispersion": float(community_dispersion),
        "cross_nta_share": float(cross_nta_share),
        "age_shares": dict(AGE_SHARES),
        "female_share": FEMALE_SHARE,
        "child_household_size_weight": CHILD_HOUSEHOLD_SIZE_WEIGHT,
        "households_file": str(households_path or DATA_DIR / HOUSEHOLDS_FILE),
        "households": int(sizes.shape[0]),
        "household_adjustments": adjustments,
        "sources": {
            "households": "households_by_nta.csv (census household composition per NTA)",
            "age_gender": "ACS 2019 5-year, table S0101, New York City",
            "community_contacts": "inspired by POLYMOD (Mossong et al. 2008) and "
            "Prem, Cook & Jit (2017)",
        },
    }
    return Population(
        attributes={
            "age": age.astype(np.int32),
            "gender": gender,
            "area": area,
            "county": county,
            "household": household,
        },
        labels={
            "age": list(AGE_LABELS),
            "gender": list(GENDER_LABELS),
            "area": list(codes),
            "county": list(COUNTY_LABELS),
        },
        networks={"household": household_layer, "community": community_layer},
        metadata=metadata,
    )


def size_order(households_path: str | Path | None = None) -> list[str]:
    """Populated NTA codes in code order, rotated to start at :data:`SIZE_ORDER_START`."""
    table = load_households(households_path)
    codes = sorted(table.index[table["people"] > 0])
    i = codes.index(SIZE_ORDER_START) if SIZE_ORDER_START in codes else 0
    return codes[i:] + codes[:i]


def synthesize_population_of_size(
    n_agents: int, seed: int = 0, **kwargs
) -> Population:
    """A population of exactly ``n_agents`` agents, for benchmarks.

    NTAs are taken whole in :func:`size_order` (code order from ``QN0103`` Astoria, then
    the rest of Queens, Staten Island, and wrapping round to the Bronx, Brooklyn and
    Manhattan) and the last one is scaled down to hit ``n_agents`` exactly (see
    ``max_agents`` of :func:`synthesize_nyc_population`). ``kwargs`` go to
    :func:`synthesize_nyc_population`. At most the whole city (8,550,333 agents).
    """
    n_agents = int(n_agents)
    order = size_order(kwargs.get("households_path"))
    table = load_households(kwargs.get("households_path"))
    total = int(table.loc[order, "people"].sum())
    if not 1 <= n_agents <= total:
        raise InputError(f"n_agents must be in [1, {total}] (all of NYC), got {n_agents}")
    return synthesize_nyc_population(order, seed=seed, max_agents=n_agents, **kwargs)
