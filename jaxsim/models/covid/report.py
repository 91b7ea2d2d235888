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


def plot_epidemic(table: pd.DataFrame, path: Path, **options):
    """Stage curves, and weekly simulated cases against observed cases where known:
    :func:`jaxsim.models.covid.plots.plot_epidemic` (its options: ``title``,
    ``observed_weekly``, ``ascertainment``) with this model's stages. Returns the figure
    (saved to ``path`` and closed)."""
    from jaxsim.models.covid import plots

    return plots.plot_epidemic(table, path, stages=STAGE_NAMES, **options)


__all__ = ["case_columns", "params_report", "plot_epidemic"]
