"""New York City's five boroughs: their codes, each agent's borough, and small synthetic
populations that cover all five.

Borough codes are fixed by :data:`BOROUGHS` (the order of the labour-market data files,
code = index), whatever the population: per-borough arrays in the economy are always
``[5]``, and a borough with no agents simply has an empty labour force.

An agent's borough comes from the population's ``county`` attribute (labels ``Bronx``,
``Kings``, ``New York``, ``Queens``, ``Richmond``, as :mod:`jaxsim.nyc.synthesis` writes them,
or the borough names themselves), else from its ``area`` label, an NTA code whose two-letter
prefix names the borough (``QN0103`` is in Queens).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxsim.population import EdgeList, Population, PopulationError
from jaxsim.errors import InputError

#: Borough codes of the economy (code = index), as the data files name them.
BOROUGHS: tuple[str, ...] = ("bronx", "brooklyn", "manhattan", "queens", "staten_island")
#: Readable names, for prompts and plots.
BOROUGH_NAMES: dict[str, str] = {
    "bronx": "the Bronx",
    "brooklyn": "Brooklyn",
    "manhattan": "Manhattan",
    "queens": "Queens",
    "staten_island": "Staten Island",
}
#: Borough of each county label (the synthetic populations' ``county`` attribute) and of
#: the borough names written in other ways.
COUNTY_TO_BOROUGH: dict[str, str] = {
    "bronx": "bronx",
    "kings": "brooklyn",
    "new york": "manhattan",
    "queens": "queens",
    "richmond": "staten_island",
    "brooklyn": "brooklyn",
    "manhattan": "manhattan",
    "staten island": "staten_island",
    "staten_island": "staten_island",
    "the bronx": "bronx",
}
#: Borough of an NTA code's two-letter prefix.
NTA_PREFIX_TO_BOROUGH: dict[str, str] = {
    "BX": "bronx",
    "BK": "brooklyn",
    "MN": "manhattan",
    "QN": "queens",
    "SI": "staten_island",
}
#: One neighbourhood per borough with observed weekly cases in the packaged data
#: (``weekly_cases_mobility_by_neighborhood.csv``): the default economy population.
CASE_DATA_NTAS: dict[str, str] = {
    "bronx": "BX1003",
    "brooklyn": "BK1001",
    "manhattan": "MN0702",
    "queens": "QN0103",
    "staten_island": "SI0106",
}


def _normalise(label: str) -> str:
    return " ".join(str(label).strip().lower().replace("_", " ").split())


def borough_codes(population: Population) -> np.ndarray:
    """int8 ``[N]``: each agent's borough code (index into :data:`BOROUGHS`).

    Raises:
        PopulationError: the population has neither a ``county`` attribute whose labels are
            NYC counties or boroughs nor an ``area`` attribute labelled with NTA codes;
            the message names the attribute and the label that is not understood.
    """
    if "county" in population.attributes and "county" in population.labels:
        table = []
        for label in population.category_labels("county"):
            borough = COUNTY_TO_BOROUGH.get(_normalise(label))
            if borough is None:
                raise PopulationError(
                    f"attribute 'county': label {label!r} is not a New York City county or borough "
                    f"(expected one of Bronx, Kings, New York, Queens, Richmond)"
                )
            table.append(BOROUGHS.index(borough))
        return np.asarray(table, np.int8)[population.attributes["county"]]
    if "area" in population.attributes and "area" in population.labels:
        table = []
        for label in population.category_labels("area"):
            borough = NTA_PREFIX_TO_BOROUGH.get(str(label).strip()[:2].upper())
            if borough is None:
                raise PopulationError(
                    f"attribute 'area': label {label!r} is not an NYC NTA code (prefix BK, BX, MN, "
                    "QN or SI), so its borough is unknown"
                )
            table.append(BOROUGHS.index(borough))
        return np.asarray(table, np.int8)[population.attributes["area"]]
    raise PopulationError(
        "the economy needs each agent's borough: a 'county' attribute labelled with NYC counties "
        "(Bronx, Kings, New York, Queens, Richmond) or an 'area' attribute labelled with NTA codes; "
        f"the population has attributes {sorted(population.attributes)} with labels for {sorted(population.labels)}"
    )


def borough_people(households_path=None) -> dict[str, int]:
    """Census people per borough (sum over its NTAs of ``households_by_nta.csv``)."""
    from jaxsim.nyc.households import load_households

    table = load_households(households_path)
    out = {b: 0 for b in BOROUGHS}
    for nta, people in table["people"].items():
        out[NTA_PREFIX_TO_BOROUGH[nta[:2]]] += int(people)
    return out


def borough_quotas(agents: int, people: dict[str, int]) -> dict[str, int]:
    """``agents`` split over the boroughs in proportion to ``people`` (largest remainder),
    each borough at least one agent."""
    agents = int(agents)
    if agents < len(BOROUGHS):
        raise InputError(f"a five-borough population needs at least {len(BOROUGHS)} agents, got {agents}")
    weights = np.asarray([people[b] for b in BOROUGHS], np.float64)
    exact = weights / weights.sum() * (agents - len(BOROUGHS))
    base = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - base), kind="stable")
    base[order[: (agents - len(BOROUGHS)) - int(base.sum())]] += 1
    return {b: int(q) + 1 for b, q in zip(BOROUGHS, base)}


def five_borough_population(agents: int = 20_000, seed: int = 0, *, cached: bool = True) -> Population:
    """A synthetic population of ``agents`` agents spread over the five boroughs in
    proportion to their census population.

    Each borough's share is one neighbourhood of :data:`CASE_DATA_NTAS` (the one with
    observed weekly cases), scaled down to its quota by
    :func:`jaxsim.nyc.synthesis.synthesize_nyc_population` (``max_agents``: households,
    ages and contacts of the whole NTA, scaled). The five parts are concatenated (agents
    of a borough contiguous, in :data:`BOROUGHS` order); their contact layers stay within
    each part. Attributes as the synthetic populations (``age, gender, area, county,
    household``; ``area`` labels are the five NTA codes).

    Args:
        cached: build the parts through the population cache
            (:func:`jaxsim.nyc.cli.cached_synthetic_population`).
    """
    from jaxsim.nyc import synthesis

    quotas = borough_quotas(agents, borough_people())
    parts = []
    for index, borough in enumerate(BOROUGHS):
        nta = CASE_DATA_NTAS[borough]
        if cached:
            from jaxsim.nyc.cli import cached_synthetic_population

            part = cached_synthetic_population([nta], seed=seed + index, max_agents=quotas[borough])
        else:
            part = synthesis.synthesize_nyc_population([nta], seed=seed + index, max_agents=quotas[borough])
        parts.append(part)
    population = concatenate_populations(parts)
    population.metadata = {
        "generator": "jaxsim.nyc.boroughs.five_borough_population",
        "agents": int(agents),
        "seed": int(seed),
        "ntas": [CASE_DATA_NTAS[b] for b in BOROUGHS],
        "agents_by_borough": quotas,
        "sources": parts[0].metadata.get("sources", {}),
    }
    return population


def concatenate_populations(parts: Sequence[Population]) -> Population:
    """Agents of ``parts`` one after another; labelled attributes are merged by label
    (codes re-mapped to the union of the parts' labels, in order of first appearance),
    unlabelled ``household`` ids are offset so that households stay distinct, contact
    layers are offset and kept within each part."""
    if not parts:
        raise InputError("concatenate_populations: no populations given")
    names = list(parts[0].attributes)
    for part in parts[1:]:
        if sorted(part.attributes) != sorted(names):
            raise PopulationError(
                f"concatenate_populations: attributes differ: {sorted(names)} vs {sorted(part.attributes)}"
            )
    labels: dict[str, list[str]] = {}
    for name in names:
        if name in parts[0].labels:
            merged: list[str] = []
            for part in parts:
                for label in part.category_labels(name):
                    if label not in merged:
                        merged.append(label)
            labels[name] = merged
    attributes: dict[str, np.ndarray] = {}
    for name in names:
        columns, offset = [], 0
        for part in parts:
            codes = part.attributes[name].astype(np.int64)
            if name in labels:
                remap = np.asarray([labels[name].index(l) for l in part.category_labels(name)], np.int64)
                codes = remap[codes] if codes.size else codes
            elif name == "household":
                codes = codes + offset
                offset = int(codes.max()) + 1 if codes.size else offset
            columns.append(codes)
        attributes[name] = np.concatenate(columns).astype(np.int32)
    layers = sorted({layer for part in parts for layer in part.networks})
    networks = {}
    for layer in layers:
        us, vs, ws, start = [], [], [], 0
        weighted = any(p.networks.get(layer) is not None and p.networks[layer].weight is not None for p in parts)
        for part in parts:
            edges = part.networks.get(layer)
            if edges is not None:
                us.append(edges.u.astype(np.int64) + start)
                vs.append(edges.v.astype(np.int64) + start)
                if weighted:
                    ws.append(np.ones(edges.num_edges, np.float32) if edges.weight is None else edges.weight)
            start += part.size
        networks[layer] = EdgeList.from_pairs(
            np.concatenate(us), np.concatenate(vs), np.concatenate(ws) if weighted else None
        )
    return Population(attributes=attributes, labels=labels, networks=networks)


__all__ = [
    "BOROUGHS",
    "BOROUGH_NAMES",
    "CASE_DATA_NTAS",
    "COUNTY_TO_BOROUGH",
    "NTA_PREFIX_TO_BOROUGH",
    "borough_codes",
    "borough_of_label",
    "borough_of_labels",
    "borough_people",
    "borough_quotas",
    "concatenate_populations",
    "five_borough_population",
]


def borough_of_label(attribute: str, label: str) -> int | None:
    """The borough code (index into :data:`BOROUGHS`) a ``county`` or ``area`` (NTA) label
    names, or ``None`` (another attribute, or a label naming no borough)."""
    if attribute == "county":
        borough = COUNTY_TO_BOROUGH.get(_normalise(label))
    elif attribute == "area":
        borough = NTA_PREFIX_TO_BOROUGH.get(str(label).strip()[:2].upper())
    else:
        return None
    return None if borough is None else BOROUGHS.index(borough)


def borough_of_labels(labels) -> int | None:
    """The borough of an archetype from its labels (``county`` first, else ``area``), or
    ``None`` when they name none: the ``region_of`` option of the labour model's
    willingness layer (:mod:`jaxsim.models.labour.behaviour`)."""
    for attribute in ("county", "area"):
        if attribute in labels:
            return borough_of_label(attribute, labels[attribute])
    return None
