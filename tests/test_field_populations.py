"""Populations in the field's format load everywhere (issue 16, item 5).

The field's reference tool (AgentTorch) ships population directories such as its Astoria
one: agents with integer codes and a ``mapping.json`` of labels, contact networks in
numbered edge-list files, occupations as O*NET-SOC detailed codes (``13-2099.01``) and the
initial disease stages written as floats. :func:`write_field_population` builds a small one
(a few hundred agents in Astoria, NTA QN0103) as the field builds its files, and the tests
check:

- contact layers by role (:mod:`jaxsim.layer_roles`): the defaults for the field's numbered
  layers, the ``--layer-roles`` overrides, and one-line errors naming the flag and value;
- occupation codes in every form (SOC 2018 with and without the dash, O*NET-SOC);
- a missing column or ``mapping.json`` gives one line naming the file and the column;
- every NYC scenario runs end to end on such a directory (``python scenarios/<name>.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxsim import layer_roles
from jaxsim.errors import InputError
from jaxsim.layer_roles import apply_layer_roles, field_layer_roles, parse_layer_roles
from jaxsim.models.labour.agents import occupations_from_soc, soc_code
from jaxsim.nyc import cli as nyc_cli
from jaxsim.population_io import load_population

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------ the generator
#: The field's Astoria mapping.json, with Astoria's NTA (the field's file names one area
#: and its borough's region code).
FIELD_MAPPING = {
    "area": ["QN0103"],
    "age": ["20t29", "30t39", "40t49", "50t64", "65A", "U19"],
    "gender": ["male", "female"],
    "ethnicity": ["white", "other", "black", "hispanic", "asian", "native"],
    "region": ["QN"],
}
#: Mean and standard deviation of the contacts an agent draws per step, by age band: the
#: field's network builder draws each agent's contacts from a negative binomial with these
#: moments (its interaction table; values here are small, for a small population).
CONTACTS = {"U19": (5.0, 3.0), "20t29": (7.0, 4.0), "30t39": (7.0, 4.0), "40t49": (6.0, 3.5),
            "50t64": (5.0, 3.0), "65A": (3.0, 2.0)}
#: Occupation codes by SOC major group, in the forms a population may carry them.
ONET_CODES = ["13-2099.01", "15-1252.00", "35-2014.00", "41-2031.00", "47-2061.00", "53-3032.00", "11-1021.00"]


def field_networks(age_labels: np.ndarray, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The field's numbered mobility networks, built as its builder builds them: each agent
    draws a negative-binomial number of contacts for its age band; for every step the
    contact stubs are shuffled and consecutive stubs paired. The stub list is not emptied
    between steps, so network ``t`` pairs the stubs of steps ``0..t`` (as the field's
    files do). Returns ``[E_t, 2]`` edge arrays (self-loops and repeats kept, as written)."""
    draws = np.empty(len(age_labels), np.int64)
    for band, (mean, sd) in CONTACTS.items():
        p = mean / sd**2
        r = mean * mean / (sd * sd - mean)
        where = age_labels == band
        draws[where] = rng.negative_binomial(r, p, size=int(where.sum()))
    stubs: list[int] = []
    networks = []
    for _ in range(steps):
        stubs.extend(np.repeat(np.arange(len(age_labels)), draws).tolist())
        rng.shuffle(stubs)
        pairs = np.asarray(stubs, np.int64)
        networks.append(np.stack([pairs[:-1], pairs[1:]], axis=1))
    return networks


def write_field_population(
    root: Path,
    agents: int = 300,
    *,
    seed: int = 0,
    steps: int = 2,
    soc_codes=None,
    drop_columns: tuple[str, ...] = (),
    mapping: bool = True,
    stages: bool = True,
    network_folder: bool = False,
) -> Path:
    """A population directory in the field's format: ``agents.csv`` (integer codes, the
    labels in ``mapping.json``), ``mobility_networks_<t>.csv`` for ``t < steps`` (or, with
    ``network_folder``, the field's own ``mobility_networks/<t>.csv``), O*NET-SOC occupation
    codes (``soc_codes`` overrides them, one per agent) and ``disease_stages.csv`` written as
    floats. Agents live in households of 1-5 people in Astoria (QN0103)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    ages = FIELD_MAPPING["age"]
    age = rng.choice(len(ages), size=agents, p=[0.17, 0.18, 0.14, 0.17, 0.14, 0.20])
    sizes = []
    while sum(sizes) < agents:
        sizes.append(int(rng.integers(1, 6)))
    sizes[-1] -= sum(sizes) - agents
    household = np.repeat(np.arange(len(sizes)), sizes)
    working = np.isin(np.asarray(ages)[age], ["20t29", "30t39", "40t49", "50t64"]) & (rng.random(agents) < 0.75)
    if soc_codes is None:
        soc_codes = np.where(working, rng.choice(ONET_CODES, size=agents), "")
    columns = {
        "agent_id": np.arange(agents),
        "age": age,
        "gender": rng.integers(0, 2, agents),
        "ethnicity": rng.integers(0, len(FIELD_MAPPING["ethnicity"]), agents),
        "area": np.zeros(agents, np.int64),
        "region": np.zeros(agents, np.int64),
        "household": household,
        "soc_code": np.asarray(soc_codes, object),
    }
    frame = pd.DataFrame({k: v for k, v in columns.items() if k not in drop_columns})
    frame.to_csv(root / "agents.csv", index=False)
    if mapping:
        (root / "mapping.json").write_text(json.dumps(FIELD_MAPPING))
    if stages:
        stage = np.where(rng.random(agents) < 0.01, 2, np.where(rng.random(agents) < 0.01, 1, 0))
        np.savetxt(root / "disease_stages.csv", stage.astype(np.float64))
    folder = root / "mobility_networks" if network_folder else root
    folder.mkdir(exist_ok=True)
    for t, edges in enumerate(field_networks(np.asarray(ages)[age], steps, rng)):
        name = f"{t}.csv" if network_folder else f"mobility_networks_{t}.csv"
        np.savetxt(folder / name, edges, fmt="%d", delimiter=",")
    return root


@pytest.fixture(scope="module")
def field_dir(tmp_path_factory) -> Path:
    return write_field_population(tmp_path_factory.mktemp("field") / "astoria")


def population_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    nyc_cli.add_population_arguments(parser)
    return parser.parse_args(list(argv))


def edge_set(edges) -> set[tuple[int, int]]:
    return set(zip(edges.u.tolist(), edges.v.tolist()))


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


# ------------------------------------------------------------------------ layer roles
def test_parse_layer_roles():
    assert parse_layer_roles("0=household,1=community") == {"0": "household", "1": "community"}
    assert parse_layer_roles(" 0 = community , 1=- ") == {"0": "community", "1": "-"}
    assert parse_layer_roles("work-day_2=work") == {"work-day_2": "work"}
    assert parse_layer_roles("keep") == parse_layer_roles(" KEEP ") == {}
    assert layer_roles.format_layer_roles({"0": "community", "1": "-"}) == "0=community,1=-"


@pytest.mark.parametrize(
    "text, words",
    [("", ["layer=role pairs"]),
     (",", ["layer=role pairs"]),
     ("0=household,,1=community", ["empty item"]),
     ("0household", ["'0household' is not layer=role"]),
     ("0=", ["role ''"]),
     ("0=1x", ["role '1x'"]),
     ("a b=household", ["layer 'a b'"]),
     ("0=household,0=community", ["layer '0' is mapped twice"]),
     ("0=community,1=community", ["role 'community' is given to layers '0' and '1'"])],
)
def test_bad_layer_roles_name_the_flag_and_value(text, words):
    with pytest.raises(InputError) as err:
        parse_layer_roles(text)
    message = one_line(err)
    assert message.startswith(f"--layer-roles {text!r}: ")
    for word in words:
        assert word in message


def test_field_defaults_only_for_numbered_layers():
    # The field's files: 0 is the community (its COVID model's one network), the later
    # files re-draw it and are left out.
    assert field_layer_roles(["0", "1"]) == {"0": "community", "1": "-"}
    assert field_layer_roles(["0"]) == {"0": "community"}
    assert field_layer_roles(["1", "2"]) == {"1": "-", "2": "-"}
    assert field_layer_roles(["household", "community"]) == {}
    assert field_layer_roles(["0", "household"]) == {}
    assert field_layer_roles([]) == {}


def test_default_roles_on_a_field_directory(field_dir, capsys):
    raw = load_population(field_dir)
    assert list(raw.networks) == ["0", "1"]  # loading keeps the file names
    population = nyc_cli.load_population_directory(field_dir, keep_order=True)
    assert list(population.networks) == ["community"]
    assert edge_set(population.networks["community"]) == edge_set(raw.networks["0"])
    assert population.metadata["layer_roles"] == {"0": "community", "1": "-"}
    note = capsys.readouterr().err
    assert "layer 0 is the community, layer 1 is left out" in note and "--layer-roles" in note


@pytest.mark.parametrize(
    "text, expected",
    [("0=household,1=community", {"household": "0", "community": "1"}),
     ("1=community,0=-", {"community": "1"}),
     ("0=community", {"community": "0", "1": "1"}),  # a layer the map does not name keeps its name
     ("keep", {"0": "0", "1": "1"})],
)
def test_layer_roles_flag_overrides_the_defaults(field_dir, text, expected, capsys):
    raw = load_population(field_dir)
    population = nyc_cli.population_from_args(
        population_args("--population", str(field_dir), "--keep-order", "--layer-roles", text), seed=0
    )
    assert sorted(population.networks) == sorted(expected)
    for role, layer in expected.items():
        assert edge_set(population.networks[role]) == edge_set(raw.networks[layer])
    assert "note:" not in capsys.readouterr().err  # the user chose: no note


@pytest.mark.parametrize(
    "text, words",
    [("2=community", ["no contact layer '2'", "its layers are 0, 1"]),
     ("0=-,1=-", ["leaves out every contact layer"]),
     ("0=1", ["role '1'"])],
)
def test_a_map_that_does_not_fit_the_population_is_one_line(field_dir, text, words):
    with pytest.raises(InputError) as err:
        nyc_cli.population_from_args(population_args("--population", str(field_dir), "--layer-roles", text), seed=0)
    message = one_line(err)
    assert message.startswith(f"--layer-roles {text!r}: ")
    for word in words:
        assert word in message


def test_layer_roles_on_populations_named_by_role(small_population):
    assert apply_layer_roles(small_population) is small_population  # no defaults for named layers
    assert apply_layer_roles(small_population, "keep") is small_population
    left = apply_layer_roles(small_population, "household=-")
    assert list(left.networks) == ["community"] and left.metadata["layer_roles"] == {"household": "-"}
    assert list(small_population.networks) == ["household", "community"]  # not changed in place
    swapped = apply_layer_roles(small_population, {"household": "community", "community": "household"})
    assert swapped.networks["community"] is small_population.networks["household"]
    with pytest.raises(InputError) as err:
        apply_layer_roles(small_population, "household=community")
    assert "role 'community' is also the name of layer 'community'" in one_line(err)


def test_the_fields_network_folder_loads_as_numbered_layers(tmp_path):
    flat = load_population(write_field_population(tmp_path / "flat", seed=3))
    folder_dir = write_field_population(tmp_path / "folder", seed=3, network_folder=True)
    folder = load_population(folder_dir)
    assert list(folder.networks) == list(flat.networks) == ["0", "1"]
    for layer in flat.networks:
        assert edge_set(folder.networks[layer]) == edge_set(flat.networks[layer])
    (folder_dir / "mobility_networks_1.csv").write_text("0,1\n")
    with pytest.raises(InputError) as err:
        load_population(folder_dir)
    assert "contact layer '1' is given twice" in one_line(err)


# ------------------------------------------------------------------ occupation codes
@pytest.mark.parametrize(
    "code, soc",
    [("13-2099", "13-2099"), ("132099", "13-2099"), ("13-2099.01", "13-2099"), ("132099.01", "13-2099"),
     ("15-1252.00", "15-1252"), (" 41-2031.00 ", "41-2031"), ("47", "47"), ("", None), ("NA", None), (None, None)],
)
def test_occupation_codes_in_every_form(code, soc):
    assert soc_code(code) == soc


def test_every_form_gives_the_same_occupation_group():
    forms = np.asarray(["13-2099", "132099", "13-2099.01", "132099.01", "13", "35-2014", "352014", "35-2014.00"], object)
    groups = occupations_from_soc(forms)
    assert len(set(groups[:5].tolist())) == 1 and len(set(groups[5:].tolist())) == 1 and groups[0] != groups[5]


def test_the_field_populations_occupations(field_dir):
    from jaxsim.models import labour
    from jaxsim.nyc import boroughs

    population = nyc_cli.load_population_directory(field_dir)
    codes = population.strings["soc_code"]
    assert any(str(c).endswith(".01") for c in codes)  # O*NET-SOC detailed codes
    attributes = labour.labour_attributes(population, boroughs.borough_codes(population), seed=0)
    assert attributes.source == "soc_code"
    assert int(attributes.labour_force.sum()) == int(np.sum(codes != ""))
    business = np.asarray([str(c).startswith("13-") for c in codes])
    assert business.any() and (attributes.occupation[business] == labour.OCCUPATIONS.index("management_professional")).all()


@pytest.mark.parametrize("bad", ["13-2099.1", "13/2099", "accountant", "99-1111.00"])
def test_a_bad_code_names_file_column_and_value(tmp_path, bad):
    from jaxsim.models import labour
    from jaxsim.nyc import boroughs

    codes = np.full(120, "", object)
    codes[:10] = "13-2099.01"
    codes[7] = bad
    root = write_field_population(tmp_path / "pop", 120, soc_codes=codes)
    population = nyc_cli.load_population_directory(root)
    with pytest.raises(InputError) as err:
        labour.labour_attributes(population, boroughs.borough_codes(population), seed=0)
    message = one_line(err)
    assert message.startswith(f"{root / 'agents.csv'}: column 'soc_code', agent 7: {bad!r}")


# ------------------------------------------------------- what the scenarios need
def test_a_missing_column_names_the_file_and_the_column(tmp_path):
    root = write_field_population(tmp_path / "pop", 100, drop_columns=("age",))
    with pytest.raises(InputError) as err:
        nyc_cli.population_from_args(population_args("--population", str(root)), seed=0)
    message = one_line(err)
    assert message.startswith(f"{root / 'agents.csv'}: no column 'age'")


def test_a_missing_mapping_names_the_file_and_the_column(tmp_path):
    root = write_field_population(tmp_path / "pop", 100, mapping=False)
    with pytest.raises(InputError) as err:
        nyc_cli.population_from_args(population_args("--population", str(root)), seed=0)
    message = one_line(err)
    assert message.startswith(f"{root / 'mapping.json'} not found: column 'age' of {root / 'agents.csv'}")


def test_a_mapping_without_the_columns_labels(tmp_path):
    root = write_field_population(tmp_path / "pop", 100)
    (root / "mapping.json").write_text(json.dumps({k: v for k, v in FIELD_MAPPING.items() if k != "age"}))
    with pytest.raises(InputError) as err:
        nyc_cli.load_population_directory(root)
    assert one_line(err).startswith(f"{root / 'mapping.json'}: no entry for column 'age'")
    (root / "mapping.json").write_text(json.dumps({**FIELD_MAPPING, "age": ["0-19", "20-39", "40-59", "60-79", "80-99", "100+"]}))
    with pytest.raises(InputError) as err:
        nyc_cli.load_population_directory(root)
    message = one_line(err)
    assert message.startswith(f"{root / 'mapping.json'}: column 'age' has labels ['0-19',") and "20t29" in message


def test_the_labour_model_names_the_file_without_age(tmp_path):
    from jaxsim.models import labour

    root = write_field_population(tmp_path / "pop", 100, drop_columns=("age",))
    population = nyc_cli.load_population_directory(root, required={})
    with pytest.raises(InputError) as err:
        labour.labour_attributes(population, np.zeros(population.size, np.int64), seed=0)
    assert one_line(err).startswith(f"{root / 'agents.csv'}: no column 'age'")


def test_real_bugs_still_raise_as_they_are(field_dir, monkeypatch):
    import jaxsim.population_io

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(jaxsim.population_io, "load_population", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        nyc_cli.population_from_args(population_args("--population", str(field_dir)), seed=0)
    with pytest.raises(AttributeError):
        jaxsim.population_io.require_columns(None, {"age": None}, needed_by="a test")


# ----------------------------------------------------------- every scenario, end to end
def run_scenario(name: str, *argv: str) -> subprocess.CompletedProcess:
    """``python scenarios/<name>.py ARGV`` from the repository root."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scenarios" / f"{name}.py"), *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, "MPLBACKEND": "Agg"},
    )


def check_ran(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_covid_nyc_runs_on_a_field_population(field_dir, tmp_path):
    out = tmp_path / "covid_nyc"
    done = run_scenario("covid_nyc", "--population", str(field_dir), "--days", "5", "--no-progress", "--out", str(out))
    check_ran(done)
    assert "layer 0 is the community, layer 1 is left out" in done.stderr
    population = json.loads((out / "run.json").read_text())["population"]
    assert population["agents"] == 300 and list(population["networks"]) == ["community"]
    assert population["metadata"]["layer_roles"] == {"0": "community", "1": "-"}
    assert len(pd.read_csv(out / "metrics.csv")) == 5


def test_calibrate_covid_runs_on_a_field_population(field_dir, tmp_path):
    out = tmp_path / "calibrate_covid"
    done = run_scenario("calibrate_covid", "--population", str(field_dir), "--train-weeks", "2", "--test-weeks", "1",
                        "--steps", "2", "--members", "2", "--out", str(out))
    check_ran(done)
    assert "(community: " in done.stdout  # the population's layers by role, as in every scenario
    assert (out / "calibration.json").is_file()


def test_counterfactual_isolation_runs_on_a_field_population(field_dir, tmp_path):
    out = tmp_path / "counterfactual"
    done = run_scenario("counterfactual_isolation", "--population", str(field_dir), "--members", "2",
                        "--observed-weeks", "2", "--weeks-ahead", "1", "--fit-steps", "2", "--out", str(out))
    check_ran(done)
    summary = json.loads((out / "summary.json").read_text())
    assert "community_closure_2_weeks" in summary["counterfactual"]["differences"]
    assert (out / "scenarios.csv").is_file()


def test_nyc_economy_runs_on_a_field_population(field_dir, tmp_path):
    out = tmp_path / "nyc_economy"
    done = run_scenario("nyc_economy", "--population", str(field_dir), "--months", "1", "--no-progress",
                        "--out", str(out))
    check_ran(done)
    labour = json.loads((out / "run.json").read_text())["labour"]
    codes = load_population(field_dir).strings["soc_code"]
    assert labour["source"] == "soc_code" and labour["labour_force"] == int(np.sum(codes != ""))


@pytest.mark.parametrize(
    "extra, words",
    [(("--layer-roles", "0=household,0=community"), ["--layer-roles '0=household,0=community'", "mapped twice"]),
     (("--layer-roles", "5=community"), ["--layer-roles '5=community'", "no contact layer '5'"])],
)
def test_a_bad_layer_roles_flag_is_one_line_with_status_2(field_dir, tmp_path, extra, words):
    done = run_scenario("counterfactual_isolation", "--population", str(field_dir), *extra, "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and all(word in lines[0] for word in words), done.stderr
    assert not (tmp_path / "out").exists()


def test_a_directory_without_age_stops_the_scenario_with_one_line(tmp_path):
    root = write_field_population(tmp_path / "pop", 100, drop_columns=("age",))
    done = run_scenario("covid_nyc", "--population", str(root), "--days", "2", "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{root / 'agents.csv'}: no column 'age'" in lines[0], done.stderr
