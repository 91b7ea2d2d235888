"""Command-line helpers for any scenario script: choosing devices, the caches, and errors a
person reads in one line.

:func:`run_cli` prints a :class:`jaxsim.errors.JaxsimError` (bad input: a file, a field, a
value; a missing optional extra; a replay-only cache miss) or an OS error about a path as
one line and exits with status 2; Ctrl-C as ``interrupted; nothing written`` with status
130; any other exception (a bug, in jaxsim or in JAX) keeps its traceback.
:class:`ArgumentParser` reports a bad argument in one line too. Only the standard library
is imported at module level, so a parser builds without JAX.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from jaxsim.errors import InputError, JaxsimError

if TYPE_CHECKING:
    from jax.sharding import Mesh


#: Exit status of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line on stderr (``<prog>: error:
    ...; see --help``) with exit status 2, instead of the usage block."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_compile_cache_argument(parser: argparse.ArgumentParser) -> None:
    """``--compile-cache DIR|off`` (see :mod:`jaxsim.compile_cache`)."""
    if any(action.dest == "compile_cache" for action in parser._actions):
        return
    parser.add_argument(
        "--compile-cache",
        metavar="DIR",
        help="persistent compilation cache folder, or 'off' (default: $JAXSIM_COMPILE_CACHE, "
        "else xla/ in $JAXSIM_CACHE_DIR or ~/.cache/jaxsim)",
    )


def add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    """``--no-cache``: no compile, population or LLM cache for this run (:mod:`jaxsim.caches`)."""
    parser.add_argument(
        "--no-cache", action="store_true",
        help="read and write no cache (compiled programs, populations, LLM answers); by default they are kept "
        "in $JAXSIM_CACHE_DIR, else $XDG_CACHE_HOME/jaxsim or ~/.cache/jaxsim",
    )


def check_output_dir(value: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse, before any work, an output folder that cannot be written: one that exists as
    a file, or whose first existing ancestor is a file or not writable. The folder itself
    is created only when the run writes its outputs."""
    out = Path(value).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag} {value}: exists and is not a folder")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(f"{flag} {value}: {probe} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {value}: {probe} is not writable")
    return out


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
    about a path) as one line on stderr and exit code 2, and Ctrl-C as one line and exit
    code 130 (:func:`interrupted`). Anything else is a bug and keeps its traceback."""
    try:
        return main(argv)
    except (JaxsimError, *PATH_ERRORS) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        interrupted()


#: Seconds an interrupted run has to unwind (staged outputs removed) before it is ended anyway.
INTERRUPT_GRACE_SECONDS = 5.0


def install_interrupt_handler() -> None:
    """Ctrl-C raises ``KeyboardInterrupt`` as usual (so staged outputs are cleaned up on the
    way out), and also starts a watchdog that ends the process with :func:`interrupted`
    after :data:`INTERRUPT_GRACE_SECONDS`: Python drops an exception raised inside a
    garbage-collection callback (JAX has one), which would otherwise let the run go on."""
    import signal
    import threading

    def on_interrupt(signum, frame):
        watchdog = threading.Timer(INTERRUPT_GRACE_SECONDS, interrupted)
        watchdog.daemon = True
        watchdog.start()
        raise KeyboardInterrupt

    previous_hook = sys.unraisablehook

    def quiet_interrupts(unraisable):  # an interrupt dropped in a callback: the watchdog ends the run
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous_hook(unraisable)

    sys.unraisablehook = quiet_interrupts
    try:
        signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:  # not the main thread (e.g. called from a worker): keep Python's handler
        pass


@contextlib.contextmanager
def interrupts_deferred():
    """Hold Ctrl-C back while the enclosed code runs, then act on it.

    Python raises ``KeyboardInterrupt`` wherever the main thread is. While a native
    extension initialises (jaxlib's, numpy's, during ``import jax``) that exception turns
    into an ``ImportError`` with a traceback, is lost (the run goes on), or crashes the
    process (segmentation fault); measured on this project's commands with Ctrl-C in the
    first half second. Inside this context a Ctrl-C is only recorded; on the way out it is
    raised as ``KeyboardInterrupt`` (so :func:`run_cli` reports it in one line, exit 130).
    Only in the main thread; elsewhere it does nothing.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def interrupted() -> None:
    """Ctrl-C: say so in one line and leave at once with status 130.

    The outputs of a run are staged (:class:`jaxsim.outputs.StagedOutputs`), so an
    interrupted run has written nothing. The process ends with ``os._exit``: a normal
    interpreter shutdown while XLA's threads still run a computation has crashed
    (segmentation fault) on large runs.
    """
    _flush(sys.stdout)
    try:
        sys.stderr.write("interrupted; nothing written\n")
    except Exception:  # noqa: BLE001 - a closed pipe: nothing more to say there
        pass
    _flush(sys.stderr)
    os._exit(INTERRUPTED)


def _flush(*streams) -> None:
    """Flush ``streams``, ignoring those that cannot be (a closed pipe: nothing more to say there)."""
    for stream in streams:
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass


def leave(status: int) -> None:
    """End a finished command with ``status`` without the interpreter's teardown.

    Everything a run writes is written and closed by then; what remains of a normal exit
    is freeing a thousand modules and XLA's runtime one by one, about 0.5 s on a 2-core
    CPU for a COVID run (and the shutdown that has crashed on large runs, see
    :func:`interrupted`). This flushes the output streams, waits for the threads a normal
    exit waits for (non-daemon ones), runs the ``atexit`` handlers (logging, libraries'
    own clean-ups) and ends the process with ``os._exit(status)``. Only for a process
    entry point (``jaxsim``, ``python -m jaxsim``, ``scenarios/*.py``): never call it from
    code that others import. Under a profiler or tracer (``python -m cProfile``, coverage)
    it returns instead, so that they write their results on the normal way out.
    """
    import atexit
    import threading

    if sys.getprofile() is not None or sys.gettrace() is not None:
        return

    _flush(sys.stdout, sys.stderr)
    threading._shutdown()  # what the interpreter runs at exit: stops idle executor workers, joins threads
    atexit._run_exitfuncs()
    _flush(sys.stdout, sys.stderr)
    os._exit(int(status))
