"""Calibrating any model's declared parameters against an observed series.

The pieces, each usable alone:

- :class:`Bounds` and :func:`fit_bounds`: a fitted value is ``low + (high - low) *
  sigmoid(z)`` for an unconstrained ``z`` (so every optimiser step stays in range), with
  ``low, high`` the parameter's declared search range (:func:`jaxsim.parameters.param`,
  ``fit_bounds``): what a user calibrates is exactly a declared field the step reads.
- :class:`Observation`: how a run predicts the observed series (a daily metric summed over
  periods of ``period_days`` days, times a scale such as the ascertainment).
- :data:`LOSSES`: count losses (scaled Poisson deviance, scaled MAE).
- :class:`CalibrationProblem` + :func:`fit`: Adam (optax) on the fitted leaves, several
  seeds averaged per step, stopping cleanly with the last good parameters when a loss or
  gradient is not finite. The gradient estimator is one setting of the problem.
- :class:`WeeklyParameterNetwork`: a flax MLP mapping the preceding periods' features
  (e.g. mobility changes, cases) to a per-period parameter, trained end to end through
  the simulator (``fit(..., network=...)``).
- :func:`heldout_metrics`, :func:`persistence_forecast`, :func:`gradient_free_fit`:
  evaluation on held-out periods and the baselines to compare with.

Time: period ``w`` of a run is days ``period_days * w ..``; a parameter declared
``per="week"`` has one value per simulated week.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from jaxsim import engine, parameters, sampling
from jaxsim.engine import Model, World
from jaxsim.errors import InputError

#: Jitted programs of fits, searches and forecasts, keyed by what they trace (the model, the
#: estimator, the observation, the fitted names, ...): the world, the parameters and the
#: observed series are arguments, so a fit of another window or another population of the
#: same shapes reuses the compiled program instead of compiling again.
_PROGRAMS: "collections.OrderedDict[tuple, Callable]" = collections.OrderedDict()
_MAX_PROGRAMS = 32


def _cached_program(cache_key, build: Callable[[], Callable]) -> Callable:
    """The program for ``cache_key`` (built by ``build()`` on a miss); unhashable keys
    (e.g. a network module that is not hashable) build a fresh program each time."""
    try:
        hash(cache_key)
    except TypeError:
        return build()
    program = _PROGRAMS.get(cache_key)
    if program is None:
        program = _PROGRAMS[cache_key] = build()
        while len(_PROGRAMS) > _MAX_PROGRAMS:
            _PROGRAMS.popitem(last=False)
    else:
        _PROGRAMS.move_to_end(cache_key)
    return program


class CalibrationError(InputError):
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


def fittable(params_type) -> dict[str, Bounds]:
    """``{name: Bounds}`` of the declared parameters a calibration may move."""
    return {name: Bounds(*map(float, spec.search_bounds))
            for name, spec in parameters.fittable_specs(params_type).items()}


def fit_bounds(params_type, name: str) -> Bounds:
    """The search range of one declared parameter (see :func:`check_fit_names`)."""
    return fittable(params_type)[check_fit_names(params_type, [name])[0]]


def check_fit_names(params_type, names: Sequence[str]) -> tuple[str, ...]:
    """``names`` if each is a fittable declared parameter of ``params_type``; else a
    :class:`CalibrationError` saying which are not and listing the fittable ones."""
    names = tuple(names)
    cls = params_type if isinstance(params_type, type) else type(params_type)
    if not names:
        raise CalibrationError("nothing to fit: name at least one parameter")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CalibrationError(f"parameters named more than once: {repeated}")
    known = parameters.specs(cls)
    can = fittable(cls)
    unknown = [n for n in names if n not in can]
    if unknown:
        raise CalibrationError(
            f"cannot fit {unknown}: "
            + (f"not a parameter of {cls.__name__}" if any(u not in known for u in unknown) else "not fittable")
            + f"; fittable parameters are {sorted(can)}"
        )
    return names


# ----------------------------------------------------------------------------- losses
def scaled_poisson_deviance(predicted: jax.Array, observed: jax.Array) -> jax.Array:
    """Poisson deviance per period divided by the mean observed count (scale-free, >= 0)."""
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


def smoothness_penalty(params, names: Sequence[str], train_periods: int, smoothing: float) -> jax.Array:
    """``smoothing`` times the mean squared period-to-period change of the log of every
    per-period parameter among ``names`` over the training periods (0 without any): a
    random-walk prior on those values. A weekly rate is weakly identified in the last
    fitted weeks (its infections show as cases mostly after them); the penalty ties it to
    the weeks before instead of to the last week's noise. With the scale-free losses, a
    change of ``1 / sqrt(smoothing)`` on the log scale costs as much as one unit of loss."""
    if not smoothing:
        return jnp.float32(0.0)
    specs = parameters.specs(params)
    terms = [jnp.diff(jnp.log(jnp.maximum(getattr(params, n)[:train_periods], 1e-12))) ** 2
             for n in names if specs[n].per is not None and train_periods > 1]
    if not terms:
        return jnp.float32(0.0)
    return jnp.float32(smoothing) * jnp.mean(jnp.concatenate(terms))


# ------------------------------------------------------------------------ observations
@dataclass(frozen=True)
class Observation:
    """How a run predicts an observed series: the daily ``metric`` summed over periods of
    ``period_days`` days, times ``scale`` (e.g. reported cases = onsets x ascertainment).

    ``predict`` may replace the rule: ``fn(metrics, periods) -> [periods]`` from the run's
    metrics ``{name: [days, ...]}`` (differentiable)."""

    metric: str = ""
    period_days: int = 7
    scale: float = 1.0
    predict_fn: Callable | None = None

    def __post_init__(self):
        if int(self.period_days) < 1:
            raise CalibrationError(f"Observation.period_days must be >= 1, got {self.period_days}")
        if self.predict_fn is None and not self.metric:
            raise CalibrationError("an Observation needs a metric (or a predict_fn)")
        if not (math.isfinite(float(self.scale)) and float(self.scale) > 0):
            raise CalibrationError(f"Observation.scale must be a finite number > 0, got {self.scale}")

    def predict(self, metrics: Mapping[str, jax.Array], periods: int) -> jax.Array:
        if self.predict_fn is not None:
            return self.predict_fn(metrics, periods)
        if self.metric not in metrics:
            raise CalibrationError(f"the model reports no metric {self.metric!r}; it reports {sorted(metrics)}")
        values = metrics[self.metric][: periods * self.period_days]
        return values.reshape(periods, self.period_days).sum(axis=1) * self.scale


def simulate_observed(model: Model, key: jax.Array, params, world: World, periods: int,
                      observation: Observation, *, estimator="straight_through") -> jax.Array:
    """The predicted series ``[periods]`` of one run (initial state from ``split(key)[0]``,
    run from ``split(key)[1]``); differentiable with respect to ``params`` through the
    run's estimator. The state is rematerialised per week (``checkpoint_days=7``) so
    memory stays bounded."""
    init_key, run_key = jax.random.split(key)
    with sampling.estimator_scope(estimator):
        state = engine.initial_state(model, init_key, params, world)
        _, metrics = engine.simulate(model, run_key, state, params, world, periods * observation.period_days,
                                     checkpoint_days=7)
    return observation.predict(metrics, periods)


# -------------------------------------------------------------------------- the network
class WeeklyParameterNetwork(nn.Module):
    """MLP from one period's features ``[F]`` to an unconstrained value (``sigmoid`` -> range).

    Features of period ``w`` are built from the periods before it (see
    :func:`weekly_features`), so the network can forecast periods it was not trained on.
    """

    hidden: int = 16

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        x = nn.tanh(nn.Dense(self.hidden)(features))
        x = nn.tanh(nn.Dense(self.hidden)(x))
        return nn.Dense(1)(x)[..., 0]


def weekly_features(mobility: np.ndarray, cases: np.ndarray, known_weeks: int) -> np.ndarray:
    """Features ``[W, F + 1]`` for weeks ``1..W`` of a window from the week before each.

    Week ``w``'s features: the covariates of week ``w-1`` (e.g. mobility changes in percent,
    divided by 100) and ``log1p`` of the cases of the latest week that is both before ``w``
    and among the first ``known_weeks`` (cases after the training window are not known
    when forecasting).

    Args:
        mobility: ``[W + 1, F]`` covariates of the week before the window and its weeks.
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
        model: any model whose ``params_type`` declares its parameters.
        world, params: as for a run; ``params`` supplies the values not fitted and the
            starting point of those fitted. Parameters declared ``per="week"`` must have
            one entry per observed period (train + test) when periods are weeks.
        observed: ``[train + test]`` observed series (finite, >= 0).
        train_periods: the first ``train_periods`` periods are fitted, the rest held out.
        observation: how a run predicts the series (:class:`Observation`).
        estimator: the gradient estimator of the runs (default ``"straight_through"``).
        features: optional ``[train + test, F]`` per-period features for the network.
    """

    model: Model
    world: World
    params: Any
    observed: np.ndarray
    train_periods: int
    observation: Observation
    estimator: str = "straight_through"
    features: np.ndarray | None = None

    def __post_init__(self) -> None:
        engine.check_model(self.model)
        self.observed = np.asarray(self.observed, np.float32)
        total = self.observed.shape[0]
        if self.train_periods < 1 or self.train_periods > total:
            raise CalibrationError(f"train_periods must be in 1..{total}, got {self.train_periods}")
        if not np.all(np.isfinite(self.observed)) or np.any(self.observed < 0):
            raise CalibrationError(f"observed series must be finite and >= 0, got {self.observed.tolist()}")
        if not isinstance(self.observation, Observation):
            raise CalibrationError(f"observation must be an Observation, got {type(self.observation).__name__}")
        sampling.check_estimator(self.estimator)
        if self.observation.period_days == 7:
            for name, spec in parameters.specs(self.params).items():
                if spec.per == "week":
                    weeks = np.shape(getattr(self.params, name))[0]
                    if weeks != total:
                        raise CalibrationError(
                            f"params.{name} has {weeks} weeks; the calibration window has {total} (train + test)"
                        )

    @property
    def total_periods(self) -> int:
        return int(self.observed.shape[0])

    def simulate(self, params, key: jax.Array, periods: int | None = None) -> jax.Array:
        """The predicted series of one run over ``periods`` (default the training ones)."""
        return simulate_observed(self.model, key, params, self.world, periods or self.train_periods,
                                 self.observation, estimator=self.estimator)


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
        names: the fitted parameters.
        gradient_check: the :class:`jaxsim.gradcheck.GradientCheck` of the loss at the
            starting values when one was run (``Sim.calibrate``), else ``None``.
    """

    params: Any
    loss_curve: list[float]
    seconds: float
    stopped: str
    simulator_runs: int
    network_params: dict | None = None
    compile_seconds: float = 0.0
    names: tuple[str, ...] = ()
    gradient_check: Any = None

    def fitted_values(self) -> dict:
        return {n: np.asarray(getattr(self.params, n)).tolist() for n in self.names}


def _assemble(problem: CalibrationProblem, names, z: dict, network, net_params, network_param: str):
    """Fitted leaves from their unconstrained values (and the network for its parameter)."""
    return _assemble_params(problem.params, names, z, network, net_params, network_param, problem.features)


def _assemble_params(base, names, z: dict, network, net_params, network_param: str, features):
    """``base`` with the fitted leaves set from their unconstrained values ``z`` (and the
    network's output on ``features`` for ``network_param``)."""
    bounds = fittable(base)
    values = {}
    for name in names:
        if name == network_param and network is not None:
            raw = network.apply(net_params, jnp.asarray(features))
            values[name] = bounds[name].to_value(raw)
        else:
            values[name] = bounds[name].to_value(z[name])
    return base.replace(**values)


def _simulate_program(problem: CalibrationProblem, periods: int) -> Callable:
    """``run(params, key, world) -> [periods]`` jitted, shared by problems of equal settings."""
    model, observation, estimator = problem.model, problem.observation, problem.estimator
    return _cached_program(
        ("simulate", model, observation, str(estimator), int(periods)),
        lambda: jax.jit(lambda params, key, world: simulate_observed(
            model, key, params, world, periods, observation, estimator=estimator)),
    )


def default_fit_names(params_or_type) -> tuple[str, ...]:
    """The parameters a fit moves when none are named: the fittable ones declared per
    period (``per="day" | "week" | "month"``: a series, e.g. a weekly transmission rate).
    :class:`CalibrationError` when there are none (name the parameters then)."""
    found = tuple(
        name for name, spec in parameters.specs(params_or_type).items() if spec.per is not None and spec.fittable
    )
    if not found:
        cls = params_or_type if isinstance(params_or_type, type) else type(params_or_type)
        raise CalibrationError(
            f"{cls.__name__} declares no fittable per-period parameter: name the parameters to fit "
            f"(fittable: {sorted(fittable(cls))})"
        )
    return found


def _network_param(names: tuple[str, ...], params, network_param: str | None) -> str:
    if network_param is not None:
        return network_param
    series = [n for n in names if parameters.specs(params)[n].per is not None]
    if len(series) != 1:
        raise CalibrationError(
            f"name the per-period parameter the network sets (network_param=...): the fitted ones are {series}"
        )
    return series[0]


def _training_objective(settings: tuple, names, loss_fn, smoothing: float, params, keys, world,
                        observed) -> jax.Array:
    """What every fit minimises: the loss of the training periods averaged over one run
    per key (``keys [K]``), plus the smoothness penalty. ``settings`` is ``(model,
    observation, estimator, train_periods)`` (static; not the problem, so that a cached
    program keeps no world alive); the world, parameters and observed series are the
    (traced) arguments."""
    model, observation, estimator, train = settings
    predicted = jax.lax.map(
        lambda k: simulate_observed(model, k, params, world, train, observation, estimator=estimator), keys)
    return (jnp.mean(jax.vmap(lambda p: loss_fn(p, observed))(predicted))
            + smoothness_penalty(params, names, train, smoothing))


def _fit_program(problem: CalibrationProblem, names, loss: str, learning_rate: float, network,
                 network_param, smoothing: float = 0.0) -> Callable:
    """One jitted Adam step ``update(trainable, opt_state, keys, params, world, observed,
    features)``, shared by fits of equal settings (other windows, other seeds)."""
    settings = (problem.model, problem.observation, problem.estimator, problem.train_periods)
    model, observation, estimator, train = settings
    loss_fn = LOSSES[loss]

    def build():
        import optax  # imported on first fit: reading fits and bounds needs no optimiser

        optimiser = optax.adam(learning_rate)

        def objective(trainable, keys, base, world, observed, features):
            params = _assemble_params(base, names, trainable["z"], network, trainable["net"], network_param,
                                      features)
            return _training_objective(settings, names, loss_fn, smoothing, params, keys, world, observed)

        @jax.jit
        def update(trainable, opt_state, keys, base, world, observed, features):
            value, grads = jax.value_and_grad(objective)(trainable, keys, base, world, observed, features)
            finite = jnp.isfinite(value) & jnp.all(
                jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)])
            )
            updates, new_opt_state = optimiser.update(grads, opt_state, trainable)
            return optax.apply_updates(trainable, updates), new_opt_state, value, finite

        return update

    return _cached_program(
        ("fit", model, observation, str(estimator), train, tuple(names), loss_fn, float(learning_rate), network,
         network_param, float(smoothing)),
        build,
    )


def _check_smoothing(smoothing) -> float:
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float, np.floating, np.integer)) or not (
            math.isfinite(float(smoothing)) and float(smoothing) >= 0):
        raise CalibrationError(f"smoothing must be a finite number >= 0, got {smoothing!r}")
    return float(smoothing)


def fit(
    problem: CalibrationProblem,
    names: Sequence[str] | None = None,
    *,
    steps: int = 60,
    learning_rate: float = 0.1,
    seeds_per_step: int = 4,
    loss: str = "poisson",
    seed: int = 0,
    network: WeeklyParameterNetwork | None = None,
    network_param: str | None = None,
    on_step: Callable[[int, float], None] | None = None,
    smoothing: float = 0.0,
) -> FitResult:
    """Fit ``names`` to the training periods with Adam, averaging ``seeds_per_step`` runs.

    With ``network`` given, ``network_param`` (a per-period parameter) is the network's
    output for each period's features (``problem.features``) and the network's weights are
    what Adam moves; other names are fitted directly. A non-finite loss or gradient stops
    the fit and the result holds the last parameters whose loss and gradient were finite.
    ``names`` defaults to :func:`default_fit_names`; ``network_param`` to the one
    per-period parameter among ``names``. ``smoothing`` adds
    :func:`smoothness_penalty` to the loss (0: none); the loss curve includes it.
    """
    names = check_fit_names(problem.params, default_fit_names(problem.params) if names is None else names)
    if loss not in LOSSES:
        raise CalibrationError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}")
    if steps < 1 or seeds_per_step < 1:
        raise CalibrationError(f"steps and seeds_per_step must be >= 1, got {steps}, {seeds_per_step}")
    if network is not None and problem.features is None:
        raise CalibrationError("a network needs problem.features ([periods, F])")
    if network is not None:
        network_param = _network_param(names, problem.params, network_param)
        if network_param not in names:
            raise CalibrationError(f"the network sets {network_param!r}: name it among the fitted parameters")
    observed = jnp.asarray(problem.observed[: problem.train_periods])
    bounds = fittable(problem.params)

    z = {n: bounds[n].to_unconstrained(getattr(problem.params, n)) for n in names}
    net_params = None
    if network is not None:
        net_params = network.init(jax.random.key(seed + 1), jnp.asarray(problem.features))
        # Start the network's output at the parameter's current mean.
        start = bounds[network_param].to_unconstrained(np.mean(getattr(problem.params, network_param)))
        last = net_params["params"]["Dense_2"]
        last = {**last, "bias": last["bias"] + start}
        net_params = {"params": {**net_params["params"], "Dense_2": last}}
        z.pop(network_param, None)
    trainable = {"z": z, "net": net_params}

    smoothing = _check_smoothing(smoothing)
    update = _fit_program(problem, names, loss, learning_rate, network, network_param, smoothing)
    import optax

    optimiser = optax.adam(learning_rate)
    opt_state = optimiser.init(trainable)
    data = (problem.params, problem.world, observed,
            None if problem.features is None else jnp.asarray(problem.features))

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
        new_trainable, new_opt_state, value, finite = update(trainable, opt_state, keys, *data)
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
    params = _assemble(problem, names, trainable["z"], network, trainable["net"], network_param)
    return FitResult(
        params=params,
        loss_curve=curve,
        seconds=time.perf_counter() - start_time,
        stopped=stopped,
        simulator_runs=runs,
        network_params=trainable["net"],
        compile_seconds=compile_seconds,
        names=names,
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


def ensemble_forecast(problem: CalibrationProblem, params, members: int = 16, seed: int = 1000,
                      member_values: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The predicted series ``[members, train + test]`` from independent seeds.

    ``member_values`` gives some parameters one value per member (``{name: [members,
    ...]}``, e.g. the sampled paths of :func:`random_walk_paths`): member ``i`` runs with
    ``params.<name> = member_values[name][i]``."""
    keys = jax.random.split(jax.random.key(seed), members)
    run = _simulate_program(problem, problem.total_periods)
    if not member_values:
        return np.stack([np.asarray(run(params, k, problem.world)) for k in keys])
    for name, values in member_values.items():
        parameters.spec_of(params, name)
        if np.shape(values) != (members,) + np.shape(getattr(params, name)):
            raise CalibrationError(
                f"member_values[{name!r}] has shape {np.shape(values)}; {members} members of "
                f"{name} need {(members,) + np.shape(getattr(params, name))}"
            )
    return np.stack([
        np.asarray(run(params.replace(**{n: jnp.asarray(v[i], jnp.float32) for n, v in member_values.items()}), k,
                       problem.world))
        for i, k in enumerate(keys)
    ])


def random_walk_paths(params, name: str, train_periods: int, members: int, *, seed: int = 0,
                      step_sd: float | None = None, min_step_sd: float = 0.05) -> np.ndarray:
    """Sampled forward paths of a fitted per-period parameter, ``[members, periods]``: a
    random walk on the log scale from the last fitted value
    (:func:`jaxsim.forecasting.parameter_paths` with ``reversion=1``)."""
    from jaxsim.forecasting import parameter_paths

    return parameter_paths(params, name, train_periods, members, seed=seed, step_sd=step_sd,
                           min_step_sd=min_step_sd)


def persistence_forecast(observed_train: np.ndarray, test_periods: int) -> np.ndarray:
    """Last-value persistence: every held-out period repeats the last training period."""
    return np.full(test_periods, float(np.asarray(observed_train)[-1]))


def extend_last_period(params, name: str, train_periods: int):
    """Held-out periods keep the last fitted training period's value of the per-period
    parameter ``name``."""
    value = getattr(params, name)
    return params.replace(**{name: value.at[train_periods:].set(value[train_periods - 1])})


def extend_last_week(params, train_weeks: int):
    """:func:`extend_last_period` of every parameter declared ``per="week"``."""
    for name, spec in parameters.specs(params).items():
        if spec.per == "week":
            params = extend_last_period(params, name, train_weeks)
    return params


#: Gradient-free search methods of :func:`gradient_free_fit`.
GRADIENT_FREE_METHODS = ("nelder-mead", "cma-es")


def gradient_free_fit(
    problem: CalibrationProblem,
    names: Sequence[str] | None = None,
    *,
    simulator_runs: int,
    seeds_per_evaluation: int = 4,
    loss: str = "poisson",
    seed: int = 0,
    method: str = "nelder-mead",
    population: int | None = None,
    initial_std: float = 0.5,
    smoothing: float = 0.0,
    on_evaluation: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Fit ``names`` without gradients, over the same unconstrained parameters and the same
    loss as :func:`fit`, within a budget of ``simulator_runs`` simulator runs.

    Each evaluation of a parameter set averages ``seeds_per_evaluation`` runs, with the
    same seeds every evaluation (common random numbers: the objective is deterministic).
    For per-period parameters only the training periods' values are searched; later
    periods repeat the last. ``names`` defaults to :func:`default_fit_names`.

    Methods (:data:`GRADIENT_FREE_METHODS`):

    - ``"nelder-mead"`` (scipy): one parameter set per evaluation, a baseline;
    - ``"cma-es"`` (evosax's ``CMA_ES``, Hansen 2016): ``population`` parameter sets per
      generation (default ``max(8, 4 + 3 ln d)`` for ``d`` searched values), evaluated as
      one ``vmap``-ed batch of runs; ``initial_std`` is the search distribution's starting
      width in the unconstrained (logit of the declared ``fit_bounds``) coordinates; as
      many generations as the budget allows (at least one). The result is the best set
      evaluated; ``loss_curve`` holds each generation's best loss.

    ``on_evaluation(simulator_runs_so_far, loss)``, if given, is called after each
    evaluation (Nelder-Mead) or generation (CMA-ES; its best loss): for progress lines.
    """
    if method not in GRADIENT_FREE_METHODS:
        raise CalibrationError(f"unknown gradient-free method {method!r}; choose one of {GRADIENT_FREE_METHODS}")
    names = check_fit_names(problem.params, default_fit_names(problem.params) if names is None else names)
    if loss not in LOSSES:
        raise CalibrationError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}")
    if seeds_per_evaluation < 1 or simulator_runs < seeds_per_evaluation:
        raise CalibrationError(
            f"simulator_runs ({simulator_runs}) must allow at least one evaluation of seeds_per_evaluation "
            f"({seeds_per_evaluation}) runs"
        )
    observed = jnp.asarray(problem.observed[: problem.train_periods])
    train = problem.train_periods
    bounds = fittable(problem.params)
    specs = parameters.specs(problem.params)
    z0 = {n: bounds[n].to_unconstrained(getattr(problem.params, n)) for n in names}
    per_period = tuple(n for n in names if specs[n].per is not None)
    for name in per_period:
        # Only the training periods' values affect the loss; search those, and let the
        # held-out periods keep the last training period's value.
        z0[name] = z0[name][:train]
    flat0, unravel = jax.flatten_util.ravel_pytree(z0)
    keys = jax.random.split(jax.random.key(seed), seeds_per_evaluation)
    evaluate_one, evaluate_batch = _search_programs(problem, names, loss, per_period, z0,
                                                    _check_smoothing(smoothing))
    data = (keys, problem.params, problem.world, observed)

    def assemble(flat):
        return _assemble(problem, names, _full_periods(unravel(flat), per_period, problem.params, train),
                         None, None, "")

    start = time.perf_counter()
    if method == "cma-es":
        best, curve, runs = _cma_es(lambda members: evaluate_batch(members, *data), flat0, simulator_runs,
                                    seeds_per_evaluation, population, initial_std, seed, on_evaluation)
        return FitResult(params=assemble(best), loss_curve=curve, seconds=time.perf_counter() - start,
                         stopped="budget", simulator_runs=runs, names=names)

    from scipy.optimize import minimize

    evaluations = max(1, simulator_runs // seeds_per_evaluation)
    curve: list[float] = []

    def f(x):
        value = float(evaluate_one(jnp.asarray(x, jnp.float32), *data))
        curve.append(value)
        if on_evaluation is not None:
            on_evaluation(len(curve) * seeds_per_evaluation, value)
        return value if math.isfinite(value) else 1e9

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
        names=names,
    )


def _full_periods(z: Mapping, per_period: Sequence[str], base, train: int) -> dict:
    """Searched training-period values of per-period parameters extended over every period
    (later periods repeat the last training period's value)."""
    z = dict(z)
    for name in per_period:
        values = z[name]
        total = np.shape(getattr(base, name))[0]
        z[name] = jnp.concatenate([values, jnp.repeat(values[-1:], total - train)])
    return z


def _search_programs(problem: CalibrationProblem, names, loss: str, per_period, z0,
                     smoothing: float = 0.0) -> tuple[Callable, Callable]:
    """``(evaluate, evaluate_batch)``: the seed-averaged training loss of one flat parameter
    vector, and of a batch of them (``vmap``); arguments ``(flat, keys, params, world,
    observed)``; shared by searches of equal settings."""
    settings = (problem.model, problem.observation, problem.estimator, problem.train_periods)
    model, observation, estimator, train = settings
    loss_fn = LOSSES[loss]
    _, unravel = jax.flatten_util.ravel_pytree(z0)
    layout = tuple((n, np.shape(z0[n])) for n in names)

    def build():
        def objective(flat, keys, base, world, observed):
            params = _assemble_params(base, names, _full_periods(unravel(flat), per_period, base, train), None, None,
                                      "", None)
            return _training_objective(settings, names, loss_fn, smoothing, params, keys, world, observed)

        return jax.jit(objective), jax.jit(jax.vmap(objective, in_axes=(0, None, None, None, None)))

    return _cached_program(("search", model, observation, str(estimator), train, layout, per_period, loss_fn,
                            smoothing), build)


def _cma_es(evaluate_batch, flat0, simulator_runs: int, seeds: int, population: int | None, initial_std: float,
            seed: int, on_evaluation: Callable[[int, float], None] | None = None):
    """CMA-ES over ``flat0``'s space, ``evaluate_batch(members [P, D]) -> [P]`` the losses of
    a generation; returns (best point, best loss per generation, runs)."""
    try:
        from evosax.algorithms import CMA_ES
    except ImportError as err:  # a dependency of the package: a broken install
        raise ImportError(f"cma-es needs evosax (pip install 'evosax>=0.3.2,<0.4'): {err}") from err
    dims = int(flat0.shape[0])
    if population is None:
        population = max(8, 4 + int(3 * math.log(max(dims, 1))))
    if isinstance(population, bool) or not isinstance(population, (int, np.integer)) or population < 2:
        raise CalibrationError(f"cma-es population must be a whole number >= 2, got {population!r}")
    if not (math.isfinite(initial_std) and initial_std > 0):
        raise CalibrationError(f"cma-es initial_std must be a finite number > 0, got {initial_std!r}")
    generations = simulator_runs // (population * seeds)
    if generations < 1:
        raise CalibrationError(
            f"simulator_runs ({simulator_runs}) is less than one cma-es generation: population {population} x "
            f"{seeds} seeds = {population * seeds} runs"
        )
    ask, tell, init = _cached_program(("cma-es", int(population), dims, float(initial_std)),
                                      lambda: _cma_es_programs(CMA_ES, int(population), dims, float(initial_std)))

    key = jax.random.key(seed + 7)
    key, init_key = jax.random.split(key)
    state = init(init_key, jnp.asarray(flat0, jnp.float32))
    best, best_loss, curve = np.asarray(flat0, np.float32), math.inf, []
    for generation in range(generations):  # a host loop over generations, each a batch of runs
        key, ask_key, tell_key = jax.random.split(key, 3)
        members, state = ask(ask_key, state)
        fitness = evaluate_batch(members)
        values = np.asarray(fitness, np.float64)
        finite = np.where(np.isfinite(values), values, np.inf)
        i = int(np.argmin(finite))
        curve.append(float(finite[i]))
        if finite[i] < best_loss:
            best_loss, best = float(finite[i]), np.asarray(members[i], np.float32)
        state = tell(tell_key, members, fitness, state)
        if on_evaluation is not None:
            on_evaluation((generation + 1) * int(population) * seeds, curve[-1])
    return jnp.asarray(best), curve, generations * int(population) * seeds


def _cma_es_programs(cma_es, population: int, dims: int, initial_std: float):
    """Jitted ``ask(key, state)``, ``tell(key, members, fitness, state)`` and ``init(key,
    mean)`` of evosax's CMA-ES for ``dims`` searched values."""
    strategy = cma_es(population_size=population, solution=jnp.zeros(dims, jnp.float32))
    settings = strategy.default_params.replace(std_init=jnp.float32(initial_std))

    @jax.jit
    def tell(key, members, fitness, state):
        fitness = jnp.where(jnp.isfinite(fitness), fitness, jnp.float32(1e9))
        return strategy.tell(key, members, fitness, state, settings)[0]

    ask = jax.jit(lambda k, s: strategy.ask(k, s, settings))
    init = jax.jit(lambda k, mean: strategy.init(k, mean, settings))
    return ask, tell, init


__all__ = [
    "Bounds",
    "CalibrationError",
    "CalibrationProblem",
    "FitResult",
    "GRADIENT_FREE_METHODS",
    "LOSSES",
    "Observation",
    "WeeklyParameterNetwork",
    "check_fit_names",
    "default_fit_names",
    "ensemble_forecast",
    "extend_last_period",
    "extend_last_week",
    "fit",
    "fit_bounds",
    "fittable",
    "gradient_free_fit",
    "heldout_metrics",
    "persistence_forecast",
    "random_walk_paths",
    "scaled_mae",
    "scaled_poisson_deviance",
    "simulate_observed",
    "smoothness_penalty",
    "weekly_features",
]
