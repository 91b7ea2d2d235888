"""Figures drawn by a second process, which imports matplotlib while the run computes.

Importing matplotlib and drawing one figure takes about 0.8 s on a 2-core CPU, and a
default COVID command takes a few seconds in all: drawn in the command's own process,
the plot is a fifth of the wait. A command that will draw (:func:`started`) starts a
worker process first thing; it imports matplotlib, pandas and the named plotting modules
on the other core while this process imports JAX and runs, and draws a throwaway figure
(a module's ``warm_up()``) so that the first real one does not pay for loading fonts and
writers. :func:`draw` then hands the
worker one figure (a function named ``"module:function"`` and its arguments, pickled),
and waits for it to be written.

Nothing changes in what is drawn: the worker calls the same function. Where no worker
runs (one core, ``JAXSIM_PLOT_WORKER=0``, or called outside a command), or the worker
could not start, :func:`draw` calls the function in this process. A failure inside the
worker is raised here with the worker's traceback. Ctrl-C goes to this process only: the
worker ignores it and ends when this process's end closes its input.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import signal
import subprocess
import sys
from typing import Iterator, Sequence

#: Environment variable that turns the worker off (``0``) or on (``1``; default: on with
#: more than one CPU core).
ENV_VAR = "JAXSIM_PLOT_WORKER"

#: Modules every worker imports before its job arrives.
BASE_MODULES = ("matplotlib", "matplotlib.pyplot", "pandas", "jaxsim.outputs")


class PlotWorkerError(RuntimeError):
    """A figure failed inside the worker process; the message holds its traceback."""


class Worker:
    """One worker process, good for one :meth:`draw`."""

    def __init__(self, modules: Sequence[str] = ()):
        self.modules = tuple(BASE_MODULES) + tuple(modules)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jaxsim.plot_worker", *self.modules],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.used = False

    def draw(self, target: str, *args, **kwargs) -> None:
        """Draw ``target(*args, **kwargs)`` in the worker and wait for it."""
        if self.used:
            raise RuntimeError("a plot worker draws one job; start another")
        self.used = True
        job = pickle.dumps((target, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            _, errors = self.process.communicate(job)
        except BrokenPipeError:  # the worker died before reading its job
            _, errors = self.process.communicate()
        except BaseException:  # Ctrl-C while it draws: end it before the staged outputs go
            self.process.kill()
            self.process.wait()
            raise
        if self.process.returncode != 0:
            text = errors.decode(errors="replace").strip()
            raise PlotWorkerError(f"drawing {target} in the plot worker failed "
                                  f"(exit status {self.process.returncode}):\n{text}")

    def close(self) -> None:
        """End the worker if it is still waiting (no job was sent)."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()  # EOF: the worker leaves without drawing
            except OSError:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


_current: Worker | None = None


def wanted() -> bool:
    """Whether commands start a worker: ``JAXSIM_PLOT_WORKER`` if set, else whether this
    process may use more than one core."""
    setting = os.environ.get(ENV_VAR, "").strip()
    if setting:
        return setting not in ("0", "false", "no", "off")
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use (Linux)
    except AttributeError:
        cores = os.cpu_count() or 1
    return cores > 1


@contextlib.contextmanager
def started(modules: Sequence[str] = ()) -> Iterator[Worker | None]:
    """A worker for the enclosed command (``None`` where none is wanted or it cannot
    start); :func:`draw` uses it. Ended on the way out, whatever happens."""
    global _current
    worker = None
    if wanted() and _current is None:
        try:
            worker = Worker(modules)
        except OSError:
            worker = None
    _current = worker
    try:
        yield worker
    finally:
        _current = None
        if worker is not None:
            worker.close()


def draw(target: str, *args, **kwargs):
    """Call ``target`` (``"package.module:function"``) with the arguments: in the worker
    when one is waiting (returns ``None``), else here (returns what it returns)."""
    global _current
    worker, _current = _current, None  # one job per worker; a second figure is drawn here
    if worker is not None and worker.process.poll() is None:
        worker.draw(target, *args, **kwargs)
        return None
    return resolve(target)(*args, **kwargs)


def resolve(target: str):
    """The function a ``"module:function"`` name refers to."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"plot target {target!r} is not 'module:function'")
    return getattr(importlib.import_module(module), name)


def _job_waiting() -> bool:
    """Whether the command has already written to this worker's input."""
    import select

    try:
        return bool(select.select([sys.stdin.buffer], [], [], 0)[0])
    except (OSError, ValueError):  # no select on this stream (Windows pipes): assume not
        return False


def _serve(modules: Sequence[str]) -> int:
    """The worker: import ``modules``, warm them up (each one's ``warm_up()``, if it has
    one and no job is waiting yet), read one job from stdin, draw it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle
    import matplotlib

    matplotlib.use("Agg")
    loaded = [importlib.import_module(module) for module in modules]
    for module in loaded:
        warm_up = getattr(module, "warm_up", None)
        if callable(warm_up) and not _job_waiting():
            try:
                warm_up()
            except Exception:  # noqa: BLE001 - only a speed-up: the job itself reports a real failure
                pass
    data = sys.stdin.buffer.read()
    if not data:  # the command ended without a job
        return 0
    target, args, kwargs = pickle.loads(data)
    resolve(target)(*args, **kwargs)
    return 0


def _serve_and_leave(modules: Sequence[str]) -> None:
    """:func:`_serve`, then end at once (the command waits for this process to end; an
    interpreter teardown would add about 0.3 s). A failure prints its traceback, status 1."""
    import traceback

    try:
        status = _serve(modules)
    except BaseException:  # noqa: BLE001 - reported to the command, which raises it
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


__all__ = ["BASE_MODULES", "ENV_VAR", "PlotWorkerError", "Worker", "draw", "resolve", "started", "wanted"]


if __name__ == "__main__":
    _serve_and_leave(sys.argv[1:])
