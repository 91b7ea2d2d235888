"""Calibrating the labour market by gradient against observed unemployment per region.

The agent-based labour market (:mod:`jaxsim.models.labour`) moves each worker with monthly
probabilities that depend only on its region's signals and its own willingness:
layoffs ``s_b(m)``, hiring ``h_b(m)``, quits of the unwilling ``q``
(:func:`jaxsim.kernels.labour.job_flow_probabilities`). Calibration integrates the draws
out: a representative agent per region holds a job with probability ``e_b(m)``, and

``e_b(m + 1) = e_b(m) (1 - s_b) (1 - q (1 - w_b)) + (1 - e_b(m)) h_b w_b``,

the expected flows of :func:`jaxsim.kernels.labour.next_employment` with the region's
mean willingness ``w_b(m)``. This is the mean of the agent-based unemployment rate when
willingness is independent of holding a job within a region (checked against many
seeds in ``tests/test_economy.py``), smooth in every parameter, and costs ``M x R``
operations, so hundreds of Adam steps take seconds.

Inputs per month and region are held fixed: the UI claims rate (observed), and the
mean willingness and reported case signal of a forward run of the model (as a behaviour
layer's answers are held fixed in :mod:`jaxsim.calibration`). Month 0 starts at the
simulated (or observed) rate; the loss is the mean squared error in percentage points
over the training months ``1 .. train_months - 1`` and the regions with a labour
force. Later months are held out: :func:`evaluate` reports the forecast's MAE
(percentage points) and normalised deviation next to last-value persistence.

The willingness input passes through the model's alignment ``sigmoid(a logit(w) + b)``
(``willingness_alignment_scale``/``_offset``, :data:`WILLINGNESS_ALIGNMENT`), as each
agent's probability does in the agent-based model; fitting ``a, b`` with the market maps
a policy's willingness (a language model's answers) onto the observed rates. The map is
smooth in ``a, b`` (probabilities read at a resolution of 0.01:
:func:`jaxsim.kernels.labour.aligned_willingness`), so a fit has a gradient wherever it
starts. Where the willingness comes in groups (a behaviour layer's answers per archetype,
``willingness_groups`` ``[M, G]``, with each region's labour force split by group,
``group_share`` ``[R, G]``), the region's willingness is the share-weighted mean of the
aligned answers: the mean the agent-based model has, up to deaths (the model weighs the
living labour force, the shares the whole). As without groups, the flows then move one
pool per region with that mean willingness. Without groups (the
heuristic's continuous probabilities) the map is applied to the region's mean
willingness, which differs from the mean of the mapped probabilities by second order in
their spread within the region (:func:`regional_willingness`). The problem's willingness
must be the policy's own (not already aligned), or the alignment applies twice.

The fitted parameters and their search ranges are the declared ones of
:class:`jaxsim.models.labour.LabourParams` (``fit_bounds``).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsim.calibration import Bounds, CalibrationError, fittable, heldout_metrics, persistence_forecast
from jaxsim.kernels import labour
from jaxsim.models.labour.params import LabourParams

#: Labour-market parameters that can be fitted by the expected flows, with their declared
#: search ranges (see :class:`jaxsim.models.labour.LabourParams` for units).
LABOUR_FITTABLE: dict[str, Bounds] = {
    name: bounds for name, bounds in fittable(LabourParams).items()
    if name in ("separation_logit", "hiring_logit", "separation_case_sensitivity", "hiring_claims_sensitivity",
                "quit_if_unwilling", "willingness_alignment_scale", "willingness_alignment_offset")
}
#: The alignment of the willingness input (``sigmoid(a logit(w) + b)``): maps a policy's
#: willingness (the heuristic's, or an LLM's answers, whose scale is not the data's) onto
#: the observed market.
WILLINGNESS_ALIGNMENT: tuple[str, ...] = ("willingness_alignment_scale", "willingness_alignment_offset")
#: What :func:`fit_labour_market` fits by default: the market's own flows (layoffs and
#: hiring per region, and their sensitivities). The willingness alignment is fittable by
#: name (the limits-of-agency study fits it for every architecture, to map an LLM's
#: answers onto the market) but not fitted by default: on the heuristic's willingness in
#: the rolling-origin benchmark it raised the share of origins with ND below persistence
#: (52% -> 62%) and the 90% coverage (74% -> 79%) but worsened the mean WIS (0.627 ->
#: 0.657 pp) and MAE (0.948 -> 0.967 pp); see ``benchmarks/RESULTS.md``.
DEFAULT_FIT: tuple[str, ...] = (
    "separation_logit", "hiring_logit", "separation_case_sensitivity", "hiring_claims_sensitivity",
)


#: How far ``group_share @ willingness_groups`` may be from the regional willingness of a
#: problem (the run's, weighted by the living labour force; the shares count everyone).
MAX_GROUP_MISMATCH = 0.005


def check_labour_fit_names(names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(names)
    if not names:
        raise CalibrationError("nothing to fit: name at least one labour-market parameter")
    unknown = [n for n in names if n not in LABOUR_FITTABLE]
    if unknown:
        raise CalibrationError(
            f"cannot fit {unknown}; fittable labour-market parameters are {sorted(LABOUR_FITTABLE)}"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CalibrationError(f"parameters named more than once: {repeated}")
    return names


@dataclass
class LabourCalibrationProblem:
    """Everything the labour-market fit needs.

    Attributes:
        params: the economy's parameters: the starting point of the fitted ones and the
            values of the others.
        observed: float ``[M, R]`` observed unemployment rate (fraction), NaN where unknown.
        willingness: float ``[M, R]`` mean willingness of each region's labour force.
        case_signal: float ``[M, R]`` reported cases per 1,000 residents in the month.
        claims_rate: float ``[M, R]`` UI beneficiaries per labour-force member.
        initial_unemployment: float ``[R]`` the rate in month 0.
        train_months: months ``0 .. train_months - 1`` are fitted (month 0 is the start,
            so at least 2), the rest held out.
        regions: bool ``[R]``, regions that count in the loss (those with a labour force).
        willingness_groups: float ``[M, G]`` or None: the willingness of each behaviour
            group (a behaviour layer's answers, before the alignment); with
            ``group_share`` the fit aligns each group's answer, then averages.
        group_share: float ``[R, G]`` or None: each region's labour force split by group
            (rows sum to 1, or 0 for a region without one); ``group_share @
            willingness_groups[m]`` must give ``willingness[m]`` (to
            :data:`MAX_GROUP_MISMATCH`: deaths move the living labour force's mix).
    """

    params: LabourParams
    observed: np.ndarray
    willingness: np.ndarray
    case_signal: np.ndarray
    claims_rate: np.ndarray
    initial_unemployment: np.ndarray
    train_months: int
    regions: np.ndarray | None = None
    willingness_groups: np.ndarray | None = None
    group_share: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.observed = np.asarray(self.observed, np.float32)
        if self.observed.ndim != 2:
            raise CalibrationError(f"observed must have shape [months, regions], got {self.observed.shape}")
        months, num_regions = self.observed.shape
        for name in ("observed", "willingness", "case_signal", "claims_rate"):
            value = np.asarray(getattr(self, name), np.float32)
            if value.shape != (months, num_regions):
                raise CalibrationError(f"{name} must have shape [{months}, {num_regions}], got {value.shape}")
            if name != "observed" and not np.all(np.isfinite(value)):
                raise CalibrationError(f"{name} has non-finite values")
            setattr(self, name, value)
        finite = self.observed[np.isfinite(self.observed)]
        if np.any((finite < 0) | (finite > 1)):
            raise CalibrationError("observed unemployment rates must be fractions in [0, 1]")
        self.initial_unemployment = np.asarray(self.initial_unemployment, np.float32)
        if self.initial_unemployment.shape != (num_regions,) or np.any(
            ~np.isfinite(self.initial_unemployment) | (self.initial_unemployment < 0) | (self.initial_unemployment > 1)
        ):
            raise CalibrationError(f"initial_unemployment must be {num_regions} fractions in [0, 1]")
        if not 2 <= int(self.train_months) <= months:
            raise CalibrationError(
                f"train_months must be in 2..{months} (month 0 is the starting point), got {self.train_months}"
            )
        self.train_months = int(self.train_months)
        mask = np.ones(num_regions, bool) if self.regions is None else np.asarray(self.regions, bool)
        if mask.shape != (num_regions,):
            raise CalibrationError(f"regions must be {num_regions} flags, got shape {mask.shape}")
        train = self.observed[1 : self.train_months][:, mask]
        if mask.sum() == 0 or not np.isfinite(train).any():
            raise CalibrationError("no observed unemployment in the training months for the regions fitted")
        self.regions = mask
        self._check_groups(months, num_regions)

    def _check_groups(self, months: int, num_regions: int) -> None:
        if (self.willingness_groups is None) != (self.group_share is None):
            raise CalibrationError("willingness_groups and group_share go together: give both or neither")
        if self.willingness_groups is None:
            return
        groups = np.asarray(self.willingness_groups, np.float32)
        share = np.asarray(self.group_share, np.float32)
        if groups.ndim != 2 or groups.shape[0] != months:
            raise CalibrationError(f"willingness_groups must have shape [{months}, groups], got {groups.shape}")
        if share.shape != (num_regions, groups.shape[1]):
            raise CalibrationError(f"group_share must have shape [{num_regions}, {groups.shape[1]}], got {share.shape}")
        if not np.all(np.isfinite(groups)) or np.any((groups < 0) | (groups > 1)):
            raise CalibrationError("willingness_groups must be probabilities in [0, 1]")
        totals = share.sum(axis=1)
        if not np.all(np.isfinite(share)) or np.any(share < 0) or np.any(
                (np.abs(totals - 1) > 1e-3) & (totals > 1e-6)):
            raise CalibrationError(f"group_share rows must be shares summing to 1 (or 0), got sums {totals.round(4).tolist()}")
        mismatch = np.abs(groups @ share.T - self.willingness)[:, totals > 1e-6]
        if mismatch.size and float(mismatch.max()) > MAX_GROUP_MISMATCH:
            raise CalibrationError(
                f"group_share @ willingness_groups differs from willingness by up to {float(mismatch.max()):.3f} "
                f"(more than {MAX_GROUP_MISMATCH}): the groups, shares or regional willingness do not belong together"
            )
        self.willingness_groups, self.group_share = groups, share

    @property
    def months(self) -> int:
        return int(self.observed.shape[0])


def regional_willingness(params: LabourParams, willingness: jax.Array, group_share: jax.Array | None = None
                         ) -> jax.Array:
    """float32 ``[R]``: a month's willingness per region after the alignment.

    ``willingness`` is ``[R]`` (each region's mean; the alignment is applied to the mean)
    or, with ``group_share`` ``[R, G]``, ``[G]`` (each group's answer; the aligned answers
    are averaged with the shares: the regional mean of the agents' aligned probabilities)."""
    aligned = labour.aligned_willingness(willingness, params.willingness_alignment_scale,
                                         params.willingness_alignment_offset)
    if group_share is None:
        return aligned
    return jnp.dot(jnp.asarray(group_share, jnp.float32), aligned, precision=jax.lax.Precision.HIGHEST)


def expected_unemployment(params: LabourParams, problem: LabourCalibrationProblem) -> jax.Array:
    """float32 ``[M, R]``: each month's expected unemployment rate per region (month 0 =
    ``problem.initial_unemployment``); differentiable in ``params``."""
    regions = jnp.arange(problem.observed.shape[1])
    groups = getattr(problem, "willingness_groups", None)
    share = getattr(problem, "group_share", None)
    inputs = (
        jnp.asarray(problem.willingness if groups is None else groups), jnp.asarray(problem.case_signal),
        jnp.asarray(problem.claims_rate),
    )

    def month(employed, signals):
        willing, cases, claims = signals
        willing = regional_willingness(params, willing, share)
        leave, hire = labour.job_flow_probabilities(
            regions, willing, params.separation_logit, params.hiring_logit, cases, claims,
            params.separation_case_sensitivity, params.hiring_claims_sensitivity, params.quit_if_unwilling,
        )
        return labour.next_employment(employed, leave, hire), employed

    start = 1.0 - jnp.asarray(problem.initial_unemployment)
    _, employed = jax.lax.scan(month, start, inputs)
    return 1.0 - employed


def training_loss(predicted: jax.Array, problem: LabourCalibrationProblem) -> jax.Array:
    """Mean squared error in percentage points over training months ``1 .. train - 1``
    and the fitted regions (unknown observations skipped)."""
    observed = jnp.asarray(problem.observed[1 : problem.train_months])
    weight = jnp.isfinite(observed) & jnp.asarray(problem.regions)[None, :]
    error = 100.0 * (predicted[1 : problem.train_months] - jnp.nan_to_num(observed))
    return jnp.sum(jnp.where(weight, error**2, 0.0)) / jnp.maximum(jnp.sum(weight), 1)


def _assemble(params: LabourParams, names: Sequence[str], z: dict) -> LabourParams:
    return params.replace(**{name: LABOUR_FITTABLE[name].to_value(z[name]) for name in names})


def unconstrained(params: LabourParams, names: Sequence[str]) -> dict:
    """``{name: z}`` with ``value = low + (high - low) sigmoid(z)`` (see :class:`~jaxsim.calibration.Bounds`)."""
    return {n: LABOUR_FITTABLE[n].to_unconstrained(getattr(params, n)) for n in names}


def loss_of_unconstrained(problem: LabourCalibrationProblem, names: Sequence[str]) -> Callable[[dict], jax.Array]:
    """``z -> training loss``: the function :func:`fit_labour_market` differentiates."""
    names = check_labour_fit_names(names)
    return lambda z: unconstrained_loss(problem.params, names, z, problem)


@dataclass
class ProblemArrays:
    """What :func:`expected_unemployment` and :func:`training_loss` read of a problem, as
    arrays that a compiled fit takes as (traced) arguments, so that fits of other windows or
    resampled data share one program. Fields as in :class:`LabourCalibrationProblem`."""

    observed: jax.Array
    willingness: jax.Array
    case_signal: jax.Array
    claims_rate: jax.Array
    initial_unemployment: jax.Array
    train_months: int
    regions: jax.Array | np.ndarray
    willingness_groups: jax.Array | None = None
    group_share: jax.Array | None = None


def unconstrained_loss(params: LabourParams, names: Sequence[str], z: dict, problem) -> jax.Array:
    """The training loss of the fitted values ``z`` (unconstrained) on ``problem`` (a
    :class:`LabourCalibrationProblem` or :class:`ProblemArrays`)."""
    return training_loss(expected_unemployment(_assemble(params, names, z), problem), problem)


@dataclass
class LabourFit:
    """What :func:`fit_labour_market` returns.

    Attributes:
        params: the economy's parameters with the fitted values.
        names: what was fitted.
        loss_curve: training loss (squared percentage points) per step.
        seconds: wall time, compilation included.
        stopped: ``"completed"`` or why the fit stopped early (keeping the last good values).
    """

    params: LabourParams
    names: tuple[str, ...]
    loss_curve: list[float]
    seconds: float
    stopped: str

    def fitted_values(self) -> dict:
        return {n: np.asarray(getattr(self.params, n)).tolist() for n in self.names}


def _problem_arrays(problem: LabourCalibrationProblem) -> dict:
    """The problem's arrays (:class:`ProblemArrays` but ``train_months``), passed to the
    compiled step as arguments (never closed over)."""
    arrays = {name: jnp.asarray(getattr(problem, name)) for name in
              ("observed", "willingness", "case_signal", "claims_rate", "initial_unemployment", "regions")}
    for name in ("willingness_groups", "group_share"):
        value = getattr(problem, name)
        arrays[name] = None if value is None else jnp.asarray(value)
    return arrays


@functools.lru_cache(maxsize=32)
def _labour_update(names: tuple[str, ...], learning_rate: float, train_months: int) -> Callable:
    """One jitted Adam step ``update(z, opt_state, params, arrays)``, shared by fits of
    equal settings (other windows, other data of the same shapes)."""
    optimiser = optax.adam(learning_rate)

    def loss(z, params, arrays):
        return unconstrained_loss(params, names, z, ProblemArrays(**arrays, train_months=train_months))

    @jax.jit
    def update(z, opt_state, params, arrays):
        value, grads = jax.value_and_grad(loss)(z, params, arrays)
        finite = jnp.isfinite(value) & jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        updates, opt_state = optimiser.update(grads, opt_state, z)
        return optax.apply_updates(z, updates), opt_state, value, finite

    return update


def fit_labour_market(
    problem: LabourCalibrationProblem,
    names: Sequence[str] = DEFAULT_FIT,
    *,
    steps: int = 1000,
    learning_rate: float = 0.05,
) -> LabourFit:
    """Fit ``names`` to the training months with Adam (optax) on the unconstrained
    values; a non-finite loss or gradient stops the fit with the last good values."""
    names = check_labour_fit_names(names)
    if int(steps) < 1:
        raise CalibrationError(f"steps must be >= 1, got {steps}")
    if not learning_rate > 0:
        raise CalibrationError(f"learning_rate must be > 0, got {learning_rate}")
    update = _labour_update(names, float(learning_rate), problem.train_months)
    z = unconstrained(problem.params, names)
    opt_state = optax.adam(learning_rate).init(z)
    arrays = _problem_arrays(problem)

    start = time.perf_counter()
    curve: list[float] = []
    stopped = "completed"
    for step in range(int(steps)):
        new_z, new_state, value, finite = update(z, opt_state, problem.params, arrays)
        if not bool(finite):
            stopped = f"stopped at step {step}: non-finite loss or gradient; kept the last good values"
            break
        curve.append(float(value))
        z, opt_state = new_z, new_state
    return LabourFit(
        params=_assemble(problem.params, names, z), names=names, loss_curve=curve,
        seconds=time.perf_counter() - start, stopped=stopped,
    )


def evaluate(
    predicted: np.ndarray, observed: np.ndarray, train_months: int, regions: np.ndarray | None = None,
) -> dict:
    """Held-out accuracy of a forecast ``[M, R]`` against ``observed`` ``[M, R]``
    (fractions), next to last-value persistence (each region's last training month
    repeated): MAE and RMSE in percentage points, normalised deviation
    ``sum |error| / sum observed``, over the held-out months and regions with data.
    Also the training-month fit (months ``1 .. train - 1``)."""
    predicted = np.asarray(predicted, np.float64) * 100.0
    observed = np.asarray(observed, np.float64) * 100.0
    months, num_regions = observed.shape
    mask = np.ones(num_regions, bool) if regions is None else np.asarray(regions, bool)
    train_months = int(train_months)
    persistence = np.stack(
        [persistence_forecast(observed[:train_months, b], months - train_months) for b in range(num_regions)], axis=1
    )

    def score(pred, obs):
        keep = np.isfinite(obs) & mask[None, :]
        if not keep.any():
            return None
        return heldout_metrics(pred[keep], obs[keep]) | {"points": int(keep.sum())}

    held_obs = observed[train_months:]
    return {
        "units": "percentage points (mae, rmse); nd = sum |error| / sum observed",
        "train_months": train_months,
        "test_months": months - train_months,
        "train": score(predicted[1:train_months], observed[1:train_months]),
        "test": score(predicted[train_months:], held_obs) if months > train_months else None,
        "persistence_test": score(persistence, held_obs) if months > train_months else None,
    }


__all__ = [
    "DEFAULT_FIT",
    "LABOUR_FITTABLE",
    "MAX_GROUP_MISMATCH",
    "WILLINGNESS_ALIGNMENT",
    "LabourCalibrationProblem",
    "LabourFit",
    "ProblemArrays",
    "check_labour_fit_names",
    "evaluate",
    "expected_unemployment",
    "regional_willingness",
    "fit_labour_market",
    "loss_of_unconstrained",
    "training_loss",
    "unconstrained",
    "unconstrained_loss",
]
