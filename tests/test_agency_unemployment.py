"""The unemployment half of the limits-of-agency study (jaxsim/scenarios/agency_unemployment.py).

A small half (500 agents over the five boroughs, 2020-08 .. 2021-01, forecasts from 2020-11
two months ahead) runs the heuristic and one LLM archetype row with SmolLM2-135M-Instruct
in process on an empty cache, then the LLM row again from that cache only. Asserted: the
scores are the rolling-origin forecasts' (recomputed here from the returned tables),
model calls = groups x samples a month, willingness from the model differs from the
heuristic's, the replay equals the cold run bit for bit, study.csv's columns, and the
settings' one-line errors.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import require_llama_cpp_or_skip

from jaxsim.errors import InputError
from jaxsim.scenarios import agency_study as study
from jaxsim.scenarios import agency_unemployment as au

MONTHS = 6
SETTINGS = au.UnemploymentSettings(agents=500, start="2020-08", months=MONTHS, first_origin="2020-11",
                                   last_origin="2020-11", horizon=2, train_months=4, members=50, fit_steps=100,
                                   seed=1)


def _args(cache, replay):
    """The study's parsed options (sampling settings, local model, response cache)."""
    from jaxsim.scenarios import arguments

    return arguments.parse("agency_study", ["--llm-cache", str(cache)] + (["--llm-replay"] if replay else []))


@pytest.fixture(scope="module")
def half_rows(tmp_path_factory):
    require_llama_cpp_or_skip()
    tmp = tmp_path_factory.mktemp("unemployment")
    half = au.UnemploymentHalf(SETTINGS)
    heuristic = half.run("heuristic")
    rows = {"heuristic": heuristic}
    from jaxsim.llm import options as llm_options

    for mode in ("cold", "replay"):
        args = _args(tmp / "answers.sqlite", replay=mode == "replay")
        backend = llm_options.backend_from_args(args)
        try:
            rows[mode] = half.run("llm: one group", layer_args=args, attributes=("everyone",),
                                  backend=study.CallCounter(backend), samples=1)
        finally:
            backend.cache.close()
    return half, rows


def test_scores_are_the_rolling_origin_forecasts(half_rows):
    half, rows = half_rows
    assert [str(m) for m in half.months] == ["2020-08", "2020-09", "2020-10", "2020-11", "2020-12", "2021-01"]
    assert [str(half.months[o]) for o in half.origins] == ["2020-11"]
    for row in (rows["heuristic"], rows["cold"]):
        forecasts = row.forecasts
        assert set(forecasts["method"]) == {"model", "persistence", "log-linear", "model free-run"}
        model = forecasts[forecasts["method"] == "model"]
        assert sorted(set(model["target"])) == ["2020-12", "2021-01"]
        # The observed rates are the data's (percent), the model's ND recomputed from its medians.
        observed = 100 * half.observed[[4, 5]]
        regions = list(half.boroughs)
        for _, point in model.iterrows():
            h = int(point["horizon"]) - 1
            assert point["observed"] == pytest.approx(observed[h, regions.index(point["region"])])
        nd = np.abs(model["median"] - model["observed"]).sum() / model["observed"].sum()
        assert row.summary["nd"] == pytest.approx(nd, rel=1e-6)
        persistence = forecasts[forecasts["method"] == "persistence"]
        last = 100 * half.observed[3]
        np.testing.assert_allclose(persistence["median"], [last[regions.index(r)] for r in persistence["region"]])
        assert row.summary["persistence_wis"] == pytest.approx(np.abs(persistence["median"]
                                                                      - persistence["observed"]).mean())
        assert row.summary["relative_wis"] == pytest.approx(row.summary["wis"] / row.summary["persistence_wis"])
        assert 0 <= row.summary["coverage_90"] <= 1
        assert row.willingness.shape == (MONTHS, 5) and np.all((row.willingness >= 0) & (row.willingness <= 1))
        # Every row fits the market and the willingness alignment; archetype rows average
        # each group's aligned answer with the boroughs' shares of the group.
        fitted = row.per_origin[row.per_origin["method"] == "model"]
        for name in ("willingness_alignment_scale", "willingness_alignment_offset"):
            assert np.all(np.isfinite(fitted[f"fitted_{name}"].to_numpy(float))), name
        assert row.summary["alignment_scale"] == pytest.approx(fitted["fitted_willingness_alignment_scale"].mean())
        assert row.summary["alignment_offset"] == pytest.approx(fitted["fitted_willingness_alignment_offset"].mean())
    assert rows["heuristic"].group_share is None
    for mode in ("cold", "replay"):
        share = rows[mode].group_share
        assert share.shape == (5, 1) and np.allclose(share.sum(axis=1), 1.0)


def test_llm_row_calls_groups_times_samples_and_replays_bit_for_bit(half_rows):
    _, rows = half_rows
    cold, replay, heuristic = rows["cold"], rows["replay"], rows["heuristic"]
    assert heuristic.model_calls == 0 and heuristic.groups == 0
    assert cold.groups == 1
    assert cold.model_calls == 1 * 1 * MONTHS  # one group x one sample a month
    assert cold.calls_this_run == MONTHS and replay.calls_this_run == 0 and replay.cache_hits == MONTHS
    assert cold.tokens > MONTHS and replay.tokens is None  # the replay runs no model: no token counts
    assert np.isnan(au.columns(replay)["unemployment_tokens_this_run"])
    # The model's answers set the willingness: not the heuristic's.
    assert not np.allclose(cold.willingness, heuristic.willingness)
    np.testing.assert_array_equal(cold.willingness, replay.willingness)
    for key in ("nd", "wis", "coverage_50", "coverage_90", "persistence_wis", "relative_wis"):
        assert cold.summary[key] == replay.summary[key], key
    pd.testing.assert_frame_equal(cold.forecasts, replay.forecasts)


def test_study_table_columns(half_rows):
    _, rows = half_rows
    columns = au.columns(rows["cold"])
    assert set(au.SCORE_COLUMNS) <= set(columns)
    assert columns["unemployment_model_calls"] == MONTHS and columns["unemployment_model_calls_per_month"] == 1
    assert columns["unemployment_wis"] == rows["cold"].summary["wis"]
    empty = au.columns(None)  # per-agent rows have no unemployment half
    assert set(empty) == set(columns) and np.isnan(empty["unemployment_wis"])
    lines = study.unemployment_conclusion({"heuristic": rows["heuristic"], "llm: one group": rows["cold"]})
    assert lines[0].startswith("unemployment: LLM archetypes' willingness to work ")
    assert "persistence" in lines[-1]


def test_every_row_fits_the_market_and_the_willingness_alignment():
    from jaxsim.models.labour import calibration as labour_calibration

    assert au.FIT == labour_calibration.DEFAULT_FIT + labour_calibration.WILLINGNESS_ALIGNMENT
    # A fit without the alignment (another FIT) reports its fitted scale as unknown, not an error.
    per_origin = pd.DataFrame({"method": ["model", "persistence", "model"], "fitted_hiring_logit": [1.0, 9.0, 2.0]})
    assert au._mean_fitted(per_origin, "hiring_logit") == 1.5
    assert np.isnan(au._mean_fitted(per_origin, "willingness_alignment_scale"))


def test_settings_errors_and_groupings():
    with pytest.raises(InputError, match="--borough-agents must be >= 100"):
        au.unemployment_settings("cpu", 50, seed=0, ascertainment=0.25)
    cpu = au.unemployment_settings("cpu", None, seed=0, ascertainment=0.25)
    assert cpu.agents == au.MODES["cpu"]["agents"] and cpu.origins == 8
    with pytest.raises(InputError, match="unemployment span"):
        au.UnemploymentHalf(dataclasses.replace(SETTINGS, start="2015-01"))
    with pytest.raises(InputError, match="origins must lie"):
        au.UnemploymentHalf(dataclasses.replace(SETTINGS, last_origin="2021-01"))


def test_groupings_use_the_borough_as_area():
    half = au.UnemploymentHalf(dataclasses.replace(SETTINGS, agents=200))
    assert half.grouping(("everyone",)).num_groups == 1
    ages = half.grouping(("age",)).num_groups
    by_area = half.grouping(("age", "area"))
    assert by_area.num_groups == ages * 5  # every borough has every age band at 200 agents
    from jaxsim.nyc import boroughs

    for labels in by_area.labels:
        assert boroughs.borough_of_labels(labels) is not None


def test_study_plot_has_the_unemployment_panel(tmp_path):
    """study.png gains a fourth panel (unemployment WIS against model calls a month) when
    the table has the unemployment half; three panels without it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    table = pd.read_csv(study.PUBLISHED / "agency_study_smollm2" / "study.csv")
    panels = []
    original = plt.subplots

    def counting(*args, **kwargs):
        fig, axes = original(*args, **kwargs)
        panels.append(len(axes))
        return fig, axes

    plt.subplots = counting
    try:
        study.plot_study(tmp_path / "with.png", table, "with")
        study.plot_study(tmp_path / "without.png", table.assign(unemployment_wis=np.nan), "without")
    finally:
        plt.subplots = original
    assert panels == [4, 3]
    assert (tmp_path / "with.png").read_bytes()[:4] == b"\x89PNG"


def test_an_openai_compatible_server_answers_the_study(llama_server, tmp_path):
    """The study's questions through an OpenAI-compatible HTTP server (llama.cpp's, with the
    bundled model): the flags a larger model would change, end to end on a small half."""
    from jaxsim.llm import options as llm_options
    from jaxsim.scenarios import arguments

    args = arguments.parse("agency_study", ["--behavior", "llm", "--llm-url", llama_server.base_url,
                                            "--llm-model", llama_server.model, "--llm-cache", str(tmp_path / "c.sqlite")])
    backend = llm_options.backend_from_args(args)
    try:
        counter = study.CallCounter(backend)
        row = au.UnemploymentHalf(dataclasses.replace(SETTINGS, months=5, last_origin="2020-10",
                                                      first_origin="2020-10")).run(
            "llm: one group", layer_args=args, attributes=("everyone",), backend=counter, samples=1)
    finally:
        backend.cache.close()
    assert backend.name == "openai" and row.calls_this_run == 5 and row.model_calls == 5
    assert row.parse_failures == 0 and row.tokens > 5
    assert np.isfinite(row.summary["wis"]) and row.willingness.shape == (5, 5)
