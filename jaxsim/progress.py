"""Progress a person sees while a long stage runs: a tqdm bar on a terminal, and when the
output is piped or captured one line at most every few seconds (and a last one), flushed
as it happens. Nothing of a run should be silent for more than about 2 seconds.

    progress = Progress("Nelder-Mead baseline", total=240, unit="runs")
    for ...:
        progress.update(done, loss=value)
    progress.close()

Only the standard library is imported at module level (tqdm when a bar is shown).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Seconds between two progress lines when the output is not a terminal.
LINE_EVERY_SECONDS = 2.0


def on_terminal(stream: TextIO | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """``done`` out of ``total`` (in ``unit``) of a stage called ``description``.

    On a terminal (``bar="auto"``, stderr a TTY) a tqdm bar on stderr; otherwise lines on
    ``stream`` (default stdout) such as ``  Nelder-Mead baseline: 120/240 runs (50%),
    loss 0.031, 12.1 s``, the first at once, then at most one per
    :data:`LINE_EVERY_SECONDS`, and one when closed. ``bar=False`` never draws a bar.
    """

    def __init__(self, description: str, total: int, unit: str = "", *, bar: bool | str = "auto",
                 stream: TextIO | None = None, every: float = LINE_EVERY_SECONDS):
        self.description, self.total, self.unit = description, int(total), unit
        self.stream = stream if stream is not None else sys.stdout
        self.every = every
        self.start = time.perf_counter()
        self.done = 0
        self.info: dict = {}
        self._last_line = -float("inf")
        self._bar = None
        if bar is True or (bar == "auto" and on_terminal()):
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=description, unit=f" {unit}" if unit else "it",
                             leave=False, file=sys.stderr, dynamic_ncols=True)
        else:
            self._line(force=True)

    def update(self, done: int, **info) -> None:
        """Set the amount done (not an increment) and what to show next to it."""
        done = int(done)
        self.info = info
        if self._bar is not None:
            self._bar.update(max(0, done - self.done))
            if info:
                self._bar.set_postfix({k: _format(v) for k, v in info.items()}, refresh=False)
            self.done = done
            return
        self.done = done
        self._line()

    def close(self) -> float:
        """End the stage; its seconds."""
        seconds = time.perf_counter() - self.start
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            self._line(force=True, final=True)
        return seconds

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        elif self._bar is not None:
            self._bar.close()

    def _line(self, force: bool = False, final: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_line < self.every:
            return
        self._last_line = now
        unit = f" {self.unit}" if self.unit else ""
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        extra = "".join(f", {k} {_format(v)}" for k, v in self.info.items())
        state = "done" if final else ""
        text = f"  {self.description}: {self.done}/{self.total}{unit}{share}{extra}, {now - self.start:.1f} s"
        print(text + (f" {state}" if state else ""), file=self.stream, flush=True)


#: The stage the program is in (the last :func:`stage`), and when it began: for :class:`Heartbeat`.
_CURRENT = {"stage": "working", "since": time.perf_counter()}


def stage(description: str, stream: TextIO | None = None) -> None:
    """One line saying a stage starts (e.g. ``compiling the fit``), flushed at once; the
    :class:`Heartbeat` names it while it lasts."""
    _CURRENT.update(stage=description, since=time.perf_counter())
    print(f"{description} ...", file=sys.stdout if stream is None else stream, flush=True)


def now(description: str) -> None:
    """Name the stage the program is in for :class:`Heartbeat` lines, printing nothing."""
    _CURRENT.update(stage=description, since=time.perf_counter())


class Heartbeat:
    """While a program runs, a line whenever its output has been silent for ``first``
    seconds, then every ``every`` seconds of silence: ``  ... compiling the run: 6 s``
    (the current :func:`stage`). A long compile or a single long computation, which can
    report nothing itself, so never leaves a person waiting without a sign.

    A context manager; it watches what is written to ``sys.stdout`` and ``sys.stderr``
    (any write counts as a sign of life) and writes its own lines to stdout from a daemon
    thread. Nothing is printed by programs that speak often enough.
    """

    def __init__(self, first: float = LINE_EVERY_SECONDS, every: float = 5.0):
        self.first, self.every = first, every
        self._stop = None

    def __enter__(self) -> "Heartbeat":
        import threading

        self.last = time.perf_counter()
        self._beats = 0
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = _Watched(sys.stdout, self), _Watched(sys.stderr, self)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="jaxsim-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        sys.stdout, sys.stderr = self._streams

    def _beat(self) -> None:
        while not self._stop.wait(0.1):
            silent = time.perf_counter() - self.last
            if silent >= (self.every if self._beats else self.first):
                elapsed = time.perf_counter() - _CURRENT["since"]
                self._streams[0].write(f"  ... {_CURRENT['stage']}: {elapsed:.0f} s\n")
                self._streams[0].flush()
                self.last = time.perf_counter()
                self._beats += 1

    def saw_output(self) -> None:
        self.last = time.perf_counter()
        self._beats = 0


class _Watched:
    """A text stream that tells a :class:`Heartbeat` when something is written to it."""

    def __init__(self, stream: TextIO, heartbeat: Heartbeat):
        self._stream, self._heartbeat = stream, heartbeat

    def write(self, text: str) -> int:
        if text:
            self._heartbeat.saw_output()
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
