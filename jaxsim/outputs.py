"""Writers for a run's outputs: per-day metric tables, ``run.json``, plots; never half-written.

Tables follow the model's declared metrics (:class:`jaxsim.engine.Metric`): declared
order, counts and flows as integers, every other metric as it is (a whole-looking float
stays a float); vector metrics spread into ``<name>_<label>`` columns.

Every table goes out twice (:func:`write_table`, :func:`write_metrics_csv`): as CSV and as
Parquet next to it (``name.csv`` and ``name.parquet``, same columns), the Parquet with
its dtypes kept (integers as int64, floats as float64 with nulls for NaN, text as strings)
and dates as dates (``date`` and ``*_date`` columns: ``date32``, null where the CSV has an
empty cell). pyarrow is imported when a table is written, not before.
"""

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

from jaxsim.errors import InputError


def metrics_table(
    metrics: Mapping[str, np.ndarray],
    *,
    start_date: pd.Timestamp | None = None,
    vector_labels: Mapping[str, Sequence[str]] | None = None,
    declared: Sequence | None = None,
    world=None,
    first_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per day: ``day``, ``date`` (ISO date, empty when the start date is unknown),
    scalar metrics (``first_columns`` first, then declared ones in declared order, then the
    others by name), then vector metrics spread into ``<name>_<label>`` columns.

    Args:
        declared: the model's :class:`jaxsim.engine.Metric` declarations: counts and flows
            become integers, the ``by`` category of a vector metric labels its columns
            (from ``world``).
        vector_labels: ``{metric: labels}`` for vector metrics (overrides ``by``).
    """
    declared = {m.name: m for m in (declared or ())}
    vector_labels = dict(vector_labels or {})
    if world is not None:
        for name, metric in declared.items():
            if metric.by is not None and name not in vector_labels:
                try:
                    vector_labels[name] = list(world.category_labels(metric.by))
                except KeyError:
                    pass
    days = len(next(iter(metrics.values())))
    table = {"day": np.arange(days)}
    if start_date is not None:
        table["date"] = (pd.Timestamp(start_date) + pd.to_timedelta(np.arange(days), unit="D")).strftime(
            "%Y-%m-%d"
        )
    else:
        table["date"] = [""] * days
    scalar = [k for k, v in metrics.items() if np.ndim(v) == 1]
    ordered = [k for k in first_columns if k in scalar]
    ordered += [k for k in declared if k in scalar and k not in ordered]
    ordered += sorted(k for k in scalar if k not in ordered)

    def column(name, values):
        metric = declared.get(name)
        if metric is not None and metric.integer:
            return np.rint(values).astype(np.int64)
        return values

    for k in ordered:
        table[k] = column(k, np.asarray(metrics[k]))
    for k in sorted(k for k, v in metrics.items() if np.ndim(v) == 2):
        values = np.asarray(metrics[k])
        labels = list(vector_labels.get(k, [str(i) for i in range(values.shape[1])]))
        if len(labels) != values.shape[1]:
            raise InputError(f"metric {k!r} has {values.shape[1]} columns but {len(labels)} labels")
        for j, label in enumerate(labels):
            table[f"{k}_{label}"] = column(k, values[:, j])
    return pd.DataFrame(table)


def _atomic_write(path: Path, write) -> None:
    """Call ``write(temporary path)`` next to ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename (never half-written)."""

    def write(tmp):
        with open(tmp, "w") as handle:
            handle.write(text)

    _atomic_write(path, write)


class StagedOutputs:
    """Write a run's files into a hidden staging folder, moved into ``out`` only on success.

    Use as a context manager: ``with StagedOutputs(out) as stage: write(stage.path / "x")``.
    If the block raises, nothing of this run appears in ``out`` (earlier files there stay).
    """

    def __init__(self, out: Path):
        self.out = Path(out)

    def __enter__(self) -> "StagedOutputs":
        self._created = not self.out.exists()  # removed again if the run fails (no empty folder left)
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
            if exc_type is not None and self._created:
                try:
                    self.out.rmdir()  # only when empty
                except OSError:
                    pass


def is_date_column(name: str, values: pd.Series) -> bool:
    """Whether a table's column holds calendar dates: datetime values, or ISO-date text
    (``YYYY-MM-DD``, empty where unknown) in a column named ``date`` or ``*_date``."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    return (str(name) == "date" or str(name).endswith("_date")) and not pd.api.types.is_numeric_dtype(values)


def arrow_table(table: pd.DataFrame):
    """``table`` as a ``pyarrow.Table`` with the same columns in the same order: date
    columns (:func:`is_date_column`) as ``date32`` (null where empty), numbers and booleans
    with their dtypes (NaN as null in floats), any other column as strings (null where
    missing)."""
    import pyarrow as pa

    arrays = []
    for name in table.columns:
        values = table[name]
        if is_date_column(name, values):
            if pd.api.types.is_datetime64_any_dtype(values):
                dates = values
            else:
                dates = pd.to_datetime(values.where(values.notna() & (values.astype(str) != ""), None),
                                       format="ISO8601")
            arrays.append(pa.array([None if pd.isna(d) else d.date() for d in dates], type=pa.date32()))
        elif pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            arrays.append(pa.array(values.to_numpy(), from_pandas=True))
        else:
            arrays.append(pa.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                                    for v in values], type=pa.string()))
    return pa.Table.from_arrays(arrays, names=[str(c) for c in table.columns])


def write_parquet(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` as Parquet (:func:`arrow_table`) via a temporary file and rename."""
    import pyarrow.parquet as pq

    data = arrow_table(table)
    _atomic_write(Path(path), lambda tmp: pq.write_table(data, tmp))


def write_table(table: pd.DataFrame, directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``table`` as ``directory/name.csv`` and ``directory/name.parquet`` (the same
    columns; the Parquet with dtypes and dates, :func:`arrow_table`), each never
    half-written. Returns the two paths."""
    directory = Path(directory)
    csv, parquet = directory / f"{name}.csv", directory / f"{name}.parquet"
    atomic_write_text(csv, table.to_csv(index=False))
    write_parquet(table, parquet)
    return csv, parquet


def write_metrics_csv(table: pd.DataFrame, path: Path) -> None:
    """Write a metrics table as ``path`` (CSV) and as Parquet next to it (same name,
    ``.parquet``): :func:`write_table`."""
    path = Path(path)
    write_table(table, path.parent, path.name.removesuffix(".csv"))


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


def pyplot():
    """matplotlib's pyplot with the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_dates(table: pd.DataFrame) -> np.ndarray | None:
    """Calendar dates of a metrics table's rows (``datetime64[D]``) when its ``date``
    column is filled in on every row; ``None`` otherwise (a run without a start date)."""
    if "date" not in table or not len(table):
        return None
    values = table["date"]
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.to_numpy().astype("datetime64[D]")
    text = values.astype(str)
    if values.isna().any() or (text == "").any():
        return None
    return pd.to_datetime(text, format="ISO8601").to_numpy().astype("datetime64[D]")


def period_steps(starts, values, width) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a step line (``drawstyle="steps-post"``) for per-period values: ``x``
    the periods' starts and the last one's end (start + ``width``), ``y`` the values with
    the last one repeated. A NaN value leaves a gap over its period, and the line starts
    and ends at its first and last values: it never drops to zero at its ends (as
    ``Axes.stairs`` does with its default baseline)."""
    starts = np.asarray(starts)
    values = np.asarray(values, float)
    if starts.shape != values.shape or starts.ndim != 1:
        raise InputError(f"period_steps: {starts.shape[0] if starts.ndim else 0} starts for {values.shape} values")
    if not starts.size:
        return starts, values
    return np.append(starts, starts[-1] + width), np.append(values, values[-1])


def plot_periods(ax, starts, values, width, **kwargs):
    """Per-period values (e.g. weekly cases) as a step line on ``ax`` (:func:`period_steps`:
    NaN gaps, no drops to zero at the ends). Returns the ``Line2D``."""
    x, y = period_steps(starts, values, width)
    return ax.plot(x, y, drawstyle="steps-post", **kwargs)[0]


def _date_tick_formatter():
    """Tick labels for a date axis: ``Nov 22`` (``Nov`` where every tick is a month's first
    day), with the year under the first tick and under each tick where it changes."""
    from matplotlib import dates as mdates
    from matplotlib.ticker import Formatter

    class DateTicks(Formatter):
        def __call__(self, x, pos=None):
            return mdates.num2date(x).strftime("%Y-%m-%d")

        def format_ticks(self, values):
            days = [mdates.num2date(v) for v in values]
            pattern = "%b" if days and all(d.day == 1 for d in days) else "%b %d"
            labels, year = [], None
            for d in days:
                labels.append(d.strftime(pattern) + (f"\n{d.year}" if d.year != year else ""))
                year = d.year
            return labels

    return DateTicks()


def format_date_axis(ax, *, weeks: int | None = None, months: int | None = None) -> None:
    """Calendar dates on ``ax``'s x axis: ``Nov 22`` (``Nov`` for monthly ticks), the year
    under the first tick and where it changes. With ``weeks`` (the span shown, in weeks)
    the ticks fall on Sundays, the first days of epiweeks; with ``months`` on the first
    days of months; at most about 10 of them."""
    import matplotlib.dates as mdates

    if weeks is not None:
        locator = mdates.WeekdayLocator(byweekday=mdates.SU, interval=max(1, -(-int(weeks) // 10)))
    elif months is not None:
        locator = mdates.MonthLocator(interval=max(1, -(-int(months) // 10)))
    else:
        locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(_date_tick_formatter())


def legend_outside(ax, handles=None, labels=None, *, offset: float = 0.01, **kwargs):
    """A legend to the right of ``ax``, outside the plotting area (never over the data);
    ``offset`` in axes widths past its right edge (more with a twin axis's labels there)."""
    options = dict(loc="upper left", bbox_to_anchor=(1.0 + offset, 1.0), borderaxespad=0.0, fontsize=8,
                   frameon=False)
    options.update(kwargs)
    if handles is None:
        return ax.legend(**options)
    return ax.legend(handles, labels, **options)


def plot_metrics(
    table: pd.DataFrame,
    path: Path,
    *,
    title: str,
    declared: Sequence = (),
    metrics: Sequence[str] | None = None,
) -> None:
    """The declared metrics of a run over days: counts on one panel, flows and amounts on
    another, levels and probabilities on a third (panels without metrics are left out)."""
    plt = pyplot()
    declared = {m.name: m for m in declared}
    names = [c for c in table.columns if c not in ("day", "date")] if metrics is None else list(metrics)
    panels = {"count": [], "flow": [], "level": []}
    units = {"count": set(), "flow": set(), "level": set()}
    for column in names:
        base = column if column in declared else next((d for d in declared if column.startswith(d + "_")), column)
        kind = declared[base].kind if base in declared else "level"
        panel = "count" if kind == "count" else "flow" if kind in ("flow", "amount") else "level"
        panels[panel].append(column)
        if base in declared and declared[base].unit:
            units[panel].add(declared[base].unit)

    def ylabel(panel):
        unit = ", ".join(sorted(units[panel])) or {"count": "agents", "flow": "agents", "level": "value"}[panel]
        return f"{unit} per day" if panel == "flow" and "per day" not in unit else unit
    used = [(kind, cols) for kind, cols in panels.items() if cols]
    if not used:
        raise InputError("plot_metrics: no metric to plot")
    fig, axes = plt.subplots(len(used), 1, figsize=(9, 3 * len(used) + 1), sharex=True, squeeze=False)
    dates = run_dates(table)
    x = table["day"].to_numpy() if dates is None else dates
    for ax, (kind, cols) in zip(axes[:, 0], used):
        for column in cols[:20]:
            ax.plot(x, table[column].to_numpy(), label=column)
        ax.set_ylabel(ylabel(kind))
        legend_outside(ax, fontsize=7)
    axes[0, 0].set_title(title)
    if dates is None:
        axes[-1, 0].set_xlabel("day of the run")
    else:
        format_date_axis(axes[-1, 0])
        axes[-1, 0].set_xlabel("date")
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


def plot_group_probabilities(
    table: np.ndarray, names: Sequence[str], path: Path, *, title: str,
    xlabel: str = "week of the run", ylabel: str = "daily isolation probability",
) -> None:
    """Each group's value by period (``table`` float ``[periods, G]``, e.g. a behaviour
    layer's answers) as step lines, one per group, named in the legend."""
    plt = pyplot()
    table = np.asarray(table, float)
    if table.ndim != 2 or table.shape[1] != len(names):
        raise InputError(f"group table has shape {table.shape}, expected [periods, {len(names)}]")
    fig, ax = plt.subplots(figsize=(9, 5))
    edges = np.arange(table.shape[0] + 1)
    cmap = plt.get_cmap("tab20")
    for g, name in enumerate(names):
        ax.stairs(table[:, g], edges, label=name, color=cmap(g % 20), linewidth=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2 if len(names) > 8 else 1, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, path)
