"""Turning a fit into a forecast ensemble, and the simple baselines it must beat.

Host-side (NumPy) pieces, model-agnostic:

- :func:`parameter_paths`: sampled forward paths of a fitted per-period parameter (a
  random walk, or a mean-reverting AR(1), on the log scale), so each ensemble member runs
  the held-out periods with its own plausible parameter values instead of the last fitted
  value carried forward.
- :func:`dispersion_from_history` and :func:`with_observation_noise`: reported counts
  scatter around the expected count more than a simulation's own draws do (reporting
  days, testing, batches of late reports); each member's expected count becomes a
  negative-binomial draw whose dispersion is estimated from the observed series known at
  the forecast origin.
- :func:`forecast_ensemble`: the ensemble of a fitted calibration problem over its
  training and held-out periods, with the parameter paths and the observation noise.
- :func:`bootstrap_fits` and :func:`forecast_from_fits`: the parameters' uncertainty, as an
  ensemble of fits to resampled observations whose members share the forecast ensemble.
- :func:`log_linear_forecast`: the statistical baseline, a straight line through the log
  of the last weeks extrapolated, with intervals from its residuals.

Shapes: a series is ``[periods]``; an ensemble ``[members, periods]``.
"""

from __future__ import annotations

import math

import numpy as np

from typing import Sequence

from jaxsim import calibration, parameters
from jaxsim.calibration import CalibrationError


class ForecastError(CalibrationError):
    """A forecast setting or series that cannot be used (one line naming the value)."""


#: How the per-period parameters move after the fitted periods (:func:`parameter_paths`).
PARAMETER_FORECASTS = ("last", "random-walk", "mean-reverting")


def parameter_paths(params, name: str, train_periods: int, members: int, *, seed: int = 0,
                    reversion: float = 1.0, step_sd: float | None = None, min_step_sd: float = 0.05) -> np.ndarray:
    """Sampled forward paths of a fitted per-period parameter: ``[members, periods]``.

    The training periods keep their fitted values. After them, on the log scale,
    ``x[t+1] = m + reversion * (x[t] - m) + e[t]`` from the last fitted value, with ``m``
    the mean of the fitted log-values and ``e`` normal with standard deviation ``step_sd``
    per period (default: the standard deviation of the fitted log-values' period-to-period
    changes, at least ``min_step_sd``). ``reversion=1`` is a random walk (median path:
    the last value carried forward); ``reversion<1`` pulls the paths back toward the
    fitted level (the last period's value is the least identified: its effects show
    mostly after the window). Values stay inside the parameter's declared bounds.
    """
    spec = parameters.spec_of(params, name)
    values = np.asarray(getattr(params, name), np.float64)
    if spec.per is None or values.ndim != 1:
        raise ForecastError(f"parameter_paths: {name} is not a per-period parameter")
    if not 1 <= train_periods <= values.shape[0]:
        raise ForecastError(f"parameter_paths: train_periods must be in 1..{values.shape[0]}, got {train_periods}")
    if isinstance(members, bool) or int(members) != members or members < 1:
        raise ForecastError(f"parameter_paths: members must be a whole number >= 1, got {members!r}")
    if not (math.isfinite(reversion) and 0.0 <= reversion <= 1.0):
        raise ForecastError(f"parameter_paths: reversion must lie in [0, 1], got {reversion!r}")
    low, high = spec.low_high()
    fitted = np.log(np.maximum(values[:train_periods], 1e-12))
    if step_sd is None:
        changes = np.diff(fitted)
        step_sd = float(np.std(changes, ddof=1)) if changes.size >= 2 else min_step_sd
    step_sd = max(float(step_sd), float(min_step_sd))
    if not math.isfinite(step_sd):
        raise ForecastError(f"parameter_paths: step_sd must be finite, got {step_sd!r}")
    ahead = values.shape[0] - train_periods
    steps = np.random.default_rng(seed).normal(0.0, step_sd, size=(int(members), ahead))
    level = float(np.mean(fitted))
    paths = np.empty((int(members), values.shape[0]))
    paths[:, :train_periods] = values[:train_periods]
    if reversion == 1.0:
        paths[:, train_periods:] = np.exp(fitted[-1] + np.cumsum(steps, axis=1))
    else:
        current = np.full(int(members), fitted[-1])
        for t in range(ahead):
            current = level + reversion * (current - level) + steps[:, t]
            paths[:, train_periods + t] = np.exp(current)
    return np.clip(paths, low, high).astype(np.float32)


def _log_line(history: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line through ``log(history + 1)``: (intercept, slope per period,
    residual standard deviation with 2 degrees of freedom used; 0 for 2 points)."""
    y = np.log1p(np.asarray(history, np.float64))
    t = np.arange(y.size, dtype=np.float64)
    slope, intercept = np.polyfit(t, y, 1)
    residuals = y - (intercept + slope * t)
    sd = float(np.sqrt(np.sum(residuals**2) / (y.size - 2))) if y.size > 2 else 0.0
    return float(intercept), float(slope), sd


def _check_history(history, what: str, minimum: int) -> np.ndarray:
    history = np.asarray(history, np.float64)
    if history.ndim != 1 or history.size < minimum:
        raise ForecastError(f"{what}: needs a series of at least {minimum} periods, got shape {history.shape}")
    if not np.all(np.isfinite(history)) or np.any(history < 0):
        raise ForecastError(f"{what}: the series must be finite and >= 0, got {history.tolist()}")
    return history


def dispersion_from_history(history, *, weeks: int = 8, min_dispersion: float = 2.0,
                            max_dispersion: float = 1000.0) -> float:
    """Negative-binomial size ``k`` (variance ``mu + mu**2 / k``) of the last ``weeks``
    periods of an observed count series around a straight line through their logs, by the
    method of moments; clipped to ``[min_dispersion, max_dispersion]`` (the upper end is
    nearly Poisson). Uses only ``history``: the periods known at the forecast origin."""
    history = _check_history(history, "dispersion_from_history", 3)[-int(weeks):]
    intercept, slope, _ = _log_line(history)
    mu = np.maximum(np.expm1(intercept + slope * np.arange(history.size)), 0.5)
    excess = float(np.sum((history - mu) ** 2 - mu))
    if excess <= 0:
        return float(max_dispersion)
    return float(np.clip(np.sum(mu**2) / excess, min_dispersion, max_dispersion))


def with_observation_noise(expected, dispersion: float, *, seed: int = 0) -> np.ndarray:
    """Negative-binomial counts with mean ``expected`` (``[members, periods]``, >= 0) and
    size ``dispersion``, as ``float64``: the inverse distribution function of one uniform
    draw per cell, so forecasts that differ in some cells keep the same draws (common
    random numbers) in the others."""
    expected = np.asarray(expected, np.float64)
    if not np.all(np.isfinite(expected)) or np.any(expected < 0):
        raise ForecastError("with_observation_noise: expected counts must be finite and >= 0")
    if not (math.isfinite(dispersion) and dispersion > 0):
        raise ForecastError(f"with_observation_noise: dispersion must be a finite number > 0, got {dispersion!r}")
    from scipy.stats import nbinom

    uniform = np.random.default_rng(seed).uniform(size=expected.shape)
    mean = np.maximum(expected, 1e-12)
    return nbinom.ppf(uniform, dispersion, dispersion / (dispersion + mean)).astype(np.float64)


def log_linear_forecast(history, test_periods: int, *, weeks: int = 4, members: int = 1000,
                        seed: int = 0) -> np.ndarray:
    """The statistical baseline: a line through ``log(y + 1)`` of the last ``weeks``
    periods, extrapolated ``test_periods`` ahead; ``[members, test_periods]`` samples
    whose log-scale spread at horizon ``h`` is the line's residual standard deviation
    times ``sqrt(1 + h)`` (at least 0.1), so the median is the extrapolated line."""
    history = _check_history(history, "log_linear_forecast", 2)[-int(weeks):]
    if test_periods < 1:
        raise ForecastError(f"log_linear_forecast: test_periods must be >= 1, got {test_periods}")
    intercept, slope, sd = _log_line(history)
    horizons = np.arange(1, test_periods + 1)
    centre = intercept + slope * (history.size - 1 + horizons)
    spread = max(sd, 0.1) * np.sqrt(1.0 + horizons)
    noise = np.random.default_rng(seed).normal(size=(int(members), test_periods))
    return np.maximum(np.expm1(centre + spread * noise), 0.0)


def forecast_ensemble(problem: "calibration.CalibrationProblem", params, members: int = 16, *,
                      parameter_forecast: str = "mean-reverting", reversion: float = 0.5,
                      dispersion: float | None = None, names: Sequence[str] | None = None,
                      anchor: np.ndarray | None = None, anchor_periods: int = 2, min_step_sd: float = 0.05,
                      seed: int = 0) -> np.ndarray:
    """The forecast ensemble ``[members, train + test]`` of fitted ``params``.

    Every per-period parameter among ``names`` (default: the declared per-period ones) is
    carried past the training periods by ``parameter_forecast``
    (:data:`PARAMETER_FORECASTS`): ``"last"`` repeats the last fitted value,
    ``"random-walk"`` and ``"mean-reverting"`` (``reversion``) sample one path per member
    (:func:`parameter_paths`, steps at least ``min_step_sd``). Members run with independent seeds
    (:func:`jaxsim.calibration.ensemble_forecast`). With ``anchor`` (the observed series,
    at least its training periods) the held-out periods are scaled by one level
    correction, ``(observed + 0.5) / (ensemble mean + 0.5)`` summed over the last
    ``anchor_periods`` training periods: the model supplies the growth, the latest data
    the level (a fit leaves the last weeks off by the noise it did not follow). With
    ``dispersion`` each member's series then becomes negative-binomial counts around it
    (:func:`with_observation_noise`), as reported counts are.
    """
    if parameter_forecast not in PARAMETER_FORECASTS:
        raise ForecastError(f"unknown parameter forecast {parameter_forecast!r}; choose one of {PARAMETER_FORECASTS}")
    train = problem.train_periods
    specs = parameters.specs(params)
    if names is None:
        names = [n for n, spec in specs.items() if spec.per is not None]
    per_period = [n for n in names if specs[n].per is not None]
    for name in per_period:
        params = calibration.extend_last_period(params, name, train)
    member_values = None
    if parameter_forecast != "last" and per_period:
        rate = 1.0 if parameter_forecast == "random-walk" else float(reversion)
        member_values = {name: parameter_paths(params, name, train, members, seed=seed + i, reversion=rate,
                                               min_step_sd=min_step_sd)
                         for i, name in enumerate(per_period)}
    ensemble = np.asarray(calibration.ensemble_forecast(problem, params, members, seed=seed + 1000,
                                                        member_values=member_values), np.float64)
    if anchor is not None:
        observed = np.asarray(anchor, np.float64)
        k = int(anchor_periods)
        if not 1 <= k <= train or observed.ndim != 1 or observed.shape[0] < train:
            raise ForecastError(f"forecast_ensemble: anchor needs the {train} training periods and "
                                f"1 <= anchor_periods <= {train}; got shape {observed.shape}, anchor_periods {k}")
        if not np.all(np.isfinite(observed[:train])):
            raise ForecastError("forecast_ensemble: the anchor's training periods must be finite")
        ratio = (observed[train - k:train].sum() + 0.5) / (ensemble[:, train - k:train].mean(axis=0).sum() + 0.5)
        ensemble[:, train:] *= ratio
    if dispersion is not None:
        ensemble = with_observation_noise(ensemble, dispersion, seed=seed + 2000)
    return np.asarray(ensemble, np.float64)


def bootstrap_fits(problem: "calibration.CalibrationProblem", fits: int, names: Sequence[str] | None = None, *,
                   dispersion: float | None = None, seed: int = 0, **fit_options) -> list:
    """An ensemble of ``fits`` gradient fits (:func:`jaxsim.calibration.fit`): the first to
    the observed training periods, each other one to a parametric bootstrap of them
    (negative-binomial counts around the observed ones with size ``dispersion``, Poisson
    without one) with its own seed, so the spread of the fitted values is the parameters'
    uncertainty given the data's noise. The fits share one compiled program. Returns the
    :class:`~jaxsim.calibration.FitResult` s."""
    if isinstance(fits, bool) or int(fits) != fits or fits < 1:
        raise ForecastError(f"bootstrap_fits: fits must be a whole number >= 1, got {fits!r}")
    if dispersion is not None and not (math.isfinite(dispersion) and dispersion > 0):
        raise ForecastError(f"bootstrap_fits: dispersion must be None or a finite number > 0, got {dispersion!r}")
    train = problem.train_periods
    observed = np.asarray(problem.observed, np.float64)
    rng = np.random.default_rng(seed + 4242)
    results = []
    for k in range(int(fits)):
        resampled = problem
        if k > 0:
            series = observed.copy()
            mean = np.maximum(observed[:train], 1e-9)
            series[:train] = (rng.poisson(mean) if dispersion is None else
                              rng.negative_binomial(dispersion, dispersion / (dispersion + mean)))
            resampled = calibration.CalibrationProblem(
                problem.model, problem.world, problem.params, series, train, problem.observation,
                estimator=problem.estimator, features=problem.features)
        results.append(calibration.fit(resampled, names, seed=seed + k, **fit_options))
    return results


def forecast_from_fits(problem: "calibration.CalibrationProblem", fitted: Sequence, members: int = 16, *,
                       seed: int = 0, **options) -> np.ndarray:
    """The forecast ensemble ``[members, periods]`` of several fitted parameter sets
    (e.g. :func:`bootstrap_fits`' ``.params``): the members are shared out in turn (set
    ``k`` gets members ``k, k + K, ...``), each set's forecast as in
    :func:`forecast_ensemble` with its own seeds; ``options`` as there."""
    fitted = list(fitted)
    if not fitted:
        raise ForecastError("forecast_from_fits: give at least one parameter set")
    if isinstance(members, bool) or int(members) != members or members < len(fitted):
        raise ForecastError(f"forecast_from_fits: members must be a whole number >= the {len(fitted)} parameter "
                            f"sets, got {members!r}")
    out = np.empty((int(members), problem.total_periods))
    for k, params in enumerate(fitted):
        rows = np.arange(k, int(members), len(fitted))
        out[rows] = forecast_ensemble(problem, params, rows.size, seed=seed + 7919 * k, **options)
    return out


__all__ = [
    "ForecastError",
    "bootstrap_fits",
    "forecast_from_fits",
    "PARAMETER_FORECASTS",
    "dispersion_from_history",
    "forecast_ensemble",
    "log_linear_forecast",
    "parameter_paths",
    "with_observation_noise",
]
