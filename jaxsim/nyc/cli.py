"""Command-line helpers of the NYC scenarios: choosing a population (a directory, NYC
neighbourhoods, or a NYC population of a given size; synthetic ones cached on disk).

Population cache. Synthetic populations are deterministic given their arguments, the seed
and the code and data that build them, so :func:`cached_synthetic_population` keeps each
one as a population directory (:func:`jaxsim.population_io.save_population`) named by a
hash of all of these, and later calls load it (all of NYC: see benchmarks/RESULTS.md for
build vs load seconds). The folder is ``$JAXSIM_POPULATION_CACHE``, else ``populations/``
in the cache root (:mod:`jaxsim.caches`); ``off`` disables the cache. An entry that cannot be read
(or was written for another key) is rebuilt with a warning; a cache that cannot be
written is skipped with a warning. Entries are written atomically, so concurrent runs
never see half an entry.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Sequence

from jaxsim import caches
from jaxsim.cli import add_compile_cache_argument
from jaxsim.errors import InputError
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jaxsim.population import Population

DEFAULT_NTAS: tuple[str, ...] = ("QN0103",)  # Astoria, Queens

POPULATION_CACHE_ENV = caches.POPULATION_CACHE_ENV
#: Metadata keys (in the entry's ``population.json``) holding the entry's full cache key
#: and a hash of its content, checked when the entry is read.
_CACHE_KEY_FIELD = "population_cache_key"
_CONTENT_FIELD = "population_cache_content"
#: ... and the order of its contact layers (a population directory lists them by name).
_LAYERS_FIELD = "population_cache_layers"


def add_population_arguments(parser: argparse.ArgumentParser) -> None:
    """``--population DIR | --ntas A,B | --agents N``, ``--layer-roles MAP`` and
    ``--allow-pickle``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--population", metavar="DIR", help="population directory (agents.csv, mapping.json, ...)")
    group.add_argument(
        "--ntas",
        metavar="CODES",
        help="synthesize these NYC neighbourhoods (comma-separated NTA codes, or 'all'); "
        f"default {','.join(DEFAULT_NTAS)} (Astoria)",
    )
    group.add_argument(
        "--agents", type=int, metavar="N", help="synthesize a NYC population of exactly N agents"
    )
    add_compile_cache_argument(parser)
    parser.add_argument(
        "--keep-order",
        action="store_true",
        help="keep a loaded population's agent order (default: reorder by area and household "
        "for memory locality; per-agent results map back to the file's agent ids)",
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow loading the pickle population layout (unpickling can run code: trusted files only)",
    )
    add_layer_roles_argument(parser)


def add_layer_roles_argument(parser: argparse.ArgumentParser) -> None:
    """``--layer-roles MAP``: which contact layer plays which role (:mod:`jaxsim.layer_roles`)."""
    parser.add_argument(
        "--layer-roles",
        metavar="MAP",
        help="which contact layer (the <layer> of mobility_networks_<layer>.csv) is which role, e.g. "
        "0=household,1=community; '-' leaves a layer out, 'keep' keeps the file names. Default: layers "
        "named by role keep their names; the field's numbered layers: 0 is the community, the others "
        "are left out (they re-draw it for later steps)",
    )


#: Who needs :func:`required_columns`, for messages.
_NEEDED_BY = "the NYC scenarios' COVID and labour models"


def required_columns() -> dict[str, tuple[str, ...]]:
    """The columns every NYC scenario reads from a population, with the labels its models
    know: ``age``, labelled with the age bands of :data:`jaxsim.nyc.synthesis.AGE_LABELS`."""
    from jaxsim.nyc.synthesis import AGE_LABELS

    return {"age": tuple(AGE_LABELS)}


def with_layer_roles(population: Population, layer_roles: str | None = None) -> Population:
    """``population`` with its contact layers named by role (:func:`jaxsim.layer_roles.apply_layer_roles`;
    ``layer_roles`` is ``--layer-roles``' text, ``None`` for the defaults). When the defaults
    rename the field's numbered layers, one ``note:`` line on stderr says how."""
    import sys

    from jaxsim.layer_roles import COMMUNITY, UNUSED, apply_layer_roles

    result = apply_layer_roles(population, layer_roles)
    if layer_roles is None and result is not population:
        applied = result.metadata.get("layer_roles", {})
        parts = [f"layer {layer} is the {role}" if role != UNUSED else f"layer {layer} is left out"
                 for layer, role in applied.items()]
        why = (f" (the field re-draws its {COMMUNITY} layer in each later file)"
               if any(role == UNUSED for role in applied.values()) else "")
        print(f"note: contact layers by role, the field's numbering: {', '.join(parts)}{why}; "
              "--layer-roles maps them otherwise", file=sys.stderr)
    return result


def load_population_directory(
    directory: str | os.PathLike,
    *,
    allow_pickle: bool = False,
    layer_roles: str | None = None,
    keep_order: bool = False,
    required: dict[str, Sequence[str] | None] | None = None,
) -> Population:
    """A population directory as the NYC scenarios use it: loaded
    (:func:`jaxsim.population_io.load_population`), checked for the columns they read
    (``required``, default :func:`required_columns`: one line naming the file and the column
    when one is missing), its layers named by role (:func:`with_layer_roles`), and reordered for memory locality unless ``keep_order``."""
    from jaxsim.locality import localize
    from jaxsim.population_io import load_population, require_columns

    population = load_population(directory, allow_pickle=allow_pickle)
    require_columns(population, required_columns() if required is None else required, needed_by=_NEEDED_BY)
    population = with_layer_roles(population, layer_roles)
    return population if keep_order else localize(population)


def population_from_args(args: argparse.Namespace, seed: int) -> Population:
    """Load or synthesize the population the arguments ask for (synthetic ones through the
    population cache, :func:`cached_synthetic_population`), its contact layers named by
    role (``--layer-roles``, :func:`with_layer_roles`), and turn on the persistent
    compilation cache that ``--compile-cache`` names.

    Raises:
        InputError: one line: a bad option, a directory that cannot be read, one that lacks
            a column the scenarios need (:func:`required_columns`), or a bad
            ``--layer-roles`` map (naming the flag and its value).
    """
    from jaxsim.compile_cache import enable_compile_cache

    enable_compile_cache(getattr(args, "compile_cache", None))
    layer_roles = getattr(args, "layer_roles", None)
    if args.population:
        return load_population_directory(
            args.population, allow_pickle=args.allow_pickle, layer_roles=layer_roles, keep_order=args.keep_order
        )
    # Synthetic populations come in locality order already (by NTA, then household).
    if args.agents is not None:
        if args.agents < 1:
            raise InputError(f"--agents must be >= 1, got {args.agents}")
        return with_layer_roles(cached_synthetic_population(agents=args.agents, seed=seed), layer_roles)
    ntas: str | list[str] = list(DEFAULT_NTAS)
    if args.ntas:
        ntas = "all" if args.ntas.strip().lower() == "all" else [
            n.strip() for n in args.ntas.split(",") if n.strip()
        ]
        if not ntas:
            raise InputError(f"--ntas: no NTA codes in {args.ntas!r}")
    return with_layer_roles(cached_synthetic_population(ntas, seed=seed), layer_roles)


# ----------------------------------------------------------------- population cache
def population_cache_dir(requested: str | os.PathLike | None = None) -> Path | None:
    """The population cache folder: ``requested``, else ``$JAXSIM_POPULATION_CACHE``, else
    ``populations/`` in the cache root (:func:`jaxsim.caches.population_cache_dir`); ``None``
    when the value is ``off``."""
    value = requested if requested is not None else os.environ.get(POPULATION_CACHE_ENV)
    if value is None or str(value).strip() == "":
        return caches.population_cache_dir()
    if str(value).strip().lower() == "off":
        return None
    return Path(value).expanduser()


def synthesis_version() -> str:
    """Hash of everything a synthetic population depends on besides its arguments: the
    source of the modules that build, hold and write it, the households data file, and
    the package version. Any change to them gives new cache entries."""
    from jaxsim import generators, population, population_io
    from jaxsim.nyc import households, synthesis

    digest = hashlib.sha256()
    for module in (synthesis, households, generators, population, population_io):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(Path(households.DATA_DIR / households.HOUSEHOLDS_FILE).read_bytes())
    try:
        from importlib.metadata import version

        digest.update(version("jaxsim").encode())
    except Exception:  # not installed as a distribution: the sources above still count
        pass
    return digest.hexdigest()


def synthetic_cache_key(
    ntas: Sequence[str] | str | None = None, *, seed: int, max_agents: int | None = None,
    agents: int | None = None,
) -> str:
    """The cache key (hex) of a synthetic population: a hash of the arguments (NTA codes
    in order or ``"all"``, seed, agent cap, or the exact size of
    :func:`jaxsim.nyc.synthesis.synthesize_population_of_size`) and :func:`synthesis_version`."""
    arguments = {
        "ntas": ntas if isinstance(ntas, str) or ntas is None else [str(n) for n in ntas],
        "seed": int(seed),
        "max_agents": None if max_agents is None else int(max_agents),
        "agents": None if agents is None else int(agents),
        "version": synthesis_version(),
    }
    return hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()


def cached_synthetic_population(
    ntas: Sequence[str] | str | None = None,
    *,
    seed: int,
    max_agents: int | None = None,
    agents: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Population:
    """A synthetic NYC population, loaded from the cache when it holds it, else built (and
    stored).

    ``agents`` asks for :func:`jaxsim.nyc.synthesis.synthesize_population_of_size` (exactly
    that many agents), otherwise ``ntas``/``max_agents`` go to
    :func:`jaxsim.nyc.synthesis.synthesize_nyc_population`. ``cache_dir`` overrides the
    folder (see :func:`population_cache_dir`). The result equals a fresh build (same
    attributes, labels, contact layers and metadata; ``metadata["source"]`` names the
    cache entry it was read from).
    """
    from jaxsim.nyc import synthesis

    def build() -> Population:
        if agents is not None:
            return synthesis.synthesize_population_of_size(agents, seed=seed)
        return synthesis.synthesize_nyc_population(ntas, seed=seed, max_agents=max_agents)

    root = population_cache_dir(cache_dir)
    if root is None:
        return build()
    key = synthetic_cache_key(ntas, seed=seed, max_agents=max_agents, agents=agents)
    entry = root / f"nyc-{key[:24]}"
    if entry.exists():
        from jaxsim.population_io import load_population

        try:
            population = load_population(entry)
            found = population.metadata.pop(_CACHE_KEY_FIELD, None)
            content = population.metadata.pop(_CONTENT_FIELD, None)
            layers = population.metadata.pop(_LAYERS_FIELD, None)
            if found != key:
                raise InputError(f"it was written for cache key {found!r}")
            if content != _fingerprint(population):
                raise InputError("its content does not match the hash stored with it")
            if not isinstance(layers, list) or sorted(layers) != sorted(population.networks):
                raise InputError(f"its layer list {layers!r} does not match its networks")
            population.networks = {name: population.networks[name] for name in layers}
            return population
        except Exception as err:  # a damaged entry must never stop a run
            warnings.warn(
                f"population cache entry {entry} is unusable ({err}); rebuilding it", stacklevel=2
            )
            shutil.rmtree(entry, ignore_errors=True)
    population = build()
    _store(population, entry, key)
    return population


def _fingerprint(population: Population) -> str:
    """Hash of a population's agents, labels, strings, stages and contact layers (not its
    metadata), to tell a damaged cache entry that still parses from a sound one."""
    digest = hashlib.blake2b(digest_size=32)

    def add(name: str, values) -> None:
        import numpy as np

        array = np.ascontiguousarray(values)
        if array.dtype == object:
            array = np.asarray([str(v) for v in array.tolist()])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes() if array.dtype.kind != "U" else "\x00".join(array.tolist()).encode())

    for name in sorted(population.attributes):
        add(f"attribute {name}", population.attributes[name])
    for name in sorted(population.strings):
        add(f"string {name}", population.strings[name])
    digest.update(json.dumps(population.labels, sort_keys=True).encode())
    for name in sorted(population.initial_states):
        add(f"initial {name}", population.initial_states[name])
    for name in sorted(population.networks):
        edges = population.networks[name]
        add(f"network {name} u", edges.u)
        add(f"network {name} v", edges.v)
        if edges.weight is not None:
            add(f"network {name} weight", edges.weight)
    return digest.hexdigest()


def _store(population: Population, entry: Path, key: str) -> None:
    """Write ``population`` as cache entry ``entry`` (atomically); warn if that fails."""
    from jaxsim.population_io import save_population

    metadata = population.metadata
    population.metadata = {
        **metadata, _CACHE_KEY_FIELD: key, _CONTENT_FIELD: _fingerprint(population),
        _LAYERS_FIELD: list(population.networks),
    }
    try:
        save_population(population, entry)
    except Exception as err:
        if not (isinstance(err, FileExistsError) and entry.is_dir()):  # else: another run stored it
            warnings.warn(
                f"cannot write population cache entry {entry} ({err}); continuing without it", stacklevel=3
            )
    finally:
        population.metadata = metadata




__all__ = [
    "DEFAULT_NTAS",
    "add_layer_roles_argument",
    "add_population_arguments",
    "cached_synthetic_population",
    "population_cache_dir",
    "load_population_directory",
    "population_from_args",
    "required_columns",
    "synthesis_version",
    "synthetic_cache_key",
    "with_layer_roles",
]
