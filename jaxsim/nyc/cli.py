"""Command-line helpers of the NYC scenarios: choosing a population (a directory, NYC
neighbourhoods, or a NYC population of a given size; synthetic ones cached on disk).

Population cache. Synthetic populations are deterministic given their arguments, the seed
and the code and data that build them, so :func:`cached_synthetic_population` keeps each
one as a population directory (:func:`jaxsim.population_io.save_population`) named by a
hash of all of these, and later calls load it (all of NYC: see benchmarks/RESULTS.md for
build vs load seconds). The folder is ``$JAXSIM_POPULATION_CACHE`` or
``~/.cache/jaxsim/populations``; ``off`` disables the cache. An entry that cannot be read
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

from jaxsim.cli import add_compile_cache_argument
from jaxsim.errors import InputError
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jaxsim.population import Population

DEFAULT_NTAS: tuple[str, ...] = ("QN0103",)  # Astoria, Queens

POPULATION_CACHE_ENV = "JAXSIM_POPULATION_CACHE"
DEFAULT_POPULATION_CACHE = Path.home() / ".cache" / "jaxsim" / "populations"
#: Metadata keys (in the entry's ``population.json``) holding the entry's full cache key
#: and a hash of its content, checked when the entry is read.
_CACHE_KEY_FIELD = "population_cache_key"
_CONTENT_FIELD = "population_cache_content"
#: ... and the order of its contact layers (a population directory lists them by name).
_LAYERS_FIELD = "population_cache_layers"


def add_population_arguments(parser: argparse.ArgumentParser) -> None:
    """``--population DIR | --ntas A,B | --agents N`` and ``--allow-pickle``."""
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


def population_from_args(args: argparse.Namespace, seed: int) -> Population:
    """Load or synthesize the population the arguments ask for (synthetic ones through the
    population cache, :func:`cached_synthetic_population`), and turn on the persistent
    compilation cache that ``--compile-cache`` names."""
    from jaxsim.compile_cache import enable_compile_cache

    enable_compile_cache(getattr(args, "compile_cache", None))
    if args.population:
        from jaxsim.locality import localize
        from jaxsim.population_io import load_population

        population = load_population(args.population, allow_pickle=args.allow_pickle)
        return population if args.keep_order else localize(population)
    # Synthetic populations come in locality order already (by NTA, then household).
    if args.agents is not None:
        if args.agents < 1:
            raise InputError(f"--agents must be >= 1, got {args.agents}")
        return cached_synthetic_population(agents=args.agents, seed=seed)
    ntas: str | list[str] = list(DEFAULT_NTAS)
    if args.ntas:
        ntas = "all" if args.ntas.strip().lower() == "all" else [
            n.strip() for n in args.ntas.split(",") if n.strip()
        ]
        if not ntas:
            raise InputError(f"--ntas: no NTA codes in {args.ntas!r}")
    return cached_synthetic_population(ntas, seed=seed)


# ----------------------------------------------------------------- population cache
def population_cache_dir(requested: str | os.PathLike | None = None) -> Path | None:
    """The population cache folder: ``requested``, else ``$JAXSIM_POPULATION_CACHE``, else
    :data:`DEFAULT_POPULATION_CACHE`; ``None`` when the value is ``off``."""
    value = requested if requested is not None else os.environ.get(POPULATION_CACHE_ENV)
    if value is None or str(value).strip() == "":
        return DEFAULT_POPULATION_CACHE
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
    "add_population_arguments",
    "cached_synthetic_population",
    "population_cache_dir",
    "population_from_args",
    "synthesis_version",
    "synthetic_cache_key",
]
