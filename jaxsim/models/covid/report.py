"""Reports of a COVID run: parameters keyed by label, reported and observed case columns
of its metrics table, and the epidemic plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jaxsim import parameters
from jaxsim.kernels.progression import STAGE_NAMES
from jaxsim.models.covid.params import CovidParams, expected_secondary_infections


def params_report(params: CovidParams, world) -> dict:
    """Parameters as JSON-friendly values: per-age and per-isolation-group tables keyed by
    the world's labels, the stage table by stage name, plus the expected secondary
    infections of week 0 and the interventions described with units."""
    report = parameters.report(params, world)
    report["expected_secondary_infections_week0"] = expected_secondary_infections(params)
    report["interventions"] = None if params.interventions is None else params.interventions.describe()
    return report


def case_columns(
    table: pd.DataFrame,
    *,
    ascertainment: float,
    observed_weekly: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """A run's metrics table with its reported and observed cases, as columns after
    ``new_cases`` (simulated symptom onsets per day):

    - ``reported_cases``: the onsets of the day that would be reported, ``new_cases`` x
      ``ascertainment`` (an expected count, float), every day;
    - ``reported_cases_week``: ``reported_cases`` summed over a week of the run (days
      7k..7k+6; day 0 is the first day of the start week, so the weeks are the data's
      epiweeks), on the week's last day; NaN on the other days and for a last week the run
      does not finish;
    - ``observed_cases_week``: the observed cases of that week (``observed_weekly``:
      ``week_start_day`` and ``cases``, e.g. the neighbourhoods' reported cases scaled to
      the agents), on the same row; NaN on the other days and for weeks without data.

    So weekly simulated and observed cases sit side by side on each week's last row, and
    a week's sum of ``reported_cases`` is its ``reported_cases_week``."""
    if "new_cases" not in table:
        raise KeyError("case_columns: the table has no new_cases column")
    days = len(table)
    day = table["day"].to_numpy() if "day" in table else np.arange(days)
    reported = table["new_cases"].to_numpy(np.float64) * float(ascertainment)
    weeks = days // 7
    week_sum = np.full(days, np.nan)
    if weeks:
        week_sum[np.arange(weeks) * 7 + 6] = reported[: weeks * 7].reshape(weeks, 7).sum(axis=1)
    observed = np.full(days, np.nan)
    if observed_weekly is not None and len(observed_weekly):
        last_day = observed_weekly["week_start_day"].to_numpy(np.int64) + 6
        rows = np.searchsorted(day, last_day)
        inside = (rows < days) & (day[np.minimum(rows, days - 1)] == last_day)
        observed[rows[inside]] = observed_weekly["cases"].to_numpy(np.float64)[inside]
    out = table.copy()
    at = list(out.columns).index("new_cases") + 1
    for offset, (name, values) in enumerate(
        (("reported_cases", reported), ("reported_cases_week", week_sum), ("observed_cases_week", observed))
    ):
        if name in out:
            out = out.drop(columns=name)
        out.insert(min(at + offset, len(out.columns)), name, values)
    return out


def plot_epidemic(
    table: pd.DataFrame,
    path: Path,
    *,
    title: str,
    observed_weekly: pd.DataFrame | None = None,
    ascertainment: float | None = None,
):
    """Stage curves, and weekly simulated cases against observed cases where known.

    ``observed_weekly`` has columns ``week_start_day`` (day index of the week's first day)
    and ``cases``; simulated weekly onsets are scaled by ``ascertainment`` to compare with
    reported cases. The x axis shows calendar dates when the table's ``date`` column is
    filled in, days of the run otherwise. Weekly series are step lines over their weeks:
    a week without data is a gap, and a series that starts or ends inside the window
    starts or ends there (no drop to zero). Legends sit to the right of the panels.
    Returns the figure (saved to ``path`` and closed).
    """
    from jaxsim.outputs import format_date_axis, legend_outside, plot_periods, pyplot, run_dates, save_figure

    plt = pyplot()
    dates = run_dates(table)
    day = table["day"].to_numpy()

    def at(days):  # day indices to x positions
        days = np.asarray(days)
        return days if dates is None else dates[0] + days.astype("timedelta64[D]")

    # Fixed margins with room on the right for the legends: one draw (at saving), no layout pass.
    fig, (ax_stage, ax_cases) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    fig.subplots_adjust(left=0.08, right=0.7, top=0.95, bottom=0.1, hspace=0.1)
    x = at(day)
    for name in STAGE_NAMES:
        if name in table:
            ax_stage.plot(x, table[name].to_numpy(), label=name)
    if "isolating" in table:
        ax_stage.plot(x, table["isolating"].to_numpy(), label="isolating", linestyle="--", color="grey")
    ax_stage.set_yscale("symlog", linthresh=10)
    ax_stage.set_ylabel("agents (symlog scale)")
    ax_stage.set_title(title)

    week = np.timedelta64(7, "D") if dates is not None else 7
    handles = []
    if "new_cases" in table:
        weeks = len(day) // 7
        if weeks:
            weekly = table["new_cases"].to_numpy(np.float64)[: weeks * 7].reshape(weeks, 7).sum(axis=1)
            scale = 1.0 if ascertainment is None else ascertainment
            label = ("simulated reported cases\nper week (onsets x {:g})".format(scale) if ascertainment is not None
                     else "simulated onsets per week")
            handles.append(plot_periods(ax_cases, at(day[0] + np.arange(weeks) * 7), weekly * scale, week,
                                        label=label, linewidth=1.8, color="tab:blue"))
    if observed_weekly is not None and len(observed_weekly):
        starts = observed_weekly["week_start_day"].to_numpy(np.int64)
        cases = observed_weekly["cases"].to_numpy(np.float64)
        # On the grid of weeks from the first to the last known one: a missing week is NaN (a gap).
        grid = np.arange(starts.min(), starts.max() + 1, 7)
        values = np.full(grid.shape, np.nan)
        values[np.searchsorted(grid, starts)] = cases
        handles.append(plot_periods(ax_cases, at(grid), values, week, color="black",
                                    label="observed reported cases\nper week", linewidth=1.8))
    ax_cases.set_ylabel("cases per week")
    ax_cases.set_ylim(bottom=0)
    offset = 0.02
    if "new_cases" in table:
        ax_daily = ax_cases.twinx()
        handles += ax_daily.plot(x, table["new_cases"].to_numpy(), color="tab:orange", alpha=0.5, linewidth=1,
                                 label="simulated onsets per day\n(right axis)")
        ax_daily.set_ylabel("onsets per day", color="tab:orange")
        ax_daily.set_ylim(bottom=0)
        offset = 0.12
    legend_outside(ax_cases, handles, [h.get_label() for h in handles], offset=offset)
    legend_outside(ax_stage, offset=offset)
    if dates is None:
        ax_cases.set_xlabel("day of the run")
    else:
        format_date_axis(ax_cases, weeks=len(day) // 7 + 1)
        ax_cases.set_xlabel("date (ticks on Sundays, the first days of epiweeks)")
    save_figure(fig, path)
    return fig


__all__ = ["case_columns", "params_report", "plot_epidemic"]
