"""A persistent cache of model replies (sqlite), and a backend that uses it.

A reply is stored under the SHA-256 of the canonical JSON (sorted keys, no whitespace) of
everything that determines it: the backend name, the model, the full messages, the
sampling settings, the sample index and the JSON schema. API keys, URLs and timeouts are
not part of the key. Only successful replies are stored, never errors.

Modes of :class:`ResponseCache`:

- ``"readwrite"`` (default): look up, and store new replies;
- ``"replay"``: look up only; a miss raises :class:`CacheMissError` (a run that must be
  reproduced exactly from recorded replies never contacts a model). The file must exist;
- ``"off"``: no file; every lookup misses and nothing is stored.

The first look-up reads a file of up to 64 MiB into memory (a warm run then asks sqlite
nothing); keys not in memory are looked up in the file, so replies other processes store
are found. Stored replies never change, so memory and file agree.

**Text files.** A path ending in ``.jsonl`` is a cache in JSON Lines instead (a file that
ships with a repository and diffs cleanly; :data:`JSONL_FORMAT`): UTF-8, ``\n`` line
ends, a header line ``{"format":"jaxsim-llm-replies","version":1}``, then one reply per
line as canonical JSON ``{"key":..., "request":{...}, "text":...}`` (``request`` the
object the key hashes: backend, model, messages, sampling settings, sample index, JSON
schema), in the order of the requests' canonical text. Nothing else is kept (no times),
so recording the same replies writes the same bytes. The file is read whole into an
in-memory sqlite database when the cache is opened (every key is checked against its
request: a line edited by hand is refused, naming the file and line); in mode
``"readwrite"`` new replies are written back, the whole file rewritten in order
(atomically), by :meth:`ResponseCache.flush` (called by :class:`CachedBackend` after
each batch, and by :meth:`ResponseCache.close`). A text cache is for one writer at a
time (a flush merges replies another process wrote meanwhile, but without a lock).
:meth:`ResponseCache.export_jsonl` writes any cache as such a file,
:meth:`ResponseCache.import_jsonl` adds one's replies to a cache;
``python -m jaxsim.llm.cache export|import SRC DST`` does both from a shell.
"""

from __future__ import annotations

import functools
import hashlib
import json
import json.encoder
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from jaxsim.errors import InputError, JaxsimError

from jaxsim.llm.backends import _ROLES, Backend, ChatReply, ChatRequest, SamplingSettings, _schema_json, canonical_json

__all__ = [
    "CacheFileError", "CacheMissError", "CachedBackend", "JSONL_FORMAT", "ResponseCache", "cache_key",
    "canonical_request_json", "prompt_keys", "read_jsonl",
]

MODES = ("readwrite", "replay", "off")
#: A str as a JSON string literal, as ``json.dumps(..., ensure_ascii=False)`` writes it.
_json_string = json.encoder.encode_basestring
_TABLE = "replies"
_COLUMNS = ("key", "backend", "model", "request", "text", "created")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    created REAL NOT NULL
)
"""


#: The header (first line) of a text cache file; the version changes with the record layout.
JSONL_FORMAT = {"format": "jaxsim-llm-replies", "version": 1}
_JSONL_HEADER = canonical_json(JSONL_FORMAT)
_RECORD_FIELDS = ("key", "request", "text")
_REQUEST_FIELDS = ("backend", "json_schema", "messages", "model", "sample_index", "settings")
_HEX = frozenset("0123456789abcdef")


class CacheMissError(JaxsimError, LookupError):
    """A request has no stored reply while the cache is replay-only."""


class CacheFileError(InputError):
    """The cache file cannot be used (not sqlite, corrupt, another table layout, missing in replay)."""


def canonical_request_json(backend_name: str, model: str, request: ChatRequest) -> str:
    """The canonical JSON text of everything that determines a reply (the cache key's input):
    the object ``{"backend", "json_schema", "messages", "model", "sample_index", "settings"}``
    with sorted keys and no whitespace (:func:`jaxsim.llm.backends.canonical_json`).

    Assembled from pieces (the parts shared by a batch of requests are encoded once); the
    text is the same as encoding the whole object in one go (tested).
    """
    return _canonical_text(
        backend_name, model, _messages_json(request.messages), request.settings, request.sample_index,
        request._json_schema_text,
    )


def _canonical_text(
    backend_name: str, model: str, messages_json: str, settings: SamplingSettings, sample_index: int,
    schema_text: str,
) -> str:
    """The canonical record from its encoded parts (keys in sorted order)."""
    return _request_prefix(backend_name, schema_text) + messages_json + _request_suffix(model, sample_index, settings)


def _messages_json(messages: tuple[dict, ...]) -> str:
    """:func:`canonical_json` of a request's messages; messages of only ``role`` and
    ``content`` (both str, checked by :class:`ChatRequest`) are written directly."""
    if any(len(m) != 2 for m in messages):
        return canonical_json(messages)
    return "[" + ",".join(
        f'{{"content":{_json_string(m["content"])},"role":{_json_string(m["role"])}}}' for m in messages
    ) + "]"


@functools.lru_cache(maxsize=256)
def _request_prefix(backend_name: str, schema_text: str) -> str:
    return f'{{"backend":{canonical_json(backend_name)},"json_schema":{schema_text},"messages":'


@functools.lru_cache(maxsize=1024)
def _request_suffix(model: str, sample_index: int, settings: SamplingSettings) -> str:
    return (
        f',"model":{canonical_json(model)},"sample_index":{canonical_json(sample_index)},'
        f'"settings":{canonical_json(settings.as_dict())}}}'
    )


def cache_key(backend_name: str, model: str, request: ChatRequest) -> str:
    """SHA-256 (hex) of :func:`canonical_request_json`."""
    return hashlib.sha256(canonical_request_json(backend_name, model, request).encode("utf-8")).hexdigest()


def prompt_keys(
    backend_name: str, model: str, prompts: Sequence[tuple[dict, ...]], settings: SamplingSettings, samples: int,
    json_schema: dict | None,
) -> list[str] | None:
    """The :func:`cache_key` of every request ``ChatRequest(prompt, settings, s, json_schema)``
    for each prompt and ``s`` in ``0..samples-1`` (prompt-major), without building the
    requests; ``None`` if some prompt is not a plain list of ``{"role", "content"}``
    messages (the caller then builds the requests, whose checks say what is wrong)."""
    schema_text = _schema_json(json_schema)
    keys = []
    for prompt in prompts:
        for message in prompt:
            if (
                type(message) is not dict or len(message) != 2 or message.get("role") not in _ROLES
                or type(message.get("content")) is not str
            ):
                return None
        messages = _messages_json(prompt)
        for s in range(samples):
            text = _canonical_text(backend_name, model, messages, settings, s, schema_text)
            keys.append(hashlib.sha256(text.encode("utf-8")).hexdigest())
    return keys


class ResponseCache:
    """Model replies stored in an sqlite file at ``path`` (see the module docstring for modes).

    Safe to share between threads (one connection behind a lock) and processes (sqlite's
    WAL journal, 30 s busy timeout); each insert is its own transaction and a key already
    present is left as it is (first reply wins). ``len(cache)`` is the number of replies
    stored. Use as a context manager or call :meth:`close`.
    """

    #: Files (with their write-ahead log) of at most this many bytes are read into memory
    #: at the first look-up; larger ones are read reply by reply as asked.
    preload_max_bytes: int = 64 * 2**20

    def __init__(
        self, path: str | os.PathLike | None, mode: str = "readwrite", *, file_format: str | None = None
    ) -> None:
        """``file_format``: ``"sqlite"`` or ``"jsonl"`` (text); ``None``: ``"jsonl"`` for a
        path ending in ``.jsonl``, else ``"sqlite"``."""
        if mode not in MODES:
            raise InputError(f"ResponseCache mode must be one of {MODES}, got {mode!r}")
        if file_format not in (None, "sqlite", "jsonl"):
            raise InputError(f"ResponseCache file_format must be 'sqlite', 'jsonl' or None, got {file_format!r}")
        self.mode = mode
        self.path = None if path is None else Path(path).expanduser()
        if file_format is None:
            file_format = "jsonl" if self.path is not None and self.path.suffix.lower() == ".jsonl" else "sqlite"
        self.file_format = file_format
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        # Replies read or written so far (stored replies never change: first reply wins).
        self._memory: dict[str, str] = {}
        self._preloaded = False
        #: Keys of the replies this object has found or stored (what a run used).
        self.used: set[str] = set()
        # Text caches: replies stored since the file was last written; the file's
        # (mtime_ns, size) when last read or written.
        self._dirty = False
        self._file_stamp: tuple[int, int] | None = None
        if mode == "off":
            return
        if self.path is None:
            raise InputError(f"ResponseCache needs a path in mode {mode!r} (only mode 'off' works without one)")
        if self.path.is_dir():
            raise CacheFileError(f"response cache {self.path} is a directory, not a file")
        if mode == "replay" and not self.path.is_file():
            raise CacheFileError(f"response cache {self.path} does not exist; replay mode needs a recorded cache")
        if mode == "readwrite":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = self._open_jsonl() if file_format == "jsonl" else self._open()

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike, mode: str = "replay") -> "ResponseCache":
        """The text cache at ``path`` (whatever its suffix), replay-only by default."""
        return cls(path, mode, file_format="jsonl")

    def _open_jsonl(self) -> sqlite3.Connection:
        """An in-memory database holding the replies of the text file (if it exists yet)."""
        records = read_jsonl(self.path) if self.path.exists() else []
        connection = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        connection.execute(_SCHEMA)
        connection.executemany(
            f"INSERT INTO {_TABLE} (key, backend, model, request, text, created) VALUES (?, ?, ?, ?, ?, 0)", records,
        )
        self._memory.update((record[0], record[4]) for record in records)
        self._preloaded = True
        self._file_stamp = self._stamp()
        return connection

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _open(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as err:
            raise CacheFileError(f"response cache {self.path} cannot be opened: {err}") from None
        try:
            connection.execute("PRAGMA busy_timeout = 30000")
            if self.mode == "readwrite":
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute(_SCHEMA)
            columns = tuple(row[1] for row in connection.execute(f"PRAGMA table_info({_TABLE})"))
            if columns:  # reading the table's pages exposes a corrupt file here rather than later
                connection.execute(f"SELECT COUNT(*) FROM {_TABLE}").fetchone()
        except sqlite3.DatabaseError as err:
            connection.close()
            raise CacheFileError(f"response cache {self.path} is not a usable sqlite database: {err}") from None
        if columns != _COLUMNS:
            connection.close()
            found = f"columns {list(columns)}" if columns else "no table"
            raise CacheFileError(
                f"response cache {self.path} is an sqlite file but not a jaxsim response cache "
                f"(table {_TABLE!r} has {found}, expected {list(_COLUMNS)})"
            )
        return connection

    # -- lookups and stores --------------------------------------------------------------

    def get(self, backend_name: str, model: str, request: ChatRequest, key: str | None = None) -> str | None:
        """The stored reply for ``request``, ``None`` on a miss (raises CacheMissError in replay
        mode). ``key``: the request's :func:`cache_key`, when the caller has it already."""
        if self.mode == "off":
            return None
        return self.get_many(backend_name, model, [request], [key or cache_key(backend_name, model, request)])[0]

    def get_many(
        self, backend_name: str, model: str, requests: Sequence[ChatRequest], keys: Sequence[str]
    ) -> list[str | None]:
        """The stored replies of ``requests`` (their :func:`cache_key` s given), ``None`` for
        misses, in one query per 500 keys; in replay mode the first miss raises
        :class:`CacheMissError`."""
        if self.mode == "off":
            return [None] * len(keys)
        found = self.lookup(keys)
        if self.mode == "replay":
            for request, key in zip(requests, keys):
                if key not in found:
                    raise CacheMissError(
                        f"response cache {self.path} is replay-only and has no reply for backend "
                        f"{backend_name!r}, model {model!r}, sample {request.sample_index}, last user "
                        f"message {request.last_user_message()[:200]!r}: re-record it in mode 'readwrite'"
                    )
        return [found.get(key) for key in keys]

    def lookup(self, keys: Sequence[str]) -> dict[str, str]:
        """``{key: reply}`` for the ``keys`` stored (misses absent; never raises on a miss,
        in any mode).

        The first look-up reads every stored reply into memory when the file (with its
        write-ahead log) is at most :attr:`preload_max_bytes` (one query; a run then asks
        sqlite nothing while every answer is known); later look-ups ask sqlite only for
        keys not in memory (one query per 500), so replies stored meanwhile by other
        processes are found.
        """
        if self.mode == "off":
            return {}
        with self._lock:
            connection = self._require_open()
            memory = self._memory
            if not self._preloaded:
                self._preloaded = True
                if self._file_bytes() <= self.preload_max_bytes:
                    memory.update(connection.execute(f"SELECT key, text FROM {_TABLE}").fetchall())
            found = {key: memory[key] for key in keys if key in memory}
            missing = [key for key in dict.fromkeys(keys) if key not in found]
            for first in range(0, len(missing), 500):
                part = missing[first : first + 500]
                marks = ",".join("?" * len(part))
                stored = connection.execute(f"SELECT key, text FROM {_TABLE} WHERE key IN ({marks})", part).fetchall()
                memory.update(stored)
                found.update(stored)
            self.used.update(found)
        return found

    def _file_bytes(self) -> int:
        total = 0
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                total += path.stat().st_size
            except OSError:
                pass
        return total

    def put(self, backend_name: str, model: str, request: ChatRequest, text: str) -> None:
        """Store ``text`` as the reply to ``request`` (no-op when off; an error in replay mode)."""
        if self.mode == "off":
            return
        if self.mode == "replay":
            raise CacheFileError(f"response cache {self.path} is replay-only: nothing can be stored")
        if not isinstance(text, str):
            raise TypeError(f"a cached reply must be a str, got {type(text).__name__}")
        request_json = canonical_request_json(backend_name, model, request)
        key = hashlib.sha256(request_json.encode("utf-8")).hexdigest()
        with self._lock:
            connection = self._require_open()
            inserted = connection.execute(
                f"INSERT OR IGNORE INTO {_TABLE} (key, backend, model, request, text, created) VALUES (?, ?, ?, ?, ?, ?)",
                (key, backend_name, model, request_json, text, 0.0 if self.file_format == "jsonl" else time.time()),
            ).rowcount
            self._dirty = self._dirty or inserted > 0
            self.used.add(key)
            if self._preloaded:  # keep memory equal to the file: the stored reply (the first one) wins
                stored = connection.execute(f"SELECT text FROM {_TABLE} WHERE key = ?", (key,)).fetchone()
                self._memory[key] = stored[0]

    def __len__(self) -> int:
        if self.mode == "off":
            return 0
        with self._lock:
            return int(self._require_open().execute(f"SELECT COUNT(*) FROM {_TABLE}").fetchone()[0])

    # -- text files ----------------------------------------------------------------------

    def _records(self) -> list[tuple[str, str, str]]:
        """``(key, request, text)`` of every stored reply, in the order of the request text."""
        rows = self._require_open().execute(f"SELECT key, request, text FROM {_TABLE}").fetchall()
        for key, request, _ in rows:
            if hashlib.sha256(request.encode("utf-8")).hexdigest() != key:
                raise CacheFileError(f"response cache {self.path}: the stored key {key} does not match its request")
        rows.sort(key=lambda row: row[1])
        return rows

    def export_jsonl(self, path: str | os.PathLike, keys: Iterable[str] | None = None) -> int:
        """Write every stored reply (or those of ``keys``, e.g. :attr:`used`: the replies
        one run read or stored) to the text cache file ``path`` (the module docstring says
        the format), replacing it atomically; the number of replies written. The same
        replies always give the same bytes."""
        if self.mode == "off":
            raise InputError("a ResponseCache in mode 'off' holds nothing to export")
        with self._lock:
            records = self._records()
        if keys is not None:
            wanted = set(keys)
            records = [record for record in records if record[0] in wanted]
        _write_jsonl(Path(path).expanduser(), records)
        return len(records)

    def import_jsonl(self, path: str | os.PathLike) -> int:
        """Add the replies of the text cache file ``path`` (replies already stored are kept:
        first reply wins); the number of replies added. Mode ``"readwrite"`` only."""
        if self.mode != "readwrite":
            raise CacheFileError(f"response cache {self.path} is in mode {self.mode!r}: nothing can be imported")
        records = read_jsonl(Path(path).expanduser())
        with self._lock:
            connection = self._require_open()
            before = connection.execute(f"SELECT COUNT(*) FROM {_TABLE}").fetchone()[0]
            created = 0.0 if self.file_format == "jsonl" else time.time()
            connection.executemany(
                f"INSERT OR IGNORE INTO {_TABLE} (key, backend, model, request, text, created) VALUES (?, ?, ?, ?, ?, ?)",
                [(*record, created) for record in records],
            )
            added = connection.execute(f"SELECT COUNT(*) FROM {_TABLE}").fetchone()[0] - before
            if self._preloaded:
                keys = [record[0] for record in records]
                for first in range(0, len(keys), 500):
                    part = keys[first : first + 500]
                    marks = ",".join("?" * len(part))
                    self._memory.update(connection.execute(
                        f"SELECT key, text FROM {_TABLE} WHERE key IN ({marks})", part).fetchall())
            self._dirty = self._dirty or added > 0
        return int(added)

    def flush(self) -> None:
        """Write a text cache's new replies to its file (no-op for sqlite, which stores each
        reply as it comes, and when nothing is new). Replies another process added to the
        file since it was read are merged in first (their reply wins on the same key)."""
        if self.file_format != "jsonl" or self.mode != "readwrite":
            return
        with self._lock:
            if not self._dirty:
                return
            connection = self._require_open()
            stamp = self._stamp()
            if stamp is not None and stamp != self._file_stamp:
                records = read_jsonl(self.path)
                connection.executemany(
                    f"INSERT OR REPLACE INTO {_TABLE} (key, backend, model, request, text, created) "
                    f"VALUES (?, ?, ?, ?, ?, 0)", records,
                )
                self._memory.update((record[0], record[4]) for record in records)
            _write_jsonl(self.path, self._records())
            self._dirty = False
            self._file_stamp = self._stamp()

    # -- lifetime ------------------------------------------------------------------------

    def _require_open(self) -> sqlite3.Connection:
        if self._connection is None:
            raise CacheFileError(f"response cache {self.path} is closed")
        return self._connection

    def close(self) -> None:
        """Write a text cache's new replies (:meth:`flush`), then close."""
        if self._connection is not None:
            self.flush()
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        text = ", file_format='jsonl'" if self.file_format == "jsonl" else ""
        return f"ResponseCache(path={None if self.path is None else str(self.path)!r}, mode={self.mode!r}{text})"


def _write_jsonl(path: Path, records: Sequence[tuple[str, str, str]]) -> None:
    """The text cache file of ``(key, canonical request, text)`` records, written to a
    temporary file beside ``path`` and moved over it."""
    lines = [_JSONL_HEADER]
    lines.extend(f'{{"key":"{key}","request":{request},"text":{_json_string(text)}}}' for key, request, text in records)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as err:
        raise CacheFileError(f"response cache {path} cannot be written: {err}") from None
    finally:
        temporary.unlink(missing_ok=True)


def read_jsonl(path: str | os.PathLike) -> list[tuple[str, str, str, str, str]]:
    """``(key, backend, model, canonical request, text)`` of each reply in the text cache
    file ``path``, in file order, every key checked against its request. A file that is not
    such a cache raises :class:`CacheFileError` (an :class:`InputError`) in one line naming
    the file and the line. Blank lines are skipped; a key repeated with the same reply is
    read once, with another reply refused."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CacheFileError(f"response cache {path} cannot be read: {err.strerror or err}") from None
    records: list[tuple[str, str, str, str, str]] = []
    seen: dict[str, tuple[int, str]] = {}
    header = False
    for number, raw in enumerate(data.split(b"\n"), 1):
        where = f"response cache {path} line {number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise CacheFileError(f"{where}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as err:
            message = getattr(err, "msg", str(err))
            column = getattr(err, "colno", None)
            raise CacheFileError(f"{where}: not JSON ({message}{f' at column {column}' if column else ''})") from None
        if not header:
            if value != JSONL_FORMAT:
                found = value.get("version") if isinstance(value, dict) and value.get("format") == JSONL_FORMAT["format"] else None
                if found is not None:
                    raise CacheFileError(f"{where}: text cache format version {found!r}, this jaxsim reads version "
                                         f"{JSONL_FORMAT['version']}")
                raise CacheFileError(f"{where}: not a jaxsim LLM reply file (the first line must be {_JSONL_HEADER})")
            header = True
            continue
        records_fields = tuple(sorted(value)) if isinstance(value, dict) else None
        if records_fields != _RECORD_FIELDS:
            got = f"fields {list(records_fields)}" if records_fields is not None else f"a JSON {type(value).__name__}"
            raise CacheFileError(f"{where}: expected an object with the fields {list(_RECORD_FIELDS)}, got {got}")
        key, request, text = value["key"], value["request"], value["text"]
        if not isinstance(key, str) or len(key) != 64 or not _HEX.issuperset(key):
            raise CacheFileError(f"{where}: 'key' must be 64 lower-case hex digits (a SHA-256), got {key!r}")
        if not isinstance(text, str):
            raise CacheFileError(f"{where}: 'text' must be a string, got {type(text).__name__}")
        if not isinstance(request, dict) or tuple(sorted(request)) != _REQUEST_FIELDS:
            got = f"fields {sorted(request)}" if isinstance(request, dict) else f"a JSON {type(request).__name__}"
            raise CacheFileError(f"{where}: 'request' must be an object with the fields {list(_REQUEST_FIELDS)}, got {got}")
        if not isinstance(request["backend"], str) or not isinstance(request["model"], str):
            raise CacheFileError(f"{where}: the request's 'backend' and 'model' must be strings")
        try:
            request_text = canonical_json(request)
            text.encode("utf-8")
            request_key = hashlib.sha256(request_text.encode("utf-8")).hexdigest()
        except (TypeError, ValueError) as err:  # NaN, a lone surrogate
            raise CacheFileError(f"{where}: not storable ({type(err).__name__}: {err})") from None
        if request_key != key:
            raise CacheFileError(f"{where}: the key does not match the request (edited by hand?); "
                                 f"the request's key is {request_key}")
        if key in seen:
            first, first_text = seen[key]
            if first_text != text:
                raise CacheFileError(f"{where}: the request of line {first} again, with another reply")
            continue
        seen[key] = (number, text)
        records.append((key, request["backend"], request["model"], request_text, text))
    if not header:
        raise CacheFileError(f"response cache {path} line 1: empty file, not a jaxsim LLM reply file "
                             f"(the first line must be {_JSONL_HEADER})")
    return records


class CachedBackend:
    """``backend`` behind ``cache``: stored replies are returned, only misses reach the model.

    ``name`` and ``model`` are the inner backend's (so replies are keyed by the real model).
    A batch's misses go to the inner backend in one ``chat`` call (identical requests in a
    batch are sent once); successful replies are stored, errors are returned but not stored.
    Counters: ``llm_calls`` (requests sent to the inner backend), ``cache_hits`` (requests
    answered from the cache, including repeats within a batch). In replay mode a miss
    raises :class:`CacheMissError` before anything is sent.
    """

    def __init__(self, backend: Backend, cache: ResponseCache) -> None:
        if not hasattr(backend, "chat") or not hasattr(backend, "name") or not hasattr(backend, "model"):
            raise TypeError(f"CachedBackend needs a Backend (name, model, chat), got {type(backend).__name__}")
        if not isinstance(cache, ResponseCache):
            raise TypeError(f"CachedBackend needs a ResponseCache, got {type(cache).__name__}")
        self.backend = backend
        self.cache = cache
        self.llm_calls = 0
        self.cache_hits = 0
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def model(self) -> str:
        return self.backend.model

    @property
    def tokens(self) -> int | None:
        """Tokens the model reported for the requests sent to it (cache hits cost none);
        ``None`` when the backend reports no token counts."""
        return getattr(self.backend, "tokens", None)

    def __repr__(self) -> str:
        return f"CachedBackend({self.backend!r}, {self.cache!r})"

    def cached_values(self, keys: Sequence[str], read: Callable[[str], Any]) -> list[tuple[str, Any]] | None:
        """``[(reply, read(reply)) ...]`` for request ``keys`` (:func:`cache_key`) when every
        reply is stored and ``read`` gives no ``None`` for any, counted as cache hits; else
        ``None``, counting nothing (the caller then asks through :meth:`chat`, which sends
        the misses or, in replay mode, raises). A fast path for runs answered from a warm
        cache."""
        found = self.cache.lookup(keys)
        if len(found) < len(set(keys)):
            return None
        pairs = [(found[key], read(found[key])) for key in keys]
        if any(value is None for _, value in pairs):
            return None
        with self._lock:
            self.cache_hits += len(keys)
        return pairs

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        requests = list(requests)
        replies: list[ChatReply | None] = [None] * len(requests)
        first_index_of_key: dict[str, int] = {}
        repeats: list[tuple[int, int]] = []
        misses: list[int] = []
        hits = 0
        for i, request in enumerate(requests):
            if not isinstance(request, ChatRequest):
                raise TypeError(f"CachedBackend.chat: requests[{i}] is a {type(request).__name__}, not a ChatRequest")
            key = cache_key(self.name, self.model, request)
            if key in first_index_of_key:
                repeats.append((i, first_index_of_key[key]))
                continue
            first_index_of_key[key] = i
        unique = list(first_index_of_key.values())
        stored = self.cache.get_many(  # raises in replay mode
            self.name, self.model, [requests[i] for i in unique], list(first_index_of_key)
        )
        for i, text in zip(unique, stored):
            if text is not None:
                replies[i] = ChatReply(text=text)
                hits += 1
            else:
                misses.append(i)
        if misses:
            answered = self.backend.chat([requests[i] for i in misses])
            if len(answered) != len(misses):
                raise RuntimeError(
                    f"backend {self.name!r} returned {len(answered)} replies for {len(misses)} requests"
                )
            for i, reply in zip(misses, answered):
                replies[i] = reply
                if reply.text is not None:
                    self.cache.put(self.name, self.model, requests[i], reply.text)
            self.cache.flush()
        for i, first in repeats:
            replies[i] = replies[first]
            hits += 1
        with self._lock:
            self.llm_calls += len(misses)
            self.cache_hits += hits
        return replies  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jaxsim.llm.cache export CACHE OUT.jsonl`` writes a cache (sqlite or text)
    as a text cache file; ``import IN.jsonl CACHE`` adds a text file's replies to a cache."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m jaxsim.llm.cache",
        description="Move LLM replies between jaxsim's sqlite response cache and its text (JSON Lines) form.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write every reply of CACHE to the text file OUT (.jsonl)")
    export.add_argument("cache", help="the response cache (sqlite, or a .jsonl text cache)")
    export.add_argument("out", help="the text cache file to write (replaced)")
    load = commands.add_parser("import", help="add the replies of the text file IN to CACHE (created if missing)")
    load.add_argument("jsonl", metavar="in", help="a text cache file (.jsonl)")
    load.add_argument("cache", help="the response cache to add to (sqlite, or a .jsonl text cache)")
    args = parser.parse_args(argv)
    if args.command == "export":
        with ResponseCache(args.cache, mode="replay") as cache:
            count = cache.export_jsonl(args.out)
        print(f"wrote {count} replies to {args.out}")
    else:
        with ResponseCache(args.cache, mode="readwrite") as cache:
            added = cache.import_jsonl(args.jsonl)
            total = len(cache)
        print(f"added {added} replies to {args.cache} (now {total})")
    return 0


if __name__ == "__main__":
    from jaxsim import cli

    raise SystemExit(cli.run_cli(main))
