"""Reports of a COVID run: parameters keyed by label, and the epidemic plot."""

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


def plot_epidemic(
    table: pd.DataFrame,
    path: Path,
    *,
    title: str,
    observed_weekly: pd.DataFrame | None = None,
    ascertainment: float | None = None,
) -> None:
    """Stage curves, and weekly simulated cases against observed cases where known.

    ``observed_weekly`` has columns ``week_start_day`` (day index of the week's first day)
    and ``cases``; simulated weekly onsets are scaled by ``ascertainment`` to compare with
    reported cases.
    """
    from jaxsim.outputs import pyplot, save_figure

    plt = pyplot()
    fig, (ax_stage, ax_cases) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    x = table["day"].to_numpy()
    for name in STAGE_NAMES:
        if name in table:
            ax_stage.plot(x, table[name], label=name)
    if "isolating" in table:
        ax_stage.plot(x, table["isolating"], label="isolating", linestyle="--", color="grey")
    ax_stage.set_yscale("symlog", linthresh=10)
    ax_stage.set_ylabel("agents")
    ax_stage.legend(loc="center right", fontsize=8)
    ax_stage.set_title(title)

    if "new_cases" in table:
        weeks = len(x) // 7
        if weeks:
            weekly = table["new_cases"].to_numpy()[: weeks * 7].reshape(weeks, 7).sum(axis=1)
            scale = 1.0 if ascertainment is None else ascertainment
            label = "simulated onsets per week" + (f" x ascertainment {scale:g}" if ascertainment else "")
            ax_cases.stairs(weekly * scale, np.arange(weeks + 1) * 7, label=label, linewidth=1.5)
        ax_cases.plot(x, table["new_cases"], alpha=0.4, label="simulated onsets per day")
    if observed_weekly is not None and len(observed_weekly):
        starts = observed_weekly["week_start_day"].to_numpy()
        ax_cases.stairs(
            observed_weekly["cases"].to_numpy(), np.append(starts, starts[-1] + 7),
            color="black", label="observed cases per week", linewidth=1.5,
        )
    ax_cases.set_xlabel("day")
    ax_cases.set_ylabel("cases")
    ax_cases.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


__all__ = ["params_report", "plot_epidemic"]
