"""Is a gradient right? Autodiff against common-random-number finite differences.

A simulator's gradient comes from an estimator of the derivative of discrete random
events (:mod:`jaxsim.sampling`), and estimators can be biased (Quera-Bofarull et al.
2023 document how). :func:`check_gradients` measures it for any loss of any model::

    def loss(key, params):                       # a scalar, differentiable in params
        _, metrics = jaxsim.simulate(model, key, state, params, world, 60,
                                     estimator="stochastic")
        return metrics["new_infections"].sum()

    report = jaxsim.gradcheck.check_gradients(loss, params, ["tau", "gamma"], seeds=32)
    print(report.table())

For every seed ``k`` (``seeds`` keys split from ``key``) it computes the autodiff gradient
``d loss(k, theta) / d theta`` and, for each checked coordinate, the central difference
``(loss(k, theta + h e) - loss(k, theta - h e)) / (2 h)`` with the *same* key on both
sides (common random numbers: the difference then measures the parameter's effect, not
the noise between seeds). Over the seeds it reports, per coordinate, the mean and the
standard error of both, the bias (autodiff mean - finite-difference mean), the relative
error ``|bias| / |finite-difference mean|`` and a verdict:

- ``"ok"``: relative error at most ``tolerance``;
- ``"biased"``: outside the tolerance by more than two standard errors of the bias;
- ``"uncertain"``: outside the tolerance but within two standard errors (more seeds, or a
  larger step, decide it).

A check that is not ``"ok"`` warns (``GradientWarning``) naming the parameter and the
measured error. It also times one forward pass and one value-and-gradient pass over all
the seeds (compiled apart) and reports the gradient's cost as a multiple of the forward
run.

Steps: ``h = relative_step * max(|value|, min_step)`` per coordinate (``steps`` overrides it
by parameter name); both ``value - h`` and ``value + h`` must lie inside the parameter's
declared bounds. Finite differences of a stochastic simulator need a step large enough
that the events it changes outnumber the rounding (the default 5% is), and small enough
that the loss is near-linear over ``[value - h, value + h]`` (check by halving it).

Parameters with array values (tables per label, weekly series) are checked per entry,
named ``name[i]`` (flat index).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim import parameters
from jaxsim.errors import InputError

#: The verdicts of :class:`CoordinateCheck`.
VERDICTS = ("ok", "uncertain", "biased")


class GradientWarning(UserWarning):
    """An autodiff gradient that disagrees with finite differences."""


@dataclass(frozen=True)
class CoordinateCheck:
    """One checked coordinate (a scalar parameter, or one entry of an array parameter).

    Attributes:
        name: ``"tau"`` or ``"beta[2]"`` (flat index into the parameter's array).
        value: the parameter's value there.
        step: the finite-difference half-width ``h``.
        autodiff_mean, autodiff_se: mean and standard error over the seeds of the
            autodiff derivative.
        fd_mean, fd_se: the same of the common-random-number central differences.
        bias: ``autodiff_mean - fd_mean``.
        bias_se: standard error of ``bias`` (from the per-seed differences, which share
            their random numbers).
        relative_error: ``|bias| / |fd_mean|`` (``inf`` when ``fd_mean`` is 0 and the
            bias is not).
        verdict: one of :data:`VERDICTS`.
    """

    name: str
    value: float
    step: float
    autodiff_mean: float
    autodiff_se: float
    fd_mean: float
    fd_se: float
    bias: float
    bias_se: float
    relative_error: float
    verdict: str


@dataclass(frozen=True)
class GradientCheck:
    """The result of :func:`check_gradients`.

    Attributes:
        coordinates: one :class:`CoordinateCheck` per checked coordinate.
        seeds: the number of seeds.
        tolerance: the relative error an ``"ok"`` verdict allows.
        forward_seconds: one forward pass over all the seeds (compiled; best of
            ``repeats``).
        gradient_seconds: one value-and-gradient pass over all the seeds (same).
        finite_difference_evaluations: forward passes the finite differences took
            (2 per coordinate).
    """

    coordinates: tuple[CoordinateCheck, ...]
    seeds: int
    tolerance: float
    forward_seconds: float
    gradient_seconds: float
    finite_difference_evaluations: int

    @property
    def cost_ratio(self) -> float:
        """Value-and-gradient time as a multiple of the forward time."""
        return self.gradient_seconds / self.forward_seconds if self.forward_seconds > 0 else float("inf")

    @property
    def ok(self) -> bool:
        """Whether every coordinate's verdict is ``"ok"``."""
        return all(c.verdict == "ok" for c in self.coordinates)

    def __getitem__(self, name: str) -> CoordinateCheck:
        for c in self.coordinates:
            if c.name == name:
                return c
        raise KeyError(f"no checked coordinate {name!r}; checked: {[c.name for c in self.coordinates]}")

    def table(self) -> str:
        """A plain-text table, one row per coordinate, and the cost line."""
        head = (f"{'parameter':<14} {'value':>10} {'step':>9} {'autodiff':>11} {'+-se':>9} {'finite diff':>11} "
                f"{'+-se':>9} {'bias':>11} {'rel err':>8}  verdict")
        rows = [head, "-" * len(head)]
        for c in self.coordinates:
            rows.append(
                f"{c.name:<14} {c.value:>10.4g} {c.step:>9.3g} {c.autodiff_mean:>11.4g} {c.autodiff_se:>9.3g} "
                f"{c.fd_mean:>11.4g} {c.fd_se:>9.3g} {c.bias:>11.4g} {c.relative_error:>8.1%}  {c.verdict}"
            )
        rows.append(
            f"{self.seeds} seeds (common random numbers); tolerance {self.tolerance:.0%}; value and gradient "
            f"{self.gradient_seconds:.3g} s = {self.cost_ratio:.2f}x the forward pass ({self.forward_seconds:.3g} s); "
            f"finite differences {self.finite_difference_evaluations} forward passes"
        )
        return "\n".join(rows)


def _verdict(bias: float, bias_se: float, fd_mean: float, tolerance: float) -> str:
    allowed = tolerance * abs(fd_mean)
    if abs(bias) <= allowed:
        return "ok"
    return "biased" if abs(bias) - 2.0 * bias_se > allowed else "uncertain"


def _mean_se(samples: np.ndarray) -> tuple[float, float]:
    samples = np.asarray(samples, np.float64)
    se = float(samples.std(ddof=1) / np.sqrt(samples.size)) if samples.size > 1 else float("nan")
    return float(samples.mean()), se


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(max(int(repeats), 1)):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def check_gradients(
    loss: Callable[[jax.Array, object], jax.Array],
    params,
    names: Sequence[str],
    *,
    seeds: int = 16,
    key: jax.Array | int = 0,
    relative_step: float = 0.05,
    min_step: float = 1e-3,
    steps: Mapping[str, float] | None = None,
    tolerance: float = 0.2,
    repeats: int = 3,
    warn: bool = True,
) -> GradientCheck:
    """Autodiff gradient of ``loss`` against common-random-number finite differences.

    Args:
        loss: ``loss(key, params) -> float scalar``, differentiable in ``params`` (e.g. a
            :func:`jaxsim.simulate` run with its estimator, reduced to a number); it is
            ``vmap``-ed over the seeds and jitted.
        params: a declared parameters instance (:func:`jaxsim.params`); the other fields
            stay fixed.
        names: the parameters to check (declared float fields).
        seeds: number of random keys (split from ``key``); at least 2.
        key: a JAX key or an int seed.
        relative_step: ``h = relative_step * max(|value|, min_step)``.
        min_step: floor of the scale of ``h`` (for values at or near 0).
        steps: ``{name: h}`` absolute half-widths that replace the relative ones.
        tolerance: the relative error an ``"ok"`` verdict allows (0.2: within 20%).
        repeats: timed passes of the forward and the gradient (best taken).
        warn: warn (:class:`GradientWarning`) for every coordinate that is not ``"ok"``.

    Returns:
        :class:`GradientCheck`.

    Raises:
        InputError: an undeclared or non-float parameter, a step that leaves the declared
            bounds, fewer than 2 seeds, a loss that is not a scalar or not finite at the
            parameters.
    """
    names = tuple(names)
    if not names:
        raise InputError("check_gradients: name at least one parameter to check")
    declared = parameters.specs(params)
    owner = type(params).__name__
    for name in names:
        if name not in declared:
            raise InputError(f"check_gradients: {owner} has no declared parameter {name!r}; it has {sorted(declared)}")
        if declared[name].dtype != "float32":
            raise InputError(f"check_gradients: {owner}.{name} is {declared[name].dtype}, not a float parameter")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 2:
        raise InputError(f"check_gradients: seeds must be a whole number >= 2, got {seeds!r}")
    for label, value in (("relative_step", relative_step), ("min_step", min_step), ("tolerance", tolerance)):
        if not np.isfinite(value) or value <= 0:
            raise InputError(f"check_gradients: {label} must be a finite number > 0, got {value!r}")
    steps = dict(steps or {})
    unknown = sorted(set(steps) - set(names))
    if unknown:
        raise InputError(f"check_gradients: steps given for {unknown}, which are not among the checked {list(names)}")

    base_key = jax.random.key(key) if isinstance(key, (int, np.integer)) else key
    keys = jax.random.split(base_key, int(seeds))
    theta = {name: jnp.asarray(getattr(params, name), jnp.float32) for name in names}

    def scalar_loss(theta, k):
        out = jnp.asarray(loss(k, params.replace(**theta)))
        if out.shape != ():
            raise InputError(f"check_gradients: the loss must be a scalar, got shape {out.shape}")
        return out.astype(jnp.float32)

    forward = jax.jit(jax.vmap(scalar_loss, in_axes=(None, 0)))
    value_and_grad = jax.jit(jax.vmap(jax.value_and_grad(scalar_loss), in_axes=(None, 0)))

    values, grads = jax.block_until_ready(value_and_grad(theta, keys))
    values = np.asarray(values)
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise InputError(f"check_gradients: the loss is not finite at the given parameters (seed {bad}: {values[bad]})")
    forward(theta, keys)  # compile before timing
    forward_seconds = _best_time(lambda: forward(theta, keys), repeats)
    gradient_seconds = _best_time(lambda: value_and_grad(theta, keys), repeats)

    coordinates = []
    evaluations = 0
    for name in names:
        base = np.asarray(theta[name], np.float32)
        grad = np.asarray(grads[name], np.float64).reshape(int(seeds), -1)
        low, high = declared[name].low_high()
        for index in range(base.size):
            value = float(base.reshape(-1)[index])
            h = float(steps[name]) if name in steps else relative_step * max(abs(value), min_step)
            if not np.isfinite(h) or h <= 0:
                raise InputError(f"check_gradients: step for {owner}.{name} must be a finite number > 0, got {h!r}")
            if value - h < low or value + h > high:
                raise InputError(
                    f"check_gradients: {owner}.{name} = {value:.6g} +- step {h:.3g} leaves its bounds [{low}, {high}]; "
                    "give a smaller step (steps={name: h})"
                )
            label = name if base.ndim == 0 else f"{name}[{index}]"

            up, down = np.float32(value + h), np.float32(value - h)
            width = float(up) - float(down)  # the step actually taken, after float32 rounding

            def moved(entry, index=index, name=name):
                flat = base.reshape(-1).copy()
                flat[index] = entry
                return {**theta, name: jnp.asarray(flat.reshape(base.shape))}

            plus = np.asarray(forward(moved(up), keys), np.float64)
            minus = np.asarray(forward(moved(down), keys), np.float64)
            evaluations += 2
            if not (np.all(np.isfinite(plus)) and np.all(np.isfinite(minus))):
                raise InputError(f"check_gradients: the loss is not finite at {label} = {value:.6g} +- {h:.3g}")
            fd = (plus - minus) / width
            ad = grad[:, index]
            ad_mean, ad_se = _mean_se(ad)
            fd_mean, fd_se = _mean_se(fd)
            bias, bias_se = _mean_se(ad - fd)
            if fd_mean != 0:
                relative = abs(bias) / abs(fd_mean)
            else:
                relative = 0.0 if bias == 0 else float("inf")
            coordinates.append(CoordinateCheck(
                name=label, value=value, step=h, autodiff_mean=ad_mean, autodiff_se=ad_se, fd_mean=fd_mean,
                fd_se=fd_se, bias=bias, bias_se=bias_se, relative_error=relative,
                verdict=_verdict(bias, bias_se, fd_mean, tolerance),
            ))

    report = GradientCheck(
        coordinates=tuple(coordinates), seeds=int(seeds), tolerance=float(tolerance),
        forward_seconds=forward_seconds, gradient_seconds=gradient_seconds,
        finite_difference_evaluations=evaluations,
    )
    if warn:
        for c in report.coordinates:
            if c.verdict != "ok":
                warnings.warn(
                    f"gradient of {owner}.{c.name} is {c.verdict}: autodiff {c.autodiff_mean:.4g} against finite "
                    f"differences {c.fd_mean:.4g} +- {c.fd_se:.2g} (relative error {c.relative_error:.0%}, "
                    f"tolerance {tolerance:.0%}, {seeds} seeds)",
                    GradientWarning,
                    stacklevel=2,
                )
    return report


__all__ = ["VERDICTS", "CoordinateCheck", "GradientCheck", "GradientWarning", "check_gradients"]
