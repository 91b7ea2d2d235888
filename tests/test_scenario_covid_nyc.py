"""scenarios/covid_nyc.py end to end on small populations, and its input errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_script

from jaxsim.errors import InputError
from jaxsim.nyc import synthesis
from jaxsim.population_io import save_population

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scenarios" / "covid_nyc.py"
CORE_COLUMNS = ["day", "date", "susceptible", "exposed", "infected", "recovered", "dead",
                "new_infections", "isolating"]


@pytest.fixture(scope="module")
def scenario():
    return load_script(SCRIPT)


def test_small_synthetic_run_writes_all_outputs(scenario, tmp_path):
    out = tmp_path / "run"
    # Without a calibration (the shipped fit would start at its week, 202047), day 0 is the
    # first week with data.
    assert scenario.main(["--agents", "3000", "--days", "10", "--seed", "3", "--calibration", "none",
                          "--out", str(out)]) == 0
    table = pd.read_csv(out / "metrics.csv")
    assert list(table.columns[: len(CORE_COLUMNS)]) == CORE_COLUMNS
    assert len(table) == 10 and list(table["day"]) == list(range(10))
    assert table["date"].iloc[0] == "2020-08-02"  # first observed epiweek 202032 starts Sunday 2 Aug
    stages = table[["susceptible", "exposed", "infected", "recovered", "dead"]].sum(axis=1)
    assert (stages == 3000).all()
    assert {f"new_infections_by_age_{a}" for a in ["U19", "65A"]} <= set(table.columns)
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 3 and run["days"] == 10
    assert run["timing"]["compile_seconds"] > 0 and run["timing"]["run_seconds"] > 0
    assert run["population"]["agents"] == 3000
    assert set(run["parameters"]["susceptibility"]) == {"20t29", "30t39", "40t49", "50t64", "65A", "U19"}
    assert run["versions"]["jax"] and run["versions"]["numpy"]
    assert run["observed_cases"]["ntas"] == ["QN0103"]
    assert (out / "epidemic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".staging-*")), "staging folder left behind"


def test_same_seed_same_metrics(scenario, tmp_path):
    for name in ("a", "b"):
        assert scenario.main(["--agents", "2000", "--days", "8", "--out", str(tmp_path / name)]) == 0
    a = pd.read_csv(tmp_path / "a" / "metrics.csv")
    b = pd.read_csv(tmp_path / "b" / "metrics.csv")
    pd.testing.assert_frame_equal(a, b)


def test_population_directory_with_stage_file(scenario, tmp_path):
    population = synthesis.synthesize_population_of_size(1500, seed=1)
    stages = np.zeros(population.size, np.int8)
    stages[:40] = 2
    stages[40:60] = 1
    stages[60:100] = 3
    population.initial_states["disease_stage"] = stages
    directory = save_population(population, tmp_path / "pop")
    out = tmp_path / "out"
    assert scenario.main(["--population", str(directory), "--days", "5", "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["initial_conditions"]["source"] == "disease_stages.csv"
    table = pd.read_csv(out / "metrics.csv")
    # Day 0 ends after one day of dynamics, so compare what cannot change in a day.
    first = table.iloc[0]
    assert first["exposed"] + first["infected"] + first["recovered"] + first["dead"] >= 100
    assert first["susceptible"] <= 1400


def test_default_run_from_command_line(tmp_path):
    """No population arguments: the embedded synthetic Astoria; as a user runs it, the
    figure drawn by the plot worker (the suite turns the worker off elsewhere)."""
    out = tmp_path / "default"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, JAXSIM_PLOT_WORKER="1"),
    )
    assert done.returncode == 0, done.stderr
    assert (out / "epidemic.png").stat().st_size > 10_000 and b"image/png;base64" in (out / "report.html").read_bytes()
    assert "47,303 agents" in done.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["population"]["agents"] == 47303
    assert run["population"]["metadata"]["ntas"] == ["QN0103"]
    # The default tells a true story: Astoria's second-wave rise, with the shipped fit's
    # R(t), follows the observed weekly cases (45, 66, 101), not a fizzle from a trough.
    assert run["start_epiweek"] == 202047 and run["calibration"]["epiweeks"][:3] == [202047, 202048, 202049]
    assert "shipped fit" in run["parameter_source"] and "jaxsim calibrate_covid" in done.stdout
    table = pd.read_csv(out / "metrics.csv")
    weeks = table.dropna(subset=["observed_cases_week"])
    assert list(weeks["observed_cases_week"]) == [45, 66, 101]
    ratio = weeks["reported_cases_week"].to_numpy() / weeks["observed_cases_week"].to_numpy()
    assert np.all(np.abs(ratio - 1) < 0.3), ratio


def test_default_fit_applies_to_astoria_only_and_can_be_turned_off(scenario, tmp_path):
    none = scenario.main(["--ntas", "QN0103", "--days", "7", "--calibration", "none", "--no-progress",
                                   "--out", str(tmp_path / "none")])
    assert none == 0
    run = json.loads((tmp_path / "none" / "run.json").read_text())
    assert run["calibration"] is None and "uncalibrated" in run["parameter_source"]
    assert run["parameters"]["transmission_rate"] == [2.5]
    bay_ridge = save_population(synthesis.synthesize_nyc_population(["BK1001"], seed=2, max_agents=1500),
                                tmp_path / "bay_ridge")
    other = scenario.main(["--population", str(bay_ridge), "--days", "3", "--no-progress", "--out",
                           str(tmp_path / "o")])
    assert other == 0
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["calibration"] is None and "the shipped fit is QN0103's" in run["parameter_source"]
    with pytest.raises(InputError, match="--transmission-rate 3 and --calibration .* exclude each other"):
        scenario.main(["--agents", "1500", "--days", "3", "--transmission-rate", "3", "--calibration",
                                str(tmp_path / "x.json"), "--out", str(tmp_path / "p")])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--population", "/nonexistent/pop"], "/nonexistent/pop"),
        (["--ntas", "XX0000"], "XX0000"),
        (["--start-week", "199901"], "199901"),
        (["--agents", "0"], "--agents"),
        (["--ascertainment", "1.5", "--agents", "500"], "ascertainment"),
    ],
)
def test_bad_input_is_one_clear_line(args, message, tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--days", "3", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o" / "metrics.csv").exists()


def test_days_must_be_positive(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--days", "0", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2 and "--days" in done.stderr
