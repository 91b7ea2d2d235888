"""Where jaxsim keeps what it caches on disk, in one folder a user controls.

One root, ``$JAXSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxsim``, else
``~/.cache/jaxsim``, holds:

- ``xla/``: compiled programs (JAX's persistent compilation cache; :mod:`jaxsim.compile_cache`);
- ``populations/``: synthetic populations, built once per set of arguments (:mod:`jaxsim.nyc.cli`);
- ``llm_responses.sqlite``: language-model answers (:mod:`jaxsim.llm.options`).

Each can still be moved or turned off on its own (``JAXSIM_COMPILE_CACHE``,
``JAXSIM_POPULATION_CACHE``, ``JAXSIM_LLM_CACHE``: a folder/file, or ``off``), and
:func:`disable_all` (the scenarios' ``--no-cache``) turns all three off for this process.
Only the standard library is imported here.
"""

from __future__ import annotations

import os
from pathlib import Path

ENVIRONMENT_VARIABLE = "JAXSIM_CACHE_DIR"
#: The variables of the single caches (each a path, or ``off``).
COMPILE_CACHE_ENV = "JAXSIM_COMPILE_CACHE"
POPULATION_CACHE_ENV = "JAXSIM_POPULATION_CACHE"
LLM_CACHE_ENV = "JAXSIM_LLM_CACHE"
_ALL = (COMPILE_CACHE_ENV, POPULATION_CACHE_ENV, LLM_CACHE_ENV)


def cache_root() -> Path:
    """The folder holding every cache (not created here)."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "jaxsim"


def compile_cache_dir() -> Path:
    return cache_root() / "xla"


def population_cache_dir() -> Path:
    return cache_root() / "populations"


def llm_cache_file() -> Path:
    return cache_root() / "llm_responses.sqlite"


def disable_all() -> None:
    """Turn the compile, population and LLM caches off for this process (and the processes
    it starts)."""
    for name in _ALL:
        os.environ[name] = "off"


def describe() -> dict[str, str]:
    """Where each cache is for this process (a path, or ``off``): for ``run.json`` and the
    quick start's line."""

    def where(variable: str, default: Path) -> str:
        value = os.environ.get(variable, "").strip()
        if value.lower() == "off":
            return "off"
        return str(Path(value).expanduser()) if value else str(default)

    return {
        "root": str(cache_root()),
        "compile": where(COMPILE_CACHE_ENV, compile_cache_dir()),
        "populations": where(POPULATION_CACHE_ENV, population_cache_dir()),
        "llm": where(LLM_CACHE_ENV, llm_cache_file()),
    }
