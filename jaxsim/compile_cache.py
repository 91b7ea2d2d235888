"""A persistent XLA compilation cache, on by default for the scenario scripts.

Compiled programs are written to a folder and reused by later processes that compile the
same program (same model, shapes and JAX version), so a second run of a scenario skips
most of its compilation. The folder is, in order of precedence: the ``--compile-cache``
option of a script, the ``JAXSIM_COMPILE_CACHE`` environment variable, or ``xla/`` in the
cache root (:mod:`jaxsim.caches`: ``$JAXSIM_CACHE_DIR``, else ``~/.cache/jaxsim``). The
value ``off`` disables the cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from jaxsim import caches
from jaxsim.errors import InputError

ENVIRONMENT_VARIABLE = caches.COMPILE_CACHE_ENV


def resolve_cache_dir(requested: str | os.PathLike | None = None) -> Path | None:
    """The cache folder to use (``None`` when disabled)."""
    value = requested if requested is not None else os.environ.get(ENVIRONMENT_VARIABLE)
    if value is None or str(value).strip() == "":
        return caches.compile_cache_dir()
    if str(value).strip().lower() == "off":
        return None
    return Path(value).expanduser()


def enable_compile_cache(requested: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in the resolved folder; returns it.

    Every program is cached whatever its compile time. A folder that cannot be created is
    an error naming it (rather than a silent run without cache).
    """
    import jax

    directory = resolve_cache_dir(requested)
    if directory is None:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"compile cache folder {directory} cannot be created: {err.strerror}") from None
    if not os.access(directory, os.W_OK):
        raise InputError(f"compile cache folder {directory} is not writable")
    if jax.config.jax_enable_compilation_cache and jax.config.jax_compilation_cache_dir == str(directory):
        return directory  # already on here (its settings kept)
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory
