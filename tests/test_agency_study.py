"""jaxsim agency_study: the limits-of-agency study, end to end against the bundled model.

One small study (one neighbourhood of 2,000 agents, 2 fitted + 1 held-out week, 2 fit
steps, 4 members; archetype rows ``one`` and ``age+area``, per-agent rows of 3 and 6 agents)
runs with SmolLM2-135M-Instruct in process on an empty response cache, then again with
``--llm-replay`` from the answers it wrote (``answers.jsonl``) only.
Asserted: every row with finite scores, model calls per simulated week = groups x samples
for archetype rows (growing with agents for the per-agent rows), the mobility comparison
(recomputed here from weekly.csv), the output files, the replays' scores equal bit for
bit; and, without the model: the signals each group reads across several neighbourhoods,
one-line option errors, ``--help`` and the city mode's plan. Not asserted: which
architecture wins (a model this small decides nothing).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import require_llama_cpp_or_skip

from jaxsim import cli
from jaxsim.scenarios import agency_study as study

ROOT = Path(__file__).resolve().parents[1]
WEEKS = 3
SMALL = ["--ntas", "QN0103", "--agents", "2000", "--granularities", "one,age+area", "--per-agent-agents", "3,6",
         "--train-weeks", "2", "--test-weeks", "1", "--steps", "2", "--seeds", "1", "--members", "4",
         "--behavior", "llm-local", "--seed", "3", "--no-unemployment"]  # tests/test_agency_unemployment.py
ROWS = ["heuristic", "llm: one group", "llm: age+area", "llm: per-agent (3 agents)", "llm: per-agent (6 agents)"]


def _main(args) -> int:
    try:
        return cli.run_cli(study.main, args)
    except SystemExit as exit_:  # argparse's one-line errors
        return exit_.code


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    require_llama_cpp_or_skip()
    tmp = tmp_path_factory.mktemp("agency")
    cache = tmp / "answers.sqlite"
    assert _main(SMALL + ["--llm-cache", str(cache), "--out", str(tmp / "cold")]) == 0
    # The answers the cold run used, which it wrote as a text cache (JSON Lines, the form that
    # ships with a repository): a replay from them alone.
    assert _main(SMALL + ["--llm-cache", str(tmp / "cold" / "answers.jsonl"), "--llm-replay",
                          "--out", str(tmp / "text")]) == 0
    return tmp


def _table(runs, name="cold"):
    return pd.read_csv(runs / name / "study.csv")


def test_every_architecture_row_with_finite_scores(runs):
    table = _table(runs)
    assert list(table["architecture"]) == ROWS
    for column in ("nd", "wis", "coverage_50", "coverage_90", "persistence_nd", "persistence_wis", "relative_wis",
                   "train_nd", "mean_isolating_share", "wall_seconds", "simulator_seconds", "llm_seconds"):
        assert np.all(np.isfinite(table[column].to_numpy(float))), column
    assert np.all((table["coverage_90"] >= 0) & (table["coverage_90"] <= 1))
    assert np.allclose(table["relative_wis"], table["wis"] / table["persistence_wis"])
    # Every row is scored against the same persistence forecast.
    assert table["persistence_wis"].nunique() == 1
    # Tokens as the model reported them: the cold run's LLM rows spent some, the heuristic none;
    # the replay ran no model and reports none.
    llm = table["kind"] != "heuristic"
    assert (table.loc[llm, "tokens_this_run"] > table.loc[llm, "calls_this_run"]).all()
    assert table.loc[~llm, "tokens_this_run"].eq(0).all()
    assert _table(runs, "text")["tokens_this_run"][llm].isna().all()


def test_model_calls_groups_times_samples_and_growing_with_agents(runs):
    table = _table(runs).set_index("architecture")
    info = json.loads((runs / "cold" / "run.json").read_text())
    assert table.loc["heuristic", "model_calls"] == 0
    groups = {"llm: one group": 1, "llm: age+area": 6}  # one neighbourhood: age+area = the 6 age bands
    for name, g in groups.items():
        row = table.loc[name]
        assert row["groups"] == g
        assert row["model_calls"] == g * 1 * WEEKS + row["retries"]  # groups x samples per week (+ retries)
        assert row["calls_this_run"] == row["model_calls"]  # a cold cache: every distinct request once
        assert len(info["rows"][name]["llm"]["weeks"]) == WEEKS
    per_agent = table[table["kind"] == "per-agent"].sort_values("agents")
    assert list(per_agent["agents"]) == [3, 6] and list(per_agent["groups"]) == [3, 6]
    calls = per_agent["model_calls_per_week"].to_numpy()
    assert calls[1] > calls[0] > 0
    assert np.all(calls <= per_agent["agents"].to_numpy() + per_agent["retries"].to_numpy() / WEEKS)
    # Archetype rows ask the same number of questions whatever the agents: 2,000 agents, 1 call a week.
    assert table.loc["llm: one group", "agents"] == 2000 and table.loc["llm: one group", "model_calls_per_week"] == 1


def test_mobility_comparison(runs):
    table = _table(runs).set_index("architecture")
    weekly = pd.read_csv(runs / "cold" / "weekly.csv")
    from jaxsim.nyc import cases as nyc_cases

    frame = nyc_cases.load_weekly_cases()
    observed = frame[frame["nta_id"] == "QN0103"].set_index("epiweek")
    for name in ROWS:
        part = weekly[weekly["architecture"] == name]
        assert list(part["epiweek"]) == [202047, 202048, 202049]
        np.testing.assert_allclose(part["residential_change_week"], observed.loc[part["epiweek"],
                                                                                 "residential_change_week"])
        np.testing.assert_allclose(part["observed_cases"], observed.loc[part["epiweek"], "cases_week"])
        x, y = part["isolating_share"].to_numpy(), part["residential_change_week"].to_numpy()
        assert np.all((x >= 0) & (x <= 1))
        row = table.loc[name]
        assert row["mobility_points"] == WEEKS
        if np.std(x) == 0:
            assert np.isnan(row["mobility_pearson_r"])
            continue
        r = np.corrcoef(x, y)[0, 1]
        slope, intercept = np.polyfit(x, y, 1)
        assert row["mobility_pearson_r"] == pytest.approx(r, abs=1e-9)
        assert row["mobility_slope"] == pytest.approx(slope, rel=1e-6)
        assert row["mobility_intercept"] == pytest.approx(intercept, rel=1e-6)
        assert row["mobility_r2"] == pytest.approx(r * r, abs=1e-9)
    assert np.isfinite(table.loc["heuristic", "mobility_pearson_r"])


def test_outputs_and_the_best_architecture(runs):
    out = runs / "cold"
    for name in ("study.csv", "study.parquet", "weekly.csv", "weekly.parquet", "study.png", "run.json",
                 "report.html", "config.toml", "answers.jsonl"):
        assert (out / name).is_file(), name
    assert (out / "study.png").read_bytes()[:4] == b"\x89PNG"
    table = _table(runs)
    parquet = pd.read_parquet(out / "study.parquet")
    pd.testing.assert_frame_equal(parquet[["architecture", "wis"]], table[["architecture", "wis"]])
    info = json.loads((out / "run.json").read_text())
    # answers.jsonl holds the replies the run used: one per distinct request (rows may share some).
    replies = (out / "answers.jsonl").read_text().splitlines()[1:]  # a header line, then one reply a line
    assert info["answers"]["replies"] == len(replies)
    assert table["model_calls"].max() <= len(replies) <= table["model_calls"].sum()
    assert info["best_architecture"] == table.loc[table["wis"].idxmin(), "architecture"]
    assert info["conclusion"] and any("persistence" in line for line in info["conclusion"])
    # A per-agent row too small to carry the epidemic is called so.
    weekly = pd.read_csv(out / "weekly.csv")
    for name in ("llm: per-agent (3 agents)", "llm: per-agent (6 agents)"):
        held = weekly[(weekly["architecture"] == name) & (weekly["split"] == "held out")]
        said = any(line.startswith(name) and "too few agents" in line for line in info["conclusion"])
        assert said == bool((held["forecast_mean"] == 0).mean() >= 0.5), name
    averted = info["counterfactual"]["reported_cases_averted"]
    assert averted["members"] == 4 and averted["mean_ci_low"] <= averted["mean"] <= averted["mean_ci_high"]
    prospective = info["prospective"]["by_neighbourhood"]["QN0103"]
    assert prospective["epiweeks"] == [202049] and len(prospective["mean"]) == 1
    retrospective = info["retrospective"]
    assert retrospective["weeks"] == 2 and 0 <= retrospective["weeks_inside_90"] <= 2
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "study.csv" in html


def test_replay_reproduces_the_scores_from_the_answers_it_wrote(runs):
    cold, replay = _table(runs, "cold"), _table(runs, "text")
    assert list(replay["architecture"]) == list(cold["architecture"])
    for column in study.SCORE_COLUMNS + ("model_calls", "groups", "agents"):
        np.testing.assert_array_equal(replay[column].to_numpy(), cold[column].to_numpy(), err_msg=column)
    assert (replay["calls_this_run"] == 0).all()
    llm = replay["kind"] != "heuristic"
    assert (replay.loc[llm, "cache_hits"] >= replay.loc[llm, "model_calls"]).all()


# --------------------------------------------------------------------------- no model needed
def test_groups_read_the_signals_of_their_neighbourhoods():
    """Across two neighbourhoods: an area group hears its own cases and name, a group
    spanning both their sum and "New York City"; a per-agent prompt its own situation."""
    from jaxsim import behaviour

    settings = study.check_settings(_parse(["--ntas", "QN0103,BK1001", "--agents", "40", "--train-weeks", "2",
                                            "--test-weeks", "1"]))
    from jaxsim.nyc import cases as nyc_cases

    sites = study.build_sites(settings, nyc_cases.load_weekly_cases())
    union = study.union_population(sites)
    assert union.size == 80
    people = study.People.of(sites)
    signals = study.StudySignals(
        week=2, onsets=np.array([10.0, 20.0]), averages=np.array([10.0, 10.0]),
        to_reported=np.array([0.25 / s.case_scale for s in sites]), names=tuple(s.name for s in sites),
        short_names=tuple(s.short_name for s in sites), site_of_area={"QN0103": 0, "BK1001": 1}, people=people,
        health=np.r_[np.zeros(40, int), np.full(40, 2)])
    by_area = behaviour.group_agents(union, ("age", "area"))
    for labels in by_area.labels:
        values = signals.values(labels)
        k = 0 if labels["area"] == "QN0103" else 1
        assert values["home"] == sites[k].name and values["counted_area"] == "your neighbourhood"
        assert values["cases_this_week"] == round([10, 20][k] * 0.25 / sites[k].case_scale)
    everyone = signals.values({"everyone": "everyone"})
    assert everyone["home"] == "New York City" and everyone["counted_area"] == "Astoria and Bay Ridge"
    assert everyone["cases_this_week"] == round(sum(o * 0.25 / s.case_scale for o, s in zip((10, 20), sites)))
    assert everyone["cases_change"].startswith("up")
    agent = signals.values({"age": "U19", "gender": "male", "agent": "45"})  # in Bay Ridge, with symptoms
    assert agent["home"] == sites[1].name and agent["health_phrase"] == "You have COVID-19 symptoms."
    # Every prompt of the layer renders (templates checked: no literal numbers, known fields).
    layer_template = study.archetype_template(("age", "area"))
    layer_template.check(("age", "area"), study.ARCHETYPE_FIELDS)
    study.person_template().check(("age", "gender", "agent"), study.PERSON_FIELDS)
    # The prior: each group's heuristic probability under its own neighbourhood's signal.
    prior = study._prior(signals, None, None, None, by_area, {})
    assert prior.shape == (by_area.num_groups,) and np.all((prior >= 0) & (prior <= 1))


def test_phrases_and_mobility_fit():
    assert study.household_phrase(1) == "alone" and study.household_phrase(3) == "with two other people"
    assert study.contacts_phrase(0) == "nobody" and study.contacts_phrase(20) == "many people"
    fit = study.mobility_fit([np.array([0.1, 0.2]), np.array([0.3, 0.5])], [np.array([1.0, 3.0]), np.array([5.0, 9.0])])
    assert fit["points"] == 4 and fit["slope"] == pytest.approx(20.0) and fit["intercept"] == pytest.approx(-1.0)
    assert fit["r2"] == pytest.approx(1.0) and fit["pearson_r_within"] == pytest.approx(1.0)
    flat = study.mobility_fit([np.zeros(3)], [np.arange(3.0)])
    assert flat["pearson_r"] is None and "constant" in flat["note"]
    assert study.parse_granularities("one,age+gender") == (("everyone",), ("age", "gender"))


def _parse(argv):
    from jaxsim.scenarios import arguments

    return arguments.parse("agency_study", argv)


def test_help_lists_the_options():
    result = subprocess.run([sys.executable, "-m", "jaxsim", "agency_study", "--help"], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0
    for flag in ("--mode", "--granularities", "--per-agent-agents", "--llm-replay", "--plan"):
        assert flag in result.stdout, flag
    listed = subprocess.run([sys.executable, "-m", "jaxsim", "list"], capture_output=True, text=True, cwd=ROOT)
    assert "agency_study" in listed.stdout


@pytest.mark.parametrize("args, says", [
    (["--granularities", "age+shoe"], "--granularities"),
    (["--granularities", "age,age"], "named twice"),
    (["--ntas", "QN9999"], "--ntas"),
    (["--behavior", "heuristic"], "--behavior heuristic"),
    (["--behavior", "llm"], "--llm-url"),
    (["--ntas", "QN0103,BK1001", "--per-agent-agents", "5"], "at least 3 each"),
    (["--per-agent-agents", "ten"], "--per-agent-agents"),
    (["--ntas", "SI0106", "--per-agent-agents", "100000"], "--per-agent-agents 100000"),
    (["--train-weeks", "1"], "--train-weeks"),
    (["--members", "1"], "--members"),
    (["--agents", "100000000"], "--agents"),
    (["--archetypes", "age"], "--archetypes"),
    (["--start-week", "201001"], "--start-week"),
    (["--mode", "gpu"], "--mode"),
    (["--borough-agents", "10"], "--borough-agents"),
    (["--learning-rate", "0"], "--learning-rate"),
    (["--compliance", "-1"], "--compliance"),
])
def test_bad_options_are_one_line_errors(args, says, tmp_path, capsys):
    out = tmp_path / "out"
    # --plan: were the option accepted, the run would stop after its plan (exit 0) instead of studying.
    assert _main(args + ["--plan", "--out", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and says in err[0], err
    assert not out.exists()


def test_city_mode_starts_with_its_plan(tmp_path, capsys):
    out = tmp_path / "city"
    assert _main(["--mode", "city", "--plan", "--borough-agents", "2000", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "plan (city mode): 5 neighbourhood(s)" in text
    for nta in ("BK1001", "BX1003", "MN0702", "QN0103", "SI0106"):
        assert nta in text
    assert "47,303 agents" in text  # Astoria whole
    assert "llm: per-agent (500 agents)" in text and "llm: age+gender+area" in text
    # The unemployment half: the five boroughs, monthly calls = groups (60 for age+gender+borough).
    assert "unemployment: 2,000 agents over the 5 boroughs, 2020-08..2021-12 (17 months)" in text
    assert "2021-01..2021-08 (8 origins)" in text
    assert [line.split()[-1] for line in text.splitlines() if line.startswith("llm: age+gender+area")] == ["60", "60"]
    assert not out.exists()


@pytest.mark.parametrize("name", ["smollm2", "qwen2.5-coder"])
def test_published_studies_ship_their_options_answers_and_table(name, tmp_path, capsys):
    """The shipped studies: a table with every row scored, answers of the model named in
    its options (a text cache), and ``--published NAME`` taking those options (checked
    with --plan: the full replay is benchmarks/bench_agency_study.py, minutes long)."""
    from jaxsim.llm.cache import read_jsonl
    from jaxsim.scenarios import command

    folder = study.PUBLISHED / f"agency_study_{name}"
    table = pd.read_csv(folder / "study.csv")
    assert table["architecture"].iloc[0] == "heuristic" and len(table) >= 5
    assert np.all(np.isfinite(table[["nd", "wis", "persistence_wis"]].to_numpy(float)))
    archetypes = table[table["kind"] == "archetypes"]
    assert np.all(np.isfinite(archetypes[["unemployment_wis", "unemployment_persistence_wis"]].to_numpy(float)))
    _, options = command.read_config(folder / "config.toml")
    records = read_jsonl(folder / "answers.jsonl")
    assert {r[2] for r in records} == {llm_backends_file(options)}  # one model answered them all
    assert len(records) >= table["model_calls"].max()
    out = tmp_path / "replay"
    assert _main(["--published", name, "--plan", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"the published study {name}" in text
    for architecture in table["architecture"]:
        assert architecture in text, architecture
    assert not out.exists()


def llm_backends_file(options: dict) -> str:
    """The GGUF file name a published study's answers are keyed by."""
    from jaxsim.llm.backends import DEFAULT_GGUF_FILE, local_model

    return local_model(options["llm_local_model"]).file if options.get("llm_local_model") else DEFAULT_GGUF_FILE
