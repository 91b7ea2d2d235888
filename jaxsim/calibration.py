"""Calibrating COVID parameters by gradient against observed weekly case counts.

The pieces, each usable alone:

- :class:`Bounds` and :data:`FITTABLE`: which :class:`~jaxsim.covid.CovidParams` leaves can
  be fitted and their ranges. A fitted value is ``low + (high - low) * sigmoid(z)`` for an
  unconstrained ``z``, so every step of the optimiser stays in range.
- :func:`weekly_reported_cases`: one differentiable run -> reported cases per week
  (simulated onsets x ascertainment).
- :data:`LOSSES`: count losses (scaled Poisson deviance, scaled MAE).
- :class:`CalibrationProblem` + :func:`fit`: Adam (optax) on the fitted leaves, several
  seeds averaged per step, stopping cleanly with the last good parameters when a loss or
  gradient is not finite.
- :class:`WeeklyParameterNetwork`: a flax MLP mapping the preceding weeks' features
  (mobility changes, cases) to the weekly transmission rate, trained end to end through
  the simulator (``fit(..., network=...)``).
- :func:`heldout_metrics`, :func:`persistence_forecast`, :func:`gradient_free_fit`:
  evaluation on held-out weeks and the baselines to compare with.

Time: week ``w`` of a run is days ``7w .. 7w+6``; the fitted transmission rate has one
value per simulated week.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from jaxsim import covid, engine
from jaxsim.covid import CovidParams
from jaxsim.engine import Model, World


class CalibrationError(ValueError):
    """A calibration was asked for something it cannot do (unknown parameter, bad data...)."""


@dataclass(frozen=True)
class Bounds:
    """Closed range ``[low, high]`` of a fitted parameter (same for every entry of a leaf)."""

    low: float
    high: float

    def to_value(self, z: jax.Array) -> jax.Array:
        return self.low + (self.high - self.low) * jax.nn.sigmoid(z)

    def to_unconstrained(self, value) -> jax.Array:
        span = self.high - self.low
        frac = np.clip((np.asarray(value, np.float64) - self.low) / span, 1e-4, 1 - 1e-4)
        return jnp.asarray(np.log(frac) - np.log1p(-frac), jnp.float32)


#: Parameters that can be fitted, with their ranges.
FITTABLE: dict[str, Bounds] = {
    "transmission_rate": Bounds(0.0, 20.0),
    "susceptibility": Bounds(0.0, 3.0),
    "mortality": Bounds(0.0, 0.5),
    "isolation_baseline": Bounds(0.0, 1.0),
    "isolation_response": Bounds(-5.0, 5.0),
    "isolation_alignment_scale": Bounds(0.0, 3.0),
    "isolation_alignment_offset": Bounds(-0.5, 0.5),
    "initial_exposed_share": Bounds(0.0, 0.05),
    "initial_infected_share": Bounds(0.0, 0.05),
}


def check_fit_names(names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(names)
    if not names:
        raise CalibrationError("nothing to fit: name at least one parameter")
    unknown = [n for n in names if n not in FITTABLE]
    if unknown:
        known = sorted(CovidParams.__dataclass_fields__)
        fittable = sorted(FITTABLE)
        raise CalibrationError(
            f"cannot fit {unknown}: "
            + ("not a parameter of the COVID model" if any(u not in known for u in unknown) else "not fittable")
            + f"; fittable parameters are {fittable}"
        )
    return names


# ----------------------------------------------------------------------------- losses
def scaled_poisson_deviance(predicted: jax.Array, observed: jax.Array) -> jax.Array:
    """Poisson deviance per week divided by the mean observed count (scale-free, >= 0)."""
    pred = jnp.maximum(predicted, 1e-3)
    obs = jnp.maximum(observed, 0.0)
    term = jnp.where(obs > 0, obs * (jnp.log(jnp.maximum(obs, 1e-9)) - jnp.log(pred)), 0.0)
    deviance = 2.0 * (term - (obs - pred))
    return jnp.mean(deviance) / jnp.maximum(jnp.mean(obs), 1.0)


def scaled_mae(predicted: jax.Array, observed: jax.Array) -> jax.Array:
    """Mean absolute error divided by the mean observed count."""
    return jnp.mean(jnp.abs(predicted - observed)) / jnp.maximum(jnp.mean(observed), 1.0)


LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "poisson": scaled_poisson_deviance,
    "mae": scaled_mae,
}


# ------------------------------------------------------------------------- simulation
def weekly_reported_cases(
    model: Model,
    params: CovidParams,
    world: World,
    key: jax.Array,
    weeks: int,
    ascertainment: float,
    *,
    prior_daily_cases: float | np.ndarray = 0.0,
    stages: np.ndarray | None = None,
    estimator="straight_through",
) -> jax.Array:
    """Reported cases per week ``[weeks]`` of one run: weekly onsets x ascertainment.

    Differentiable with respect to ``params`` when ``model`` uses a gradient estimator;
    the state is rematerialised per week (``checkpoint_days=7``) so memory stays bounded.
    """
    init_key, run_key = jax.random.split(key)
    state = covid.initial_state(
        params, init_key, world, stages=stages, prior_daily_cases=prior_daily_cases, estimator=estimator
    )
    _, metrics = engine.simulate(model, state, params, world, run_key, 7 * weeks, checkpoint_days=7)
    return metrics["new_cases"].reshape(weeks, 7).sum(axis=1) * ascertainment


# -------------------------------------------------------------------------- the network
class WeeklyParameterNetwork(nn.Module):
    """MLP from one week's features ``[F]`` to an unconstrained value (``sigmoid`` -> range).

    Features of week ``w`` are built from the weeks before it (see
    :func:`weekly_features`), so the network can forecast weeks it was not trained on.
    """

    hidden: int = 16

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        x = nn.tanh(nn.Dense(self.hidden)(features))
        x = nn.tanh(nn.Dense(self.hidden)(x))
        return nn.Dense(1)(x)[..., 0]


def weekly_features(mobility: np.ndarray, cases: np.ndarray, known_weeks: int) -> np.ndarray:
    """Features ``[W, 7]`` for weeks ``1..W`` of a window from the week before each.

    Week ``w``'s features: the six mobility changes of week ``w-1`` (percent / 100) and
    ``log1p`` of the cases of the latest week that is both before ``w`` and among the first
    ``known_weeks`` (cases after the training window are not known when forecasting).

    Args:
        mobility: ``[W + 1, 6]`` mobility of the week before the window and its weeks.
        cases: ``[W + 1]`` observed cases, same weeks.
        known_weeks: how many of the window's weeks have known cases (the training weeks).
    """
    mobility = np.nan_to_num(np.asarray(mobility, np.float64))
    cases = np.nan_to_num(np.asarray(cases, np.float64))
    weeks = mobility.shape[0] - 1
    rows = []
    for w in range(weeks):
        known = min(w, known_weeks)  # index into the window+1 arrays: week before w, capped
        rows.append(np.concatenate([mobility[w] / 100.0, [np.log1p(cases[known]) / 5.0]]))
    return np.asarray(rows, np.float32)


# ------------------------------------------------------------------------ the problem
@dataclass
class CalibrationProblem:
    """Everything a calibration needs besides the optimiser settings.

    Attributes:
        model: a COVID model with a gradient estimator (e.g. ``"straight_through"``).
        world, params: as for a run; ``params`` supplies the values not fitted and the
            starting point of those fitted. ``params.transmission_rate`` must have one
            entry per simulated week (train + test).
        observed: ``[train + test]`` observed weekly cases.
        train_weeks: the first ``train_weeks`` weeks are fitted, the rest held out.
        ascertainment: reported share of simulated onsets.
        prior_daily_cases, stages: initial conditions, as :func:`covid.initial_state`.
        estimator: the estimator of the initial draws (use the model's).
        features: optional ``[train + test, F]`` weekly features for the network.
    """

    model: Model
    world: World
    params: CovidParams
    observed: np.ndarray
    train_weeks: int
    ascertainment: float
    prior_daily_cases: float | np.ndarray = 0.0
    stages: np.ndarray | None = None
    estimator: str = "straight_through"
    features: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.observed = np.asarray(self.observed, np.float32)
        total = self.observed.shape[0]
        if self.train_weeks < 1 or self.train_weeks > total:
            raise CalibrationError(f"train_weeks must be in 1..{total}, got {self.train_weeks}")
        if not np.all(np.isfinite(self.observed)) or np.any(self.observed < 0):
            raise CalibrationError(f"observed weekly cases must be finite and >= 0, got {self.observed.tolist()}")
        if self.params.transmission_rate.shape[0] != total:
            raise CalibrationError(
                f"params.transmission_rate has {self.params.transmission_rate.shape[0]} weeks; "
                f"the calibration window has {total} (train + test)"
            )
        if not 0 < self.ascertainment <= 1:
            raise CalibrationError(f"ascertainment must lie in (0, 1], got {self.ascertainment}")

    @property
    def total_weeks(self) -> int:
        return int(self.observed.shape[0])

    def simulate(self, params: CovidParams, key: jax.Array, weeks: int | None = None) -> jax.Array:
        return weekly_reported_cases(
            self.model, params, self.world, key, weeks or self.train_weeks, self.ascertainment,
            prior_daily_cases=self.prior_daily_cases, stages=self.stages, estimator=self.estimator,
        )


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        params: fitted parameters (the last ones with a finite loss and gradient).
        loss_curve: training loss per step (seed-averaged).
        seconds: wall time of the fit, compilation included.
        stopped: ``"completed"`` or why the fit stopped early.
        simulator_runs: runs of the simulator used (steps x seeds), for budget comparisons.
        network_params: the network's weights when a network was fitted.
    """

    params: CovidParams
    loss_curve: list[float]
    seconds: float
    stopped: str
    simulator_runs: int
    network_params: dict | None = None
    compile_seconds: float = 0.0


def _assemble(problem: CalibrationProblem, names, z: dict, network, net_params) -> CovidParams:
    """Fitted leaves from their unconstrained values (and the network for R(t))."""
    values = {}
    for name in names:
        if name == "transmission_rate" and network is not None:
            raw = network.apply(net_params, jnp.asarray(problem.features))
            values[name] = FITTABLE[name].to_value(raw)
        else:
            values[name] = FITTABLE[name].to_value(z[name])
    return problem.params.replace(**values)


def fit(
    problem: CalibrationProblem,
    names: Sequence[str] = ("transmission_rate",),
    *,
    steps: int = 60,
    learning_rate: float = 0.1,
    seeds_per_step: int = 4,
    loss: str = "poisson",
    seed: int = 0,
    network: WeeklyParameterNetwork | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Fit ``names`` to the training weeks with Adam, averaging ``seeds_per_step`` runs.

    With ``network`` given, the weekly transmission rate is the network's output for each
    week's features (``problem.features``) and the network's weights are what Adam moves;
    other names are fitted directly. A non-finite loss or gradient stops the fit and the
    result holds the last parameters whose loss and gradient were finite.
    """
    names = check_fit_names(names)
    if loss not in LOSSES:
        raise CalibrationError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}")
    if steps < 1 or seeds_per_step < 1:
        raise CalibrationError(f"steps and seeds_per_step must be >= 1, got {steps}, {seeds_per_step}")
    if network is not None and problem.features is None:
        raise CalibrationError("a network needs problem.features ([weeks, F])")
    loss_fn = LOSSES[loss]
    observed = jnp.asarray(problem.observed[: problem.train_weeks])

    z = {n: FITTABLE[n].to_unconstrained(getattr(problem.params, n)) for n in names}
    net_params = None
    if network is not None:
        net_params = network.init(jax.random.key(seed + 1), jnp.asarray(problem.features))
        # Start the network's output at the current transmission rate.
        start = FITTABLE["transmission_rate"].to_unconstrained(np.mean(problem.params.transmission_rate))
        last = net_params["params"]["Dense_2"]
        last = {**last, "bias": last["bias"] + start}
        net_params = {"params": {**net_params["params"], "Dense_2": last}}
        z.pop("transmission_rate", None)
    trainable = {"z": z, "net": net_params}

    def objective(trainable, keys):
        params = _assemble(problem, names, trainable["z"], network, trainable["net"])
        predicted = jax.lax.map(lambda k: problem.simulate(params, k), keys)
        return jnp.mean(jax.vmap(lambda p: loss_fn(p, observed))(predicted))

    optimiser = optax.adam(learning_rate)
    opt_state = optimiser.init(trainable)

    @jax.jit
    def update(trainable, opt_state, keys):
        value, grads = jax.value_and_grad(objective)(trainable, keys)
        finite = jnp.isfinite(value) & jnp.all(
            jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)])
        )
        updates, new_opt_state = optimiser.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), new_opt_state, value, finite

    start_time = time.perf_counter()
    curve: list[float] = []
    stopped = "completed"
    compile_seconds = 0.0
    base = jax.random.key(seed)
    runs = 0
    def all_finite(tree) -> bool:
        return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(tree))

    # ``last_good``: the latest parameters whose own loss and gradient were finite.
    last_good = trainable if all_finite(trainable) else None
    for step in range(steps):
        keys = jax.random.split(jax.random.fold_in(base, step), seeds_per_step)
        t0 = time.perf_counter()
        new_trainable, new_opt_state, value, finite = update(trainable, opt_state, keys)
        value = float(value)
        if step == 0:
            compile_seconds = time.perf_counter() - t0
        runs += seeds_per_step
        if not bool(finite) or not all_finite(trainable):
            stopped = (
                f"stopped at step {step}: non-finite loss or gradient (loss {value}); "
                "kept the last good parameters"
            )
            break
        last_good = trainable
        trainable, opt_state = new_trainable, new_opt_state
        curve.append(value)
        if on_step is not None:
            on_step(step, value)
    else:
        if all_finite(trainable):
            last_good = trainable  # the final update, whose loss was not evaluated
        else:
            stopped = f"the last update gave non-finite parameters; kept those of step {steps - 1}"
    if last_good is None:
        raise CalibrationError("the starting parameters are not finite")
    trainable = last_good
    params = _assemble(problem, names, trainable["z"], network, trainable["net"])
    return FitResult(
        params=params,
        loss_curve=curve,
        seconds=time.perf_counter() - start_time,
        stopped=stopped,
        simulator_runs=runs,
        network_params=trainable["net"],
        compile_seconds=compile_seconds,
    )


# ---------------------------------------------------------------------- evaluation
def heldout_metrics(predicted: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    """``mae``, ``rmse`` and normalised deviation ``nd = sum |pred - obs| / sum obs``."""
    predicted = np.asarray(predicted, np.float64)
    observed = np.asarray(observed, np.float64)
    if predicted.shape != observed.shape or observed.size == 0:
        raise CalibrationError(f"prediction {predicted.shape} and observation {observed.shape} differ")
    error = predicted - observed
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "nd": float(np.sum(np.abs(error)) / max(np.sum(observed), 1e-9)),
    }


def ensemble_forecast(
    problem: CalibrationProblem, params: CovidParams, members: int = 16, seed: int = 1000
) -> np.ndarray:
    """Reported cases per week ``[members, train + test]`` from independent seeds."""
    keys = jax.random.split(jax.random.key(seed), members)
    run = jax.jit(lambda k: problem.simulate(params, k, problem.total_weeks))
    return np.stack([np.asarray(run(k)) for k in keys])


def persistence_forecast(observed_train: np.ndarray, test_weeks: int) -> np.ndarray:
    """Last-value persistence: every held-out week repeats the last training week."""
    return np.full(test_weeks, float(np.asarray(observed_train)[-1]))


def extend_last_week(params: CovidParams, train_weeks: int) -> CovidParams:
    """Held-out weeks keep the last fitted training week's transmission rate."""
    rate = params.transmission_rate
    return params.replace(transmission_rate=rate.at[train_weeks:].set(rate[train_weeks - 1]))


def gradient_free_fit(
    problem: CalibrationProblem,
    names: Sequence[str] = ("transmission_rate",),
    *,
    simulator_runs: int,
    seeds_per_evaluation: int = 4,
    loss: str = "poisson",
    seed: int = 0,
) -> FitResult:
    """Nelder-Mead (scipy) over the same unconstrained parameters, same loss, with a budget
    of ``simulator_runs`` simulator runs (each evaluation averages ``seeds_per_evaluation``
    runs, with the same seeds every evaluation so the objective is deterministic). Only
    the training weeks' transmission rates are searched; later weeks repeat the last."""
    from scipy.optimize import minimize

    names = check_fit_names(names)
    loss_fn = LOSSES[loss]
    observed = jnp.asarray(problem.observed[: problem.train_weeks])
    train = problem.train_weeks
    z0 = {n: FITTABLE[n].to_unconstrained(getattr(problem.params, n)) for n in names}
    if "transmission_rate" in z0:
        # Only the training weeks' rates affect the loss; search those, and let the
        # held-out weeks keep the last training week's rate.
        z0["transmission_rate"] = z0["transmission_rate"][:train]
    flat0, unravel = jax.flatten_util.ravel_pytree(z0)
    keys = jax.random.split(jax.random.key(seed), seeds_per_evaluation)

    def assemble(flat):
        z = dict(unravel(flat))
        if "transmission_rate" in z:
            rates = z["transmission_rate"]
            z["transmission_rate"] = jnp.concatenate(
                [rates, jnp.repeat(rates[-1:], problem.total_weeks - train)]
            )
        return _assemble(problem, names, z, None, None)

    @jax.jit
    def objective(flat):
        params = assemble(flat)
        predicted = jax.lax.map(lambda k: problem.simulate(params, k), keys)
        return jnp.mean(jax.vmap(lambda p: loss_fn(p, observed))(predicted))

    evaluations = max(1, simulator_runs // seeds_per_evaluation)
    curve: list[float] = []

    def f(x):
        value = float(objective(jnp.asarray(x, jnp.float32)))
        curve.append(value)
        return value if math.isfinite(value) else 1e9

    start = time.perf_counter()
    result = minimize(
        f, np.asarray(flat0, np.float64), method="Nelder-Mead",
        options={"maxfev": evaluations, "xatol": 1e-3, "fatol": 1e-4},
    )
    params = assemble(jnp.asarray(result.x, jnp.float32))
    return FitResult(
        params=params,
        loss_curve=curve,
        seconds=time.perf_counter() - start,
        stopped="completed" if result.nfev <= evaluations else "budget",
        simulator_runs=len(curve) * seeds_per_evaluation,
    )


__all__ = [
    "Bounds",
    "FITTABLE",
    "CalibrationError",
    "CalibrationProblem",
    "FitResult",
    "LOSSES",
    "WeeklyParameterNetwork",
    "ensemble_forecast",
    "extend_last_week",
    "fit",
    "gradient_free_fit",
    "heldout_metrics",
    "persistence_forecast",
    "weekly_features",
    "weekly_reported_cases",
]
