"""Host values onto the device without a compiled program per array.

``jnp.asarray(numpy_array)`` compiles a small program (``jit(stage)``) for every new
shape and dtype on JAX 0.10; each costs tens of milliseconds at start-up even when it
comes from the compile cache (a world and parameters have a dozen shapes).
``jax.device_put`` copies the same values with the same dtype and weak type and
compiles nothing. Anything else (values already on the device, tracers, pandas objects,
``None``) goes through ``jnp.asarray`` as before.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def to_device_array(value, dtype=None) -> jax.Array:
    """``jnp.asarray(value, dtype)``, for host values (numpy arrays, Python or numpy
    scalars, nested lists) by a plain copy: same shape, dtype (canonicalised as JAX does,
    e.g. float64 -> float32 without x64) and weak type."""
    if not isinstance(value, (np.ndarray, np.generic, bool, int, float, complex, list, tuple)):
        return jnp.asarray(value, dtype)  # device arrays, tracers, anything else: as before
    if dtype is not None:
        value = np.asarray(value, dtype=dtype)
    elif isinstance(value, (list, tuple)):
        value = np.asarray(value)
    return jax.device_put(value)


def tree_to_device(tree):
    """Every leaf of ``tree`` through :func:`to_device_array`."""
    return jax.tree.map(to_device_array, tree)


__all__ = ["to_device_array", "tree_to_device"]
