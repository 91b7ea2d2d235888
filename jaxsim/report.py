"""One self-contained HTML page per run, ``report.html``: the run's plots embedded (PNG as
base64, so the page opens anywhere on its own), tables of the key numbers of its
``run.json`` (totals, timing, held-out scores, parameters, ...) and links to the run's
files (CSV, Parquet, JSON) next to it.

    from jaxsim import report
    report.write_report(out, title="COVID-19, Astoria", info=run_info)

Core module: it knows no model and no NYC code; a scenario passes the same dictionary it
writes as ``run.json``.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from jaxsim.outputs import atomic_write_text, to_jsonable

#: File name of the report in a run's folder.
REPORT_FILE = "report.html"

#: Sections of a run's record shown by default, in this order, when present (each a
#: dictionary in ``run.json``; nested keys flattened to ``a.b.c``). The first ones are
#: shown open, the others folded (:data:`OPEN_SECTIONS`).
SECTIONS = (
    "totals", "timing", "heldout_metrics", "train_metrics", "baselines", "retrospective", "whole_horizon",
    "prospective", "counterfactual", "calibration", "fit", "unemployment", "economy_totals",
    "fitted_parameters", "parameters", "initial_conditions", "observed_cases", "population", "llm", "devices",
    "arguments",
)
#: Sections shown open; the others are folded under their title.
OPEN_SECTIONS = ("run", "totals", "timing", "heldout_metrics", "train_metrics", "retrospective", "whole_horizon",
                 "calibration", "economy_totals", "fitted_parameters")
#: Rows shown per section at most (the rest is in the run's JSON file).
MAX_ROWS = 80
#: Values of a list shown in full up to this length (longer: the first, the last, the count).
MAX_LIST = 8

TITLES = {
    "run": "Run",
    "heldout_metrics": "Held-out scores",
    "train_metrics": "Scores on the fitted weeks",
    "whole_horizon": "Whole horizon",
}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.4em 0 1em; font-size: 0.9em; }
td, th { border-bottom: 1px solid #ddd; padding: 0.2em 0.8em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #666; font-size: 0.85em; }
details summary { cursor: pointer; font-weight: 600; margin: 0.6em 0; }
.muted { color: #777; }
"""


#: Keys whose integers are labels (epiweek 202047, seed 12345), written without separators.
PLAIN_INTEGERS = ("epiweek", "seed", "week", "year", "month", "nta", "_id")


def format_value(value, key: str = "") -> str:
    """A value as text for a table cell: numbers to 4 significant digits (integers whole,
    with thousands separators unless ``key`` names a label such as an epiweek or a seed),
    short lists in full, long ones by their ends and length, nested lists by their shape."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        plain = any(word in key.rsplit(".", 1)[-1].lower() for word in PLAIN_INTEGERS)
        return str(value) if plain else f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e7 or abs(value) < 1e-3):
            return f"{value:.4g}"
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, (list, tuple, Mapping)) for v in value):
            shape = np.shape(np.asarray(value, dtype=object)) if value else (0,)
            return f"[{' × '.join(str(s) for s in shape)} values]"
        if len(value) <= MAX_LIST:
            return ", ".join(format_value(v, key) for v in value)
        return (f"{format_value(value[0], key)}, {format_value(value[1], key)}, …, {format_value(value[-1], key)} "
                f"({len(value)} values)")
    text = str(value)
    return text if len(text) <= 240 else text[:237] + "…"


def flatten(record: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    """``(dotted key, value)`` of a nested record, depth first (lists are values)."""
    rows = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if value:
                rows.extend(flatten(value, name + "."))
            else:
                rows.append((name, None))
        else:
            rows.append((name, value))
    return rows


def key_numbers(info: Mapping, sections: Sequence[str] | None = None) -> dict[str, list[tuple[str, object]]]:
    """The tables of a report: ``{section: [(key, value), ...]}``: ``run`` (the record's
    top-level numbers and short texts), then each of ``sections`` (default
    :data:`SECTIONS`) that the record holds, flattened."""
    info = to_jsonable(dict(info))
    tables = {"run": [(k, v) for k, v in info.items()
                      if isinstance(v, (str, int, float, bool)) or (isinstance(v, list) and len(v) <= MAX_LIST
                                                                    and all(not isinstance(x, (list, dict)) for x in v))]}
    for name in SECTIONS if sections is None else sections:
        value = info.get(name)
        if isinstance(value, Mapping) and value:
            tables[name] = flatten(value)
        elif value is not None and not isinstance(value, Mapping) and sections is not None:
            tables[name] = [(name, value)]
    return {k: v for k, v in tables.items() if v}


def _table_html(rows: list[tuple[str, object]], source: str) -> str:
    shown = rows[:MAX_ROWS]
    cells = []
    for key, value in shown:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        cell = '<td class="num">' if number else "<td>"
        cells.append(f"<tr><th>{html.escape(str(key))}</th>{cell}{html.escape(format_value(value, str(key)))}</td></tr>")
    if len(rows) > len(shown):
        cells.append(f'<tr><td colspan="2" class="muted">… {len(rows) - len(shown)} more in '
                     f"{html.escape(source)}</td></tr>")
    return "<table>\n" + "\n".join(cells) + "\n</table>"


def _size(path: Path) -> str:
    size = path.stat().st_size
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""  # pragma: no cover


def report_html(
    *,
    title: str,
    info: Mapping | None = None,
    images: Sequence[Path] = (),
    files: Sequence[Path] = (),
    sections: Sequence[str] | None = None,
    source: str = "run.json",
    notes: Sequence[str] = (),
) -> str:
    """The report's HTML text: title, notes, plots (embedded), key-number tables
    (:func:`key_numbers` of ``info``), then links to ``files`` (by name: the page sits in
    their folder)."""
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="muted">Written {dt.datetime.now().strftime("%Y-%m-%d %H:%M")}; '
        f"every number here is also in {html.escape(source)}.</p>",
    ]
    parts.extend(f"<p>{html.escape(note)}</p>" for note in notes)
    if images:
        parts.append("<h2>Plots</h2>")
    for image in images:
        data = base64.b64encode(Path(image).read_bytes()).decode("ascii")
        name = html.escape(Path(image).name)
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{name}">'
                     f"<figcaption>{name}</figcaption></figure>")
    if info is not None:
        for section, rows in key_numbers(info, sections).items():
            heading = html.escape(TITLES.get(section, section.replace("_", " ").capitalize()))
            table = _table_html(rows, source)
            if section in OPEN_SECTIONS:
                parts.append(f"<h2>{heading}</h2>\n{table}")
            else:
                parts.append(f"<details><summary>{heading} ({len(rows)} values)</summary>\n{table}</details>")
    if files:
        parts.append("<h2>Files</h2>\n<ul>")
        for path in files:
            name = html.escape(Path(path).name)
            parts.append(f'<li><a href="{name}">{name}</a> <span class="muted">({_size(Path(path))})</span></li>')
        parts.append("</ul>")
    parts.extend(["</body>", "</html>", ""])
    return "\n".join(parts)


def write_report(
    directory: str | Path,
    *,
    title: str,
    info: Mapping | None = None,
    sections: Sequence[str] | None = None,
    source: str = "run.json",
    notes: Sequence[str] = (),
) -> Path:
    """Write ``directory/report.html`` (never half-written): every ``*.png`` in
    ``directory`` embedded, the key numbers of ``info`` (the run's record, as written to
    ``source``), and links to the other files there (hidden ones left out). Call it last,
    when the run's other files are in ``directory``. Returns the report's path."""
    directory = Path(directory)
    present = sorted(p for p in directory.iterdir()
                     if p.is_file() and not p.name.startswith(".") and p.name != REPORT_FILE)
    images = [p for p in present if p.suffix.lower() == ".png"]
    path = directory / REPORT_FILE
    atomic_write_text(path, report_html(title=title, info=info, images=images, files=present,
                                        sections=sections, source=source, notes=notes))
    return path


__all__ = ["PLAIN_INTEGERS", "REPORT_FILE", "SECTIONS", "format_value", "key_numbers", "report_html", "write_report"]
