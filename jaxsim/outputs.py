"""Writers for a run's outputs: ``metrics.csv``, ``run.json`` and ``epidemic.png``."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from jaxsim.population import STAGE_NAMES

#: Columns every COVID metrics.csv starts with, in this order (after ``day`` and ``date``).
CORE_METRIC_COLUMNS = STAGE_NAMES + ("new_infections", "isolating")


def metrics_table(
    metrics: Mapping[str, np.ndarray],
    *,
    start_date: pd.Timestamp | None = None,
    vector_labels: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """One row per day: ``day``, ``date`` (ISO date, empty when the start date is unknown),
    scalar metrics, then vector metrics spread into ``<name>_<label>`` columns (labels from
    ``vector_labels[name]``)."""
    vector_labels = dict(vector_labels or {})
    days = len(next(iter(metrics.values())))
    table = {"day": np.arange(days)}
    if start_date is not None:
        table["date"] = (pd.Timestamp(start_date) + pd.to_timedelta(np.arange(days), unit="D")).strftime(
            "%Y-%m-%d"
        )
    else:
        table["date"] = [""] * days
    scalar = [k for k, v in metrics.items() if np.ndim(v) == 1]
    ordered = [k for k in CORE_METRIC_COLUMNS if k in scalar] + sorted(
        k for k in scalar if k not in CORE_METRIC_COLUMNS
    )
    for k in ordered:
        values = np.asarray(metrics[k])
        table[k] = np.rint(values).astype(np.int64) if _is_count(k, values) else values
    for k in sorted(k for k, v in metrics.items() if np.ndim(v) == 2):
        values = np.asarray(metrics[k])
        labels = list(vector_labels.get(k, [str(i) for i in range(values.shape[1])]))
        if len(labels) != values.shape[1]:
            raise ValueError(f"metric {k!r} has {values.shape[1]} columns but {len(labels)} labels")
        for j, label in enumerate(labels):
            col = values[:, j]
            table[f"{k}_{label}"] = np.rint(col).astype(np.int64) if _is_count(k, col) else col
    return pd.DataFrame(table)


def _is_count(name: str, values: np.ndarray) -> bool:
    return not name.endswith("_prob") and np.allclose(values, np.rint(values))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StagedOutputs:
    """Write a run's files into a hidden staging folder, moved into ``out`` only on success.

    Use as a context manager: ``with StagedOutputs(out) as stage: write(stage.path / "x")``.
    If the block raises, nothing of this run appears in ``out`` (earlier files there stay).
    """

    def __init__(self, out: Path):
        self.out = Path(out)

    def __enter__(self) -> "StagedOutputs":
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(dir=self.out, prefix=".staging-"))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        import shutil

        try:
            if exc_type is None:
                for item in sorted(self.path.iterdir()):
                    os.replace(item, self.out / item.name)
        finally:
            shutil.rmtree(self.path, ignore_errors=True)


def write_metrics_csv(table: pd.DataFrame, path: Path) -> None:
    atomic_write_text(Path(path), table.to_csv(index=False))


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on, plus Python and the JAX backend."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("jaxsim", "jax", "jaxlib", "numpy", "flax", "optax", "pandas", "scipy", "networkx"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    try:
        import jax

        out["jax_backend"] = jax.default_backend()
        out["devices"] = [str(d) for d in jax.devices()]
    except Exception as err:  # pragma: no cover - reported, not fatal
        out["jax_backend"] = f"unavailable: {err}"
    return out


def to_jsonable(value):
    """numpy/JAX arrays and scalars to lists and numbers, recursively."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, bool, type(None))):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (pd.Timestamp,)):
        return value.strftime("%Y-%m-%d")
    array = np.asarray(value)
    if array.dtype.kind in "iub":
        return array.tolist()
    if array.dtype.kind == "f":
        return array.astype(float).tolist()
    return str(value)


def write_json(data: Mapping, path: Path) -> None:
    atomic_write_text(Path(path), json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n")


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """Save a matplotlib figure via a temporary name and rename (never half-written); close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def plot_archetype_probabilities(
    table: np.ndarray, names: Sequence[str], path: Path, *, title: str
) -> None:
    """Each archetype's daily isolation probability by week (``table`` float ``[weeks, G]``)
    as step lines, one per archetype, named in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = np.asarray(table, float)
    if table.ndim != 2 or table.shape[1] != len(names):
        raise ValueError(f"archetype table has shape {table.shape}, expected [weeks, {len(names)}]")
    fig, ax = plt.subplots(figsize=(9, 5))
    edges = np.arange(table.shape[0] + 1)
    cmap = plt.get_cmap("tab20")
    for g, name in enumerate(names):
        ax.stairs(table[:, g], edges, label=name, color=cmap(g % 20), linewidth=1.5)
    ax.set_xlabel("week of the run")
    ax.set_ylabel("daily isolation probability")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2 if len(names) > 8 else 1, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, path)
