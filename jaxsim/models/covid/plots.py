"""The epidemic plot of a COVID run, importable without JAX (numpy, pandas, matplotlib):
a plotting process (:mod:`jaxsim.plot_worker`) draws it while the run computes."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd


def plot_epidemic(
    table: pd.DataFrame,
    path: Path,
    *,
    title: str,
    observed_weekly: pd.DataFrame | None = None,
    ascertainment: float | None = None,
    stages: Sequence[str],
):
    """Stage curves, and weekly simulated cases against observed cases where known.

    ``observed_weekly`` has columns ``week_start_day`` (day index of the week's first day)
    and ``cases``; simulated weekly onsets are scaled by ``ascertainment`` to compare with
    reported cases. The x axis shows calendar dates when the table's ``date`` column is
    filled in, days of the run otherwise. Weekly series are step lines over their weeks:
    a week without data is a gap, and a series that starts or ends inside the window
    starts or ends there (no drop to zero). Legends sit to the right of the panels.
    ``stages`` are the stage columns drawn, in order (the model's ``STAGE_NAMES``).
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
    for name in stages:
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


def warm_up() -> None:
    """Draw a small figure of :func:`plot_epidemic`'s kind into a temporary file and discard
    it: the first figure of a process pays for loading fonts, laying out text, the date
    axis and the PNG writer (about 0.2 s on a 2-core CPU), so a plot worker
    (:mod:`jaxsim.plot_worker`) calls this while the run computes."""
    import tempfile

    days = 14
    table = pd.DataFrame({
        "day": np.arange(days),
        "date": (np.datetime64("2020-11-22") + np.arange(days).astype("timedelta64[D]")).astype(str),
        "susceptible": np.linspace(1000, 900, days), "exposed": np.linspace(5, 40, days),
        "infected": np.linspace(3, 30, days), "recovered": np.linspace(0, 30, days), "dead": np.zeros(days),
        "isolating": np.linspace(0, 10, days), "new_cases": np.arange(days, dtype=float),
    })
    observed = pd.DataFrame({"week_start_day": [0, 7], "cases": [10.0, 12.0]})
    with tempfile.TemporaryDirectory(prefix="jaxsim-warm-up-") as folder:
        plot_epidemic(table, Path(folder) / "warm-up.png", title="warm-up", observed_weekly=observed,
                      ascertainment=0.25, stages=("susceptible", "exposed", "infected", "recovered", "dead"))


__all__ = ["plot_epidemic", "warm_up"]
