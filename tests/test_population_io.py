"""Tests for reading and writing population directories (jaxsim.population_io)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxsim import population_io
from jaxsim.population import EdgeList, Population, PopulationError
from jaxsim.population_io import load_population, save_population

AGE_LABELS = ["20t29", "30t39", "40t49", "50t64", "65A", "U19"]
GENDER_LABELS = ["male", "female"]

AGENTS_CSV = """agent_id,age,gender,household,soc_code
0,0,0,0,13-2099.01
1,5,1,0,
2,3,1,1,11-1011.00
3,4,0,1,15-1252.00
4,1,1,2,13-2099.01
"""
MAPPING = {"age": AGE_LABELS, "gender": GENDER_LABELS}


# ----------------------------------------------------------------------------- helpers
def write_dir(root: Path, files: dict[str, str | bytes | dict | list]) -> Path:
    """Write a population directory from ``{file name: text / bytes / JSON object}``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        if isinstance(content, (dict, list)):
            path.write_text(json.dumps(content))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def base_files(**overrides) -> dict:
    files = {"agents.csv": AGENTS_CSV, "mapping.json": MAPPING}
    files.update(overrides)
    return {k: v for k, v in files.items() if v is not None}


def load_error(tmp_path: Path, **files) -> str:
    root = write_dir(tmp_path / "pop", base_files(**files))
    with pytest.raises(PopulationError) as info:
        load_population(root)
    return str(info.value)


def make_population(n: int = 12) -> Population:
    rng = np.random.default_rng(7)
    attributes = {
        "age": rng.integers(0, len(AGE_LABELS), n).astype(np.int32),
        "gender": rng.integers(0, 2, n).astype(np.int32),
        "household": (np.arange(n) // 3).astype(np.int32),
        "area": rng.integers(0, 1000, n).astype(np.int32),
    }
    soc = np.array(["13-2099.01", "11-1011.00", ""], dtype=object)[np.arange(n) % 3]
    household = EdgeList.from_pairs(np.array([0, 1, 3, 4, 6]), np.array([1, 2, 4, 5, 7]))
    community = EdgeList.from_pairs(
        np.array([0, 2, 5, 9]),
        np.array([11, 8, 1, 3]),
        np.array([0.5, 1.25, 1 / 3, 7.0], dtype=np.float32),
    )
    return Population(
        attributes=attributes,
        labels={"age": list(AGE_LABELS), "gender": list(GENDER_LABELS)},
        strings={"soc_code": soc},
        networks={"household": household, "10": community, "2": household},
        initial_states={"disease_stage": (np.arange(n) % 5).astype(np.int8)},
        metadata={"generator": "test", "seed": 7, "ntas": ["BK0101", "BK0102"]},
    )


def assert_same_population(a: Population, b: Population) -> None:
    assert list(a.attributes) == list(b.attributes)
    for name in a.attributes:
        assert b.attributes[name].dtype == np.int32
        np.testing.assert_array_equal(a.attributes[name], b.attributes[name], err_msg=name)
    assert a.labels == b.labels
    assert list(a.strings) == list(b.strings)
    for name in a.strings:
        assert list(a.strings[name]) == list(b.strings[name]), name
    assert sorted(a.networks) == sorted(b.networks)  # files have no order; load sorts naturally
    for layer, edges in a.networks.items():
        other = b.networks[layer]
        np.testing.assert_array_equal(edges.u, other.u, err_msg=layer)
        np.testing.assert_array_equal(edges.v, other.v, err_msg=layer)
        if edges.weight is None:
            assert other.weight is None, layer
        else:
            np.testing.assert_array_equal(edges.weight, other.weight, err_msg=layer)
    if a.initial_states.get("disease_stage") is None:
        assert b.initial_states.get("disease_stage") is None
    else:
        assert b.initial_states["disease_stage"].dtype == np.int8
        np.testing.assert_array_equal(a.initial_states["disease_stage"], b.initial_states["disease_stage"])


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


# ------------------------------------------------------------------------- round trip
def test_round_trip(tmp_path):
    pop = make_population()
    target = tmp_path / "pop"
    assert save_population(pop, target) == target
    assert sorted(p.name for p in target.iterdir()) == [
        "agents.csv",
        "disease_stages.csv",
        "mapping.json",
        "mobility_networks_10.csv",
        "mobility_networks_2.csv",
        "mobility_networks_household.csv",
        "population.json",
    ]
    header = (target / "agents.csv").read_text().splitlines()[0]
    assert header == "agent_id,age,gender,household,area,soc_code"
    # stages without header, unweighted layers with two columns, weighted with three
    assert (target / "disease_stages.csv").read_text().splitlines()[:3] == ["0", "1", "2"]
    assert (target / "mobility_networks_household.csv").read_text().splitlines()[0] == "0,1"
    assert len((target / "mobility_networks_10.csv").read_text().splitlines()[0].split(",")) == 3

    loaded = load_population(target)
    assert_same_population(pop, loaded)
    # layers come back in natural order; metadata is kept and "source" names the directory
    assert list(loaded.networks) == ["2", "10", "household"]
    assert loaded.metadata == {"source": str(target), **pop.metadata}

    # saving the loaded population again gives the same files (the source is not stored)
    again = save_population(loaded, tmp_path / "again")
    for name in ("agents.csv", "mapping.json", "population.json", "mobility_networks_10.csv"):
        assert (again / name).read_bytes() == (target / name).read_bytes(), name


def test_round_trip_awkward_text_columns(tmp_path):
    n = 6
    pop = Population(
        attributes={"age": np.array([0, 1, 2, 3, 4, 5], dtype=np.int32)},
        labels={"age": AGE_LABELS},
        strings={
            "zip": np.array(["10001", "00501", "11201", "10001", "7", "0"], dtype=object),
            "blank": np.array([""] * n, dtype=object),
            "note": np.array(['a,b', 'say "hi"', "two\nlines", "café", " pad ", "NA"], dtype=object),
        },
    )
    target = save_population(pop, tmp_path / "pop")
    loaded = load_population(target)
    assert_same_population(pop, loaded)
    assert loaded.initial_states.get("disease_stage") is None and loaded.networks == {}
    assert "string_columns" not in loaded.metadata


def test_round_trip_ascii_text_fast_writer(tmp_path):
    pop = Population(
        attributes={"area": np.array([3, 0, 12345, 7], dtype=np.int32)},
        strings={"soc_code": np.array(["13-2099.01", "", "x", "11-1011.00"], dtype=object)},
    )
    target = save_population(pop, tmp_path / "pop")
    assert (target / "agents.csv").read_text() == (
        "agent_id,area,soc_code\n0,3,13-2099.01\n1,0,\n2,12345,x\n3,7,11-1011.00\n"
    )
    assert_same_population(pop, load_population(target))


# -------------------------------------------------------------------------- agents.csv
def test_load_basic_directory(tmp_path):
    root = write_dir(tmp_path / "pop", base_files())
    pop = load_population(root)
    assert pop.size == 5
    assert list(pop.attributes) == ["age", "gender", "household"]
    assert pop.attributes["age"].tolist() == [0, 5, 3, 4, 1]
    assert pop.attributes["age"].dtype == np.int32
    assert pop.labels == MAPPING
    assert pop.strings["soc_code"].tolist() == ["13-2099.01", "", "11-1011.00", "15-1252.00", "13-2099.01"]
    assert pop.code("age", "U19") == 5
    assert pop.networks == {} and pop.initial_states.get("disease_stage") is None
    assert pop.metadata == {"source": str(root)}


def test_missing_mapping_means_no_labels(tmp_path):
    root = write_dir(tmp_path / "pop", base_files(**{"mapping.json": None}))
    pop = load_population(root)
    assert pop.labels == {}
    assert pop.attributes["age"].tolist() == [0, 5, 3, 4, 1]
    assert pop.category_labels("gender") == ["0", "1"]


def test_mapping_for_absent_column_is_ignored(tmp_path):
    mapping = {**MAPPING, "ethnicity": ["a", "b"]}
    root = write_dir(tmp_path / "pop", base_files(**{"mapping.json": mapping}))
    pop = load_population(root)
    assert "ethnicity" not in pop.labels and "ethnicity" not in pop.attributes
    assert pop.labels == MAPPING


def test_integer_codes_written_as_floats_are_accepted(tmp_path):
    agents = "agent_id,age,gender\n0.0,3.0,1\n1,0,0.0\n2.0,5,1e0\n"
    pop = load_population(write_dir(tmp_path / "pop", base_files(**{"agents.csv": agents})))
    assert pop.attributes["age"].tolist() == [3, 0, 5]
    assert pop.attributes["gender"].tolist() == [1, 0, 1]


def test_unlabelled_text_column_becomes_string(tmp_path):
    agents = "agent_id,age,borough,workplace\n0,1,Bronx,4\n1,2,12,5\n2,3,Queens,6\n"
    pop = load_population(write_dir(tmp_path / "pop", base_files(**{"agents.csv": agents})))
    assert pop.strings["borough"].tolist() == ["Bronx", "12", "Queens"]
    assert pop.attributes["workplace"].tolist() == [4, 5, 6]


def test_blank_lines_are_skipped_and_counted_in_line_numbers(tmp_path):
    agents = "agent_id,age\n0,1\n\n1,2\n\n2,9\n"
    message = load_error(tmp_path, **{"agents.csv": agents})
    assert "agents.csv" in message and "line 6" in message and "9" in message


@pytest.mark.parametrize(
    "agents, expected",
    [
        # agent_id must be 0..N-1 in order
        ("agent_id,age\n0,1\n1,2\n3,3\n", ["agent_id", "line 4", "3", "expected 2"]),
        ("agent_id,age\n1,1\n2,2\n", ["agent_id", "line 2", "expected 0"]),
        ("agent_id,age\n0,1\nx,2\n", ["agent_id", "line 3", "'x'"]),
        # code outside its mapping (6 age labels)
        ("agent_id,age\n0,1\n1,6\n", ["'age'", "line 3", "code 6", "6 labels"]),
        # non-integer values in a mapped column
        ("agent_id,age\n0,1\n1,abc\n", ["'age'", "line 3", "'abc'"]),
        ("agent_id,age\n0,1\n1,2.5\n", ["'age'", "line 3", "2.5"]),
        # empty cell in an integer column, mapped or not
        ("agent_id,age,household\n0,1,3\n1,,4\n", ["'age'", "line 3", "empty"]),
        ("agent_id,age,household\n0,1,3\n1,2,\n", ["'household'", "line 3", "empty"]),
        # an unlabelled numeric column with a fraction is not silently text
        ("agent_id,age,household\n0,1,3\n1,2,4.5\n", ["'household'", "line 3", "4.5"]),
        # negative code
        ("agent_id,age,household\n0,1,3\n1,2,-1\n", ["'household'", "line 3", "-1"]),
        # missing agent_id column
        ("age,gender\n1,0\n", ["agent_id"]),
        # repeated column
        ("agent_id,age,age\n0,1,1\n", ["repeats", "age"]),
        # wrong number of fields on a line
        ("agent_id,age,gender\n0,1,0\n1,2,1,7\n", ["line 3", "4 fields", "expected 3"]),
        ("agent_id,age,gender\n0,1,0,7\n1,2,1\n", ["line 2", "4 fields", "expected 3"]),
        # empty file, header only
        ("", ["empty"]),
        ("agent_id,age\n", ["no agent lines"]),
        # only agent_id
        ("agent_id\n0\n1\n", ["no attribute columns"]),
    ],
)
def test_agents_csv_errors(tmp_path, agents, expected):
    message = load_error(tmp_path, **{"agents.csv": agents})
    assert "agents.csv" in message
    for part in expected:
        assert part in message, (part, message)


def test_missing_directory_and_agents_file(tmp_path):
    with pytest.raises(PopulationError, match="does not exist"):
        load_population(tmp_path / "nowhere")
    root = write_dir(tmp_path / "pop", {"mapping.json": MAPPING})
    with pytest.raises(PopulationError, match="agents.csv not found"):
        load_population(root)


# ------------------------------------------------------------------------- json files
@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("mapping.json", '{"age": ["20t29",', ["mapping.json", "invalid JSON", "line 1"]),
        ("mapping.json", '["age"]', ["mapping.json", "JSON object"]),
        ("mapping.json", '{"age": "20t29"}', ["mapping.json", "'age'", "'20t29'"]),
        ("mapping.json", '{"age": ["a", 3]}', ["mapping.json", "'age'", "3"]),
        ("mapping.json", '{"age": ["a", "a"]}', ["mapping.json", "'a'", "twice"]),
        ("mapping.json", "", ["mapping.json", "empty"]),
        ("population.json", "{nope}", ["population.json", "invalid JSON"]),
        ("population.json", "[1, 2]", ["population.json", "JSON object"]),
        ("population.json", '{"string_columns": "soc"}', ["population.json", "string_columns"]),
    ],
)
def test_json_errors(tmp_path, name, content, expected):
    message = load_error(tmp_path, **{name: content})
    for part in expected:
        assert part in message, (part, message)


def test_population_json_becomes_metadata(tmp_path):
    meta = {"nta": ["BK0101"], "source": "elsewhere", "string_columns": ["household"]}
    root = write_dir(tmp_path / "pop", base_files(**{"population.json": meta}))
    pop = load_population(root)
    assert pop.metadata == {"source": str(root), "nta": ["BK0101"]}
    # "string_columns" forces a numeric-looking column to be text
    assert pop.strings["household"].tolist() == ["0", "0", "1", "1", "2"]
    assert "household" not in pop.attributes


# ---------------------------------------------------------------------- disease stages
@pytest.mark.parametrize(
    "text",
    [
        "0\n2\n1\n3\n4\n",
        "stage\n0\n2\n1\n3\n4\n",
        "\n".join(f"{v:.18e}" for v in [0, 2, 1, 3, 4]) + "\n",
        "disease_stage\n" + "\n".join(f"{v:.18e}" for v in [0, 2, 1, 3, 4]) + "\n",
        "0.0\r\n2.0\r\n1.0\r\n3.0\r\n4.0",
    ],
    ids=["ints", "ints-header", "floats", "floats-header", "crlf-no-final-newline"],
)
def test_disease_stages_formats(tmp_path, text):
    root = write_dir(tmp_path / "pop", base_files(**{"disease_stages.csv": text}))
    stages = load_population(root).initial_states["disease_stage"]
    assert stages.dtype == np.int8
    assert stages.tolist() == [0, 2, 1, 3, 4]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0\n1\n7\n0\n0\n", ["line 3", "stage 7", "0..4"]),
        ("stage\n0\n1\n2\n-1\n0\n", ["line 5", "-1"]),
        ("0\n1\n1.5\n0\n0\n", ["line 3", "1.5"]),
        ("0\n1\nsick\n0\n0\n", ["line 3", "'sick'"]),
        ("0\n1\n2\n", ["3 stage values", "5 agents"]),
        ("0\n1\n2\n0\n0\n0\n", ["6 stage values", "5 agents"]),
        ("0\n1,2\n2\n0\n0\n", ["line 2", "2 fields"]),
        ("", ["empty"]),
        ("stage\n", ["no stage values"]),
    ],
)
def test_disease_stage_errors(tmp_path, text, expected):
    message = load_error(tmp_path, **{"disease_stages.csv": text})
    assert "disease_stages.csv" in message
    for part in expected:
        assert part in message, (part, message)


# --------------------------------------------------------------------------- networks
def test_network_self_loops_and_duplicates_dropped(tmp_path):
    edges = "0,1\n1,0\n2,2\n3,1\n1,3\n0,1\n4,4\n2,4\n"
    root = write_dir(tmp_path / "pop", base_files(**{"mobility_networks_0.csv": edges}))
    net = load_population(root).networks["0"]
    assert net.u.tolist() == [0, 1, 2]
    assert net.v.tolist() == [1, 3, 4]
    assert net.weight is None


def test_network_layers_weights_and_float_endpoints(tmp_path):
    files = base_files(
        **{
            "mobility_networks_household.csv": "1.000000000000000000e+00,0.000000000000000000e+00\n2.0,3.0\n",
            "mobility_networks_work-day_2.csv": "0,4,0.5\n4,0,9.0\n1,2,0\n",
            "mobility_networks_10.csv": "0,1\n",
            "mobility_networks_9.csv": "1,2\n",
        }
    )
    pop = load_population(write_dir(tmp_path / "pop", files))
    assert list(pop.networks) == ["9", "10", "household", "work-day_2"]
    assert pop.networks["household"].u.tolist() == [0, 2]
    assert pop.networks["household"].v.tolist() == [1, 3]
    work = pop.networks["work-day_2"]
    assert work.u.tolist() == [0, 1] and work.v.tolist() == [4, 2]
    assert work.weight.dtype == np.float32
    assert work.weight.tolist() == [0.5, 0.0]  # the duplicate keeps the first weight


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("mobility_networks_0.csv", "", ["empty"]),
        ("mobility_networks_0.csv", "\n\n", ["empty"]),
        ("mobility_networks_0.csv", "0,1\n1,5\n", ["line 2", "endpoint 5", "[0, 5)"]),
        ("mobility_networks_0.csv", "0,1\n\n7,1\n", ["line 3", "endpoint 7"]),
        ("mobility_networks_0.csv", "0,1\n-1,2\n", ["line 2", "endpoint -1"]),
        ("mobility_networks_0.csv", "0,1\n99999999999,2\n", ["line 2", "99999999999"]),
        ("mobility_networks_0.csv", "0,1\n1,x\n", ["line 2", "'x'", "not an integer"]),
        ("mobility_networks_0.csv", "0,1\n1,2.5\n", ["line 2", "2.5", "not an integer"]),
        ("mobility_networks_0.csv", "0,1\n1,\n", ["line 2", "empty"]),
        ("mobility_networks_0.csv", "src,dst\n0,1\n", ["line 1", "'src'", "no header"]),
        ("mobility_networks_0.csv", "0,1\n1,2,3,4\n", ["line 2", "4 fields"]),
        ("mobility_networks_0.csv", "0,1,2,3\n", ["line 1", "4 fields"]),
        ("mobility_networks_0.csv", "0\n", ["line 1", "1 fields"]),
        ("mobility_networks_0.csv", "0,1,0.5\n1,2,-2\n", ["line 2", "weight -2"]),
        ("mobility_networks_0.csv", "0,1,0.5\n1,2,inf\n", ["line 2", "inf"]),
        ("mobility_networks_0.csv", "0,1,0.5\n1,2,heavy\n", ["line 2", "'heavy'"]),
        ("mobility_networks_a b.csv", "0,1\n", ["'a b'", "letters"]),
    ],
)
def test_network_errors(tmp_path, name, text, expected):
    message = load_error(tmp_path, **{name: text})
    assert name in message
    for part in expected:
        assert part in message, (part, message)


def test_network_folder_layout(tmp_path):
    # The field's own layout: mobility_networks/<layer>.csv, read as mobility_networks_<layer>.csv.
    root = write_dir(tmp_path / "pop", base_files(**{"mobility_networks_household.csv": "0,1\n"}))
    (root / "mobility_networks").mkdir()
    (root / "mobility_networks" / "1.csv").write_text("2,3\n3,4\n")
    (root / "mobility_networks" / "0.csv").write_text("0,4\n")
    (root / "mobility_networks" / "notes.txt").write_text("not a layer")
    pop = load_population(root)
    assert list(pop.networks) == ["0", "1", "household"]
    assert pop.networks["1"].u.tolist() == [2, 3] and pop.networks["1"].v.tolist() == [3, 4]
    (root / "mobility_networks" / "household.csv").write_text("1,2\n")
    with pytest.raises(PopulationError, match=r"contact layer 'household' is given twice, by .*mobility_networks_household\.csv and .*household\.csv"):
        load_population(root)
    (root / "mobility_networks" / "household.csv").unlink()
    (root / "mobility_networks" / "a b.csv").write_text("1,2\n")
    with pytest.raises(PopulationError, match=r"layer name 'a b'"):
        load_population(root)


def test_require_columns_names_file_and_column(tmp_path):
    root = write_dir(tmp_path / "pop", base_files())
    pop = load_population(root)
    assert population_io.column_source(pop, "age") == str(root / "agents.csv")
    population_io.require_columns(pop, {"age": AGE_LABELS, "household": None}, needed_by="the tests")
    cases = [
        ({"area": None}, f"{root / 'agents.csv'}: no column 'area', needed by the tests"),
        ({"soc_code": None}, f"{root / 'agents.csv'}: column 'soc_code' holds text"),
        ({"household": ["a"]}, f"{root / 'mapping.json'}: no entry for column 'household' of {root / 'agents.csv'}"),
        ({"age": AGE_LABELS[:3]}, f"{root / 'mapping.json'}: column 'age' has labels ['50t64', '65A', 'U19'] unknown to the tests"),
    ]
    for columns, message in cases:
        with pytest.raises(PopulationError) as info:
            population_io.require_columns(pop, columns, needed_by="the tests")
        assert str(info.value).startswith(message) and "\n" not in str(info.value)
    (root / "mapping.json").unlink()
    with pytest.raises(PopulationError, match=r"mapping\.json not found: column 'age' of .*agents\.csv"):
        population_io.require_columns(load_population(root), {"age": AGE_LABELS}, needed_by="the tests")
    # The pickle layout names the pickle files; an in-memory population says so.
    pickles = write_pickles(tmp_path / "pickles", {"age": [0, 1, 2]})
    loaded = load_population(pickles, allow_pickle=True)
    assert population_io.column_source(loaded, "age") == str(pickles / "age.pickle")
    with pytest.raises(PopulationError, match=r"pickles: no column 'gender' \(no gender\.pickle\)"):
        population_io.require_columns(loaded, {"gender": None}, needed_by="the tests")
    assert population_io.column_source(make_population(), "age") is None
    with pytest.raises(PopulationError, match=r"^the population: no column 'x'"):
        population_io.require_columns(make_population(), {"x": None}, needed_by="the tests")


# ---------------------------------------------------------------------------- pickles
def write_pickles(root: Path, columns: dict, suffix: str = ".pickle") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, values in columns.items():
        pd.Series(values).to_pickle(root / f"{name}{suffix}")
    (root / "mapping.json").write_text(json.dumps(MAPPING))
    return root


def test_pickle_layout_requires_opt_in(tmp_path):
    root = write_pickles(tmp_path / "pop", {"age": [0, 1, 2], "gender": [1, 0, 1]})
    with pytest.raises(PopulationError) as info:
        load_population(root)
    message = str(info.value)
    assert "allow_pickle=True" in message and "--allow-pickle" in message
    assert "age.pickle" in message and "arbitrary" in message


def test_pickle_layout_loads_with_opt_in(tmp_path):
    root = write_pickles(
        tmp_path / "pop",
        {
            "age": np.array([0, 5, 2], dtype=np.int64),
            "gender": np.array([1.0, 0.0, 1.0]),
            "soc_code": ["13-2099.01", None, "11-1011.00"],
        },
    )
    pd.Series([4, 4, 9]).to_pickle(root / "household.pkl")
    (root / "disease_stages.csv").write_text("0.0\n2.0\n1.0\n")
    (root / "mobility_networks_0.csv").write_text("0,1\n2,1\n")
    pop = load_population(root, allow_pickle=True)
    assert pop.attributes["age"].tolist() == [0, 5, 2]
    assert pop.attributes["gender"].tolist() == [1, 0, 1]
    assert pop.attributes["household"].tolist() == [4, 4, 9]
    assert pop.strings["soc_code"].tolist() == ["13-2099.01", "", "11-1011.00"]
    assert pop.labels == MAPPING
    assert pop.initial_states["disease_stage"].tolist() == [0, 2, 1]
    assert pop.networks["0"].u.tolist() == [0, 1] and pop.networks["0"].v.tolist() == [1, 2]


@pytest.mark.parametrize(
    "columns, expected",
    [
        ({"age": [0, 1, 2], "gender": [0, 1]}, ["disagree", "age.pickle", "gender.pickle"]),
        ({"age": [0, 1.5, 2]}, ["age.pickle", "position 1", "1.5"]),
        ({"age": [0, 9, 2]}, ["age.pickle", "position 1", "code 9"]),
        ({"age": ["0", "old", "2"]}, ["age.pickle", "position 1", "'old'"]),
    ],
)
def test_pickle_layout_errors(tmp_path, columns, expected):
    root = write_pickles(tmp_path / "pop", columns)
    with pytest.raises(PopulationError) as info:
        load_population(root, allow_pickle=True)
    for part in expected:
        assert part in str(info.value), (part, str(info.value))


def test_pickle_that_is_not_a_series(tmp_path):
    root = tmp_path / "pop"
    root.mkdir()
    pd.DataFrame({"a": [1, 2]}).to_pickle(root / "age.pickle")
    with pytest.raises(PopulationError, match=r"age\.pickle.*Series"):
        load_population(root, allow_pickle=True)


# ----------------------------------------------------------------------------- saving
def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "pop"
    before = siblings(target)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    # fail after agents.csv is already written into the temporary directory
    monkeypatch.setattr(population_io, "_write_json", boom)
    with pytest.raises(OSError, match="disk full"):
        save_population(make_population(), target)
    assert not target.exists()
    assert siblings(target) == before  # no .pop.tmp-* left behind


def test_failed_overwrite_keeps_old_directory(tmp_path, monkeypatch):
    target = save_population(make_population(), tmp_path / "pop")
    old_agents = (target / "agents.csv").read_bytes()
    before = siblings(target)

    real_write_rows = population_io._write_rows
    calls = []

    def fail_on_networks(path, *args, **kwargs):
        calls.append(Path(path).name)
        if Path(path).name.startswith("mobility_networks_"):
            raise RuntimeError("interrupted")
        return real_write_rows(path, *args, **kwargs)

    monkeypatch.setattr(population_io, "_write_rows", fail_on_networks)
    smaller = Population(attributes={"age": np.array([1, 2], dtype=np.int32)}, networks={
        "0": EdgeList.from_pairs(np.array([0]), np.array([1]))})
    with pytest.raises(RuntimeError, match="interrupted"):
        save_population(smaller, target, overwrite=True)
    assert "agents.csv" in calls
    assert (target / "agents.csv").read_bytes() == old_agents
    assert siblings(target) == before
    assert_same_population(make_population(), load_population(target))


def test_overwrite_semantics(tmp_path):
    target = save_population(make_population(), tmp_path / "pop")
    smaller = Population(attributes={"age": np.array([4, 0, 1], dtype=np.int32)}, labels={"age": AGE_LABELS})
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_population(smaller, target)
    assert load_population(target).size == 12

    save_population(smaller, target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["agents.csv", "mapping.json", "population.json"]
    assert_same_population(smaller, load_population(target))
    assert siblings(target) == ["pop"]  # the old directory was removed

    # overwrite=True is also fine when nothing exists yet
    fresh = save_population(smaller, tmp_path / "new" / "nested", overwrite=True)
    assert_same_population(smaller, load_population(fresh))


def test_overwrite_refuses_foreign_directories_and_files(tmp_path):
    pop = make_population()
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="thesis.tex"):
        save_population(pop, home, overwrite=True)
    assert (home / "thesis.tex").read_text() == "precious"

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        save_population(pop, plain, overwrite=True)
    assert plain.read_text() == "x"
    assert siblings(plain) == ["home", "plain.txt"]


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda p: p.networks.update({"bad name": p.networks["2"]}), "bad name"),
        (lambda p: p.attributes.update({"area": -np.ones(12, dtype=np.int32)}), "negative"),
        (lambda p: p.attributes.update({"a,b": np.ones(12, dtype=np.int32)}), "a,b"),
        (lambda p: p.attributes.update({"agent_id": np.ones(12, dtype=np.int32)}), "agent_id"),
        (lambda p: p.metadata.update({"when": object()}), "population.json"),
    ],
)
def test_save_rejects_unwritable_populations(tmp_path, change, expected):
    pop = make_population()
    change(pop)
    with pytest.raises(PopulationError, match=expected.replace(",", ",")):
        save_population(pop, tmp_path / "pop")
    assert os.listdir(tmp_path) == []
