"""Policy design by gradient: choose an isolation-compliance schedule through the simulator.

The decision: a weekly multiplier ``c_w`` of every agent's daily isolation probability
(:func:`jaxsim.interventions.isolation_compliance` with one scale per week), each in
``[1, max_scale]`` and held there by ``c_w = 1 + (max_scale - 1) * sigmoid(z_w)``.

The objective, per run (mean over runs with common random numbers)::

    J = infections + cost_per_isolation_day * isolation_days
        + penalty * max(0, isolation_days - budget)

``infections`` counts new infections (S -> E) over the horizon, ``isolation_days`` the
agent-days spent isolating (the sum of the daily ``isolating`` metric); ``budget`` is the
isolation-days the policy may use and ``penalty`` (per isolation-day over it) makes going
over it costly. Units: agents and agent-days.

:func:`optimise` runs Adam on ``z`` with gradients through the problem's estimator
(``"straight_through"`` by default), a few fresh seeds per step (vmapped); :func:`grid_search` evaluates constant schedules on fixed evaluation seeds and
keeps the best that stays within the budget; :func:`evaluate` scores any schedules on the
same seeds (paired), so the gradient design and the best grid point are compared on
equal terms.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsim import ensemble
from jaxsim.engine import Model, World
from jaxsim.errors import InputError
from jaxsim.models.covid.interventions import IsolationCompliance
from jaxsim.models.covid.params import CovidParams


class PolicyDesignError(InputError):
    """A policy-design problem was set up with values it cannot use."""


@dataclass
class PolicyProblem:
    """What a design needs.

    Attributes:
        model: a COVID model.
        params: parameters whose ``interventions`` hold an
            :class:`~jaxsim.interventions.IsolationCompliance` named ``intervention``
            with one scale per week of the horizon (its values are the starting point).
        world, days: the run (``days`` = horizon, a whole number of weeks is not needed).
        budget: isolation-days allowed (agent-days), > 0.
        cost_per_isolation_day: infections-equivalent cost of one isolation-day (>= 0).
        penalty: cost per isolation-day over the budget (>= 0).
        max_scale: largest weekly multiplier (> 1).
        intervention: the name of the compliance intervention to design.
        estimator: the gradient estimator of :func:`optimise`'s runs.
    """

    model: Model
    params: CovidParams
    world: World
    days: int
    budget: float
    cost_per_isolation_day: float = 0.0
    penalty: float = 1.0
    max_scale: float = 3.0
    intervention: str = "isolation_compliance"
    estimator: str = "straight_through"

    def __post_init__(self) -> None:
        if self.params.interventions is None:
            raise PolicyDesignError("params.interventions is empty: add an isolation_compliance intervention to design")
        names = self.params.interventions.names
        if self.intervention not in names:
            raise PolicyDesignError(f"no intervention named {self.intervention!r}; the set has {list(names)}")
        item = self.params.interventions.items[names.index(self.intervention)]
        if not isinstance(item, IsolationCompliance):
            raise PolicyDesignError(
                f"intervention {self.intervention!r} is a {type(item).__name__}, not an IsolationCompliance"
            )
        if int(self.days) < 1:
            raise PolicyDesignError(f"days must be >= 1, got {self.days}")
        if not (math.isfinite(self.budget) and self.budget > 0):
            raise PolicyDesignError(f"budget must be a finite number of isolation-days > 0, got {self.budget}")
        for name in ("cost_per_isolation_day", "penalty"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise PolicyDesignError(f"{name} must be a finite number >= 0, got {value}")
        if not (math.isfinite(self.max_scale) and self.max_scale > 1):
            raise PolicyDesignError(f"max_scale must be a finite number > 1, got {self.max_scale}")
        weeks = -(-int(self.days) // 7)
        if np.shape(item.scale) != (weeks,):
            raise PolicyDesignError(
                f"intervention {self.intervention!r} needs one scale per week of the horizon ({weeks}), "
                f"got shape {np.shape(item.scale)}"
            )

    @property
    def index(self) -> int:
        return self.params.interventions.names.index(self.intervention)

    @property
    def weeks(self) -> int:
        return -(-int(self.days) // 7)

    def with_schedule(self, scale: jax.Array) -> CovidParams:
        """``params`` with the designed intervention's weekly scale replaced."""
        items = list(self.params.interventions.items)
        items[self.index] = items[self.index].replace(scale=jnp.asarray(scale, jnp.float32))
        return self.params.replace(interventions=self.params.interventions.replace(items=tuple(items)))

    def to_scale(self, z: jax.Array) -> jax.Array:
        return 1.0 + (self.max_scale - 1.0) * jax.nn.sigmoid(z)

    def to_unconstrained(self, scale) -> jax.Array:
        """The ``z`` of ``scale``, held 1% inside the range (the sigmoid's gradient vanishes
        at its ends, so a start on a bound would never move)."""
        frac = np.clip((np.asarray(scale, np.float64) - 1.0) / (self.max_scale - 1.0), 0.01, 0.99)
        return jnp.asarray(np.log(frac) - np.log1p(-frac), jnp.float32)

    def objective(self, infections, isolation_days):
        """``J`` from the mean infections and isolation-days."""
        over = jnp.maximum(isolation_days - self.budget, 0.0)
        return infections + self.cost_per_isolation_day * isolation_days + self.penalty * over

    def outcomes(self, scale: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(infections, isolation_days)`` of one run with schedule ``scale``."""
        metrics = ensemble.member_metrics(
            self.model, key, self.with_schedule(scale), self.world, self.days,
            metric_names=("new_infections", "isolating"), checkpoint_days=7, estimator=self.estimator,
        )
        return metrics["new_infections"].sum(), metrics["isolating"].sum()


@dataclass
class Evaluation:
    """Schedules scored on the same seeds.

    Attributes:
        scales: ``[P, W]`` the schedules.
        infections, isolation_days: ``[P, R]`` per schedule and seed.
        objective: ``[P]`` ``J`` of the means.
        feasible: ``[P]`` mean isolation-days within the budget.
    """

    scales: np.ndarray
    infections: np.ndarray
    isolation_days: np.ndarray
    objective: np.ndarray
    feasible: np.ndarray


def evaluate(problem: PolicyProblem, scales, keys: jax.Array, *, model: Model | None = None,
             batch_size: int | None = None) -> Evaluation:
    """Score schedules ``[P, W]`` on the keys ``[R]`` (every schedule on every key: paired),
    as one forward ensemble (``model`` defaults to the problem's)."""
    scales = np.atleast_2d(np.asarray(scales, np.float32))
    if scales.shape[1] != problem.weeks:
        raise PolicyDesignError(f"schedules need {problem.weeks} weeks, got shape {scales.shape}")
    sets = [problem.with_schedule(s) for s in scales]
    batch, all_keys, _ = ensemble.cross(sets, keys)
    result = ensemble.run_ensemble(
        model or problem.model, all_keys, batch, problem.world, problem.days,
        metric_names=("new_infections", "isolating"), batch_size=batch_size,
    )
    reps = int(keys.shape[0])
    infections = result.totals("new_infections").reshape(len(scales), reps)
    isolation = result.totals("isolating").reshape(len(scales), reps)
    objective = np.asarray([
        float(problem.objective(i.mean(), d.mean())) for i, d in zip(infections, isolation)
    ])
    return Evaluation(scales, infections, isolation, objective, isolation.mean(axis=1) <= problem.budget)


@dataclass
class DesignResult:
    """What :func:`optimise` returns.

    Attributes:
        scale: ``[W]`` the designed weekly multipliers.
        loss_curve: the seed-averaged objective per step.
        seconds: wall time, compilation included; ``simulator_runs``: runs used.
        stopped: ``"completed"`` or why it stopped early.
    """

    scale: np.ndarray
    loss_curve: list[float]
    seconds: float
    simulator_runs: int
    stopped: str = "completed"
    history: list[np.ndarray] = field(default_factory=list)


def optimise(
    problem: PolicyProblem,
    *,
    steps: int = 30,
    learning_rate: float = 0.3,
    seeds_per_step: int = 4,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> DesignResult:
    """Adam on the unconstrained weekly schedule, from the intervention's current scale
    (held 1% inside ``[1, max_scale]``), ``seeds_per_step`` fresh runs per step (vmapped,
    gradients through the problem's estimator). A non-finite objective or gradient stops
    with the last good schedule."""
    if steps < 1 or seeds_per_step < 1:
        raise PolicyDesignError(f"steps and seeds_per_step must be >= 1, got {steps}, {seeds_per_step}")
    start = problem.params.interventions.items[problem.index].scale
    z = problem.to_unconstrained(np.clip(np.asarray(start), 1.0, problem.max_scale))

    def loss(z, keys):
        infections, isolation = jax.vmap(problem.outcomes, in_axes=(None, 0))(problem.to_scale(z), keys)
        return problem.objective(infections.mean(), isolation.mean())

    optimiser = optax.adam(learning_rate)
    opt_state = optimiser.init(z)

    @jax.jit
    def update(z, opt_state, keys):
        value, grad = jax.value_and_grad(loss)(z, keys)
        updates, opt_state = optimiser.update(grad, opt_state, z)
        finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
        return optax.apply_updates(z, updates), opt_state, value, finite

    wall = time.perf_counter()
    curve: list[float] = []
    history: list[np.ndarray] = []
    stopped = "completed"
    base = jax.random.key(seed)
    runs = 0
    for step in range(steps):
        keys = jax.random.split(jax.random.fold_in(base, step), seeds_per_step)
        new_z, new_state, value, finite = update(z, opt_state, keys)
        runs += seeds_per_step
        if not bool(finite):
            stopped = f"stopped at step {step}: non-finite objective or gradient; kept the last good schedule"
            break
        z, opt_state = new_z, new_state
        curve.append(float(value))
        history.append(np.asarray(problem.to_scale(z)))
        if on_step is not None:
            on_step(step, float(value))
    return DesignResult(
        scale=np.asarray(problem.to_scale(z)), loss_curve=curve, seconds=time.perf_counter() - wall,
        simulator_runs=runs, stopped=stopped, history=history,
    )


def grid_search(problem: PolicyProblem, levels: Sequence[float], keys: jax.Array, *,
                model: Model | None = None) -> tuple[Evaluation, int | None]:
    """Constant schedules at ``levels`` scored on ``keys``; ``(evaluation, index of the
    best schedule within the budget or None)``."""
    levels = np.asarray(levels, np.float32)
    if levels.ndim != 1 or levels.size < 1 or np.any(levels < 0) or not np.all(np.isfinite(levels)):
        raise PolicyDesignError(f"grid levels must be finite multipliers >= 0, got {levels.tolist()}")
    scales = np.repeat(levels[:, None], problem.weeks, axis=1)
    result = evaluate(problem, scales, keys, model=model)
    feasible = np.flatnonzero(result.feasible)
    best = None if feasible.size == 0 else int(feasible[np.argmin(result.objective[feasible])])
    return result, best


__all__ = [
    "DesignResult",
    "Evaluation",
    "PolicyDesignError",
    "PolicyProblem",
    "evaluate",
    "grid_search",
    "optimise",
]
