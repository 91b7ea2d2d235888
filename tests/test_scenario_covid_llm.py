"""scenarios/covid_nyc.py with LLM archetypes, end to end against a real model.

The model is SmolLM2-135M-Instruct from the llm-local extra: behind llama.cpp's
OpenAI-compatible server on 127.0.0.1 (``--behavior llm``) and in process
(``--behavior llm-local``). Asserted: valid probabilities, call counts (archetypes x weeks
x samples, plus retries), caching, replay without a model, determinism at temperature 0.
Not asserted: which way the model's answers go (a model this small has no behaviour worth
asserting).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_script, require_llama_cpp_or_skip

from jaxsim import cli

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scenarios" / "covid_nyc.py"


@pytest.fixture(scope="module")
def scenario():
    return load_script(SCRIPT)


def _run(scenario, out, *extra, agents=2000, days=14):
    return cli.run_cli(scenario.main, [
        "--agents", str(agents), "--days", str(days), "--seed", "5", "--out", str(out), "--no-progress",
        *extra,
    ])


def _llm(out):
    return json.loads((Path(out) / "run.json").read_text())["llm"]


def test_http_backend_end_to_end_cache_replay_and_determinism(scenario, llama_server, tmp_path):
    cache = tmp_path / "answers.sqlite"
    server = ["--behavior", "llm", "--llm-url", llama_server.base_url, "--llm-model", llama_server.model]
    assert _run(scenario, tmp_path / "first", *server, "--llm-cache", str(cache)) == 0
    first = _llm(tmp_path / "first")
    groups, weeks = 12, 2  # age band x gender; 14 days
    assert first["backend"] == "openai" and first["model"] == llama_server.model
    assert first["llm_calls"] == groups * weeks + first["retries"]
    assert first["cache_hits"] == 0
    assert first["parse_failures"] <= first["retries"]
    assert len(first["archetypes"]) == groups and len(first["weeks"]) == weeks
    for week in first["weeks"]:
        values = np.array(list(week["probabilities"].values()))
        assert values.shape == (groups,) and np.all((values >= 0) & (values <= 1))
    # The probabilities reach the agents: metrics carry one column per archetype.
    table = pd.read_csv(tmp_path / "first" / "metrics.csv")
    week0 = table.loc[0, [f"isolation_prob_{name}" for name in first["archetypes"]]].to_numpy(float)
    np.testing.assert_allclose(week0, list(first["weeks"][0]["probabilities"].values()), atol=1e-6)
    assert (tmp_path / "first" / "archetypes.png").read_bytes()[:4] == b"\x89PNG"

    # Warm cache: no model calls, the same run.
    assert _run(scenario, tmp_path / "second", *server, "--llm-cache", str(cache)) == 0
    second = _llm(tmp_path / "second")
    assert second["llm_calls"] == 0 and second["cache_hits"] == first["llm_calls"]
    assert second["weeks"] == first["weeks"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "second" / "metrics.csv"), table)

    # Replay only, with no server listening at all: the published run, reproduced.
    dead = ["--behavior", "llm", "--llm-url", "http://127.0.0.1:9/v1", "--llm-model", llama_server.model]
    assert _run(scenario, tmp_path / "replay", *dead, "--llm-cache", str(cache), "--llm-replay") == 0
    assert _llm(tmp_path / "replay")["llm_calls"] == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "replay" / "metrics.csv"), table)

    # Temperature 0 is deterministic without any cache.
    assert _run(scenario, tmp_path / "fresh", *server, "--llm-cache", "off") == 0
    assert _llm(tmp_path / "fresh")["weeks"] == first["weeks"]


def test_replay_miss_fails_cleanly(scenario, llama_server, tmp_path, capsys):
    cache = tmp_path / "answers.sqlite"
    server = ["--behavior", "llm", "--llm-url", llama_server.base_url, "--llm-model", llama_server.model]
    assert _run(scenario, tmp_path / "week", *server, "--llm-cache", str(cache), "--archetypes", "age", days=7) == 0
    # Two weeks: the second week's prompts are not in the cache.
    out = tmp_path / "longer"
    assert _run(scenario, out, *server, "--llm-cache", str(cache), "--archetypes", "age", "--llm-replay", days=14) == 2
    err = capsys.readouterr().err
    assert "replay" in err and "error:" in err
    assert not out.exists(), "a failed run must write nothing"


def test_server_down_falls_back_to_the_prior(scenario, tmp_path):
    """No server: every request fails after its retries; the run completes on the prior
    (the heuristic's probabilities) and counts the failures."""
    dead = ["--behavior", "llm", "--llm-url", "http://127.0.0.1:9/v1", "--llm-model", "none",
            "--llm-cache", "off", "--llm-timeout", "2", "--archetypes", "age"]
    assert _run(scenario, tmp_path / "down", *dead, days=7) == 0
    llm = _llm(tmp_path / "down")
    assert llm["parse_failures"] == 6 and llm["fallbacks_to_prior"] == 6
    assert llm["backend_errors"] and llm["weeks"][0]["fell_back_to_prior"] == llm["archetypes"]


def test_in_process_backend_end_to_end(scenario, tmp_path):
    require_llama_cpp_or_skip()
    args = ["--behavior", "llm-local", "--archetypes", "age", "--llm-cache", str(tmp_path / "c.sqlite")]
    assert _run(scenario, tmp_path / "local", *args, days=7) == 0
    llm = _llm(tmp_path / "local")
    assert llm["backend"] == "llama-cpp" and llm["model"].endswith(".gguf")
    assert llm["llm_calls"] == 6 + llm["retries"]
    values = np.array(list(llm["weeks"][0]["probabilities"].values()))
    assert values.shape == (6,) and np.all((values >= 0) & (values <= 1))
    # Deterministic at temperature 0: a second, uncached run gives the same answers.
    assert _run(scenario, tmp_path / "again", "--behavior", "llm-local", "--archetypes", "age",
                "--llm-cache", "off", days=7) == 0
    assert _llm(tmp_path / "again")["weeks"] == llm["weeks"]


@pytest.mark.parametrize("extra, message", [
    (["--behavior", "llm"], "--behavior llm needs --llm-url"),
    (["--behavior", "llm", "--llm-url", "http://127.0.0.1:1/v1"], "needs --llm-model"),
    (["--behavior", "llm", "--llm-url", "localhost:8080", "--llm-model", "m"], "must start with http"),
    (["--llm-url", "http://x/v1"], "only apply with --behavior llm"),
    (["--behavior", "llm-local", "--llm-url", "http://x/v1"], "applies to --behavior llm only"),
    (["--behavior", "llm-local", "--llm-model-path", "/nonexistent.gguf"], "no such file"),
    (["--behavior", "llm-local", "--llm-samples", "0"], "--llm-samples must be >= 1"),
    (["--behavior", "llm-local", "--llm-temperature", "-1"], "--llm-temperature"),
    (["--behavior", "llm-local", "--llm-max-tokens", "0"], "--llm-max-tokens must be >= 1, got 0"),
    (["--behavior", "llm-local", "--llm-replay", "--llm-cache", "off"], "needs a cache"),
    (["--behavior", "llm-local", "--archetypes", "age,income"], "income"),
])
def test_bad_llm_arguments(scenario, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert _run(scenario, out, *extra, agents=500, days=7) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_calibration_fits_alignment_on_llm_answers(tmp_path):
    """scenarios/calibrate_covid.py --behavior llm-local: the archetypes' answers along a
    forward run are fixed, and the per-archetype alignment offsets are fitted by gradient."""
    require_llama_cpp_or_skip()
    calibrate = load_script(ROOT / "scenarios" / "calibrate_covid.py")
    out = tmp_path / "cal"
    assert cli.run_cli(calibrate.main, [
        "--agents", "2000", "--train-weeks", "2", "--test-weeks", "1", "--steps", "3", "--seeds", "1",
        "--members", "2", "--behavior", "llm-local", "--archetypes", "age",
        "--fit", "transmission_rate,isolation_alignment_offset", "--llm-cache", str(tmp_path / "c.sqlite"),
        "--out", str(out),
    ]) == 0
    info = json.loads((out / "calibration.json").read_text())
    assert info["behavior"] == "llm-local"
    assert info["llm"]["llm_calls"] == 6 * 3 + info["llm"]["retries"]  # archetypes x (train + test) weeks
    fitted = info["fitted_parameters"]["isolation_alignment_offset"]
    start = info["initial_parameters"]["isolation_alignment_offset"]
    assert set(fitted) == {f"age={a}" for a in ["20t29", "30t39", "40t49", "50t64", "65A", "U19"]}
    assert all(v == 0.0 for v in start.values()) and any(abs(v) > 1e-3 for v in fitted.values())
