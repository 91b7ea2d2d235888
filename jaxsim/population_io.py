"""Read and write population directories.

A population directory holds one synthetic population:

``agents.csv``
    A header row, then one row per agent. ``agent_id`` must be exactly ``0..N-1`` in
    order. The other columns are either integer codes (``age``, ``gender``, ``area``,
    ``household``, ...) or free text (``soc_code``). A column is read as text when it is
    in :data:`STRING_COLUMNS`, when ``population.json`` lists it under
    ``"string_columns"``, or when it has no ``mapping.json`` entry and some non-empty
    value in it is not a number. A column with a ``mapping.json`` entry must hold integer
    codes. Integer codes may be written as floats (``3.0``) but must be integral,
    non-empty and non-negative.
``mapping.json`` (optional)
    ``{"age": ["20t29", "30t39", ...], ...}``: code ``c`` of column ``age`` means
    ``mapping["age"][c]``. A missing ``mapping.json`` means no column has labels (every
    attribute stays a plain code); an entry for a column that ``agents.csv`` lacks is
    ignored.
``disease_stages.csv`` (optional)
    One stage code per agent and line (0 S, 1 E, 2 I, 3 R, 4 M), with or without a header
    line, possibly written as floats (``0.000000000000000000e+00``).
``mobility_networks_<layer>.csv`` (zero or more)
    No header; ``src,dst`` or ``src,dst,weight`` per line; each undirected edge once.
    Self-loops and repeated edges (in either orientation) are dropped on load. ``<layer>``
    (letters, digits, ``_``, ``-``) names the layer. The field's own layout,
    ``mobility_networks/<layer>.csv``, is read the same way (a layer given by both is an
    error). The field numbers its layers (``0``, ``1``, ...); which of them is the
    household or the community is a separate choice (:mod:`jaxsim.layer_roles`), made by
    whoever uses the population, not on load.
``population.json`` (optional)
    A JSON object of provenance metadata. The key ``"string_columns"`` (a list of column
    names) is reserved: it marks text columns whose values would otherwise read as
    numbers, and is consumed on load rather than kept in ``Population.metadata``.

Instead of ``agents.csv`` a directory may hold the reference tool's layout: one pickled
pandas Series per attribute (``<attr>.pickle`` or ``<attr>.pkl``); the position in the
Series is the agent id. Unpickling runs arbitrary code, so it is only read with
``allow_pickle=True`` (the scenario scripts expose this as ``--allow-pickle``).

Every malformed input raises one :class:`~jaxsim.population.PopulationError` naming the
file, the line (1-based, the header counting as line 1) or column, and the bad value.
Line numbers count physical lines; blank lines are skipped, as pandas does.

A well-formed directory may still lack what a model needs (an ``age`` column, the labels of
``mapping.json``): :func:`require_columns` says so in one line naming the file and the
column, and :func:`column_source` names the file a column was read from, for other
messages about its values.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import secrets
import shutil
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from jaxsim.population import EdgeList, Population, PopulationError

__all__ = [
    "AGENTS_FILE",
    "MAPPING_FILE",
    "STAGES_FILE",
    "METADATA_FILE",
    "NETWORK_PREFIX",
    "NETWORK_DIR",
    "STRING_COLUMNS",
    "column_source",
    "load_population",
    "require_columns",
    "save_population",
]

AGENTS_FILE = "agents.csv"
MAPPING_FILE = "mapping.json"
STAGES_FILE = "disease_stages.csv"
#: The initial state ``disease_stages.csv`` is read into (``Population.initial_states``).
STAGE_STATE = "disease_stage"
METADATA_FILE = "population.json"
NETWORK_PREFIX = "mobility_networks_"
#: The field's own layout: one ``<layer>.csv`` per layer in this folder.
NETWORK_DIR = "mobility_networks"
PICKLE_SUFFIXES = (".pickle", ".pkl")

#: Columns read as text (unless ``mapping.json`` gives them labels).
STRING_COLUMNS = frozenset({"soc_code"})

_STRING_COLUMNS_KEY = "string_columns"  # reserved key of population.json
_LAYER_RE = re.compile(r"[A-Za-z0-9_-]+\Z")
_NETWORK_RE = re.compile(re.escape(NETWORK_PREFIX) + r"(.*)\.csv\Z")
_INT32_MAX = np.iinfo(np.int32).max
_NUM_STAGES = 5
_CHUNK_ROWS = 1 << 20  # rows formatted at a time when writing


# =============================================================================== load
def load_population(directory: str | os.PathLike, *, allow_pickle: bool = False) -> Population:
    """Read a population directory (see the module docstring for the format).

    Args:
        directory: the population directory.
        allow_pickle: also read the pickle layout (one pickled pandas Series per
            attribute) when there is no ``agents.csv``. Unpickling can run arbitrary code:
            only enable it for files you trust.

    Returns:
        The :class:`Population`; ``metadata`` holds ``population.json``'s contents and
        ``"source"``: the directory it was read from.

    Raises:
        PopulationError: the directory or one of its files is missing or malformed.
    """
    root = Path(directory)
    if not root.exists():
        raise PopulationError(f"population directory {root} does not exist")
    if not root.is_dir():
        raise PopulationError(f"population directory {root} is not a directory")

    metadata = _read_metadata(root / METADATA_FILE)
    forced_strings = _pop_string_columns(metadata, root / METADATA_FILE)
    mapping = _read_mapping(root / MAPPING_FILE)

    agents_path = root / AGENTS_FILE
    if agents_path.is_file():
        attributes, strings = _read_agents_csv(agents_path, mapping, forced_strings)
    else:
        pickles = _find_pickles(root)
        if not pickles:
            raise PopulationError(
                f"{agents_path} not found: a population directory needs {AGENTS_FILE} "
                f"(or, with allow_pickle=True, one <attribute>.pickle per attribute)"
            )
        if not allow_pickle:
            raise PopulationError(
                f"{root} has no {AGENTS_FILE} but has pickled attributes "
                f"({', '.join(p.name for p in pickles.values())}). Unpickling runs arbitrary "
                "code stored in the file, so pickles are not read by default. If you trust "
                "these files, pass allow_pickle=True to load_population (scenario scripts: "
                "--allow-pickle), or convert them once to agents.csv with save_population."
            )
        attributes, strings = _read_pickles(pickles, mapping, forced_strings)

    n = len(next(iter({**attributes, **strings}.values())))
    labels = {name: mapping[name] for name in attributes if name in mapping}

    stages_path = root / STAGES_FILE
    stages = _read_stages(stages_path, n) if stages_path.exists() else None
    networks = _read_networks(root, n)

    meta = {"source": str(root)}
    meta.update((k, v) for k, v in metadata.items() if k != "source")
    try:
        return Population(
            attributes=attributes,
            labels=labels,
            strings=strings,
            networks=networks,
            initial_states={} if stages is None else {STAGE_STATE: stages},
            metadata=meta,
        )
    except PopulationError as exc:  # defensive: every check above should come first
        raise PopulationError(f"{root}: {exc}") from None


# ------------------------------------------------------------------- what models need
def column_source(population: Population, column: str) -> str | None:
    """The file ``column`` of a loaded population was read from (``<dir>/agents.csv`` or
    ``<dir>/<column>.pickle``), the directory when neither is there, or ``None`` for a
    population not read from a directory (``metadata["source"]`` names the directory)."""
    source = population.metadata.get("source")
    if not source:
        return None
    root = Path(source)
    if (root / AGENTS_FILE).is_file():
        return str(root / AGENTS_FILE)
    for suffix in PICKLE_SUFFIXES:
        if (root / f"{column}{suffix}").is_file():
            return str(root / f"{column}{suffix}")
    return str(root)


def require_columns(
    population: Population, columns: dict[str, Iterable[str] | None], *, needed_by: str
) -> None:
    """Check that ``population`` has each of ``columns`` as integer codes and, where a
    label list is given, that ``mapping.json`` labels the column with labels from it.

    Args:
        columns: ``{column: known labels, or None when plain codes do}``.
        needed_by: who needs them, as the plural subject of the message (e.g. ``"the
            COVID model's substeps"``).

    Raises:
        PopulationError: one line naming the file (``agents.csv``, ``mapping.json``; "the
            population" when it was not read from a directory), the column and, for
            labels, the missing file or entry or the unknown labels.
    """
    source = population.metadata.get("source")
    root = Path(source) if source else None
    present = sorted([*population.attributes, *population.strings])
    for column, known in columns.items():
        where = column_source(population, column) or "the population"
        if column in population.strings:
            values = [str(v) for v in population.strings[column][:3]]
            raise PopulationError(
                f"{where}: column {column!r} holds text (e.g. {values}), but {needed_by} need integer codes "
                f"with their labels in {MAPPING_FILE}"
            )
        if column not in population.attributes:
            if root is not None and not (root / AGENTS_FILE).is_file() and where == str(root):
                raise PopulationError(
                    f"{root}: no column {column!r} (no {column}.pickle), needed by {needed_by}; columns: {present}"
                )
            raise PopulationError(f"{where}: no column {column!r}, needed by {needed_by}; columns: {present}")
        if known is None:
            continue
        known = list(known)
        example = json.dumps({column: known})
        if column not in population.labels:
            if root is None:
                raise PopulationError(
                    f"the population: column {column!r} has no labels; {needed_by} read it by label ({known})"
                )
            mapping = root / MAPPING_FILE
            if not mapping.exists():
                raise PopulationError(
                    f"{mapping} not found: column {column!r} of {where} needs its labels there; {needed_by} "
                    f"read it by label (e.g. {example})"
                )
            raise PopulationError(
                f"{mapping}: no entry for column {column!r} of {where}; {needed_by} read it by label "
                f"(e.g. {example})"
            )
        unknown = [label for label in population.labels[column] if label not in known]
        if unknown:
            mapping = str(root / MAPPING_FILE) if root is not None else "the population"
            raise PopulationError(
                f"{mapping}: column {column!r} has labels {unknown} unknown to {needed_by}; they know {known}"
            )


# ------------------------------------------------------------------------- json files
def _read_json(path: Path):
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PopulationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise PopulationError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if not text.strip():
        raise PopulationError(f"{path} is empty; it must hold a JSON object")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PopulationError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def _read_metadata(path: Path) -> dict:
    if not path.exists():
        return {}
    data = _read_json(path)
    if not isinstance(data, dict):
        raise PopulationError(
            f"{path}: must hold a JSON object, found {type(data).__name__} {_short(data)}"
        )
    return data


def _pop_string_columns(metadata: dict, path: Path) -> frozenset[str]:
    names = metadata.pop(_STRING_COLUMNS_KEY, [])
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise PopulationError(
            f"{path}: {_STRING_COLUMNS_KEY!r} must be a list of column names, found {_short(names)}"
        )
    return frozenset(names)


def _read_mapping(path: Path) -> dict[str, list[str]]:
    if not path.exists():
        return {}
    data = _read_json(path)
    if not isinstance(data, dict):
        raise PopulationError(
            f"{path}: must hold a JSON object {{column: [label, ...]}}, found "
            f"{type(data).__name__} {_short(data)}"
        )
    mapping: dict[str, list[str]] = {}
    for column, labels in data.items():
        if not isinstance(labels, list):
            raise PopulationError(
                f"{path}: column {column!r}: labels must be a list of strings, found "
                f"{type(labels).__name__} {_short(labels)}"
            )
        for i, label in enumerate(labels):
            if not isinstance(label, str):
                raise PopulationError(
                    f"{path}: column {column!r}: label {i} must be a string, found {label!r}"
                )
        seen: dict[str, int] = {}
        for i, label in enumerate(labels):
            if label in seen:
                raise PopulationError(
                    f"{path}: column {column!r}: label {label!r} appears twice "
                    f"(codes {seen[label]} and {i})"
                )
            seen[label] = i
        mapping[column] = list(labels)
    return mapping


# ------------------------------------------------------------------------- agents.csv
def _read_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for row in csv.reader(f):
                if row and any(field.strip() for field in row):
                    return row
    except UnicodeDecodeError as exc:
        raise PopulationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise PopulationError(f"{path}: cannot parse the header line: {exc}") from None
    raise PopulationError(f"{path} is empty: it needs a header line and one line per agent")


def _read_agents_csv(
    path: Path, mapping: dict[str, list[str]], forced_strings: frozenset[str]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    header = _read_header(path)
    for i, name in enumerate(header):
        if not name.strip():
            raise PopulationError(f"{path}: header column {i + 1} has an empty name")
        if name != name.strip():
            raise PopulationError(
                f"{path}: header column {i + 1} name {name!r} has leading/trailing spaces"
            )
    dupes = sorted({name for name in header if header.count(name) > 1})
    if dupes:
        raise PopulationError(f"{path}: header repeats column(s) {dupes}")
    if "agent_id" not in header:
        raise PopulationError(f"{path}: no 'agent_id' column (header: {header})")

    text_columns = {
        name
        for name in header
        if name not in mapping and name != "agent_id" and (name in STRING_COLUMNS or name in forced_strings)
    }
    try:
        df = _read_csv_strict(
            path,
            header=0,
            names=header,
            dtype={name: str for name in text_columns},
            na_filter=False,  # keep empty cells and text such as "NA" verbatim
            low_memory=False,  # one dtype per column, not per chunk
        )
    except pd.errors.EmptyDataError:
        raise PopulationError(f"{path} is empty: it needs a header line and one line per agent") from None
    except UnicodeDecodeError as exc:
        raise PopulationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as exc:
        _scan_field_counts(path, len(header), header_lines=True)
        raise PopulationError(f"{path}: cannot be parsed: {_first_line(exc)}") from None
    if len(df) == 0:
        raise PopulationError(f"{path} has a header but no agent lines")

    def where(row: int) -> str:
        return f"line {_line_of_row(path, row, header=True)}"

    ids = _integer_column(df["agent_id"], path, "agent_id", where)
    expected = np.arange(len(ids), dtype=np.int64)
    wrong = np.flatnonzero(ids != expected)
    if wrong.size:
        i = int(wrong[0])
        raise PopulationError(
            f"{path}: column 'agent_id' must be 0..N-1 in order; {where(i)} has "
            f"agent_id {int(ids[i])}, expected {i}"
        )

    attributes: dict[str, np.ndarray] = {}
    strings: dict[str, np.ndarray] = {}
    for name in header:
        if name == "agent_id":
            continue
        kind, values = _classify_column(
            df[name], path, name, mapping, name in text_columns, where
        )
        (attributes if kind == "int" else strings)[name] = values
    if not attributes and not strings:
        raise PopulationError(f"{path}: no attribute columns besides 'agent_id'")
    del df
    return attributes, strings


def _classify_column(
    series: pd.Series,
    path: Path,
    name: str,
    mapping: dict[str, list[str]],
    is_text: bool,
    where: Callable[[int], str],
) -> tuple[str, np.ndarray]:
    """Decide text vs integer codes for one column and return ``(kind, values)``."""
    if is_text and name not in mapping:
        return "str", _as_text(series)
    if name not in mapping and not _is_numeric_dtype(series):
        # A column with no labels is text when some non-empty value is not a number.
        raw = series.astype(object)
        numbers = pd.to_numeric(raw, errors="coerce")
        non_empty = ~raw.map(_is_blank).to_numpy(dtype=bool)
        if np.any(non_empty & np.isnan(numbers.to_numpy(dtype=np.float64))):
            return "str", _as_text(series)
    codes = _integer_column(series, path, name, where)
    if name in mapping:
        labels = mapping[name]
        bad = np.flatnonzero(codes >= len(labels))
        if bad.size:
            i = int(bad[0])
            raise PopulationError(
                f"{path}: column {name!r}, {where(i)}: code {int(codes[i])} is outside "
                f"{MAPPING_FILE}'s {len(labels)} labels for {name!r} (valid codes 0..{len(labels) - 1})"
            )
    return "int", codes.astype(np.int32)


def _is_numeric_dtype(series: pd.Series) -> bool:
    return series.dtype.kind in "iufb"


def _is_blank(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _as_text(series: pd.Series) -> np.ndarray:
    """A text column as an object array of ``str`` (missing values become ``""``)."""
    values = series.to_numpy(dtype=object)
    if all(isinstance(v, str) for v in values):
        return values
    return np.array(["" if _is_blank(v) else str(v) for v in values], dtype=object)


def _integer_column(
    series: pd.Series, path: Path, name: str, where: Callable[[int], str]
) -> np.ndarray:
    """Non-negative integer codes (int64) of a column, or one PopulationError."""
    kind = series.dtype.kind
    if kind in "iub":
        codes = series.to_numpy(dtype=np.int64)
    else:
        raw = series.to_numpy(dtype=object) if kind not in "f" else None
        if kind == "f":
            numbers = series.to_numpy(dtype=np.float64)
        else:
            numbers = pd.to_numeric(series.astype(object), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))
        if bad.size:
            i = int(bad[0])
            value = raw[i] if raw is not None else numbers[i]
            if _is_blank(value):
                raise PopulationError(
                    f"{path}: column {name!r}, {where(i)}: empty cell; integer codes are required"
                )
            raise PopulationError(
                f"{path}: column {name!r}, {where(i)}: value {_show(value)} is not an integer code"
            )
        if numbers.size and np.abs(numbers).max() > _INT32_MAX:
            i = int(np.argmax(np.abs(numbers) > _INT32_MAX))
            raise PopulationError(
                f"{path}: column {name!r}, {where(i)}: value {_show(raw[i] if raw is not None else numbers[i])} "
                "is too large for an integer code"
            )
        codes = numbers.astype(np.int64)
    if codes.size:
        neg = np.flatnonzero(codes < 0)
        if neg.size:
            i = int(neg[0])
            raise PopulationError(
                f"{path}: column {name!r}, {where(i)}: code {int(codes[i])} is negative; "
                "codes must be >= 0"
            )
        if codes.max() > _INT32_MAX:
            i = int(np.argmax(codes > _INT32_MAX))
            raise PopulationError(
                f"{path}: column {name!r}, {where(i)}: value {int(codes[i])} is too large for an integer code"
            )
    return codes


# ------------------------------------------------------------------------- pickles
def _find_pickles(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(root.iterdir()):
        if path.suffix in PICKLE_SUFFIXES and path.is_file():
            name = path.stem
            if name in found:
                raise PopulationError(
                    f"{root}: attribute {name!r} is pickled twice ({found[name].name} and {path.name})"
                )
            found[name] = path
    return found


def _read_pickles(
    pickles: dict[str, Path], mapping: dict[str, list[str]], forced_strings: frozenset[str]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    series: dict[str, pd.Series] = {}
    for name, path in pickles.items():
        try:
            obj = pd.read_pickle(path)
        except Exception as exc:  # any failure to unpickle, whatever raised it
            raise PopulationError(f"{path}: cannot be unpickled: {type(exc).__name__}: {exc}") from None
        if isinstance(obj, (np.ndarray, list, tuple)) and np.ndim(obj) == 1:
            obj = pd.Series(obj)
        if not isinstance(obj, pd.Series):
            raise PopulationError(
                f"{path}: expected a pickled pandas Series (one value per agent), found "
                f"{type(obj).__name__}"
            )
        if isinstance(obj.dtype, pd.CategoricalDtype):
            obj = pd.Series(np.asarray(obj), index=obj.index)
        series[name] = obj

    lengths = {pickles[name].name: len(s) for name, s in series.items()}
    if len(set(lengths.values())) > 1:
        raise PopulationError(f"pickled attributes disagree in length (agents): {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise PopulationError(f"pickled attributes hold no agents: {lengths}")
    first_name, first = next(iter(series.items()))
    for name, s in series.items():
        if not s.index.equals(first.index):
            raise PopulationError(
                f"{pickles[name]}: its index differs from {pickles[first_name].name}'s, so "
                "agents would be misaligned (the position in each Series is the agent id)"
            )

    attributes: dict[str, np.ndarray] = {}
    strings: dict[str, np.ndarray] = {}
    def where(i: int) -> str:
        return f"position {i}"

    for name, s in series.items():
        path = pickles[name]
        s = s.reset_index(drop=True)
        if name == "agent_id":
            ids = _integer_column(s, path, name, where)
            wrong = np.flatnonzero(ids != np.arange(n))
            if wrong.size:
                i = int(wrong[0])
                raise PopulationError(
                    f"{path}: agent_id must be 0..N-1 in order; position {i} has {int(ids[i])}, expected {i}"
                )
            continue
        is_text = name in STRING_COLUMNS or name in forced_strings
        kind, values = _classify_column(s, path, name, mapping, is_text, where)
        (attributes if kind == "int" else strings)[name] = values
    if not attributes and not strings:
        raise PopulationError("the pickled attributes hold only agent_id; attribute columns are needed")
    return attributes, strings


# ------------------------------------------------------------------------- stages
def _read_csv_strict(path: Path, **options) -> pd.DataFrame:
    """``pandas.read_csv`` with the C parser, no index column, UTF-8 (BOM allowed), and
    parser warnings raised as ``pd.errors.ParserWarning``: a row with more fields than
    the header otherwise makes pandas drop data with only a warning, so the caller's scan
    can report the line instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return pd.read_csv(path, engine="c", index_col=False, encoding="utf-8-sig", **options)


def _read_stages(path: Path, n: int) -> np.ndarray:
    first = _first_nonblank_line(path)
    if first is None:
        raise PopulationError(f"{path} is empty: it needs one stage code (0..4) per agent")
    has_header = not _is_number(first.strip())
    try:
        df = _read_csv_strict(
            path, header=0 if has_header else None, names=["stage"], dtype={"stage": np.float64}
        )
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError, OverflowError) as exc:
        _scan_numeric_file(path, (1,), header_lines=has_header, what="stage")
        raise PopulationError(f"{path}: cannot be parsed: {_first_line(exc)}") from None
    stages = df["stage"].to_numpy(dtype=np.float64)
    del df
    if stages.size == 0:
        raise PopulationError(f"{path} has no stage values: it needs one stage code per agent")
    if stages.size != n:
        raise PopulationError(
            f"{path} has {stages.size} stage values but the population has {n} agents"
        )

    def where(row: int) -> str:
        return f"line {_line_of_row(path, row, header=has_header)}"

    bad = np.flatnonzero(~np.isfinite(stages) | (stages != np.round(stages)))
    if bad.size:
        i = int(bad[0])
        what = "empty or NaN value" if np.isnan(stages[i]) else f"value {_show(stages[i])}"
        raise PopulationError(f"{path}, {where(i)}: {what} is not an integer stage code (0..4)")
    bad = np.flatnonzero((stages < 0) | (stages >= _NUM_STAGES))
    if bad.size:
        i = int(bad[0])
        raise PopulationError(
            f"{path}, {where(i)}: stage {_show(stages[i])} is outside 0..4 (0 S, 1 E, 2 I, 3 R, 4 M)"
        )
    return stages.astype(np.int8)


# ------------------------------------------------------------------------- networks
def _layer_sort_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _network_files(root: Path) -> dict[str, Path]:
    """``{layer: file}`` of the directory's contact layers: ``mobility_networks_<layer>.csv``
    and the field's own layout ``mobility_networks/<layer>.csv``."""
    files: dict[str, Path] = {}

    def add(layer: str, path: Path, pattern: str) -> None:
        if not _LAYER_RE.match(layer):
            raise PopulationError(
                f"{path}: layer name {layer!r} must be letters, digits, '_' or '-' "
                f"(files are named {pattern})"
            )
        if layer in files:
            raise PopulationError(
                f"{root}: contact layer {layer!r} is given twice, by {files[layer]} and {path}; keep one"
            )
        files[layer] = path

    for path in sorted(root.iterdir()):
        m = _NETWORK_RE.match(path.name)
        if m:
            add(m.group(1), path, f"{NETWORK_PREFIX}<layer>.csv")
    folder = root / NETWORK_DIR
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix == ".csv" and path.is_file():
                add(path.stem, path, f"{NETWORK_DIR}/<layer>.csv")
    return files


def _read_networks(root: Path, n: int) -> dict[str, EdgeList]:
    files = _network_files(root)
    return {layer: _read_network(files[layer], n) for layer in sorted(files, key=_layer_sort_key)}


def _read_network(path: Path, n: int) -> EdgeList:
    first = _first_nonblank_line(path)
    if first is None:
        raise PopulationError(
            f"{path} is empty: a network file must list at least one edge as 'src,dst' "
            "(delete the file if the layer has no contacts)"
        )
    ncols = len(first.split(","))
    if ncols not in (2, 3):
        _scan_numeric_file(path, (2, 3), header_lines=False, what="edge")
    names = list(range(ncols))

    def read(dtypes: dict) -> pd.DataFrame:
        return _read_csv_strict(path, header=None, names=names, dtype=dtypes)

    float_weight = {2: np.float64} if ncols == 3 else {}
    endpoints: np.ndarray | None = None
    try:  # fast path: plain integers
        df = read({0: np.int32, 1: np.int32, **float_weight})
        src, dst = df[0].to_numpy(), df[1].to_numpy()
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError, OverflowError):
        try:  # integers written as floats (1.000000000000000000e+00)
            df = read({0: np.float64, 1: np.float64, **float_weight})
        except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError, OverflowError) as exc:
            _scan_numeric_file(path, (ncols,), header_lines=False, what="edge")
            raise PopulationError(f"{path}: cannot be parsed: {_first_line(exc)}") from None
        endpoints = np.stack([df[0].to_numpy(), df[1].to_numpy()])
        src = dst = None
    weight = df[2].to_numpy(dtype=np.float64) if ncols == 3 else None
    rows = len(df)
    del df
    if rows == 0:
        raise PopulationError(f"{path} has no edges: a network file must list at least one edge")

    def where(row: int) -> str:
        return f"line {_line_of_row(path, row, header=False)}"

    if endpoints is not None:
        finite = np.isfinite(endpoints)
        bad = np.flatnonzero(~np.all(finite & (endpoints == np.round(endpoints)), axis=0))
        if bad.size:
            i = int(bad[0])
            col = 0 if not (finite[0, i] and endpoints[0, i] == round(endpoints[0, i])) else 1
            value = endpoints[col, i]
            what = "empty or NaN endpoint" if np.isnan(value) else f"endpoint {_show(value)} is not an integer"
            raise PopulationError(f"{path}, {where(i)}, column {col + 1}: {what}")
        out = np.flatnonzero(np.any((endpoints < 0) | (endpoints >= n), axis=0))
        if out.size:
            i = int(out[0])
            value = endpoints[0, i] if not 0 <= endpoints[0, i] < n else endpoints[1, i]
            raise PopulationError(
                f"{path}, {where(i)}: endpoint {_show(value)} is outside [0, {n}) (agent ids)"
            )
        src, dst = endpoints[0].astype(np.int64), endpoints[1].astype(np.int64)
        del endpoints
    else:
        out = np.flatnonzero((src < 0) | (src >= n) | (dst < 0) | (dst >= n))
        if out.size:
            i = int(out[0])
            value = src[i] if not 0 <= src[i] < n else dst[i]
            raise PopulationError(
                f"{path}, {where(i)}: endpoint {int(value)} is outside [0, {n}) (agent ids)"
            )
    if weight is not None:
        bad = np.flatnonzero(~np.isfinite(weight) | (weight < 0))
        if bad.size:
            i = int(bad[0])
            what = "empty or NaN weight" if np.isnan(weight[i]) else f"weight {_show(weight[i])}"
            raise PopulationError(f"{path}, {where(i)}: {what}; weights must be finite and >= 0")
    return EdgeList.from_pairs(src, dst, weight)


# ------------------------------------------------------------------------- diagnosis
def _first_nonblank_line(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for line in f:
                if line.strip():
                    return line.rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise PopulationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _scan_field_counts(path: Path, expected: int, *, header_lines: bool) -> None:
    """Raise naming the first line of a CSV file whose field count is not ``expected``."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            skipped_header = not header_lines
            prev = 0
            for row in reader:
                start, prev = prev + 1, reader.line_num
                if not row or all(not field.strip() for field in row) and len(row) <= 1:
                    continue
                if not skipped_header:
                    skipped_header = True
                    continue
                if len(row) != expected:
                    raise PopulationError(
                        f"{path}, line {start}: {len(row)} fields, expected {expected} "
                        f"(as many as the header has)"
                    )
    except csv.Error as exc:
        raise PopulationError(f"{path}: cannot be parsed: {exc}") from None


def _scan_numeric_file(path: Path, counts: Iterable[int], *, header_lines: bool, what: str) -> None:
    """Raise naming the first malformed line of a headerless numeric CSV file.

    Used only after the fast pandas read failed, to say where and why.
    """
    counts = tuple(counts)
    expected = " or ".join(str(c) for c in counts)
    layout = {"edge": "src,dst[,weight]", "stage": "one stage code per line"}[what]
    with open(path, encoding="utf-8-sig", newline="") as f:
        skipped_header = not header_lines
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if not skipped_header:
                skipped_header = True
                continue
            fields = line.rstrip("\r\n").split(",")
            if len(fields) not in counts:
                raise PopulationError(
                    f"{path}, line {lineno}: {len(fields)} fields, expected {expected} ({layout})"
                )
            for col, field in enumerate(fields):
                text = field.strip()
                if what == "edge" and col == 2:
                    try:
                        float(text)
                    except ValueError:
                        raise PopulationError(
                            f"{path}, line {lineno}, column 3: weight {field!r} is not a number"
                        ) from None
                    continue
                try:
                    int(text)
                    continue
                except ValueError:
                    pass
                try:
                    ok = float(text).is_integer()
                except (ValueError, OverflowError):
                    ok = False
                if not ok:
                    hint = " (network files have no header line)" if lineno == 1 and what == "edge" else ""
                    label = f"column {col + 1}: " if what == "edge" else ""
                    raise PopulationError(
                        f"{path}, line {lineno}, {label}value {field!r} is not an integer{hint}"
                    )


def _line_of_row(path: Path, row: int, *, header: bool) -> int:
    """Physical line number (1-based) of data row ``row`` of a CSV file, skipping blanks."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        target = row + (1 if header else 0)
        seen = -1
        prev = 0
        for record in reader:
            start, prev = prev + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            seen += 1
            if seen == target:
                return start
    return row + (2 if header else 1)  # not reached for well-formed input


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _show(value) -> str:
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)
    return repr(value) if isinstance(value, str) else str(value)


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# =============================================================================== save
def save_population(
    population: Population, directory: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write ``population`` as a population directory and return its path.

    The directory appears whole or not at all: files are written into a hidden sibling
    ``.<name>.tmp-<random>`` that is renamed into place; on any error it is removed.

    Args:
        population: what to write.
        directory: the directory to create.
        overwrite: replace an existing population directory. The old one is renamed
            aside, the new one renamed in, then the old one deleted. Only a directory
            holding nothing but population files is replaced, so a mistyped path cannot
            wipe unrelated data.

    Raises:
        FileExistsError: ``directory`` exists and ``overwrite`` is false, or it holds
            files that are not part of a population directory.
        PopulationError: the population cannot be written in this format (bad names,
            negative codes, metadata that is not JSON).
    """
    target = Path(directory)
    _check_savable(population)
    if target.name in ("", ".", ".."):
        raise PopulationError(f"cannot save a population as {str(target)!r}: name a directory")
    if os.path.lexists(target):
        if not overwrite:
            raise FileExistsError(
                f"{target} already exists; pass overwrite=True to replace it"
            )
        _check_replaceable(target)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)

    tmp = _make_sibling(target, "tmp")
    try:
        _write_directory(population, tmp)
        if os.path.lexists(target):
            if not overwrite:
                raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it")
            old = _sibling_name(target, "old")
            os.rename(target, old)
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(old, target)
                raise
            if old.is_symlink():
                old.unlink()
            else:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _sibling_name(target: Path, tag: str) -> Path:
    while True:
        candidate = target.parent / f".{target.name}.{tag}-{secrets.token_hex(4)}"
        if not os.path.lexists(candidate):
            return candidate


def _make_sibling(target: Path, tag: str) -> Path:
    while True:
        candidate = _sibling_name(target, tag)
        try:
            candidate.mkdir()  # honours the umask, unlike tempfile.mkdtemp's 0o700
            return candidate
        except FileExistsError:
            continue


def _is_population_file(name: str) -> bool:
    return (
        name in (AGENTS_FILE, MAPPING_FILE, STAGES_FILE, METADATA_FILE)
        or bool(_NETWORK_RE.match(name))
        or name.endswith(PICKLE_SUFFIXES)
    )


def _check_replaceable(target: Path) -> None:
    if not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a directory; not replacing it")
    foreign = sorted(
        p.name for p in target.iterdir() if p.is_dir() or not _is_population_file(p.name)
    )
    if foreign:
        raise FileExistsError(
            f"refusing to overwrite {target}: it holds {foreign[:5]}"
            f"{' ...' if len(foreign) > 5 else ''}, which are not population files"
        )


def _check_savable(population: Population) -> None:
    names = list(population.attributes) + list(population.strings)
    if population.size == 0:
        raise PopulationError("cannot save a population with no agents")
    clash = sorted(set(population.attributes) & set(population.strings))
    if clash:
        raise PopulationError(f"columns {clash} are both attributes and string columns")
    for name in names:
        if not isinstance(name, str) or not name or name != name.strip() or any(c in name for c in ',"\r\n'):
            raise PopulationError(
                f"column name {name!r} cannot be written to {AGENTS_FILE}: it must be a "
                "non-empty string without commas, quotes, newlines or surrounding spaces"
            )
        if name == "agent_id":
            raise PopulationError("'agent_id' is written by save_population; it cannot be an attribute")
    for name, col in population.attributes.items():
        col = np.asarray(col)
        if col.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(col) | (col != np.round(col)))
            if bad.size:
                raise PopulationError(
                    f"attribute {name!r}: agent {int(bad[0])} has non-integer value {col[bad[0]]}"
                )
        elif col.dtype.kind not in "iub":
            raise PopulationError(f"attribute {name!r} has dtype {col.dtype}; integer codes are required")
        if col.size and col.min() < 0:
            i = int(np.argmin(col))
            raise PopulationError(
                f"attribute {name!r}: agent {i} has negative code {col[i]}; codes must be >= 0"
            )
        if col.size and col.max() > _INT32_MAX:
            raise PopulationError(f"attribute {name!r}: code {col.max()} does not fit int32")
    for layer in population.networks:
        if not isinstance(layer, str) or not _LAYER_RE.match(layer):
            raise PopulationError(
                f"network layer name {layer!r} cannot be a file name: use letters, digits, '_' or '-'"
            )
        weight = population.networks[layer].weight
        if weight is not None:
            w = np.asarray(weight, dtype=np.float64)
            if w.size and (not np.all(np.isfinite(w)) or w.min() < 0):
                raise PopulationError(f"network {layer!r}: weights must be finite and >= 0")
    if _STRING_COLUMNS_KEY in population.metadata:
        raise PopulationError(
            f"metadata key {_STRING_COLUMNS_KEY!r} is reserved for {METADATA_FILE}; rename it"
        )


def _write_directory(population: Population, out: Path) -> None:
    _write_agents(population, out / AGENTS_FILE)
    labels = {
        name: [str(label) for label in population.labels[name]]
        for name in population.attributes
        if name in population.labels
    }
    _write_json(out / MAPPING_FILE, labels)
    if STAGE_STATE in population.initial_states:
        stages = np.asarray(population.initial_states[STAGE_STATE]).astype(np.int64)
        _write_rows(out / STAGES_FILE, [stages])
    for layer, edges in population.networks.items():
        path = out / f"{NETWORK_PREFIX}{layer}.csv"
        if edges.weight is None:
            _write_rows(path, [np.asarray(edges.u), np.asarray(edges.v)])
        else:
            frame = pd.DataFrame(
                {
                    "u": np.asarray(edges.u),
                    "v": np.asarray(edges.v),
                    "w": np.asarray(edges.weight, dtype=np.float64),
                }
            )
            # 9 significant digits round-trip every float32 weight exactly.
            frame.to_csv(path, header=False, index=False, float_format="%.9g", lineterminator="\n")
    metadata = {k: v for k, v in population.metadata.items() if k != "source"}
    if population.strings:
        metadata[_STRING_COLUMNS_KEY] = list(population.strings)
    _write_json(out / METADATA_FILE, metadata)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} {_short(value)} is not JSON serialisable")


def _write_json(path: Path, data: dict) -> None:
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise PopulationError(f"cannot write {path.name}: {exc}") from None
    path.write_text(text + "\n", encoding="utf-8")


def _write_agents(population: Population, path: Path) -> None:
    n = population.size
    names = ["agent_id", *population.attributes, *population.strings]
    columns: list[np.ndarray] = [np.arange(n, dtype=np.int64)]
    columns += [np.asarray(col).astype(np.int64) for col in population.attributes.values()]
    texts = [_encode_text(col) for col in population.strings.values()]
    if any(t is None for t in texts):
        # Some text needs CSV quoting (commas, quotes, newlines): let pandas write it.
        frame = pd.DataFrame(dict(zip(names, columns + [_text_values(c) for c in population.strings.values()])))
        frame.to_csv(path, index=False, lineterminator="\n")
        return
    _write_rows(path, columns + texts, header=",".join(names))


def _text_values(col) -> np.ndarray:
    values = np.asarray(col, dtype=object)
    if all(isinstance(v, str) for v in values):
        return values
    return np.array(["" if _is_blank(v) else str(v) for v in values], dtype=object)


def _encode_text(col) -> np.ndarray | None:
    """UTF-8 bytes of a text column as a zero-padded ``uint8 [N, width]`` matrix.

    ``None`` when a value needs CSV quoting (or holds a NUL byte).
    """
    values = _text_values(col)
    try:
        encoded = values.astype("S")
    except UnicodeEncodeError:
        encoded = np.char.encode(values.astype(str), "utf-8")
    width = max(encoded.dtype.itemsize, 1)
    encoded = encoded.astype(f"S{width}")
    matrix = encoded.view(np.uint8).reshape(len(values), width)
    if np.isin(matrix, np.frombuffer(b',"\r\n', dtype=np.uint8)).any():
        return None
    lengths = np.char.str_len(encoded)
    if np.any((matrix == 0).sum(axis=1) != width - lengths):  # an embedded NUL
        return None
    return matrix


def _digits(values: np.ndarray) -> np.ndarray:
    """Integers in ``[0, 2**32)`` as right-aligned ASCII digits, zero-padded: ``uint8 [N, w]``."""
    top = int(values.max()) if values.size else 0
    width = len(str(top))
    out = np.zeros((values.shape[0], width), dtype=np.uint8)
    rem = values.astype(np.uint32)  # 32-bit division is several times faster than 64-bit
    quot = np.empty_like(rem)
    digit = np.empty_like(rem)
    for k in range(width):
        np.floor_divide(rem, np.uint32(10), out=quot)
        np.subtract(rem, quot * np.uint32(10), out=digit)
        digit += np.uint32(48)
        if k:
            digit *= rem != 0  # no leading zeros: padding bytes stay 0 and are squeezed out
        out[:, width - 1 - k] = digit
        rem, quot = quot, rem
    return out


def _write_rows(path: Path, columns: list[np.ndarray], header: str | None = None) -> None:
    """Write rows ``c0,c1,...\\n`` fast.

    ``columns`` are non-negative integer vectors or ``uint8 [N, w]`` zero-padded byte
    matrices (text). Rows are assembled as one zero-padded byte matrix per chunk and the
    padding squeezed out, so no Python-level per-row work happens.
    """
    n = columns[0].shape[0]
    comma = np.full((1, 1), ord(","), dtype=np.uint8)
    newline = np.full((1, 1), ord("\n"), dtype=np.uint8)
    with open(path, "wb") as f:
        if header is not None:
            f.write(header.encode("utf-8") + b"\n")
        for start in range(0, n, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, n)
            rows = stop - start
            parts = []
            for j, col in enumerate(columns):
                block = col[start:stop]
                parts.append(block if block.ndim == 2 else _digits(block))
                sep = newline if j == len(columns) - 1 else comma
                parts.append(np.broadcast_to(sep, (rows, 1)))
            matrix = np.concatenate(parts, axis=1).ravel()
            f.write(matrix[matrix != 0].tobytes())
