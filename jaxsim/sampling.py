"""Discrete random events, drawn through one selectable gradient estimator.

Kernels never draw events themselves; they call :func:`bernoulli` (0/1 events) or
:func:`categorical` (one-hot draws), whose forward value is always exactly 0 or 1 (so
stage counts stay integers) and whose gradient with respect to the probabilities depends
on the estimator. The forward value does not depend on the estimator: every estimator
decides the event with the same uniforms (common random numbers), so a run with
gradients takes the same path as a plain run with the same key.

The estimator is one setting of a run: :func:`jaxsim.engine.simulate` (and ``run``,
ensembles, calibration) take ``estimator=...`` and every draw inside the run uses it
(:func:`estimator_scope`); a model author calls ``bernoulli(key, p)`` and never writes
gradient code. Code that must know whether gradients are wanted (a model's mean-field
surrogates, say) asks :func:`differentiable`.

Estimators (:data:`ESTIMATORS`; pass a name, a ``"name:temperature"`` string, or an
:class:`Estimator`):

- ``"none"``: no gradient (fastest; the default for plain forward runs).
- ``"straight_through"``: the event's gradient is taken to be that of ``p``
  (Bengio et al. 2013). Zero variance for a linear downstream; unbiased when the output is
  affine in each event given the others; biased otherwise (for ``f = h(X)`` its mean is
  ``p h'(1) + (1 - p) h'(0)`` instead of ``h(1) - h(0)``).
- ``"gumbel_softmax"``: straight-through Gumbel-softmax / binary Concrete (Jang et al.
  2017; Maddison et al. 2017). The forward value is the hard event; the gradient is that
  of the relaxed event ``sigmoid((logit p - L) / temperature)``, where ``L`` is logistic
  noise made from the same uniform. Biased for every finite temperature (the mean
  gradient of ``X`` itself is 0.91 instead of 1 at ``p = 0.3``, temperature 0.5); the
  bias shrinks and the variance grows as the temperature falls. Default temperature 0.5;
  ``"gumbel_softmax:0.2"`` or ``gumbel_softmax(0.2)`` picks another.
- ``"stochastic"``: a smoothed stochastic derivative (Arya et al., "Automatic
  Differentiation of Programs with Discrete Randomness", NeurIPS 2022). With
  ``X = 1[u < p]`` a small increase of ``p`` can only switch an event on, at rate
  ``1 / (1 - p)`` among the events that are off, so ``dX/dp = (1 - X) / (1 - p)``
  (mean 1, variance ``p / (1 - p)``). Unbiased for the same class of programs as
  straight-through (output affine in each event), biased otherwise: for ``f = h(X)`` its
  mean is ``h'(0)``, the slope where the event is off. Straight-through is the mix of this
  right-sided derivative (weight ``1 - p``) and the left-sided one ``X / p`` (weight
  ``p``), which is why the two agree on affine programs and neither dominates in general.

All estimators give gradients through the *local* derivative of the downstream program at
the sampled events; none is unbiased for an arbitrary nonlinear program (that needs the
alternative paths to be simulated, as the unsmoothed estimators of Arya et al. do, or the
score function). ``tests/test_estimators.py`` measures each estimator's mean gradient
against the true derivative on linear, nonlinear and two-step models.

Probabilities outside ``[0, 1]`` are clipped: the event is drawn with ``clip(p, 0, 1)``
and the gradient is that of the clipped value (zero outside ``[0, 1]``, one on it,
including at 0 and 1). No estimator gives NaN or infinite gradients at ``p = 0`` or 1.

Uniform numbers come from :func:`uniform`, a counter-based generator: element ``i`` is a
strong 32-bit integer hash of ``i`` and 64 bits of key material drawn (with threefry) from
the JAX key. It costs a few integer operations per element, about 3x less than
``jax.random.uniform`` on a CPU and much less inside a ``scan`` at small ``N``; element
``i`` depends only on the key and on ``i`` (not on how the array is split across devices).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp

from jaxsim.errors import InputError

ESTIMATORS = ("none", "straight_through", "gumbel_softmax", "stochastic")

#: Temperature of ``"gumbel_softmax"`` when none is given.
DEFAULT_TEMPERATURE = 0.5


@dataclasses.dataclass(frozen=True)
class Estimator:
    """A gradient estimator: its ``name`` (one of :data:`ESTIMATORS`) and, for
    ``"gumbel_softmax"`` only, its ``temperature`` (a finite float > 0, default
    :data:`DEFAULT_TEMPERATURE`; ``None`` for the other estimators).

    Frozen and hashable, so it can be closed over by a jitted step or used in a cache
    key. The temperature is a static Python number: changing it retraces. ``str()``
    gives the spec string (``"gumbel_softmax:0.3"``) that :func:`check_estimator` parses
    back to an equal object.
    """

    name: str
    temperature: float | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or self.name not in ESTIMATORS:
            raise InputError(
                f"unknown gradient estimator {self.name!r}; choose one of {ESTIMATORS}"
            )
        if self.name != "gumbel_softmax":
            if self.temperature is not None:
                raise InputError(
                    f"gradient estimator {self.name!r} takes no temperature, "
                    f"got {self.temperature!r}"
                )
            return
        temperature = DEFAULT_TEMPERATURE if self.temperature is None else self.temperature
        try:
            value = float(temperature)
        except (TypeError, ValueError):
            value = math.nan
        if not (math.isfinite(value) and value > 0.0):
            raise InputError(
                f"gumbel_softmax temperature must be a finite number > 0, got {temperature!r}"
            )
        object.__setattr__(self, "temperature", value)

    def __str__(self) -> str:
        return self.name if self.temperature is None else f"{self.name}:{self.temperature!r}"


def gumbel_softmax(temperature: float = DEFAULT_TEMPERATURE) -> Estimator:
    """The straight-through Gumbel-softmax estimator at ``temperature`` (> 0, finite)."""
    return Estimator("gumbel_softmax", temperature)


def check_estimator(estimator: str | Estimator) -> Estimator:
    """Validate an estimator spec and return it as an :class:`Estimator`.

    Accepts an :class:`Estimator`, a name from :data:`ESTIMATORS`, or
    ``"gumbel_softmax:<temperature>"`` (e.g. ``"gumbel_softmax:0.3"``). Raises
    ``ValueError`` for an unknown name, a temperature on an estimator that takes none, or a
    temperature that is not a finite number > 0; the message names the offending value.
    """
    if isinstance(estimator, Estimator):
        return estimator
    if not isinstance(estimator, str):
        raise InputError(f"unknown gradient estimator {estimator!r}; choose one of {ESTIMATORS}")
    name, sep, temperature = estimator.partition(":")
    name = name.strip()
    if not sep:
        return Estimator(name)
    if name not in ESTIMATORS:
        raise InputError(f"unknown gradient estimator {estimator!r}; choose one of {ESTIMATORS}")
    if name != "gumbel_softmax":
        raise InputError(
            f"gradient estimator {name!r} takes no temperature, got {temperature.strip()!r} "
            f"in {estimator!r}"
        )
    try:
        value = float(temperature)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0.0):
        raise InputError(
            f"gumbel_softmax temperature must be a finite number > 0, got "
            f"{temperature.strip()!r} in {estimator!r}"
        )
    return Estimator(name, value)


#: The estimator of the run being traced (see :func:`estimator_scope`).
_SCOPE: contextvars.ContextVar = contextvars.ContextVar("jaxsim_estimator", default=None)


@contextlib.contextmanager
def estimator_scope(estimator: "str | Estimator | None"):
    """Within the block, draws that name no estimator use ``estimator`` (``None`` keeps the
    enclosing one). The engine opens one around each run it traces, so the estimator is
    fixed when a program is traced (and part of its compile-cache key)."""
    if estimator is None:
        yield current_estimator()
        return
    token = _SCOPE.set(check_estimator(estimator))
    try:
        yield _SCOPE.get()
    finally:
        _SCOPE.reset(token)


def current_estimator() -> Estimator:
    """The estimator of the enclosing :func:`estimator_scope` (``"none"`` outside any)."""
    found = _SCOPE.get()
    return found if found is not None else Estimator("none")


def differentiable() -> bool:
    """Whether the run being traced wants gradients (its estimator is not ``"none"``)."""
    return current_estimator().name != "none"


@partial(jax.jit, static_argnums=1)
def _split_seed(seed, num: int) -> tuple[jax.Array, ...]:
    return tuple(jax.random.split(jax.random.key(seed), num))


def keys_from_seed(seed: int, num: int = 2) -> tuple[jax.Array, ...]:
    """``tuple(jax.random.split(jax.random.key(seed), num))``: the same ``num`` keys, made
    by one compiled program (eagerly, four: at start-up each costs tens of milliseconds
    even from the compile cache). Seeds outside the 32-bit range take the eager path (a
    jitted argument is a 32-bit integer)."""
    if not -(2**31) <= int(seed) < 2**31:
        return tuple(jax.random.split(jax.random.key(seed), int(num)))
    return _split_seed(seed, int(num))


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
        raise InputError(f"uniform: at most 2**32 - 1 elements per draw, asked for {size}")
    words = jax.random.bits(key, (2,), jnp.uint32)
    counter = jnp.arange(size, dtype=jnp.uint32) + jnp.asarray(offset, jnp.uint32)
    h = _mix32(_mix32(counter ^ words[0]) + words[1])
    return ((h >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)).reshape(shape)



# ------------------------------------------------------------------------ estimators
#: Smallest probability (and distance from 1) the relaxed estimators take a logarithm of:
#: 2**-24, the spacing of the uniforms near 1, so ``1 - _EPS`` is exact in float32.
_EPS = 2.0**-24
#: Floor for the uniforms before a logarithm; ``uniform`` returns 0 with probability 2**-24.
_U_FLOOR = 2.0**-25
#: Key tag for the categorical draws' uniforms, so that ``categorical(key, ...)`` and
#: ``bernoulli(key, ...)`` with the same key use independent numbers.
_CATEGORICAL_STREAM = 0x43415447


def _clip_unit(p: jax.Array) -> jax.Array:
    """``clip(p, 0, 1)`` whose gradient is 1 on ``[0, 1]`` (ends included) and 0 outside
    (``jnp.clip`` would give 1/2 at the ends)."""
    return jnp.where(p < 0.0, 0.0, jnp.where(p > 1.0, 1.0, p))


def _logit(x: jax.Array, eps: float) -> jax.Array:
    """``log x - log(1 - x)`` with ``x`` held in ``[eps, 1 - eps]`` (gradient 0 outside)."""
    x = jnp.where(x < eps, eps, jnp.where(x > 1.0 - eps, 1.0 - eps, x))
    return jnp.log(x) - jnp.log1p(-x)


def _relaxed_bernoulli_logit(p: jax.Array, u: jax.Array) -> jax.Array:
    """``logit(p) - L`` with logistic noise ``L = logit(u)``: positive exactly when
    ``u < p`` up to float rounding (``logit`` is increasing), so the relaxed event agrees
    with the hard one. ``p`` is held in ``[2**-24, 1 - 2**-24]`` and ``u`` floored at
    ``2**-25``, so the value is within about +-34 and its gradient is finite; for
    ``p`` below ``2**-24`` (including 0) the gradient is 0."""
    noise = _logit(jnp.maximum(u, _U_FLOOR), _U_FLOOR)
    return _logit(p, _EPS) - noise


@jax.custom_vjp
def _smoothed_bernoulli(p: jax.Array, hard: jax.Array) -> jax.Array:
    return hard


def _smoothed_bernoulli_fwd(p, hard):
    return hard, (p, hard)


def _smoothed_bernoulli_bwd(residuals, g):
    p, hard = residuals
    # Raising p by dp switches an off event on with probability dp / (1 - p); on events
    # stay on. The floor on 1 - p only engages at p = 1 exactly (the largest float32 below
    # 1 is 1 - 2**-24), where every event is on and the factor (1 - hard) is 0, so it
    # introduces no bias; just below 1 the rare off events carry weights up to 2**24.
    weight = (1.0 - hard) / jnp.maximum(1.0 - p, _EPS)
    return (g * weight).astype(p.dtype), jnp.zeros_like(hard)


_smoothed_bernoulli.defvjp(_smoothed_bernoulli_fwd, _smoothed_bernoulli_bwd)


def bernoulli(key: jax.Array, p: jax.Array, estimator: str | Estimator | None = None) -> jax.Array:
    """0/1 float32 events with probability ``p`` (any shape), drawn with ``key``.

    The event is ``u < p`` for ``u = uniform(key, p.shape)`` whatever the estimator, so
    the forward value is exactly 0 or 1 and identical across estimators. The uniforms
    depend only on ``key`` and ``p.shape``, never on ``p``'s values, so runs that differ
    only in parameters share their randomness (common random numbers): raising ``p`` only
    adds events. ``p`` outside ``[0, 1]`` is clipped (see the module docstring).

    ``estimator`` is anything :func:`check_estimator` accepts (default: the run's, see
    :func:`estimator_scope`); it picks the gradient with respect to ``p`` (see the module
    docstring). The key's uniforms get a zero gradient.
    """
    spec = current_estimator() if estimator is None else check_estimator(estimator)
    p = jnp.asarray(p)
    u = uniform(key, p.shape)
    hard = (u < p).astype(jnp.float32)
    if spec.name == "none":
        return jax.lax.stop_gradient(hard)
    hard = jax.lax.stop_gradient(hard)
    p32 = _clip_unit(p.astype(jnp.float32))
    if spec.name == "straight_through":
        # (p - p) is exactly 0 in the forward pass, so events stay exactly 0 or 1.
        return hard + (p32 - jax.lax.stop_gradient(p32))
    if spec.name == "gumbel_softmax":
        soft = jax.nn.sigmoid(_relaxed_bernoulli_logit(p32, u) / spec.temperature)
        # soft is finite (in [0, 1]), so soft - soft is exactly 0 in the forward pass.
        return hard + (soft - jax.lax.stop_gradient(soft))
    if spec.name == "stochastic":
        return _smoothed_bernoulli(p32, hard)
    raise AssertionError(spec)  # unreachable: Estimator validates its name


@jax.custom_vjp
def _smoothed_categorical(probs: jax.Array, hard: jax.Array) -> jax.Array:
    return hard


def _smoothed_categorical_fwd(probs, hard):
    return hard, (probs, hard)


def _smoothed_categorical_bwd(residuals, g):
    probs, hard = residuals
    # d onehot / d probs_j = (e_j - onehot) / sum(probs): see categorical's docstring.
    # A row of zeros (drawn as class 0 by convention) gets no gradient; row sums are
    # floored at 2**-24 so the weight stays finite.
    total = jnp.sum(probs, axis=-1, keepdims=True)
    scale = jnp.where(total > 0.0, 1.0 / jnp.maximum(total, _EPS), 0.0)
    picked = jnp.sum(g * hard, axis=-1, keepdims=True)
    return ((g - picked) * scale).astype(probs.dtype), jnp.zeros_like(hard)


_smoothed_categorical.defvjp(_smoothed_categorical_fwd, _smoothed_categorical_bwd)


def categorical(
    key: jax.Array, probs: jax.Array, estimator: str | Estimator | None = None
) -> jax.Array:
    """One-hot float32 draws ``[..., K]`` from the categorical rows ``probs [..., K]``.

    The draw is Gumbel-max, ``argmax_k(log probs_k + G_k)`` with ``G = -log(-log u)`` for
    ``u = uniform(fold_in(key, tag), probs.shape)``, whatever the estimator: the forward
    value is exactly one-hot and identical across estimators, and the uniforms are
    independent of those :func:`bernoulli` draws with the same ``key``. Raising
    ``probs_j`` can only move a draw to ``j`` (common random numbers).

    Rows need not be normalised: class ``k`` is drawn with probability
    ``probs_k / sum(probs)``. Negative entries are clipped to 0 (gradient 0 there) and
    classes with probability 0 are never drawn; a row of zeros draws class 0 (and gets
    no gradient from ``"stochastic"``).

    Gradients with respect to ``probs``:

    - ``"none"``: none.
    - ``"straight_through"``: ``d onehot_k / d probs_j = [j = k]``. For normalised rows
      whose gradient is projected onto the simplex (e.g. ``probs = softmax(logits)``) its
      mean is the true derivative of ``E[w . onehot]``; for unnormalised weights it misses
      the ``-probs_k / sum(probs)`` term.
    - ``"gumbel_softmax"``: the gradient of ``softmax((log probs + G) / temperature)``
      (same ``G`` as the draw; ``probs`` held at least ``2**-24`` inside the logarithm,
      so entries below that get no gradient). Biased at every temperature.
    - ``"stochastic"``: a smoothed stochastic derivative for the Gumbel-max coupling.
      With ``S = sum(probs)`` and the draw ``k``, the maximum ``M = log probs_k + G_k`` is
      Gumbel(log S) and independent of ``k``; raising ``probs_j`` (``j != k``) by ``dp``
      lifts ``j``'s score by ``dp / probs_j``, and ``j``'s score (conditionally a
      truncated Gumbel below ``M``) has density ``probs_j e^{-M}`` at ``M``, so the draw
      switches from ``k`` to ``j`` with probability ``e^{-M} dp``; averaging over ``M``
      (``E[e^{-M}] = 1/S``) gives ``d onehot / d probs_j = (e_j - onehot) / S``. Its mean
      is the exact derivative ``d P(k) / d probs_j = [j = k] / S - probs_k / S**2`` for
      normalised or unnormalised rows (``S`` is floored at ``2**-24``), and like the
      Bernoulli version it is unbiased
      when the output is affine in the draw. Under a softmax parametrisation its gradient
      equals straight-through's (the extra term is constant across ``j``). For ``K = 2``
      this is a different coupling from :func:`bernoulli`'s ``u < p``, hence a different
      (also unbiased) derivative.
    """
    spec = current_estimator() if estimator is None else check_estimator(estimator)
    probs = jnp.asarray(probs)
    if probs.ndim == 0:
        raise InputError("categorical: probs must have a trailing class axis [..., K]")
    num_classes = probs.shape[-1]
    p32 = probs.astype(jnp.float32)
    p32 = jnp.where(p32 < 0.0, 0.0, p32)
    u = uniform(jax.random.fold_in(key, _CATEGORICAL_STREAM), probs.shape)
    gumbel = -jnp.log(-jnp.log(jnp.maximum(u, _U_FLOOR)))
    fixed = jax.lax.stop_gradient(p32)
    positive = fixed > 0.0
    log_p = jnp.where(positive, jnp.log(jnp.where(positive, fixed, 1.0)), -jnp.inf)
    hard = jax.nn.one_hot(jnp.argmax(log_p + gumbel, axis=-1), num_classes, dtype=jnp.float32)
    if spec.name == "none":
        return hard
    if spec.name == "straight_through":
        return hard + (p32 - jax.lax.stop_gradient(p32))
    if spec.name == "gumbel_softmax":
        log_soft = jnp.log(jnp.where(p32 < _EPS, _EPS, p32))
        soft = jax.nn.softmax((log_soft + gumbel) / spec.temperature, axis=-1)
        return hard + (soft - jax.lax.stop_gradient(soft))
    if spec.name == "stochastic":
        return _smoothed_categorical(p32, hard)
    raise AssertionError(spec)  # unreachable: Estimator validates its name
