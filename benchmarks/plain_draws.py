"""The library's random numbers written in plain JAX (no jaxsim import), for the
benchmarks' plain versions of the library models (``bench_model_*.py``).

Copied from :mod:`jaxsim.sampling` and :mod:`jaxsim.engine` on purpose: a plain version
that draws the same numbers must reproduce the library model's trajectory exactly, which
the benchmarks check. A counter-based hash of each element's index, keyed by two words of
a JAX key, and per-name key streams (a CRC32 of the name).
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp


def mix32(x):
    """A 32-bit integer mixing function (two multiply-xorshift rounds)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def uniform_at(key, counters):
    """float32 uniforms on [0, 1), one per entry of ``counters`` (int): the hash of
    (``key``, counter), 24 bits."""
    words = jax.random.bits(key, (2,), jnp.uint32)
    h = mix32(mix32(counters.astype(jnp.uint32) ^ words[0]) + words[1])
    return (h >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)


def uniform(key, n: int):
    """float32 ``[n]`` uniforms on [0, 1): :func:`uniform_at` of the indices ``0..n-1``."""
    return uniform_at(key, jnp.arange(n, dtype=jnp.uint32))


def stream(name: str) -> int:
    """The key-stream id of a substep or layer name (folded into a key)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF
