"""Discrete random events, drawn through one selectable gradient estimator.

Kernels never draw Bernoulli events themselves; they call :func:`bernoulli`, whose
forward value is always exactly 0 or 1 (so stage counts stay integers) and whose
gradient with respect to the probability depends on the estimator:

- ``"none"``: no gradient (fastest; the default for plain forward runs);
- ``"straight_through"``: the gradient of the event is taken to be that of ``p``
  (biased but low-variance; Bengio et al. 2013).

More estimators (Gumbel-softmax, stochastic-derivative) plug in here without the
kernels changing.

Uniform numbers come from :func:`uniform`, a counter-based generator: element ``i`` is a
strong 32-bit integer hash of ``i`` and 64 bits of key material drawn (with threefry) from
the JAX key. It costs a few integer operations per element, about 3x less than
``jax.random.uniform`` on a CPU and much less inside a ``scan`` at small ``N``; element
``i`` depends only on the key and on ``i`` (not on how the array is split across devices).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

ESTIMATORS = ("none", "straight_through")


def check_estimator(estimator: str) -> str:
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown gradient estimator {estimator!r}; choose one of {ESTIMATORS}")
    return estimator


def _mix32(x: jax.Array) -> jax.Array:
    """The ``lowbias32`` integer hash (C. Wellons, hash-prospector): a bijection of uint32
    with near-ideal avalanche (every input bit flips each output bit with probability ~1/2)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def uniform(key: jax.Array, shape: tuple[int, ...], offset: int | jax.Array = 0) -> jax.Array:
    """float32 uniforms on ``[0, 1)`` (24 random bits); flattened element ``i`` is a hash of
    ``(key, offset + i)``.

    Two rounds of :func:`_mix32` keyed with two 32-bit words drawn from ``key`` by
    threefry: ``h = mix(mix(c ^ k0) + k1)`` for counter ``c = offset + i``. A shard holding
    elements ``offset ..`` draws exactly the numbers a single device would. Statistical
    checks (uniformity, bit balance, neighbouring pairs, correlation across keys) are in
    ``tests/test_sampling.py``.

    Why not ``jax.random.uniform``: on a 2-core CPU this costs a few integer operations per
    element, 3x less than threefry at 1 M agents, and XLA fuses it into its consumers.
    XLA's ``RngBitGenerator`` (materialised once) was also measured: faster at 47 k agents
    (1.29 vs 1.48 ms/day) but 1.5x slower at 1 M agents (see benchmarks/RESULTS.md).
    """
    size = 1
    for dim in shape:
        size *= int(dim)
    if size >= 2**32:
        raise ValueError(f"uniform: at most 2**32 - 1 elements per draw, asked for {size}")
    words = jax.random.bits(key, (2,), jnp.uint32)
    counter = jnp.arange(size, dtype=jnp.uint32) + jnp.asarray(offset, jnp.uint32)
    h = _mix32(_mix32(counter ^ words[0]) + words[1])
    return ((h >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)).reshape(shape)


def bernoulli(key: jax.Array, p: jax.Array, estimator: str = "none") -> jax.Array:
    """0/1 float32 events with probability ``p`` (any shape), drawn with ``key``.

    The uniform draws depend only on ``key`` and ``p.shape``, never on ``p``'s values,
    so runs that differ only in parameters share their randomness (common random numbers).
    """
    u = uniform(key, p.shape)
    hard = (u < p).astype(jnp.float32)
    if estimator == "none":
        return jax.lax.stop_gradient(hard)
    if estimator == "straight_through":
        p32 = p.astype(jnp.float32)
        # (p - p) is exactly 0 in the forward pass, so events stay exactly 0 or 1.
        return hard + (p32 - jax.lax.stop_gradient(p32))
    raise ValueError(f"unknown gradient estimator {estimator!r}; choose one of {ESTIMATORS}")
