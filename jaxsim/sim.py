"""The user-level object: a model on a population, with its parameters.

    sim = jaxsim.Sim(model, population, days=100)
    result = sim.run(seed=0)                      # one run
    result.frame(); result.plot("sir.png"); result.save("out/run")
    bands = sim.ensemble(members=32).quantiles()  # a vmapped ensemble
    fit = sim.calibrate(observed, fit=["beta"], observation=Observation("new_infections", 7))
    sim.compare({"distancing": {"beta": 0.2}}, members=32)

Everything below is the public core (:mod:`jaxsim.engine`, :mod:`jaxsim.ensemble`,
:mod:`jaxsim.calibration`); a ``Sim`` only keeps the pieces together. It never invalidates
the caller's arrays (runs do not donate their inputs), and every method takes the
gradient estimator as one setting.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import numpy as np
import pandas as pd

from jaxsim import engine, ensemble, outputs, parameters
from jaxsim.engine import Model, World
from jaxsim.errors import InputError
from jaxsim.population import Population


@dataclass
class Result:
    """One run of a :class:`Sim`.

    Attributes:
        metrics: ``{name: numpy [days, ...]}``.
        state: the final state (device arrays; ``None`` for a loaded result).
        info: what produced it (model, seed, days, estimator, parameters, timing).
        declared: the model's metric declarations; ``labels``: vector-metric labels.
    """

    metrics: dict[str, np.ndarray]
    state: Any
    info: dict
    declared: tuple = ()
    labels: dict = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """One row per day: ``day``, ``date`` and the metrics (declared counts as integers,
        vector metrics spread into ``<name>_<label>`` columns)."""
        start = self.info.get("start_date")
        return outputs.metrics_table(
            self.metrics, start_date=None if start is None else pd.Timestamp(start),
            vector_labels=self.labels, declared=self.declared,
        )

    def total(self, metric: str) -> float:
        """A metric summed over the days (e.g. a flow such as new infections)."""
        if metric not in self.metrics:
            raise InputError(f"no metric {metric!r}; metrics are {sorted(self.metrics)}")
        return float(np.sum(np.asarray(self.metrics[metric], np.float64)))

    def plot(self, path: str | Path | None = None, *, metrics: Sequence[str] | None = None, title: str | None = None):
        """Plot the declared metrics over days (counts, flows, levels on their own panels);
        saved to ``path`` when given."""
        target = Path(path) if path is not None else None
        if target is None:
            import tempfile

            target = Path(tempfile.mkdtemp()) / "plot.png"
        outputs.plot_metrics(self.frame(), target, title=title or self.info.get("model", "run"),
                             declared=self.declared, metrics=metrics)
        return target

    def save(self, directory: str | Path) -> Path:
        """Write ``metrics.csv`` and ``run.json`` into ``directory`` (staged: all or nothing)."""
        directory = Path(directory)
        with outputs.StagedOutputs(directory) as stage:
            outputs.write_metrics_csv(self.frame(), stage.path / "metrics.csv")
            outputs.write_json(self.info | {"labels": self.labels}, stage.path / "run.json")
        return directory

    @staticmethod
    def load(directory: str | Path) -> "Result":
        """A result written by :meth:`save`: its metrics (per-day columns, vector metrics
        gathered back by their labels) and info."""
        directory = Path(directory)
        for name in ("metrics.csv", "run.json"):
            if not (directory / name).is_file():
                raise InputError(f"{directory}: no {name} (not a saved jaxsim result)")
        info = json.loads((directory / "run.json").read_text())
        labels = {k: list(v) for k, v in info.pop("labels", {}).items()}
        table = pd.read_csv(directory / "metrics.csv")
        metrics = {}
        used = {"day", "date"}
        for name, names in labels.items():
            columns = [f"{name}_{label}" for label in names]
            if all(c in table for c in columns):
                metrics[name] = table[columns].to_numpy()
                used.update(columns)
        for column in table.columns:
            if column not in used:
                metrics[column] = table[column].to_numpy()
        return Result(metrics, None, info, (), labels)


class Sim:
    """A model on a population (or a world built for it), with its parameters.

    Args:
        model: a :class:`jaxsim.engine.Model` (its ``init``, substeps, declared parameters
            and metrics).
        population: a :class:`jaxsim.population.Population`; the world is
            ``world_builder(population)`` (default: the model's ``build_world``, else
            :func:`jaxsim.world.make_world`).
        world: a world built already (instead of ``population``).
        params: the parameters; default the model's declared defaults for the world
            (:func:`jaxsim.parameters.build`), with ``values`` replacing them.
        days: the run's length (also sizes per-week parameters).
        seed: default seed of runs and ensembles.
        estimator: default gradient estimator of runs (forward values do not depend on it).
        start_date: the calendar date of day 0 (for tables), optional.
    """

    def __init__(self, model: Model, population: Population | None = None, *, world: World | None = None,
                 params=None, days: int = 100, seed: int = 0, estimator=None, world_builder=None,
                 start_date: str | _dt.date | None = None, **values):
        engine.check_model(model)
        if (population is None) == (world is None):
            raise InputError("Sim: give either a population or a world")
        if world is None:
            if not isinstance(population, Population):
                raise InputError(f"Sim: population must be a jaxsim Population, got {type(population).__name__}")
            from jaxsim.world import make_world

            world = (world_builder or model.build_world or make_world)(population)
        days = int(days)
        if days < 1:
            raise InputError(f"Sim: days must be >= 1, got {days}")
        if params is None:
            if model.params_type is None:
                raise InputError(f"model {model.name!r} declares no params_type: give params=")
            params = parameters.build(model.params_type, world, periods=self._periods(days), **values)
        elif values:
            params = self._replace(params, world, days, values)
        self.model, self.world, self.params = model, world, params
        self.days, self.seed, self.estimator = days, int(seed), estimator
        self.start_date = None if start_date is None else str(pd.Timestamp(start_date).date())

    @staticmethod
    def _periods(days: int) -> dict:
        return {"day": days, "week": -(-days // 7), "month": -(-days // 30)}

    def _replace(self_or_none, params, world, days, values):
        declared = parameters.specs(params)
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(params)})
        if unknown:
            raise InputError(f"{type(params).__name__} has no parameters {unknown}")
        built = parameters.build(type(params), world, periods=Sim._periods(days),
                                 **{k: v for k, v in values.items() if k in declared})
        changes = {k: getattr(built, k) for k in values if k in declared}
        changes.update({k: v for k, v in values.items() if k not in declared})
        return params.replace(**changes)

    def with_params(self, params=None, **values) -> "Sim":
        """A copy with ``params`` (or these values changed: numbers, arrays or label tables)."""
        new = Sim.__new__(Sim)
        new.__dict__ = dict(self.__dict__)
        base = self.params if params is None else params
        new.params = self._replace(base, self.world, self.days, values) if values else base
        return new

    # ------------------------------------------------------------------ running
    def initial_state(self, key: jax.Array | int | None = None, params=None):
        """The model's day-0 state for ``key`` (an int seed or a key; default ``split(key(seed))[0]``)."""
        key = self._key(key)
        return engine.initial_state(self.model, jax.random.split(key)[0], params or self.params, self.world,
                                    estimator=self.estimator)

    def _key(self, key) -> jax.Array:
        if key is None:
            return jax.random.key(self.seed)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return jax.random.key(int(key))
        return key

    def run(self, days: int | None = None, *, seed: int | None = None, key: jax.Array | None = None,
            params=None, estimator=None, progress: bool | str = "auto", chunk_days: int = 7) -> Result:
        """One run: the initial state from ``split(key)[0]``, the days from ``split(key)[1]``
        (key from ``seed``, default the Sim's); the same as member ``k`` of an ensemble whose
        key ``k`` is this key. ``chunk_days``: about this many days per compiled call (the
        progress bar's step; see :func:`jaxsim.engine.run`)."""
        days = int(days or self.days)
        key = self._key(key if key is not None else seed)
        params = params or self.params
        estimator = estimator if estimator is not None else self.estimator
        init_key, run_key = jax.random.split(key)
        state = engine.initial_state(self.model, init_key, params, self.world, estimator=estimator)
        result = engine.run(self.model, run_key, state, params, self.world, days, estimator=estimator,
                            progress=progress, description=self.model.name, chunk_days=chunk_days)
        return Result(result.metrics, result.state, self._info(days, seed, estimator, params) | {
            "timing": {"compile_seconds": result.compile_seconds, "run_seconds": result.run_seconds},
        }, self.model.metrics, self._labels())

    def _labels(self) -> dict:
        categories = dict(self.world.categories)
        return {m.name: list(self.world.category_labels(m.by)) for m in self.model.metrics
                if m.by is not None and m.by in categories}

    def _info(self, days, seed, estimator, params) -> dict:
        report = parameters.report(params, self.world) if self.model.params_type is not None else None
        return {
            "model": self.model.name,
            "agents": self.world.num_agents,
            "days": days,
            "seed": self.seed if seed is None else int(seed),
            "estimator": str(estimator or "none"),
            "start_date": self.start_date,
            "parameters": report,
            "units": parameters.units(params) if self.model.params_type is not None else None,
        }

    def ensemble(self, members: int = 16, *, days: int | None = None, seed: int | None = None,
                 params: Sequence[Any] | None = None, labels: Sequence[str] | None = None,
                 estimator=None, **options) -> ensemble.EnsembleResult:
        """``members`` runs as one compiled ``vmap`` (member ``k`` equals :meth:`run` with
        key ``split(key(seed), members)[k]``). With ``params`` (a list of parameter sets),
        every set runs on the same ``members`` keys (common random numbers), labelled by
        ``labels`` in the result's ``set`` column."""
        days = int(days or self.days)
        keys = ensemble.member_keys(self.seed if seed is None else seed, members)
        estimator = estimator if estimator is not None else self.estimator
        if params is None:
            return ensemble.run_ensemble(self.model, keys, self.params, self.world, days, estimator=estimator,
                                         **options)
        batch, all_keys, table = ensemble.cross(list(params), keys, labels)
        return ensemble.run_ensemble(self.model, all_keys, batch, self.world, days, members=table,
                                     estimator=estimator, **options)

    def compare(self, alternatives: Mapping[str, Any], *, members: int = 16, days: int | None = None,
                seed: int | None = None, outcomes: Mapping[str, tuple[str, int]] | None = None, **options) -> dict:
        """The baseline (this Sim's parameters) against each alternative (parameters, or a
        ``{name: value}`` of changes) on the same member keys: per-scenario quantiles and
        paired differences of the model's outcomes (:func:`jaxsim.ensemble.compare`)."""
        sets = [self.params]
        names = ["baseline"]
        for name, alternative in alternatives.items():
            if isinstance(alternative, Mapping):
                alternative = self._replace(self.params, self.world, self.days, dict(alternative))
            sets.append(alternative)
            names.append(str(name))
        result = self.ensemble(members, days=days, seed=seed, params=sets, labels=names, **options)
        parts = result.split("set")
        baseline = parts.pop("baseline")
        return ensemble.compare(baseline, parts, outcomes=outcomes)

    def calibrate(self, observed, *, fit: Sequence[str], observation, train_periods: int | None = None,
                  method: str = "gradient", estimator: str | None = None, gradient_check: int = 8, **options):
        """Fit the declared parameters ``fit`` to the ``observed`` series with the model's
        declared search ranges; ``method="gradient"`` (Adam through the simulator, with the
        estimator, default straight-through), ``"cma-es"`` (a population-based search,
        each generation one batch of runs) or ``"nelder-mead"`` (a gradient-free baseline);
        the last two with ``simulator_runs=...``. The first ``train_periods`` periods are
        fitted (default all). Returns :class:`jaxsim.calibration.FitResult`; use
        ``sim.with_params(result.params)`` to carry on with the fitted values.

        Before a gradient fit, the gradient of the training loss at the starting values is
        checked against common-random-number finite differences over ``gradient_check``
        seeds (:func:`jaxsim.gradcheck.check_gradients`; 0 skips it): a parameter whose
        gradient is biased (off by more than 20% and more than two standard errors) gets a
        :class:`jaxsim.gradcheck.GradientWarning` naming it and the measured error, with
        the advice to use a gradient-free method; the check is ``result.gradient_check``."""
        from jaxsim import calibration

        observed = np.asarray(observed, np.float32)
        problem = calibration.CalibrationProblem(
            self.model, self.world, self.params, observed,
            int(train_periods or observed.shape[0]), observation,
            estimator=estimator or (self.estimator if self.estimator not in (None, "none") else "straight_through"),
            features=options.pop("features", None),
        )
        if method == "gradient":
            if isinstance(gradient_check, bool) or not isinstance(gradient_check, (int, np.integer)) or (
                    gradient_check < 0 or gradient_check == 1):
                raise InputError(f"calibrate: gradient_check must be 0 (off) or a number of seeds >= 2, "
                                 f"got {gradient_check!r}")
            check = _check_calibration_gradient(problem, fit, options.get("loss", "poisson"), int(gradient_check),
                                                options.get("seed", 0)) if gradient_check else None
            result = calibration.fit(problem, fit, **options)
            result.gradient_check = check
            return result
        if method in calibration.GRADIENT_FREE_METHODS:
            return calibration.gradient_free_fit(problem, fit, method=method, **options)
        raise InputError(f"calibrate: unknown method {method!r}; choose 'gradient', 'cma-es' or 'nelder-mead'")


def _check_calibration_gradient(problem, names, loss: str, seeds: int, seed: int):
    """The training loss's gradient at the starting values against finite differences;
    a :class:`GradientWarning` per biased parameter (uncertain ones pass silently)."""
    import warnings

    from jaxsim import calibration, gradcheck

    names = calibration.check_fit_names(problem.params, names)
    if loss not in calibration.LOSSES:
        raise InputError(f"calibrate: unknown loss {loss!r}; choose one of {sorted(calibration.LOSSES)}")
    loss_fn = calibration.LOSSES[loss]
    observed = jax.numpy.asarray(problem.observed[: problem.train_periods])

    def training_loss(key, params):
        return loss_fn(problem.simulate(params, key), observed)

    check = gradcheck.check_gradients(training_loss, problem.params, names, seeds=seeds, key=seed + 99, repeats=1,
                                      warn=False)
    for c in check.coordinates:
        if c.verdict == "biased":
            warnings.warn(
                f"calibrate: the gradient of the loss in {type(problem.params).__name__}.{c.name} is biased: autodiff "
                f"{c.autodiff_mean:.4g} against finite differences {c.fd_mean:.4g} +- {c.fd_se:.2g} (relative error "
                f"{c.relative_error:.0%}, {seeds} seeds, estimator {problem.estimator}); the fit may stall or go "
                "astray: try another estimator or method='cma-es'",
                gradcheck.GradientWarning, stacklevel=3,
            )
    return check


__all__ = ["Result", "Sim"]
