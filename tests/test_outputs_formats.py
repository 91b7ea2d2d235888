"""Outputs people load straight into their tools: every table as CSV and Parquet (same
columns, dtypes kept, dates as dates), reported and observed cases in the COVID metrics
table, plots with dates, units and honest observed series, and one self-contained
``report.html`` per run."""

import base64
import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from jaxsim import outputs, report
from jaxsim.engine import Metric
from jaxsim.models.covid.report import case_columns, plot_epidemic
from jaxsim.nyc.economy import plot_unemployment

START = pd.Timestamp("2020-11-22")  # a Sunday: the first day of epiweek 202048
DECLARED = (Metric("infected", "count", "agents"), Metric("new_cases", "flow", "agents"),
            Metric("price", "level", "USD"), Metric("by_age", "flow", "agents"))


def covid_table(days: int = 42, *, start=START) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    metrics = {name: rng.integers(0, 5000, days).astype(np.float32)
               for name in ("susceptible", "exposed", "infected", "recovered", "dead", "isolating")}
    metrics["new_cases"] = rng.integers(1, 60, days).astype(np.float32)
    return outputs.metrics_table(metrics, start_date=start, declared=DECLARED)


def mixed_table(start=START) -> pd.DataFrame:
    days = 10
    metrics = {"infected": np.arange(days, dtype=np.float32) * 3, "new_cases": np.ones(days, np.float32),
               "price": np.linspace(1, 2, days), "by_age": np.arange(2 * days, dtype=np.float32).reshape(days, 2)}
    table = outputs.metrics_table(metrics, start_date=start, declared=DECLARED, vector_labels={"by_age": ["U19", "65A"]})
    table["note"] = ["a", None] * 5
    table["price"] = table["price"].where(table["day"] != 4)  # a NaN
    return table


# ---------------------------------------------------------------------------- tables
def test_parquet_is_the_csv_table_with_dtypes_and_dates(tmp_path):
    table = mixed_table()
    csv, parquet = outputs.write_table(table, tmp_path, "metrics")
    assert (csv.name, parquet.name) == ("metrics.csv", "metrics.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "metrics.parquet"]  # no temporary left

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(parquet)
    assert schema.names == list(table.columns)
    assert schema.field("date").type == pa.date32()
    assert schema.field("day").type == pa.int64()
    assert schema.field("infected").type == pa.int64()          # a count: whole agents
    assert schema.field("by_age_U19").type == pa.int64()        # a vector flow, spread into columns
    assert schema.field("price").type == pa.float64()
    assert schema.field("note").type == pa.string()

    from_parquet = pd.read_parquet(parquet)
    from_csv = pd.read_csv(csv)
    assert from_parquet["date"].iloc[0] == dt.date(2020, 11, 22)
    assert from_parquet["date"].iloc[-1] == dt.date(2020, 12, 1)
    # The same table: dates as their ISO text, every other column value for value.
    as_text = from_parquet.assign(date=[d.isoformat() for d in from_parquet["date"]])
    pd.testing.assert_frame_equal(as_text, from_csv, check_dtype=False)
    assert np.isnan(from_parquet["price"].iloc[4]) and from_parquet["note"].isna().sum() == 5


def test_a_run_without_a_start_date_has_null_dates(tmp_path):
    table = mixed_table(start=None)
    outputs.write_metrics_csv(table, tmp_path / "metrics.csv")
    assert (tmp_path / "metrics.parquet").is_file()  # every metrics.csv comes with its Parquet
    from_parquet = pd.read_parquet(tmp_path / "metrics.parquet")
    assert from_parquet["date"].isna().all()
    pd.testing.assert_frame_equal(from_parquet.drop(columns="date"),
                                  pd.read_csv(tmp_path / "metrics.csv").drop(columns="date"), check_dtype=False)


def test_pyarrow_parquet_is_imported_only_when_writing():
    code = "import sys, jaxsim.outputs, jaxsim.report; print('pyarrow.parquet' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_case_columns_put_weekly_reported_and_observed_cases_on_each_weeks_last_day():
    table = covid_table(days=17)  # 2 whole weeks and 3 days
    observed = pd.DataFrame({"week_start_day": [7, 14], "cases": [80.0, 90.0]})  # week 0 unknown
    out = case_columns(table, ascertainment=0.25, observed_weekly=observed)
    columns = list(out.columns)
    at = columns.index("new_cases")
    assert columns[at + 1: at + 4] == ["reported_cases", "reported_cases_week", "observed_cases_week"]
    np.testing.assert_allclose(out["reported_cases"], table["new_cases"] * 0.25)
    weekly = out["reported_cases_week"].to_numpy()
    assert np.flatnonzero(np.isfinite(weekly)).tolist() == [6, 13]  # the partial third week has none
    np.testing.assert_allclose(weekly[[6, 13]], [out["reported_cases"][:7].sum(), out["reported_cases"][7:14].sum()])
    observed_column = out["observed_cases_week"].to_numpy()
    assert np.flatnonzero(np.isfinite(observed_column)).tolist() == [13]  # week 0 unknown, week 2 unfinished
    assert observed_column[13] == 80.0
    assert list(table.columns) == [c for c in columns if c not in ("reported_cases", "reported_cases_week",
                                                                   "observed_cases_week")]


# ---------------------------------------------------------------------------- plots
def line(fig, label_start: str):
    found = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label().startswith(label_start)]
    assert len(found) == 1, [ln.get_label() for ax in fig.axes for ln in ax.get_lines()]
    return found[0]


def assert_legends_off_the_data(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the saved figure is closed: draw it again, as saved
    canvas.draw()
    renderer = canvas.get_renderer()
    plotting = [ax.get_window_extent(renderer) for ax in fig.axes if ax.axison]
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for area in plotting:
            assert not box.overlaps(area), (box, area)


def test_epidemic_plot_draws_observed_weeks_with_gaps_not_zeros(tmp_path):
    table = covid_table(days=42)  # six weeks
    # Weeks 1, 2 and 4 known: the series starts and ends inside the window, week 3 is missing.
    observed = pd.DataFrame({"week_start_day": [7, 14, 28], "cases": [120.0, 150.0, 90.0]})
    fig = plot_epidemic(table, tmp_path / "epidemic.png", title="t", observed_weekly=observed, ascertainment=0.25)
    assert (tmp_path / "epidemic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    seen = line(fig, "observed")
    y = np.asarray(seen.get_ydata(), float)
    x = np.asarray(seen.get_xdata())
    assert 0 not in y                                      # never drawn down to zero
    assert np.isnan(y).tolist() == [False, False, True, False, False]  # weeks 1, 2, (3 missing), 4, end
    assert y[np.isfinite(y)].tolist() == [120.0, 150.0, 90.0, 90.0]
    assert x[0] == np.datetime64("2020-11-29") and x[-1] == np.datetime64("2020-12-27")  # ends with week 4
    assert seen.get_drawstyle() == "steps-post"
    assert not [p for ax in fig.axes for p in ax.patches]  # no stairs patch with a baseline at 0
    # The simulated weekly reported cases: onsets x ascertainment per whole week.
    simulated = line(fig, "simulated reported")
    expected = table["new_cases"].to_numpy(float).reshape(6, 7).sum(axis=1) * 0.25
    np.testing.assert_allclose(np.asarray(simulated.get_ydata(), float), np.append(expected, expected[-1]))


def test_epidemic_plot_has_dates_units_and_legends_off_the_data(tmp_path):
    fig = plot_epidemic(covid_table(days=42), tmp_path / "e.png", title="t",
                        observed_weekly=pd.DataFrame({"week_start_day": [0], "cases": [10.0]}), ascertainment=0.25)
    stage, cases, daily = fig.axes
    for ax, unit in ((stage, "agents"), (cases, "cases per week"), (daily, "onsets per day")):
        assert unit in ax.get_ylabel()
    assert cases.get_xlabel().startswith("date")
    assert np.asarray(line(fig, "infected").get_xdata()).dtype.kind == "M"  # calendar dates, not day numbers
    labels = [t.get_text() for t in cases.get_xticklabels()]
    assert labels[0] == "Nov 22\n2020" and "Nov 29" in labels and "Dec 06" in labels
    assert_legends_off_the_data(fig)


def test_epidemic_plot_without_a_start_date_counts_days(tmp_path):
    fig = plot_epidemic(covid_table(days=14, start=None), tmp_path / "e.png", title="t")
    assert fig.axes[1].get_xlabel() == "day of the run"
    assert np.asarray(line(fig, "infected").get_xdata()).dtype.kind in "iu"


def test_unemployment_plot_keeps_missing_months_missing(tmp_path):
    months = pd.period_range("2020-03", periods=8, freq="M")
    simulated = np.full((8, 5), 0.1)
    observed = np.full((8, 5), 0.12)
    observed[:2, 1] = np.nan  # Brooklyn's data starts in May
    observed[-3:, 2] = np.nan  # Manhattan's ends in July
    fig = plot_unemployment(tmp_path / "economy.png", months, simulated, observed, np.ones(5, bool),
                            title="t", train_months=5)
    assert (tmp_path / "economy.png").read_bytes()[:4] == b"\x89PNG"
    for panel, missing in ((1, [0, 1]), (2, [5, 6, 7])):
        ax = fig.axes[panel]
        seen = next(ln for ln in ax.get_lines() if ln.get_label() == "observed")
        y = np.asarray(seen.get_ydata(), float)
        assert np.flatnonzero(np.isnan(y)).tolist() == missing and 0 not in y
        assert np.asarray(seen.get_xdata())[0] == np.datetime64("2020-03-01")
        assert "%" in ax.get_ylabel()
    assert [t.get_text() for t in fig.axes[3].get_xticklabels()][0].startswith("Mar\n2020")
    assert fig.axes[5].get_legend() is not None and not fig.axes[5].axison  # in the empty sixth panel
    assert_legends_off_the_data(fig)


# ---------------------------------------------------------------------------- report.html
def test_report_embeds_the_plots_shows_key_numbers_and_links_the_files(tmp_path):
    table = covid_table(days=14)
    outputs.write_metrics_csv(table, tmp_path / "metrics.csv")
    plot_epidemic(table, tmp_path / "epidemic.png", title="t")
    info = {
        "scenario": "covid_nyc", "seed": 7, "days": 14, "start_date": START,
        "totals": {"infections": 12345, "cases": 678, "deaths": 9},
        "timing": {"compile_seconds": 1.5, "run_seconds": 0.25},
        "parameters": {"transmission_rate": [3.5, 3.25], "susceptibility": {"U19": 0.5, "65A": 1.25}},
        "heldout_metrics": {"mae": 12.5, "nd": 0.125},
        "arguments": {"out": str(tmp_path)},
    }
    outputs.write_json(info, tmp_path / "run.json")
    path = report.write_report(tmp_path, title="COVID-19 <Astoria>", info=info)
    assert path == tmp_path / "report.html"
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<title>COVID-19 &lt;Astoria&gt;</title>" in page
    png = (tmp_path / "epidemic.png").read_bytes()
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in page  # embedded, not linked
    assert 'src="epidemic.png"' not in page and "http" not in page.replace("http-equiv", "")
    for text in ("12,345", "678", "compile_seconds", "1.5", "Held-out scores", "nd", "0.125",
                 "transmission_rate", "3.5, 3.25", "susceptibility.65A", "1.25", "2020-11-22"):
        assert text in page, text
    for name in ("metrics.csv", "metrics.parquet", "run.json", "epidemic.png"):
        assert f'href="{name}"' in page, name
    assert 'href="report.html"' not in page
    assert not list(tmp_path.glob(".*"))


def test_report_tables_fold_long_records():
    rows = {f"k{i}": float(i) for i in range(report.MAX_ROWS + 5)}
    page = report.report_html(title="t", info={"parameters": rows, "timing": {"run_seconds": 2.0}},
                              source="summary.json")
    assert "5 more in summary.json" in page
    assert "<details><summary>Parameters" in page and "<h2>Timing</h2>" in page
    assert report.format_value(list(range(20))) == "0, 1, …, 19 (20 values)"
    assert report.format_value([[1, 2, 3], [4, 5, 6]]) == "[2 × 3 values]"
    assert report.format_value(None) == "–" and report.format_value(1234567) == "1,234,567"
    assert report.format_value([202047, 202048], "start_epiweek") == "202047, 202048"
    json.dumps(report.key_numbers({"a": np.float32(1.5), "b": {"c": np.arange(3)}}))  # JSON-friendly values


# ---------------------------------------------------------------------------- a scenario's folder
def test_covid_nyc_writes_parquet_case_columns_and_report(tmp_path):
    from jaxsim.scenarios import covid_nyc

    out = tmp_path / "run"
    assert covid_nyc.main(["--agents", "2000", "--days", "15", "--no-progress", "--out", str(out)]) == 0
    csv, parquet = pd.read_csv(out / "metrics.csv"), pd.read_parquet(out / "metrics.parquet")
    assert list(parquet.columns) == list(csv.columns)
    pd.testing.assert_frame_equal(parquet.assign(date=[d.isoformat() for d in parquet["date"]]), csv,
                                  check_dtype=False)
    run = json.loads((out / "run.json").read_text())
    ascertainment = run["arguments"]["ascertainment"]
    np.testing.assert_allclose(csv["reported_cases"], csv["new_cases"] * ascertainment)
    weekly = csv["observed_cases_week"]
    assert weekly.notna().tolist() == [day in (6, 13) for day in range(15)]  # each epiweek's Saturday
    np.testing.assert_allclose(weekly.dropna(), run["observed_cases"]["cases_week"][:2])
    assert csv["reported_cases_week"].notna().sum() == 2
    page = (out / "report.html").read_text()
    assert base64.b64encode((out / "epidemic.png").read_bytes()).decode() in page
    assert 'href="metrics.parquet"' in page and f"{run['totals']['infections']:,}" in page
