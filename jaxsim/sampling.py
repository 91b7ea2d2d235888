"""Discrete random events, drawn through one selectable gradient estimator.

Kernels never draw Bernoulli events themselves; they call :func:`bernoulli`, whose
forward value is always exactly 0 or 1 (so stage counts stay integers) and whose
gradient with respect to the probability depends on the estimator:

- ``"none"``: no gradient (fastest; the default for plain forward runs);
- ``"straight_through"``: the gradient of the event is taken to be that of ``p``
  (biased but low-variance; Bengio et al. 2013).

More estimators (Gumbel-softmax, stochastic-derivative) plug in here without the
kernels changing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

ESTIMATORS = ("none", "straight_through")


def check_estimator(estimator: str) -> str:
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown gradient estimator {estimator!r}; choose one of {ESTIMATORS}")
    return estimator


def bernoulli(key: jax.Array, p: jax.Array, estimator: str = "none") -> jax.Array:
    """0/1 float32 events with probability ``p`` (any shape), drawn with ``key``.

    The uniform draws depend only on ``key`` and ``p.shape``, never on ``p``'s values,
    so runs that differ only in parameters share their randomness (common random numbers).
    """
    u = jax.random.uniform(key, p.shape, dtype=jnp.float32)
    hard = (u < p).astype(jnp.float32)
    if estimator == "none":
        return jax.lax.stop_gradient(hard)
    if estimator == "straight_through":
        p32 = p.astype(jnp.float32)
        return hard + p32 - jax.lax.stop_gradient(p32)
    raise ValueError(f"unknown gradient estimator {estimator!r}; choose one of {ESTIMATORS}")
