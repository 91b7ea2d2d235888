"""Tests of the synthetic NYC population generator and the households loader."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from jaxsim.nyc.households import (
    DATA_DIR,
    NYCDataError,
    load_households,
    nta_codes_with_people,
)
from jaxsim.generators import household_cliques
from jaxsim.population import EdgeList
from jaxsim.nyc.synthesis import (
    AGE_SHARES,
    COUNTY_LABELS,
    DEFAULT_COMMUNITY_MEAN_CONTACTS,
    FEMALE_SHARE,
    synthesize_nyc_population,
    synthesize_population_of_size,
)

# Astoria and Pelham Bay (consistent rows), a park with no people, BK5691 (20 people in 12
# households, none alone: cannot be met exactly) and QN0161 (4 people living alone).
NTAS = ["QN0103", "QN0151", "BK5691", "QN0161", "BX1003"]
CONSISTENT = ["QN0103", "QN0161", "BX1003"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return load_households()


@pytest.fixture(scope="module")
def pop():
    return synthesize_nyc_population(NTAS, seed=7)


def _household_sizes_by_area(pop):
    """{nta: int array of household sizes} using only the population's attributes."""
    hh = pop.attributes["household"]
    area = pop.attributes["area"]
    sizes = np.bincount(hh)
    first = np.flatnonzero(np.r_[True, hh[1:] != hh[:-1]])
    hh_area = area[first]
    return {code: sizes[hh[first][hh_area == i]] for i, code in enumerate(pop.labels["area"])}


def _degrees(edges: EdgeList, n: int) -> np.ndarray:
    return np.bincount(edges.u, minlength=n) + np.bincount(edges.v, minlength=n)


# --------------------------------------------------------------------------- loader
def test_load_households_shape_and_types(table):
    assert len(table) == 262
    assert table.index.name == "nta"
    assert int(table["people"].sum()) == 8_550_333
    assert table["people"].dtype == np.int64
    codes = nta_codes_with_people()
    assert codes == sorted(codes) and "QN0103" in codes and "QN0151" not in codes
    assert all(table.loc[codes, "people"] > 0)
    assert (DATA_DIR / "households_by_nta.csv").is_file()


def _write_variant(tmp_path, mutate):
    df = mutate(pd.read_csv(DATA_DIR / "households_by_nta.csv", dtype=str, keep_default_na=False))
    path = tmp_path / "households.csv"
    df.to_csv(path, index=False)
    return path


def test_load_households_missing_file(tmp_path):
    with pytest.raises(NYCDataError, match="nope.csv.*not found"):
        load_households(tmp_path / "nope.csv")


def test_load_households_missing_column(tmp_path):
    path = _write_variant(tmp_path, lambda df: df.drop(columns=["householders_living_alone"]))
    with pytest.raises(NYCDataError, match=r"households.csv.*householders_living_alone"):
        load_households(path)


@pytest.mark.parametrize("value", ["-3", "abc", "", "2.5"])
def test_load_households_bad_count_names_file_column_row(tmp_path, value):
    def mutate(df):
        df.loc[4, "households"] = value
        return df

    path = _write_variant(tmp_path, mutate)
    with pytest.raises(NYCDataError) as err:
        load_households(path)
    msg = str(err.value)
    assert "households.csv" in msg and "'households'" in msg and "line 6" in msg
    assert "BK0201" in msg  # the NTA of data row 4
    assert isinstance(err.value, ValueError)


def test_load_households_bad_and_duplicate_codes(tmp_path):
    path = _write_variant(tmp_path, lambda df: df.assign(nta=df["nta"].where(df.index != 2, "XX0001")))
    with pytest.raises(NYCDataError, match="line 4.*XX0001"):
        load_households(path)
    path = _write_variant(tmp_path, lambda df: df.assign(nta=df["nta"].where(df.index != 3, "BK0101")))
    with pytest.raises(NYCDataError, match="line 5.*BK0101.*more than once"):
        load_households(path)


# ------------------------------------------------------------------------ population
def test_labels_and_attributes(pop):
    assert pop.labels["age"] == ["20t29", "30t39", "40t49", "50t64", "65A", "U19"]
    assert pop.labels["gender"] == ["male", "female"]
    assert pop.labels["area"] == NTAS
    assert pop.labels["county"] == list(COUNTY_LABELS)
    assert "household" not in pop.labels
    for name in ("age", "gender", "area", "county", "household"):
        assert pop.attributes[name].dtype == np.int32
        assert pop.attributes[name].shape == (pop.size,)
    county = np.asarray(pop.labels["county"])[pop.attributes["county"]]
    area = np.asarray(pop.labels["area"])[pop.attributes["area"]]
    expected = {"QN": "Queens", "BK": "Kings", "BX": "Bronx"}
    assert all(c == expected[a[:2]] for c, a in set(zip(county, area)))
    assert pop.initial_states.get("disease_stage") is None
    md = pop.metadata
    assert md["generator"] == "jaxsim.nyc.synthesis" and md["ntas"] == NTAS and md["seed"] == 7
    assert md["community_mean_contacts"] == DEFAULT_COMMUNITY_MEAN_CONTACTS


def test_exact_people_per_nta(pop, table):
    counts = np.bincount(pop.attributes["area"], minlength=len(NTAS))
    assert counts.tolist() == [int(table.loc[c, "people"]) for c in NTAS]
    area = pop.attributes["area"]
    assert np.all(np.diff(area) >= 0)  # agents of an NTA are contiguous, in request order


def test_households_contiguous_and_match_csv(pop, table):
    hh = pop.attributes["household"]
    assert hh[0] == 0 and np.all(np.diff(hh) >= 0) and np.all(np.diff(hh) <= 1)
    assert pop.metadata["households"] == int(hh[-1]) + 1
    by_area = _household_sizes_by_area(pop)
    for code in CONSISTENT:
        sizes = by_area[code]
        assert len(sizes) == table.loc[code, "households"], code
        assert int((sizes == 1).sum()) == table.loc[code, "householders_living_alone"], code
        assert int(sizes.sum()) == table.loc[code, "people"]
    assert len(by_area["QN0151"]) == 0
    # BK5691 cannot be met (20 people, 12 households, none alone): the repair is recorded.
    assert set(pop.metadata["household_adjustments"]) == {"BK5691"}
    assert by_area["BK5691"].min() >= 2 and len(by_area["BK5691"]) == 10


def test_householders_adult_and_children_live_with_adults(pop):
    age = pop.attributes["age"]
    hh = pop.attributes["household"]
    u19 = pop.code("age", "U19")
    first = np.flatnonzero(np.r_[True, hh[1:] != hh[:-1]])
    assert not np.any(age[first] == u19)
    sizes = np.bincount(hh)
    assert np.all(sizes[hh[age == u19]] >= 2)
    adults_in = np.bincount(hh, weights=(age != u19))
    assert np.all(adults_in[hh] >= 1)


def test_households_with_children_and_65(pop, table):
    age = pop.attributes["age"]
    hh = pop.attributes["household"]
    area = pop.attributes["area"]
    u19, a65 = pop.code("age", "U19"), pop.code("age", "65A")
    sizes = np.bincount(hh)
    kids = np.bincount(hh, weights=age == u19)
    first = np.flatnonzero(np.r_[True, hh[1:] != hh[:-1]])
    for code in CONSISTENT:
        mine = hh[first][area[first] == NTAS.index(code)]
        assert (kids[mine] > 0).sum() >= table.loc[code, "family_households_with_own_children_under_18"]
        alone = mine[sizes[mine] == 1]
        old_alone = int((age[first][np.isin(hh[first], alone)] == a65).sum())
        assert old_alone == table.loc[code, "households_with_member_65_and_over"], code


def test_age_gender_marginals(pop):
    n = pop.size
    assert n > 50_000
    counts = pop.counts_by_label("age")
    for band, share in AGE_SHARES.items():
        assert abs(counts[band] / n - share) < 0.01, (band, counts[band] / n, share)
    female = pop.counts_by_label("gender")["female"] / n
    assert abs(female - FEMALE_SHARE) < 0.01


def test_household_layer_is_exactly_the_cliques(pop):
    hh = pop.attributes["household"]
    e = pop.networks["household"]
    assert e.weight is None
    assert np.all(e.u < e.v)
    assert np.all(hh[e.u] == hh[e.v])
    sizes = np.bincount(hh)
    assert e.num_edges == int((sizes * (sizes - 1) // 2).sum())
    key = e.u.astype(np.int64) * pop.size + e.v
    assert np.unique(key).size == key.size


def test_household_cliques_against_brute_force():
    sizes = np.array([1, 3, 20, 2, 1, 13], dtype=np.int32)
    e = household_cliques(sizes)
    starts = np.cumsum(sizes) - sizes
    expected = [
        pair
        for s, st in zip(sizes, starts)
        for pair in itertools.combinations(range(int(st), int(st + s)), 2)
    ]
    assert list(zip(e.u.tolist(), e.v.tolist())) == expected
    assert e.u.dtype == np.int32 and e.v.dtype == np.int32


def test_community_edges_valid(pop):
    n = pop.size
    for layer in ("household", "community"):
        e = pop.networks[layer]
        assert e.num_edges > 0
        assert e.u.min() >= 0 and e.v.max() < n
        assert np.all(e.u != e.v)
        key = e.u.astype(np.int64) * n + e.v
        assert np.unique(key).size == key.size, layer
        canon = EdgeList.from_pairs(e.u, e.v)
        assert canon.num_edges == e.num_edges


def test_community_mean_degree_by_age(pop):
    deg = _degrees(pop.networks["community"], pop.size)
    age = pop.attributes["age"]
    for band, mean in DEFAULT_COMMUNITY_MEAN_CONTACTS.items():
        got = deg[age == pop.code("age", band)].mean()
        assert abs(got - mean) < 0.05 * mean, (band, got, mean)
    assert deg.var() > 2 * deg.mean()  # over-dispersed (negative binomial), not Poisson


def test_community_parameters_respected():
    means = {"65A": 20.0, "U19": 2.0}
    p = synthesize_nyc_population(["BX1003"], seed=3, community_mean_contacts=means, cross_nta_share=0.0)
    deg = _degrees(p.networks["community"], p.size)
    age = p.attributes["age"]
    assert abs(deg[age == p.code("age", "65A")].mean() - 20.0) < 1.0
    assert abs(deg[age == p.code("age", "U19")].mean() - 2.0) < 0.2
    assert abs(deg[age == p.code("age", "30t39")].mean() - DEFAULT_COMMUNITY_MEAN_CONTACTS["30t39"]) < 0.6
    assert p.metadata["community_mean_contacts"]["65A"] == 20.0


def test_cross_nta_share():
    ntas = ["QN0103", "BX1003"]
    local = synthesize_nyc_population(ntas, seed=1, cross_nta_share=0.0)
    area = local.attributes["area"]
    e = local.networks["community"]
    assert not np.any(area[e.u] != area[e.v])
    mixed = synthesize_nyc_population(ntas, seed=1, cross_nta_share=0.5)
    area = mixed.attributes["area"]
    e = mixed.networks["community"]
    frac = np.mean(area[e.u] != area[e.v])
    # Half the stubs go to a citywide pool: P(cross) = 0.5 * 2ab/(a+b)^2 for NTA sizes a, b.
    a, b = np.bincount(area)
    expected = 0.5 * 2 * a * b / (a + b) ** 2
    assert abs(frac - expected) < 0.03, (frac, expected)


def test_determinism_and_seed_dependence():
    a = synthesize_population_of_size(6000, seed=11)
    b = synthesize_population_of_size(6000, seed=11)
    c = synthesize_population_of_size(6000, seed=12)
    for name in a.attributes:
        np.testing.assert_array_equal(a.attributes[name], b.attributes[name])
    for layer in a.networks:
        np.testing.assert_array_equal(a.networks[layer].u, b.networks[layer].u)
        np.testing.assert_array_equal(a.networks[layer].v, b.networks[layer].v)
    assert a.metadata == b.metadata
    assert not np.array_equal(a.attributes["age"], c.attributes["age"])
    assert not np.array_equal(a.attributes["household"], c.attributes["household"])
    ka = a.networks["community"].u.astype(np.int64) * a.size + a.networks["community"].v
    kc = c.networks["community"].u.astype(np.int64) * c.size + c.networks["community"].v
    assert np.intersect1d(ka, kc).size < 0.1 * ka.size  # community graphs largely differ


def test_population_of_size_exact():
    p = synthesize_population_of_size(12345)
    assert p.size == 12345
    assert p.labels["area"] == ["QN0103"]
    assert p.metadata["scaled_nta"] == {"nta": "QN0103", "people": 12345, "of": 47303}
    hh = p.attributes["household"]
    assert np.all(np.diff(hh) >= 0)
    # Spans NTAs: Astoria whole, then the next NTA in code order scaled.
    q = synthesize_population_of_size(47303 + 1000, seed=2)
    assert q.size == 48303
    assert q.labels["area"][0] == "QN0103" and len(q.labels["area"]) == 2
    assert np.bincount(q.attributes["area"]).tolist() == [47303, 1000]
    with pytest.raises(ValueError, match="n_agents"):
        synthesize_population_of_size(9_000_000)


def test_max_agents_caps_population():
    p = synthesize_nyc_population(["BX1003", "QN0103"], max_agents=30000, seed=0)
    assert p.size == 30000
    assert np.bincount(p.attributes["area"]).tolist() == [27769, 2231]


def test_unknown_and_empty_ntas():
    with pytest.raises(ValueError, match=r"unknown NTA code.*QN9999.*valid codes.*BK0101"):
        synthesize_nyc_population(["QN0103", "QN9999"])
    with pytest.raises(ValueError, match="no people"):
        synthesize_nyc_population(["QN0151"])
    with pytest.raises(ValueError, match="repeated"):
        synthesize_nyc_population(["QN0103", "QN0103"])
    with pytest.raises(ValueError, match="unknown age bands"):
        synthesize_nyc_population(["QN0161"], community_mean_contacts={"kids": 3.0})
    with pytest.raises(ValueError):
        synthesize_nyc_population(["QN0161"], cross_nta_share=1.5)


def test_nta_selection_forms():
    # "all" is only resolved (building all of NYC takes ~20 s); a single code is accepted.
    from jaxsim.nyc.synthesis import _resolve_ntas

    codes = _resolve_ntas("all", load_households())
    assert len(codes) == 262 and codes == sorted(codes)
    assert _resolve_ntas("qn0103", load_households()) == ["QN0103"]
    p = synthesize_nyc_population("QN0161")
    assert p.size == 4 and p.labels["area"] == ["QN0161"]
    assert p.networks["household"].num_edges == 0  # four people living alone
