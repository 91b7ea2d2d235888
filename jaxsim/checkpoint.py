"""Runs that stop and resume: checkpoints of a run's state, parameters, key and metrics.

:func:`jaxsim.engine.run` with ``checkpoints=Checkpoints(folder, every=N)`` saves, every
``N`` days, everything the rest of the run depends on:

- the **state** (every leaf of the model's state pytree, sharded arrays included),
- the **parameters** and the **run key** (a resumed run refuses other ones),
- the **next day index** ``t`` (the step number of the checkpoint),
- the **metrics so far** (``{name: [days done, ...]}``),
- a JSON **manifest**: model name and fingerprint, the run's first day and length, the
  caller's ``config`` (e.g. the seed and the scenario's arguments), the number of agents,
  the jaxsim and JAX versions.

``engine.run(..., checkpoints=Checkpoints(folder), resume=True)`` continues from the latest
checkpoint. Its metrics equal an uninterrupted run's bit for bit: a day's random key is
``fold_in(key, t)`` of the absolute day ``t``, the state carries everything else, and the
chunk length of a run does not change its values. Resuming with another model, population,
run length, seed, configuration or software version is refused with one
:class:`jaxsim.errors.InputError` line naming the folder and what differs.

Atomicity. A checkpoint is written by orbax into ``<day>.orbax-checkpoint-tmp`` and
renamed to ``<day>`` when complete (after a ``commit_success.txt`` marker), so a process
killed while saving leaves a temporary folder, never a half-written ``<day>``. Only folders
named by a whole number that hold the commit marker, orbax's step metadata and the
manifest count as checkpoints (:meth:`Checkpoints.days`); temporary folders are never
read and are removed when the folder is next opened for writing. The last ``keep`` (2)
checkpoints are kept: an older one is deleted only after a newer one is complete.

orbax is imported only when a checkpoint is saved or loaded (importing it takes about
2 seconds), never when jaxsim is imported.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np

from jaxsim.errors import InputError

#: Format of the manifest; a checkpoint of another format is refused.
FORMAT = "jaxsim-checkpoint/1"
#: The folder a scenario keeps its checkpoints in, inside its output folder.
FOLDER_NAME = "checkpoints"
#: orbax's marker of a finalized checkpoint and its per-step metadata file.
COMMIT_FILE = "commit_success.txt"
STEP_METADATA_FILE = "_CHECKPOINT_METADATA"
#: Item names inside a checkpoint.
ARRAYS, MANIFEST = "arrays", "manifest"
#: orbax's suffix of a checkpoint folder being written.
TMP_SUFFIX = ".orbax-checkpoint-tmp"


@dataclass
class Restored:
    """What a checkpoint holds, placed like the run's own arrays.

    Attributes:
        state: the state at the start of day ``next_day``.
        params: the run's parameters.
        key: the run key.
        next_day: the day index ``t`` the run continues with.
        metrics: ``{name: numpy [next_day - start_day, ...]}``, the days done.
        manifest: the checkpoint's manifest.
        directory: the checkpoint's folder.
    """

    state: Any
    params: Any
    key: Any
    next_day: int
    metrics: dict[str, np.ndarray]
    manifest: dict
    directory: Path


class Checkpoints:
    """A folder of one run's checkpoints, written every ``every`` days.

    Args:
        directory: the folder (created on the first save).
        every: days between checkpoints, counted from the run's first day. ``None`` when
            resuming: the interval the checkpoint was written with.
        keep: how many of the latest checkpoints to keep (>= 1).
        config: JSON-able values that identify the run beyond the model (e.g. the seed,
            a scenario's arguments): a resume with different values is refused.
        overwrite: a run that does not resume may replace checkpoints already in the
            folder (by default it refuses, so that a forgotten ``resume`` loses no work).
    """

    def __init__(self, directory, every: int | None = None, *, keep: int = 2,
                 config: Mapping[str, Any] | None = None, overwrite: bool = False):
        self.directory = Path(directory)
        if every is not None and (isinstance(every, bool) or int(every) != every or every < 1):
            raise InputError(f"checkpoint interval must be a whole number of days >= 1, got {every!r}")
        self.every = None if every is None else int(every)
        if int(keep) < 1:
            raise InputError(f"checkpoints to keep must be >= 1, got {keep!r}")
        self.keep = int(keep)
        self.config = _jsonable(dict(config or {}))
        self.overwrite = bool(overwrite)
        self.saved: list[int] = []
        self.save_seconds: list[float] = []
        self._manager = None
        self._run: dict | None = None
        self._templates = None

    def __repr__(self) -> str:
        return f"Checkpoints({str(self.directory)!r}, every={self.every})"

    # ------------------------------------------------------------------ reading
    def days(self) -> list[int]:
        """The next-day indices of the complete checkpoints in the folder, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            if path.name.isdigit() and path.is_dir() and is_complete(path):
                found.append(int(path.name))
        return sorted(found)

    def latest(self) -> int | None:
        """The next-day index of the latest complete checkpoint, or ``None``."""
        found = self.days()
        return found[-1] if found else None

    def manifest(self, day: int | None = None) -> dict:
        """The manifest of checkpoint ``day`` (default the latest)."""
        day = self._pick(day)
        return read_manifest(self.directory / str(day))

    def _pick(self, day: int | None) -> int:
        found = self.days()
        if not found:
            raise InputError(f"{self.directory}: no complete checkpoint to resume from")
        if day is None:
            return found[-1]
        if day not in found:
            raise InputError(f"{self.directory}: no complete checkpoint of day {day}; it has days {found}")
        return int(day)

    def check_config(self) -> dict:
        """Before building anything: the latest checkpoint's manifest, refused (one
        :class:`InputError` line) when its ``config`` or software versions differ from
        this run's. :func:`jaxsim.engine.run` checks everything else when it resumes."""
        manifest = self.manifest()
        where = f"cannot resume from {self.directory}"
        given = {"format": FORMAT, "jaxsim_version": _jaxsim_version(), "jax_version": jax.__version__}
        for field, value in given.items():
            if manifest.get(field) != value:
                raise InputError(f"{where}: its {field.replace('_', ' ')} is {_show(manifest.get(field))}, "
                                 f"this run's is {_show(value)}")
        _check_config(where, manifest.get("config") or {}, self.config)
        return manifest

    # --------------------------------------------------------- used by engine.run
    def begin(self, *, model, key, state, params, world, start_day: int, days: int,
              resume: bool = False) -> Restored | None:
        """Called by :func:`jaxsim.engine.run` before its first chunk: describe the run, and
        with ``resume`` load the latest checkpoint (checked against this run: an
        :class:`InputError` naming what differs). ``state``, ``key`` and ``params`` are the
        run's own (their structure, shapes and placements are the templates a checkpoint
        is loaded into)."""
        self._templates = (_abstract(state), params, key)  # no reference to the state's buffers
        self._run = {
            "format": FORMAT,
            "model": model.name,
            "model_fingerprint": model_fingerprint(model, state, params),
            "num_agents": int(world.num_agents),
            "num_slots": int(world.num_slots),
            "start_day": int(start_day),
            "days": int(days),
            "config": self.config,
            "jaxsim_version": _jaxsim_version(),
            "jax_version": jax.__version__,
            "state_leaves": _leaf_specs(state),
            "params_leaves": _leaf_specs(params),
            "key": _leaf_specs(key),
        }
        restored = None
        if resume:
            restored = self._restore_latest()
            if self.every is None:
                self.every = restored.manifest.get("every")
        else:
            existing = self.days()
            if existing and not self.overwrite:
                raise InputError(
                    f"{self.directory} already holds checkpoints (days {existing}) of an earlier run: "
                    "resume from them, or remove the folder"
                )
            self.clear()
        self._run["every"] = self.every
        return restored

    def save(self, next_day: int, state, metrics: Mapping[str, np.ndarray]) -> float:
        """Save a checkpoint of the run at the start of day ``next_day``; blocks until it is
        complete on disk; returns the seconds it took."""
        start = time.perf_counter()  # the first save's import of orbax included
        import orbax.checkpoint as ocp

        if self._run is None:
            raise InputError("Checkpoints.save before begin(): pass the Checkpoints to jaxsim.engine.run")
        _, params, key = self._templates
        tree = {
            "state": _encode(state),
            "params": _encode(params),
            "key": _encode(key),
            "metrics": {name: np.asarray(value) for name, value in metrics.items()},
        }
        manifest = dict(self._run, next_day=int(next_day), saved_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        metrics={name: [list(np.shape(v)), str(np.asarray(v).dtype)] for name, v in metrics.items()})
        manager = self._writer()
        step_dir = self.directory / str(int(next_day))
        if step_dir.exists():  # a checkpoint of the same day from before a resume: replaced
            manager.reload()
            if int(next_day) in manager.all_steps():
                manager.delete(int(next_day))
            else:
                shutil.rmtree(step_dir)
        saved = manager.save(int(next_day), force=True, args=ocp.args.Composite(**{
            ARRAYS: ocp.args.StandardSave(tree), MANIFEST: ocp.args.JsonSave(manifest)}))
        manager.wait_until_finished()
        if not saved or not is_complete(step_dir):
            raise RuntimeError(f"orbax did not write checkpoint {step_dir}")
        seconds = time.perf_counter() - start
        self.saved.append(int(next_day))
        self.save_seconds.append(seconds)
        return seconds

    def close(self) -> None:
        """Finish pending work and release orbax's threads (the folder stays)."""
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._manager.close()
            self._manager = None

    def clear(self) -> None:
        """Remove every checkpoint, complete or not, from the folder (other files stay)."""
        self.close()
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                if path.is_dir() and (path.name.isdigit() or TMP_SUFFIX in path.name):
                    shutil.rmtree(path)

    def report(self) -> dict:
        """For a run's ``run.json``: folder, interval, days saved, seconds per save."""
        return {"directory": str(self.directory), "every_days": self.every, "saved_days": list(self.saved),
                "save_seconds": [round(s, 4) for s in self.save_seconds]}

    # ------------------------------------------------------------------ internals
    def _writer(self):
        if self._manager is None:
            import orbax.checkpoint as ocp

            self.directory.mkdir(parents=True, exist_ok=True)
            options = ocp.CheckpointManagerOptions(
                max_to_keep=self.keep, create=True, enable_async_checkpointing=False,
                cleanup_tmp_directories=True,
            )
            self._manager = ocp.CheckpointManager(self.directory.resolve(), options=options,
                                                  item_names=(ARRAYS, MANIFEST))
        return self._manager

    def _restore_latest(self) -> Restored:
        found = self.days()
        if not found:
            raise InputError(f"{self.directory}: no complete checkpoint to resume from")
        day = found[-1]
        manifest = read_manifest(self.directory / str(day))
        self._check(manifest)
        try:
            return self._load(day, manifest)
        except InputError:
            raise
        except Exception as err:  # unreadable: fall back on the one before, if any
            if len(found) < 2:
                raise InputError(f"{self.directory / str(day)}: checkpoint unreadable ({type(err).__name__}: "
                                 f"{_one_line(err)})") from err
            previous = found[-2]
            manifest = read_manifest(self.directory / str(previous))
            self._check(manifest)
            print(f"warning: checkpoint {self.directory / str(day)} unreadable ({type(err).__name__}); "
                  f"resuming from day {previous}")
            return self._load(previous, manifest)

    def _check(self, manifest: dict) -> None:
        """Refuse a checkpoint of another run: one line naming the folder and what differs."""
        where = f"cannot resume from {self.directory}"
        run = self._run

        def differs(what, saved, given):
            return InputError(f"{where}: its {what} is {_show(saved)}, this run's is {_show(given)}")

        fields = (("format", "checkpoint format"), ("jaxsim_version", "jaxsim version"),
                  ("jax_version", "JAX version"), ("model", "model"), ("num_agents", "number of agents"),
                  ("num_slots", "number of agent slots"), ("start_day", "first day"), ("days", "number of days"))
        for field, what in fields:
            if manifest.get(field) != run[field]:
                raise differs(what, manifest.get(field), run[field])
        _check_config(where, manifest.get("config") or {}, run["config"])
        if manifest.get("model_fingerprint") != run["model_fingerprint"]:
            raise differs("model fingerprint (substeps, metrics or state layout)",
                          manifest.get("model_fingerprint"), run["model_fingerprint"])
        for field, what in (("state_leaves", "state layout"), ("params_leaves", "parameter layout"),
                            ("key", "run key type")):
            if manifest.get(field) != run[field]:
                raise InputError(f"{where}: its {what} differs from this run's")
        done = manifest["next_day"] - manifest["start_day"]
        if not 0 < done <= run["days"]:
            raise InputError(f"{where}: its next day {manifest['next_day']} is outside this run's days "
                             f"{run['start_day']} .. {run['start_day'] + run['days'] - 1}")
        for name, (shape, _) in manifest.get("metrics", {}).items():
            if not shape or shape[0] != done:
                raise InputError(f"{where}: metric {name!r} holds {shape[:1]} days, expected {done}")

    def _load(self, day: int, manifest: dict) -> Restored:
        import orbax.checkpoint as ocp

        state, params, key = self._templates
        target = {
            "state": _targets(state),
            "params": _targets(params),
            "key": _targets(key),
            "metrics": {name: np.zeros(shape, dtype) for name, (shape, dtype) in manifest["metrics"].items()},
        }
        directory = (self.directory / str(day)).resolve()
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as reader:
            loaded = reader.restore(directory, args=ocp.args.Composite(**{ARRAYS: ocp.args.StandardRestore(target)}))
        arrays = loaded[ARRAYS]
        restored_key = _decode(key, arrays["key"])
        restored_params = _decode(params, arrays["params"])
        where = f"cannot resume from {self.directory}"
        if not _equal(restored_key, key):
            raise InputError(f"{where}: its run key differs from this run's (another seed?)")
        difference = _first_difference(restored_params, params)
        if difference is not None:
            raise InputError(f"{where}: its parameter {difference} differs from this run's")
        return Restored(
            state=_decode(state, arrays["state"]), params=restored_params, key=restored_key,
            next_day=int(manifest["next_day"]),
            metrics={name: np.asarray(arrays["metrics"][name]) for name in manifest["metrics"]},
            manifest=manifest, directory=self.directory / str(day),
        )


# -------------------------------------------------------------------- module helpers
def _check_config(where: str, saved: dict, given: dict) -> None:
    for name in sorted(set(saved) | set(given)):
        if saved.get(name, "<unset>") != given.get(name, "<unset>"):
            raise InputError(f"{where}: its {name} is {_show(saved.get(name, '<unset>'))}, "
                             f"this run's is {_show(given.get(name, '<unset>'))}")


def is_complete(step_dir: Path) -> bool:
    """Whether ``step_dir`` is a finalized checkpoint: orbax's commit marker and step
    metadata, and the manifest item. A folder still being written (or a copy of one)
    lacks them and is never read."""
    return ((step_dir / COMMIT_FILE).is_file() and (step_dir / STEP_METADATA_FILE).is_file()
            and (step_dir / MANIFEST / COMMIT_FILE).is_file() and (step_dir / ARRAYS / COMMIT_FILE).is_file())


def read_manifest(step_dir: Path) -> dict:
    """The manifest of one checkpoint folder (plain JSON; no orbax import)."""
    path = Path(step_dir) / MANIFEST / "metadata"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{step_dir}: unreadable checkpoint manifest ({type(err).__name__})") from err


def resolve(directory) -> Path:
    """The checkpoint folder for ``--resume DIR``: ``DIR`` itself when it holds
    checkpoints, else ``DIR/checkpoints`` (``DIR`` a run's output folder). An
    :class:`InputError` when neither holds a complete checkpoint."""
    directory = Path(directory)
    for candidate in (directory, directory / FOLDER_NAME):
        if Checkpoints(candidate).days():
            return candidate
    if not directory.exists():
        raise InputError(f"{directory}: no such folder to resume from")
    raise InputError(f"{directory}: no complete checkpoint to resume from (nor in {directory / FOLDER_NAME})")


def model_fingerprint(model, state, params) -> str:
    """A digest stable across processes of what makes checkpoints of ``model``
    interchangeable: its name, substeps (names and code), declared metrics, and the
    structure, ranks and dtypes of its state and parameters (not their sizes: a run of
    the same model on another population has the same fingerprint)."""
    described = {
        "name": model.name,
        "substeps": [[s.name, _code_digest(s.fn), bool(s.day_key)] for s in model.substeps],
        "observe": _code_digest(model.observe),
        "metrics": [[m.name, m.kind, m.by] for m in model.metrics],
        "state": _layout(state),
        "params": _layout(params),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:20]


def _code_digest(fn) -> str | None:
    code = getattr(getattr(fn, "func", fn), "__code__", None)
    if code is None:
        return None
    digest = hashlib.sha256()

    def add(c):
        digest.update(c.co_code)
        digest.update(repr(c.co_names).encode())
        for const in c.co_consts:
            if hasattr(const, "co_code"):
                add(const)

    add(code)
    return digest.hexdigest()[:16]


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _leaf_specs(tree) -> list:
    """``[[treedef], [shape, dtype, kind], ...]`` with addresses stripped (stable across
    processes)."""
    leaves, treedef = jax.tree.flatten(tree)
    specs = [re.sub(r" at 0x[0-9a-fA-F]+", "", str(treedef))]
    for x in leaves:
        if _is_key(x):
            specs.append([list(x.shape), str(jax.random.key_impl(x)), "key"])
        elif isinstance(x, (jax.Array, np.ndarray, np.generic)):
            specs.append([list(np.shape(x)), str(x.dtype), "array"])
        else:
            specs.append([[], type(x).__name__, "value"])
    return specs


def _layout(tree) -> list:
    """:func:`_leaf_specs` with ranks instead of shapes."""
    specs = _leaf_specs(tree)
    return specs[:1] + [[len(shape), dtype, kind] for shape, dtype, kind in specs[1:]]


def _abstract(tree):
    """``tree`` with its device arrays (other than keys) replaced by their shape, dtype and
    sharding."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        if isinstance(x, jax.Array) and not _is_key(x) else x, tree)


def _encode(tree) -> list:
    """The leaves of ``tree`` as arrays orbax can write (keys as their raw data)."""
    out = []
    for x in jax.tree.leaves(tree):
        if _is_key(x):
            out.append(np.asarray(jax.random.key_data(x)))
        elif isinstance(x, jax.Array):
            out.append(x)
        else:
            out.append(np.asarray(x))
    return out


def _targets(tree) -> list:
    """Restore targets for :func:`_encode`'s leaves: device arrays where the template
    leaf is one (same sharding), numpy otherwise."""
    out = []
    for x in jax.tree.leaves(tree):
        if _is_key(x):
            out.append(np.zeros(jax.random.key_data(x).shape, np.uint32))
        elif isinstance(x, jax.ShapeDtypeStruct):
            out.append(x)
        elif isinstance(x, jax.Array):
            out.append(jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding))
        else:
            value = np.asarray(x)
            out.append(np.zeros(value.shape, value.dtype))
    return out


def _decode(template, leaves: list):
    """``template``'s structure with the loaded ``leaves`` (keys re-wrapped and placed
    like the template's, Python scalars as Python scalars)."""
    flat, treedef = jax.tree.flatten(template)
    out = []
    for like, value in zip(flat, leaves, strict=True):
        if _is_key(like):
            key = jax.random.wrap_key_data(np.asarray(value), impl=jax.random.key_impl(like))
            out.append(jax.device_put(key, like.sharding))
        elif isinstance(like, (jax.Array, jax.ShapeDtypeStruct)):
            out.append(value)
        elif isinstance(like, np.ndarray):
            out.append(np.asarray(value))
        elif isinstance(like, np.generic):
            out.append(np.asarray(value).astype(like.dtype)[()])
        else:
            out.append(type(like)(np.asarray(value).item()))
    return jax.tree.unflatten(treedef, out)


def _host(x):
    if _is_key(x):
        x = jax.random.key_data(x)
    return np.asarray(jax.device_get(x))


def _equal(a, b) -> bool:
    return _first_difference(a, b) is None


def _first_difference(a, b) -> str | None:
    """The path of the first leaf where ``a`` and ``b`` differ (bitwise), or ``None``."""
    with_paths, _ = jax.tree_util.tree_flatten_with_path(a)
    others = jax.tree.leaves(b)
    for (path, x), y in zip(with_paths, others, strict=True):
        hx, hy = _host(x), _host(y)
        if hx.shape != hy.shape or hx.dtype != hy.dtype or hx.tobytes() != hy.tobytes():
            return jax.tree_util.keystr(path).lstrip(".") or "value"
    return None


def _jsonable(value):
    """``value`` as plain JSON types (so that a saved config compares equal to a new one)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _show(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def _one_line(err) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _jaxsim_version() -> str:
    import jaxsim

    return jaxsim.__version__


__all__ = ["Checkpoints", "FOLDER_NAME", "Restored", "is_complete", "model_fingerprint", "read_manifest", "resolve"]
