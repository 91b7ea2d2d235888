"""Command-line helpers for any scenario script: choosing devices, the compile cache, and
errors a person reads in one line.

:func:`run_cli` prints a :class:`jaxsim.errors.JaxsimError` (bad input: a file, a field, a
value; a missing optional extra; a replay-only cache miss) or an OS error about a path as
one line and exits with status 2; any other exception (a bug, in jaxsim or in JAX) keeps
its traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Callable, Sequence

from jaxsim.errors import InputError, JaxsimError

if TYPE_CHECKING:
    from jax.sharding import Mesh


def add_compile_cache_argument(parser: argparse.ArgumentParser) -> None:
    """``--compile-cache DIR|off`` (see :mod:`jaxsim.compile_cache`)."""
    parser.add_argument(
        "--compile-cache",
        metavar="DIR",
        help="persistent compilation cache folder, or 'off' (default: $JAXSIM_COMPILE_CACHE "
        "or ~/.cache/jaxsim/xla)",
    )


# ------------------------------------------------------------------------- devices
def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--devices N``: split the agents over ``N`` devices (see :mod:`jaxsim.sharding`)."""
    parser.add_argument(
        "--devices",
        type=_device_count,
        metavar="N",
        help="split the agents over N devices (default: all devices that get at least "
        "100,000 agents each; 1 = no splitting). On CPU, XLA_FLAGS="
        "--xla_force_host_platform_device_count=N splits the CPU into N devices",
    )


def _device_count(text: str) -> int:
    """argparse type of ``--devices``: a whole number from 1 to the available devices."""
    from jaxsim import sharding

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--devices must be a whole number, got {text!r}") from None
    try:
        return sharding.check_device_count(value)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def mesh_from_args(args: argparse.Namespace, num_agents: int) -> "Mesh | None":
    """The device mesh ``--devices`` asks for, or ``None`` for one device (the unsplit
    path, as without the option). :class:`InputError` naming the value when ``N < 1`` or
    more than the available devices."""
    from jaxsim import sharding

    requested = getattr(args, "devices", None)
    count = (
        sharding.default_device_count(num_agents) if requested is None
        else sharding.check_device_count(requested)
    )
    return None if count == 1 else sharding.make_mesh(count)


#: OS errors about a path the user gave (a file that is not there, a folder in the way).
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def fit_progress(steps: int, lines: int = 6) -> Callable[[int, float], None]:
    """An ``on_step(step, loss)`` for :func:`jaxsim.calibration.fit` that prints about
    ``lines`` progress lines (every ``steps // lines`` steps and the last), flushed."""
    every = max(1, int(steps) // max(1, int(lines)))

    def on_step(step: int, value: float) -> None:
        if step % every == 0 or step == steps - 1:
            print(f"  step {step + 1:>4}/{steps}  loss {value:.4f}", flush=True)

    return on_step


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main``; report input errors (:class:`jaxsim.errors.JaxsimError`, and OS errors
    about a path) as one line on stderr and exit code 2. Anything else is a bug and keeps
    its traceback."""
    try:
        return main(argv)
    except (JaxsimError, *PATH_ERRORS) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
