"""Rolling-origin probabilistic forecasts of regional unemployment from the labour market's
expected flows, next to last-value persistence and a log-linear trend, with their scores.

At a forecast *origin* ``O`` (a month) the observed unemployment and UI claims rates of
months ``<= O`` are known and nothing later is. For every origin:

1. **Fit.** :func:`jaxsim.models.labour.calibration.fit_labour_market` fits the labour
   market (``DEFAULT_FIT``) to the observed rates of the last ``train_months`` months up
   to ``O`` (fewer where the data starts later), starting from the window's first observed
   rate. The monthly willingness and case signals are those of *one* forward run of the
   coupled model over the whole span (:func:`simulate_signals`), held fixed as in
   ``scenarios/nyc_economy.py --calibrate``; that run uses no observation after its first
   month (its UI claims input is held at the first month's rate), so it is the same,
   leakage-free input for every origin.
2. **Inputs after the origin.** The observed UI claims rate of months after ``O`` is
   never used: the central forecast carries month ``O``'s rate forward; each ensemble
   member follows a random walk on the log claims rate from it (one citywide normal step
   a month, standard deviation that of the training window's monthly log changes).
   Held-out observed rates are replaced by NaN before the fit (the loss skips them anyway).
3. **Ensemble.** Each member restarts from the observed rate of month ``O`` (known at the
   origin) and steps the fitted expected flows month by month (:func:`one_step`, the same
   equations as :func:`~jaxsim.models.labour.calibration.expected_unemployment`), adding
   after each step a shock drawn from the fit's *one-step-ahead residuals* on the training
   window (observed ``u[m+1]`` minus one step from observed ``u[m]``), centred (the shocks
   widen the forecast, they do not move its centre) and scaled by ``sqrt(n / (n - p))``
   for ``n`` residuals and ``p`` fitted scalars (in-sample residuals are smaller than
   out-of-sample errors by about that factor). Shocks are drawn independently per region
   from the pool of all regions (additive on the rate). Shocks accumulate through the
   model's dynamics, so the spread grows with the horizon as the model propagates it: the
   residual bootstrap of a nonlinear autoregression. Where the window gives no more
   residuals than fitted scalars (``n <= p``: the fit can interpolate them), the pool is
   the window's centred observed monthly changes instead (the errors of a random walk).
   Parameter uncertainty is optional (``refits``, default 0): :func:`bootstrap_refits`
   refits the parameters to the fitted trajectory plus month-resampled residuals, and the
   members are split among the refitted parameter sets.

   Why restart from the observed rate: the fitted trajectory runs free from the window's
   first month and misses the origin's observed rate by its in-sample error; the last
   observed rate is the best-known state. :func:`model_forecast` also returns the
   free-running trajectory (``free_run``) so the two can be compared.
4. **Baselines.** Last-value persistence (a point forecast: its WIS is its absolute
   error) and the log-linear trend of :func:`jaxsim.forecasting.log_linear_forecast` on
   each region's last ``trend_months`` observed rates (in percent).
5. **Scores** (:func:`score`), pooled over regions and horizons at each origin: normalised
   deviation ``sum |median - obs| / sum obs`` and MAE (percentage points) of the
   ensemble median, mean weighted interval score (percentage points;
   :func:`jaxsim.scoring.weighted_interval_score`) and coverage of the central 50% and 90%
   intervals (:func:`jaxsim.scoring.coverage`).

Choices, measured (``benchmarks/bench_forecast_unemployment.py``, NYC boroughs, 21
monthly origins 2020-10 .. 2022-06, horizons 1-4, 20,000 agents, 2-core CPU): the
ensemble as above has mean WIS 0.63 pp (persistence 0.95) and 90% coverage 74%; with 16
bootstrap refits per origin, WIS 0.65 and coverage 76% for 40% more time (the bootstrap's
parameter spread is small next to the residual shocks), so refits are off by default.
The free-running trajectory (no restart) scores WIS 1.04 pp, worse than persistence.
Nine training months (three quarters of a year, as ``nyc_economy.py --calibrate``
defaults to for 12 months; 40 residuals for 12 fitted scalars) against 6 and 12:
WIS 0.63 vs 0.76 and 0.68 pp. Fitting the (log-odds) willingness alignment too: ND below
persistence at 62% of origins (52%), coverage 79% (74%), but WIS 0.66 pp (0.63) and MAE
0.967 pp (0.948): not the default (:data:`jaxsim.models.labour.calibration.DEFAULT_FIT`).

Shapes: ``[months, regions]`` for series; forecasts ``[members, horizon, regions]``.
Rates are fractions of the labour force; scores in percentage points.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from jaxsim import engine, scoring
from jaxsim.errors import InputError
from jaxsim.models.labour import calibration as labour_calibration
from jaxsim.models.labour.model import CITY_METRICS, REGION_METRICS, monthly_rows
from jaxsim.models.labour.params import LabourParams

#: Months fitted at each origin (fewer where the data starts later).
DEFAULT_TRAIN_MONTHS = 9
#: Months ahead forecast from each origin.
DEFAULT_HORIZON = 4
#: Members of the model's and the log-linear baseline's ensembles.
DEFAULT_MEMBERS = 400
#: Bootstrap refits per origin (parameter uncertainty; 0 for none) and their Adam steps.
DEFAULT_REFITS = 0
DEFAULT_REFIT_STEPS = 300
#: Months of the log-linear trend.
DEFAULT_TREND_MONTHS = 4
#: Names of the compared methods, in table order.
METHODS = ("model", "persistence", "log-linear", "model free-run")


class ForecastInputError(InputError):
    """A forecast setting that cannot be used (one line naming the value)."""


# ------------------------------------------------------------------ the forward run
@dataclass(frozen=True)
class Signals:
    """The monthly signals of one forward run: float ``[months, R]`` each; with a behaviour
    layer's willingness, also each group's answers ``willingness_groups`` ``[months, G]``
    and each region's labour force split by group ``group_share`` ``[R, G]``
    (:func:`with_groups`), so that fits align each group's answer exactly
    (:class:`~jaxsim.models.labour.calibration.LabourCalibrationProblem`)."""

    willingness: np.ndarray
    case_signal: np.ndarray
    unemployment_rate: np.ndarray
    compile_seconds: float
    run_seconds: float
    willingness_groups: np.ndarray | None = None
    group_share: np.ndarray | None = None

    def with_groups(self, willingness_groups: np.ndarray, group_share: np.ndarray) -> "Signals":
        """These signals with each group's willingness ``[months, G]`` (rows past the
        signals' months dropped) and the regions' group shares ``[R, G]``."""
        groups = np.asarray(willingness_groups, np.float32)
        if groups.ndim != 2 or groups.shape[0] < self.willingness.shape[0]:
            raise ForecastInputError(f"willingness_groups must have shape [>= {self.willingness.shape[0]} months, "
                                     f"groups], got {groups.shape}")
        return dataclasses.replace(self, willingness_groups=groups[: self.willingness.shape[0]],
                                   group_share=np.asarray(group_share, np.float32))


def with_claims_held(world):
    """``world`` with its UI claims rate input held at its first month: a run of it uses no
    observation after the first month."""
    claims = np.asarray(world.inputs["claims_rate"], np.float32)
    return world.with_inputs(claims_rate=jnp.asarray(np.repeat(claims[:1], claims.shape[0], axis=0)))


def signals_of(result, months: int) -> Signals:
    """The monthly signals of a finished run (:class:`jaxsim.engine.RunResult` of a composed
    COVID + labour model over ``months`` calendar months)."""
    rows = monthly_rows(result.metrics)
    if len(rows) != months:
        raise AssertionError(f"expected {months} month ends, found {len(rows)}")
    names = REGION_METRICS + CITY_METRICS
    monthly = {k: np.asarray(result.metrics[k])[rows] for k in names if k in result.metrics}
    return Signals(
        willingness=monthly["willingness"].astype(np.float32),
        case_signal=monthly["case_signal"].astype(np.float32),
        unemployment_rate=monthly["unemployment_rate"].astype(np.float32),
        compile_seconds=float(result.compile_seconds), run_seconds=float(result.run_seconds),
    )


def simulate_signals(setup, *, seed: int = 0) -> Signals:
    """One forward run of a composed COVID + labour setup (anything with ``model``,
    ``world``, ``params``, ``days``, ``months``: e.g. :func:`jaxsim.nyc.economy.economy_setup`)
    with the world's UI claims rate held at its first month (:func:`with_claims_held`), so
    that no observation after the first month enters the run; returns its monthly
    willingness and case signals.

    The claims reach the signals only through the agents' savings (UI benefits of the
    unemployed move savings, savings move willingness); on the NYC span 2020-08 .. 2022-10
    with 20,000 agents the willingness of the run with observed claims differs from this
    one's by at most 0.001, and the case signal not at all."""
    world = with_claims_held(setup.world)
    init_key, run_key = jax.random.split(jax.random.key(seed))
    state = setup.model.init(init_key, setup.params, world)
    result = engine.run(setup.model, run_key, state, setup.params, world, setup.days, chunk_days=setup.days,
                        progress=False)
    return signals_of(result, setup.months)


# ---------------------------------------------------------------------- origins
def training_window(origin: int, train_months: int) -> tuple[int, int]:
    """``(first, months)``: the window of up to ``train_months`` months ending with month
    index ``origin`` (inclusive), cut at month 0."""
    first = max(0, int(origin) - int(train_months) + 1)
    return first, int(origin) - first + 1


def origin_indices(months: pd.PeriodIndex, first_origin: pd.Period, last_origin: pd.Period, *,
                   horizon: int, train_months: int) -> list[int]:
    """Indices in ``months`` (the observed series' months) of every month from
    ``first_origin`` to ``last_origin``; :class:`ForecastInputError` (one line) when the
    settings do not fit the data: train months < 2, horizon < 1, an origin before the data's
    second month or one whose horizon runs past the data's end, origins in the wrong order."""
    if int(train_months) < 2:
        raise ForecastInputError(f"--train-months must be >= 2 (month 0 is the start of the fit), got {train_months}")
    if int(horizon) < 1:
        raise ForecastInputError(f"--horizon must be >= 1 month, got {horizon}")
    if last_origin < first_origin:
        raise ForecastInputError(f"--last-origin {last_origin} is before --first-origin {first_origin}")
    earliest, latest = months[0] + 1, months[-1] - int(horizon)
    for flag, origin in (("--first-origin", first_origin), ("--last-origin", last_origin)):
        if not earliest <= origin <= latest:
            raise ForecastInputError(
                f"{flag} {origin}: origins must lie in {earliest}..{latest} (the data covers {months[0]} to "
                f"{months[-1]}; a fit needs 2 months up to the origin, and {horizon} months after it are scored)"
            )
    start = first_origin.ordinal - months[0].ordinal
    return list(range(start, start + (last_origin.ordinal - first_origin.ordinal) + 1))


def carry_forward(values: np.ndarray, known: int) -> np.ndarray:
    """A copy of ``values`` ``[months, R]`` whose rows ``known ..`` repeat row ``known - 1``."""
    out = np.array(values, copy=True)
    out[int(known):] = out[int(known) - 1]
    return out


# ------------------------------------------------------------------- the model's step
@dataclass
class _Month:
    """The attributes :func:`expected_unemployment` reads from a calibration problem, for
    one month's step (the second month's inputs are never used)."""

    willingness: jax.Array
    case_signal: jax.Array
    claims_rate: jax.Array
    initial_unemployment: jax.Array
    observed: np.ndarray
    willingness_groups: jax.Array | None = None
    group_share: jax.Array | None = None


@jax.jit
def one_step(params: LabourParams, rate: jax.Array, willingness: jax.Array, case_signal: jax.Array,
             claims_rate: jax.Array, group_share: jax.Array | None = None) -> jax.Array:
    """The expected unemployment rate ``[..., R]`` a month after ``rate`` ``[..., R]``, with
    the month's signals (``[R]`` willingness and case signal, ``[..., R]`` claims rate): one
    step of :func:`~jaxsim.models.labour.calibration.expected_unemployment`. With
    ``group_share`` ``[R, G]``, ``willingness`` is each group's ``[G]``."""
    rate = jnp.asarray(rate, jnp.float32)
    claims = jnp.broadcast_to(jnp.asarray(claims_rate, jnp.float32), rate.shape)
    regions = rate.shape[-1]

    def single(r, c):
        pair = jnp.stack([willingness, willingness])
        month = _Month(
            willingness=pair, case_signal=jnp.stack([case_signal, case_signal]),
            claims_rate=jnp.stack([c, c]), initial_unemployment=r, observed=np.empty((2, regions)),
            willingness_groups=None if group_share is None else pair, group_share=group_share,
        )
        return labour_calibration.expected_unemployment(params, month)[1]

    flat_rate, flat_claims = rate.reshape(-1, regions), claims.reshape(-1, regions)
    return jax.vmap(single)(flat_rate, flat_claims).reshape(rate.shape)


def one_step_residuals(params: LabourParams, observed: np.ndarray, willingness: np.ndarray,
                       case_signal: np.ndarray, claims_rate: np.ndarray,
                       group_share: np.ndarray | None = None) -> np.ndarray:
    """``[months - 1, R]``: ``observed[m + 1]`` minus one step of the flows from
    ``observed[m]`` with month ``m``'s signals (fractions; ``willingness`` per group
    ``[months, G]`` with ``group_share``)."""
    observed = np.asarray(observed, np.float32)
    share = None if group_share is None else jnp.asarray(group_share, jnp.float32)
    rows = []
    for m in range(observed.shape[0] - 1):
        step = one_step(params, observed[m], jnp.asarray(willingness[m]), jnp.asarray(case_signal[m]),
                        jnp.asarray(claims_rate[m]), share)
        rows.append(observed[m + 1] - np.asarray(step))
    return np.asarray(rows, np.float64).reshape(-1, observed.shape[1])


def fitted_size(params: LabourParams, names: Sequence[str]) -> int:
    """Fitted scalars: the sizes of the fitted parameters."""
    return int(sum(np.size(getattr(params, n)) for n in names))


def shock_pool(residuals: np.ndarray, observed_window: np.ndarray, fitted: int,
               regions: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The centred shocks (fractions) members draw from, and where they came from: the
    one-step residuals scaled by ``sqrt(n / (n - p))``, or, when ``n <= p``, the window's
    observed monthly changes (see the module docstring)."""
    num_regions = observed_window.shape[1]
    mask = np.ones(num_regions, bool) if regions is None else np.asarray(regions, bool)
    values = np.asarray(residuals, np.float64)[:, mask].ravel()
    values = values[np.isfinite(values)]
    if values.size > fitted:
        scale = math.sqrt(values.size / (values.size - fitted))
        return (values - values.mean()) * scale, f"one-step residuals x {scale:.2f} (n={values.size}, p={fitted})"
    changes = np.diff(np.asarray(observed_window, np.float64)[:, mask], axis=0).ravel()
    changes = changes[np.isfinite(changes)]
    if changes.size == 0:
        return np.zeros(1), "none (one month)"
    source = f"observed monthly changes (n={changes.size}; residuals n={values.size} <= p={fitted})"
    return changes - changes.mean(), source


def claims_paths(claims_window: np.ndarray, horizon: int, members: int, rng: np.random.Generator) -> np.ndarray:
    """``[members, horizon, R]`` claims rates for months ``O .. O + horizon - 1`` (row 0 the
    observed month ``O``): a random walk on the log rate from month ``O`` with one normal
    step per month shared by the regions, of the standard deviation of the window's monthly
    log changes (0 with one month)."""
    claims_window = np.asarray(claims_window, np.float64)
    logs = np.log(np.maximum(claims_window, 1e-6))
    changes = np.diff(logs, axis=0).ravel()
    sd = float(np.std(changes, ddof=1)) if changes.size >= 2 else 0.0
    steps = rng.normal(0.0, sd, size=(int(members), int(horizon), 1))
    steps[:, 0] = 0.0
    walk = logs[-1][None, None, :] + np.cumsum(steps, axis=1)
    return np.clip(np.exp(walk), 0.0, 1.0).astype(np.float32)


@partial(jax.jit, static_argnames=("names",))
def _member_steps(params: LabourParams, names: tuple[str, ...], z: dict, rate: jax.Array, willingness: jax.Array,
                  case_signal: jax.Array, claims_rate: jax.Array, group_share: jax.Array | None = None) -> jax.Array:
    """One step for every member: ``rate`` and ``claims_rate`` ``[B, P, R]``, member group
    ``b`` with the fitted values ``z[name][b]`` (unconstrained)."""
    def group(zb, r, c):
        return one_step(labour_calibration._assemble(params, names, zb), r, willingness, case_signal, c, group_share)

    return jax.vmap(group)(z, rate, claims_rate)


@lru_cache(maxsize=32)
def _refit_program(names: tuple[str, ...], steps: int, learning_rate: float, train_months: int,
                   regions: tuple[bool, ...]):
    """A jitted ``(params, z0, observed [B, M, R], willingness, case_signal, claims_rate,
    initial [R], groups [M, G] or None, share [R, G] or None) -> (z [B], final loss [B])``:
    Adam from ``z0`` on each replicate, vmapped."""
    optimiser = optax.adam(learning_rate)
    mask = np.asarray(regions, bool)

    def run(params, z0, observed, willingness, case_signal, claims_rate, initial, groups, share):
        def one(obs):
            problem = labour_calibration.ProblemArrays(obs, willingness, case_signal, claims_rate, initial,
                                                       train_months, mask, groups, share)

            def loss(z):
                return labour_calibration.unconstrained_loss(params, names, z, problem)

            def body(carry, _):
                z, state = carry
                value, grads = jax.value_and_grad(loss)(z)
                updates, state = optimiser.update(grads, state, z)
                return (optax.apply_updates(z, updates), state), value

            (z, _), curve = jax.lax.scan(body, (z0, optimiser.init(z0)), None, length=steps)
            return z, loss(z)

        return jax.vmap(one)(observed)

    return jax.jit(run)


def bootstrap_refits(fit: labour_calibration.LabourFit, problem: labour_calibration.LabourCalibrationProblem,
                     replicates: int, rng: np.random.Generator, *, steps: int = 300,
                     learning_rate: float = 0.05) -> tuple[dict, int]:
    """Parameter uncertainty: ``replicates`` refits (unconstrained values ``{name: [B, ...]}``)
    on the fitted training trajectory plus the fit's residuals resampled by month (each
    month's regions together), Adam warm-started at the fit for ``steps`` steps. Refits
    that end non-finite are replaced by the fit; returns the values and how many were."""
    names = fit.names
    n = problem.train_months
    fitted = np.asarray(labour_calibration.expected_unemployment(fit.params, problem), np.float64)
    residuals = problem.observed[1:n].astype(np.float64) - fitted[1:n]
    picks = rng.integers(0, n - 1, size=(int(replicates), n - 1))
    observed = np.repeat(problem.observed[None].astype(np.float32), int(replicates), axis=0)
    observed[:, 1:n] = np.clip(fitted[None, 1:n] + residuals[picks], 0.0, 1.0)
    observed[:, 1:n] = np.where(np.isfinite(problem.observed[1:n])[None], observed[:, 1:n], np.nan)
    program = _refit_program(tuple(names), int(steps), float(learning_rate), n, tuple(bool(b) for b in problem.regions))
    z0 = labour_calibration.unconstrained(fit.params, names)
    arrays = labour_calibration._problem_arrays(problem)
    z, final = program(problem.params, {k: jnp.asarray(v, jnp.float32) for k, v in z0.items()}, jnp.asarray(observed),
                       *(arrays[k] for k in ("willingness", "case_signal", "claims_rate", "initial_unemployment",
                                             "willingness_groups", "group_share")))
    z = {k: np.array(v, np.float32) for k, v in z.items()}
    good = np.isfinite(np.asarray(final))
    for k in names:
        good &= np.all(np.isfinite(z[k]).reshape(int(replicates), -1), axis=1)
    for k in names:
        z[k][~good] = np.asarray(z0[k], np.float32)
    return z, int((~good).sum())


# ------------------------------------------------------------------ one origin
@dataclass
class ModelForecast:
    """What :func:`model_forecast` returns.

    Attributes:
        members: float ``[members, horizon, R]`` the ensemble (fractions).
        free_run: float ``[horizon, R]`` the fitted trajectory continued from the window's
            start with the claims rate carried forward (no restart).
        fit: the :class:`~jaxsim.models.labour.calibration.LabourFit`.
        window: ``(first, months)`` of the training window.
        shocks: where the ensemble's shocks came from.
    """

    members: np.ndarray
    free_run: np.ndarray
    fit: labour_calibration.LabourFit
    window: tuple[int, int]
    shocks: str


def model_forecast(
    params: LabourParams,
    observed: np.ndarray,
    claims_rate: np.ndarray,
    signals: Signals,
    origin: int,
    *,
    train_months: int = DEFAULT_TRAIN_MONTHS,
    horizon: int = DEFAULT_HORIZON,
    members: int = DEFAULT_MEMBERS,
    fit_names: Sequence[str] = labour_calibration.DEFAULT_FIT,
    steps: int = 1000,
    refits: int = DEFAULT_REFITS,
    refit_steps: int = DEFAULT_REFIT_STEPS,
    seed: int = 0,
    regions: np.ndarray | None = None,
) -> ModelForecast:
    """Fit the labour market on the window up to month index ``origin`` and forecast
    ``horizon`` months from it (see the module docstring). ``observed`` and ``claims_rate``
    ``[T, R]`` are the observed series from the signals' first month; only rows
    ``<= origin`` are read (they may end there)."""
    origin, horizon = int(origin), int(horizon)
    observed = np.asarray(observed, np.float64)[: origin + 1]
    claims_known = np.asarray(claims_rate, np.float64)[: origin + 1]
    signal_months = signals.willingness.shape[0]
    if not 1 <= origin < observed.shape[0] or claims_known.shape[0] != origin + 1:
        raise ForecastInputError(f"origin index {origin}: the observed series need months 0..{origin}")
    if horizon < 1 or origin + horizon > signal_months:
        raise ForecastInputError(
            f"horizon {horizon} from origin index {origin}: the forward run's signals cover months "
            f"0..{signal_months - 1}"
        )
    first, n = training_window(origin, train_months)
    end = origin + horizon  # the flows of months origin .. end - 1 give months origin + 1 .. end
    known = np.concatenate([observed[first:], np.full((horizon, observed.shape[1]), np.nan)])  # held out: NaN
    # Observed claims up to the origin, month origin's rate carried forward after it.
    claims_window = np.concatenate([claims_known[first:], np.repeat(claims_known[-1:], horizon, axis=0)])
    willingness = np.asarray(signals.willingness[first:end + 1], np.float64)
    case_signal = np.asarray(signals.case_signal[first:end + 1], np.float64)
    answers, share = signals.willingness_groups, signals.group_share  # each group's willingness, shares
    if answers is not None:
        answers = np.asarray(answers[first:end + 1], np.float64)
    if willingness.shape[0] < end + 1 - first:  # month end's own signals are never stepped from
        willingness = np.concatenate([willingness, willingness[-1:]])
        case_signal = np.concatenate([case_signal, case_signal[-1:]])
        answers = None if answers is None else np.concatenate([answers, answers[-1:]])
    # What a month's step reads as willingness: each region's, or each group's with the shares.
    stepped = willingness if answers is None else answers
    if not np.all(np.isfinite(known[:n])) or not np.all(np.isfinite(claims_window)):
        raise ForecastInputError(f"observed rates missing in the training window of origin index {origin}")
    problem = labour_calibration.LabourCalibrationProblem(
        params=params, observed=known, willingness=willingness, case_signal=case_signal,
        claims_rate=claims_window, initial_unemployment=known[0], train_months=n, regions=regions,
        willingness_groups=answers, group_share=share,
    )
    fit = labour_calibration.fit_labour_market(problem, fit_names, steps=steps)
    free_run = np.asarray(labour_calibration.expected_unemployment(fit.params, problem))[n:n + horizon]

    residuals = one_step_residuals(fit.params, known[:n], stepped[:n], case_signal[:n], claims_window[:n], share)
    pool, source = shock_pool(residuals, known[:n], fitted_size(fit.params, fit.names), problem.regions)
    rng = np.random.default_rng(seed)
    names = tuple(fit.names)
    if refits > 0:
        z, failed = bootstrap_refits(fit, problem, refits, rng, steps=refit_steps)
        source += f"; {refits} bootstrap refits" + (f" ({failed} non-finite, replaced by the fit)" if failed else "")
    else:
        z = {k: np.asarray(v, np.float32)[None] for k, v in labour_calibration.unconstrained(fit.params, names).items()}
    groups = int(next(iter(z.values())).shape[0])
    per_group = -(-int(members) // groups)  # members per parameter set; the first `members` kept
    claims = claims_paths(claims_window[:n], horizon, groups * per_group, rng).reshape(groups, per_group, horizon, -1)
    rate = np.broadcast_to(known[n - 1].astype(np.float32), (groups, per_group, known.shape[1])).copy()
    out = np.empty((groups, per_group, horizon, known.shape[1]), np.float64)
    z = {k: jnp.asarray(v) for k, v in z.items()}
    for h in range(horizon):
        m = n - 1 + h  # window row of the month stepped from
        step = _member_steps(fit.params, names, z, jnp.asarray(rate), jnp.asarray(stepped[m], jnp.float32),
                             jnp.asarray(case_signal[m], jnp.float32), jnp.asarray(claims[:, :, h]),
                             None if share is None else jnp.asarray(share, jnp.float32))
        rate = np.clip(np.asarray(step, np.float64) + rng.choice(pool, size=rate.shape), 0.0, 1.0)
        out[:, :, h] = rate
        rate = rate.astype(np.float32)
    out = out.reshape(groups * per_group, horizon, known.shape[1])[: int(members)]
    return ModelForecast(members=out, free_run=free_run, fit=fit, window=(first, n), shocks=source)


def persistence_members(observed: np.ndarray, origin: int, horizon: int) -> np.ndarray:
    """``[1, horizon, R]``: month ``origin``'s observed rate repeated."""
    return np.repeat(np.asarray(observed, np.float64)[origin][None, None, :], int(horizon), axis=1)


def log_linear_members(observed: np.ndarray, origin: int, horizon: int, *, months: int = DEFAULT_TREND_MONTHS,
                       members: int = DEFAULT_MEMBERS, seed: int = 0) -> np.ndarray:
    """``[members, horizon, R]``: :func:`jaxsim.forecasting.log_linear_forecast` of each
    region's last ``months`` observed rates up to ``origin`` (in percent), as fractions."""
    from jaxsim.forecasting import log_linear_forecast

    observed = np.asarray(observed, np.float64)
    history = observed[max(0, origin - int(months) + 1): origin + 1]
    out = np.stack([
        log_linear_forecast(100.0 * history[:, b], int(horizon), weeks=int(months), members=int(members),
                            seed=seed + 7919 * b) / 100.0
        for b in range(observed.shape[1])
    ], axis=2)
    return out


# ----------------------------------------------------------------------- scores
def score(members: np.ndarray, truth: np.ndarray, regions: np.ndarray | None = None) -> dict:
    """Scores of ``members`` ``[K, H, R]`` against ``truth`` ``[H, R]`` (fractions), pooled
    over horizons and the ``regions`` with data: ``nd``, ``mae`` (pp), ``wis`` (pp),
    ``coverage_50``, ``coverage_90``, and ``wis_by_horizon`` ``[H]`` (pp)."""
    members = 100.0 * np.asarray(members, np.float64)
    truth = 100.0 * np.asarray(truth, np.float64)
    if members.ndim != 3 or members.shape[1:] != truth.shape:
        raise ForecastInputError(f"members [K, H, R] and truth [H, R] needed, got {members.shape} and {truth.shape}")
    mask = np.ones(truth.shape[1], bool) if regions is None else np.asarray(regions, bool)
    keep = np.isfinite(truth) & mask[None, :]
    flat_members = members[:, keep]
    flat_truth = truth[keep]
    median = np.median(flat_members, axis=0)
    error = np.abs(median - flat_truth)
    wis = scoring.weighted_interval_score(flat_members, flat_truth)
    wis_grid = np.full(truth.shape, np.nan)
    wis_grid[keep] = wis
    return {
        "nd": float(error.sum() / max(flat_truth.sum(), 1e-12)),
        "mae": float(error.mean()),
        "wis": float(wis.mean()),
        "coverage_50": scoring.coverage(flat_members, flat_truth, 0.5),
        "coverage_90": scoring.coverage(flat_members, flat_truth, 0.9),
        "wis_by_horizon": np.nanmean(wis_grid, axis=1).tolist(),
        "points": int(keep.sum()),
    }


# ------------------------------------------------------------------ all origins
@dataclass
class RollingOrigin:
    """What :func:`rolling_origin` returns.

    Attributes:
        per_origin: one row per origin and method: ``origin``, ``method``, ``train_first``,
            ``train_months``, ``nd``, ``mae``, ``wis``, ``coverage_50``, ``coverage_90``,
            ``wis_h1`` ..., ``beats_persistence_nd``, ``shocks``, ``fit_seconds``, and on
            the model's rows ``fitted_<name>`` for each scalar parameter fitted.
        forecasts: one row per origin, method, region and horizon: ``target`` month,
            ``observed``, ``median``, ``q05``, ``q25``, ``q75``, ``q95`` (percent).
        seconds: wall time of the fits and forecasts.
    """

    per_origin: pd.DataFrame
    forecasts: pd.DataFrame
    seconds: float


def rolling_origin(
    params: LabourParams,
    months: pd.PeriodIndex,
    observed: np.ndarray,
    claims_rate: np.ndarray,
    signals: Signals,
    origins: Sequence[int],
    *,
    region_names: Sequence[str],
    train_months: int = DEFAULT_TRAIN_MONTHS,
    horizon: int = DEFAULT_HORIZON,
    members: int = DEFAULT_MEMBERS,
    trend_months: int = DEFAULT_TREND_MONTHS,
    fit_names: Sequence[str] = labour_calibration.DEFAULT_FIT,
    steps: int = 1000,
    refits: int = DEFAULT_REFITS,
    refit_steps: int = DEFAULT_REFIT_STEPS,
    seed: int = 0,
    regions: np.ndarray | None = None,
    progress=None,
) -> RollingOrigin:
    """Forecast from every origin index in ``origins`` with the model and the baselines and
    score each against the observed rates of the ``horizon`` months after it. ``months``
    ``[T]`` labels the rows of ``observed``, ``claims_rate`` and the ``signals``."""
    begin = time.perf_counter()
    observed = np.asarray(observed, np.float64)
    rows, points = [], []
    for i, origin in enumerate(origins):
        start = time.perf_counter()
        forecast = model_forecast(
            params, observed, claims_rate, signals, origin, train_months=train_months, horizon=horizon,
            members=members, fit_names=fit_names, steps=steps, refits=refits, refit_steps=refit_steps,
            seed=seed + 1000 * i, regions=regions,
        )
        fit_seconds = time.perf_counter() - start
        truth = observed[origin + 1: origin + 1 + horizon]
        by_method = {
            "model": forecast.members,
            "persistence": persistence_members(observed, origin, horizon),
            "log-linear": log_linear_members(observed, origin, horizon, months=trend_months, members=members,
                                             seed=seed + 1000 * i + 1),
            "model free-run": forecast.free_run[None],
        }
        scores = {name: score(values, truth, regions) for name, values in by_method.items()}
        fitted_scalars = {f"fitted_{k}": float(np.ravel(v)[0]) for k, v in forecast.fit.fitted_values().items()
                          if np.size(v) == 1}
        first, n = forecast.window
        for name in METHODS:
            s = scores[name]
            rows.append({
                "origin": str(months[origin]), "method": name, "train_first": str(months[first]), "train_months": n,
                "nd": s["nd"], "mae": s["mae"], "wis": s["wis"],
                "coverage_50": s["coverage_50"] if by_method[name].shape[0] > 1 else np.nan,
                "coverage_90": s["coverage_90"] if by_method[name].shape[0] > 1 else np.nan,
                **{f"wis_h{h + 1}": s["wis_by_horizon"][h] for h in range(horizon)},
                "beats_persistence_nd": bool(s["nd"] < scores["persistence"]["nd"]),
                "shocks": forecast.shocks if name == "model" else "",
                "fit_seconds": fit_seconds if name == "model" else np.nan,
                **(fitted_scalars if name == "model" else {}),
            })
            quantiles = np.quantile(100.0 * by_method[name], [0.5, 0.05, 0.25, 0.75, 0.95], axis=0)
            for h in range(horizon):
                for b, region in enumerate(region_names):
                    points.append({
                        "origin": str(months[origin]), "method": name, "horizon": h + 1,
                        "target": str(months[origin + 1 + h]), "region": region,
                        "observed": 100.0 * truth[h, b], "median": quantiles[0, h, b], "q05": quantiles[1, h, b],
                        "q25": quantiles[2, h, b], "q75": quantiles[3, h, b], "q95": quantiles[4, h, b],
                    })
        if progress is not None:
            progress(i, origin, scores, forecast, fit_seconds)
    return RollingOrigin(pd.DataFrame(rows), pd.DataFrame(points), time.perf_counter() - begin)


#: The issue's targets for the model: beat persistence's ND on this share of the origins,
#: and its mean WIS; the 90% intervals cover this range of the held-out points.
TARGET_BEAT_SHARE = 0.75
TARGET_COVERAGE_90 = (0.80, 0.95)


def summarise(per_origin: pd.DataFrame, forecasts: pd.DataFrame) -> pd.DataFrame:
    """One row per method: ``origins``, ``beats_persistence_nd`` (share of origins),
    ``nd`` and ``mae`` (means over origins), ``wis`` (mean), ``coverage_50`` and
    ``coverage_90`` (over all points; NaN for point forecasts), ``wis_h1`` ... (means)."""
    summary = []
    horizon_columns = [c for c in per_origin.columns if c.startswith("wis_h")]
    for name in [m for m in METHODS if m in set(per_origin["method"])]:
        rows = per_origin[per_origin["method"] == name]
        points = forecasts[forecasts["method"] == name]
        spread = bool((points["q95"] > points["q05"]).any())

        def covered(low, high):
            return float(((points["observed"] >= points[low]) & (points["observed"] <= points[high])).mean())

        summary.append({
            "method": name,
            "origins": len(rows),
            "beats_persistence_nd": float(rows["beats_persistence_nd"].mean()) if name != "persistence" else np.nan,
            "nd": float(rows["nd"].mean()),
            "mae": float(rows["mae"].mean()),
            "wis": float(rows["wis"].mean()),
            "coverage_50": covered("q25", "q75") if spread else np.nan,
            "coverage_90": covered("q05", "q95") if spread else np.nan,
            **{c: float(rows[c].mean()) for c in horizon_columns},
        })
    return pd.DataFrame(summary)


def targets(summary: pd.DataFrame, method: str = "model") -> list[tuple[str, bool, str]]:
    """``(target, met, measured)`` for ``method`` against the issue's targets."""
    row = summary.set_index("method").loc[method]
    persistence = summary.set_index("method").loc["persistence"]
    low, high = TARGET_COVERAGE_90
    share = row["beats_persistence_nd"]
    coverage_90 = row["coverage_90"]
    return [
        (f"ND below persistence's on >= {TARGET_BEAT_SHARE:.0%} of origins", bool(share >= TARGET_BEAT_SHARE),
         f"{share:.0%} of {int(row['origins'])} origins"),
        ("mean WIS below persistence's", bool(row["wis"] < persistence["wis"]),
         f"{row['wis']:.3f} pp vs {persistence['wis']:.3f} pp"),
        (f"90% intervals cover {low:.0%}-{high:.0%} of held-out points",
         bool(np.isfinite(coverage_90) and low <= coverage_90 <= high),
         f"{coverage_90:.1%}" if np.isfinite(coverage_90) else "no interval"),
    ]


__all__ = [
    "DEFAULT_HORIZON",
    "DEFAULT_MEMBERS",
    "DEFAULT_REFITS",
    "DEFAULT_REFIT_STEPS",
    "DEFAULT_TRAIN_MONTHS",
    "DEFAULT_TREND_MONTHS",
    "ForecastInputError",
    "METHODS",
    "ModelForecast",
    "RollingOrigin",
    "Signals",
    "bootstrap_refits",
    "carry_forward",
    "claims_paths",
    "fitted_size",
    "log_linear_members",
    "model_forecast",
    "one_step",
    "one_step_residuals",
    "origin_indices",
    "persistence_members",
    "rolling_origin",
    "score",
    "shock_pool",
    "signals_of",
    "simulate_signals",
    "with_claims_held",
    "summarise",
    "targets",
    "training_window",
]
