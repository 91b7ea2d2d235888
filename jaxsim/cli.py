"""Command-line helpers shared by the scenario scripts: choosing a population, clean errors."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from jaxsim.population import Population

DEFAULT_NTAS: tuple[str, ...] = ("QN0103",)  # Astoria, Queens


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
    parser.add_argument(
        "--compile-cache",
        metavar="DIR",
        help="persistent compilation cache folder, or 'off' (default: $JAXSIM_COMPILE_CACHE "
        "or ~/.cache/jaxsim/xla)",
    )
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
    """Load or synthesize the population the arguments ask for (and turn on the
    persistent compilation cache that ``--compile-cache`` names)."""
    from jaxsim.compile_cache import enable_compile_cache

    enable_compile_cache(getattr(args, "compile_cache", None))
    if args.population:
        from jaxsim.locality import localize
        from jaxsim.population_io import load_population

        population = load_population(args.population, allow_pickle=args.allow_pickle)
        return population if args.keep_order else localize(population)
    from jaxsim import synthetic

    if args.agents is not None:
        if args.agents < 1:
            raise ValueError(f"--agents must be >= 1, got {args.agents}")
        return synthetic.synthesize_population_of_size(args.agents, seed=seed)
    ntas: str | list[str] = list(DEFAULT_NTAS)
    if args.ntas:
        ntas = "all" if args.ntas.strip().lower() == "all" else [
            n.strip() for n in args.ntas.split(",") if n.strip()
        ]
        if not ntas:
            raise ValueError(f"--ntas: no NTA codes in {args.ntas!r}")
    return synthetic.synthesize_nyc_population(ntas, seed=seed)


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main``; report input errors as one line on stderr and exit code 2 (no traceback)."""
    from jaxsim.memory import InsufficientMemoryError
    from jaxsim.population import PopulationError

    try:
        return main(argv)
    except (
        PopulationError, ValueError, KeyError, FileNotFoundError, FileExistsError, InsufficientMemoryError
    ) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 2
