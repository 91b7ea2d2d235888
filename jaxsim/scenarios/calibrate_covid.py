#!/usr/bin/env python
"""Calibrating the COVID-19 model to a NYC neighbourhood's weekly cases, with a held-out forecast.

    python scenarios/calibrate_covid.py [--nta QN0103] [--start-week 202047]
                                        [--train-weeks 4] [--test-weeks 4]
                                        [--population DIR | --agents N] [--out DIR]
                                        [--method params|network] [--steps 60] [--seeds 4]
                                        [--learning-rate 0.1] [--loss poisson|mae]
                                        [--fit transmission_rate,...] [--members 16] [--fits 1]
                                        [--forecast mean-reverting|random-walk|last] [--seed 0]

With no arguments: a synthetic Astoria (NTA QN0103, 47,303 people), fitted to the 4 weeks
from epiweek 202047 and evaluated on the 4 weeks after them.

Methods
-------
Data. Reported COVID-19 cases per epiweek of one neighbourhood (NTA) from
``weekly_cases_mobility_by_neighborhood.csv`` (:mod:`jaxsim.nyc.cases`): ``--train-weeks``
weeks from ``--start-week`` are fitted and the ``--test-weeks`` weeks after them are held
out. The week before the window gives the first week's network features (the start week
stands in for it when the data begins at the start week). A window with a missing count,
or one that runs past the end of the data, is refused.

Population and scaling. Agents are a population directory's rows (``--population``), a
synthetic copy of the NTA scaled down to exactly ``--agents`` agents (every household
count multiplied by the same factor; :func:`jaxsim.nyc.synthesis.synthesize_nyc_population`),
or by default the whole synthetic NTA. When the population has fewer agents than the
NTA's census people, observed cases are multiplied by agents / census people, so the
model is fitted to the cases its agents stand for; metrics are in those scaled counts.

Model. The SEIRM model with isolation behaviour of :mod:`jaxsim.covid` (household and
community contacts, age-specific susceptibility and fatality, isolation set weekly from
the simulated case trend), with straight-through gradient estimates of every Bernoulli
draw and gradients through time along the aggregate exposure paths
(``covid_model(estimator="straight_through")``). Day 0 is the first day of the start week.
Initial exposed and infected shares, and the 28-day case signal the isolation heuristic
starts from, come from the reported cases of the start week and the 4 weeks before it,
divided by the ascertainment (0.25 by default) and by the NTA's census people
(:func:`jaxsim.nyc.cases.seeding_from_cases`); a population directory with a
``disease_stages.csv`` uses those stages instead.

What is fitted. By default the transmission rate R(t), one value per week
(``--fit`` adds other declared parameters of :class:`jaxsim.models.covid.CovidParams`). Every fitted value
is ``low + (high - low) * sigmoid(z)`` of an unconstrained ``z``, so it stays in range.
With ``--method params`` the weekly rates are free parameters; held-out weeks repeat the
last fitted week's rate. With ``--behavior llm`` (or ``llm-local``) isolation comes from
LLM archetypes (see :mod:`jaxsim.behaviour`): their answers along a forward run with the
starting parameters are held fixed, and ``--fit`` may name the per-archetype alignment
``isolation_alignment_scale`` / ``isolation_alignment_offset`` (``p' = clip(a p + b)``).
With ``--method network`` a small MLP maps each week's features
(the previous week's six Google-mobility changes and the latest case count known before
that week, training weeks only) to that week's rate, so it also predicts the held-out
weeks; its weights are trained end to end through the simulator.

Loss and optimiser. Reported cases of week ``w`` are the simulated onsets of that week
times the ascertainment. The loss is the Poisson deviance per week divided by the mean
observed count (``--loss poisson``, default) or the scaled mean absolute error
(``--loss mae``), over the training weeks, averaged over ``--seeds`` runs (4) with fresh
random seeds each step, plus ``--smoothing`` (3) times the mean squared weekly change of
log R(t) over the training weeks (a random-walk prior: the last weeks' rates are weakly
identified, their exposures show as cases mostly after the window, and without it the
fit follows the last week's noise; :func:`jaxsim.calibration.smoothness_penalty`). Adam
(learning rate 0.1) runs ``--steps`` steps (60); a step whose loss or gradient is not
finite stops the fit and the last good parameters are kept.

Held-out evaluation. ``--members`` runs (16) with independent seeds over all weeks give
an ensemble (:func:`jaxsim.forecasting.forecast_ensemble`). With ``--method params`` the
held-out weeks' R(t) of each member follows ``--forecast``: ``mean-reverting`` (default) a
log AR(1) path from the last fitted rate pulled toward the fitted weeks' level by
``--reversion`` (0.5) per week, with the fitted weeks' spread of weekly changes (at least
0.15 on the log scale);
``random-walk`` the same without the pull; ``last`` the last fitted rate. ``--anchor on``
(default) scales the held-out weeks so that the ensemble's last two fitted weeks match
the observed ones (the model gives the growth, the data the level); ``--observation-noise
nb`` (default) turns each member's weekly cases into negative-binomial counts, the
dispersion estimated from the last 8 observed weeks before the held-out ones. With
``--fits K`` the parameters' uncertainty enters too: K fits, the first to the observed
weeks and the others to parametric bootstrap resamples of them (negative-binomial counts
around the observed ones, with that dispersion), share the members
(:func:`jaxsim.forecasting.bootstrap_fits`). The defaults
were chosen on the tuning origins of ``benchmarks/bench_forecast.py``
(``benchmarks/RESULTS.md``). The ensemble mean is the point forecast and its 5% and 95%
quantiles the band. On the held-out weeks: mean absolute error, root mean squared error
and normalised deviation (sum of absolute errors / sum of observed cases) of the mean, and
of the whole ensemble the weighted interval score (the Forecast Hub's 23 quantiles,
:mod:`jaxsim.scoring`; a point forecast's WIS is its absolute error) and the share of
held-out weeks inside the 50% and 90% intervals.

Baselines, on the same split. Persistence: every held-out week repeats the last training
week's count. Log-linear trend: a line through log(cases + 1) of the last 4 known weeks,
extrapolated, with intervals from its residuals. Gradient-free: Nelder-Mead (scipy), or CMA-ES (evosax) with
``--gradient-free cma-es``, on the same parameters and loss with the same budget of
simulator runs as the gradient fit (fixed seeds, ``--seeds`` per
evaluation), forecast like ``--method params``. ``--smoothing`` adds a random-walk
penalty on the weekly log R(t) to both fits' loss.

Outputs (in ``--out``, default ``out/calibrate_covid``; all written or none):
``calibration.json`` (settings, fitted parameters, loss curve, timings, observed cases,
forecast with its band, metrics of the fit and the baselines, population, versions),
``calibration.csv`` and the same table as ``calibration.parquet`` (one row per epiweek:
its first and last days, fitted or held out, observed cases, the forecast's mean and
5-95% band, the baselines, the weekly R(t) of both fits), ``fit.png`` (observed and
simulated weekly cases by date with the split, and the weekly R(t)) and ``report.html``
(one page: the plot, the key numbers and held-out scores, links to the files;
:mod:`jaxsim.report`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxsim import behaviour, calibration, cli, engine, forecasting, memory, outputs, sampling, scoring
from jaxsim.compile_cache import enable_compile_cache
from jaxsim.errors import InputError
from jaxsim.llm import options as llm_options
from jaxsim.models import covid
from jaxsim.nyc import cases as nyc_cases
from jaxsim.nyc import calibration as nyc_calibration
from jaxsim.nyc.households import census_people
from jaxsim.nyc.setup import CaseWindow, covid_setup, fit_window
from jaxsim.report import REPORT_FILE, write_report
from jaxsim.world import to_device
from jaxsim import caches, progress
from jaxsim.scenarios import arguments, command

DEFAULT_NTA = arguments.CALIBRATE_DEFAULT_NTA
DEFAULT_START_WEEK = arguments.CALIBRATE_DEFAULT_START_WEEK
METHODS = arguments.CALIBRATE_METHODS
#: Defaults of the forecast, chosen on the rolling-origin benchmark's tuning origins
#: (benchmarks/bench_forecast.py; benchmarks/RESULTS.md).
DEFAULT_FORECAST = arguments.DEFAULT_FORECAST
DEFAULT_ANCHOR = arguments.DEFAULT_ANCHOR
DEFAULT_SMOOTHING = arguments.DEFAULT_SMOOTHING
#: Smallest weekly step (log scale) of the forecast's R(t) paths.
MIN_STEP_SD = 0.15


def parse_args(argv=None):
    """The options of this scenario (:mod:`jaxsim.scenarios.arguments`)."""
    return arguments.parse("calibrate_covid", argv)


def check_settings(args) -> tuple[str, ...]:
    """The fit names; :class:`InputError` (one line, naming the value) for a parameter the
    model does not declare. (Settings out of range are the parser's:
    :func:`jaxsim.scenarios.arguments.check_calibrate_covid`, before JAX loads.)"""
    names = [n.strip() for n in args.fit.split(",") if n.strip()]
    try:
        names = calibration.check_fit_names(covid.CovidParams, names)
    except calibration.CalibrationError as err:
        raise InputError(f"--fit {args.fit!r}: {err}") from None
    if args.method == "network" and "transmission_rate" not in names:
        raise InputError(
            f"--method network fits the weekly transmission rate: --fit {args.fit!r} must include transmission_rate"
        )
    return names


def build_population(args, people: float):
    from jaxsim.nyc import cli as nyc_cli

    if args.population:  # checked and its layers named by role as in every NYC scenario (file order kept)
        return nyc_cli.load_population_directory(
            args.population, allow_pickle=args.allow_pickle, layer_roles=args.layer_roles, keep_order=True
        )
    from jaxsim.nyc import synthesis

    if args.agents is None:
        return nyc_cli.with_layer_roles(synthesis.synthesize_nyc_population([args.nta], seed=args.seed), args.layer_roles)
    if args.agents > people:
        raise InputError(
            f"--agents {args.agents}: {args.nta} has {int(people):,} people; ask for at most that "
            "(or leave --agents out for the whole NTA)"
        )
    population = synthesis.synthesize_nyc_population([args.nta], seed=args.seed, max_agents=args.agents)
    if population.size != args.agents:  # pragma: no cover - synthesize_nyc_population guarantees it
        raise InputError(f"--agents {args.agents}: the synthetic population has {population.size} agents")
    return nyc_cli.with_layer_roles(population, args.layer_roles)


def weeks_span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}..{last}"


def observation_dispersion(args, history: np.ndarray) -> float | None:
    """The negative-binomial size of ``--observation-noise nb`` from the known weeks (none
    with fewer than 3 known weeks, or ``--observation-noise none``)."""
    if args.observation_noise == "none" or history.size < 3:
        return None
    return forecasting.dispersion_from_history(history)


def forecast_members(problem, fitted, args, *, dispersion: float | None) -> np.ndarray:
    """The forecast ensemble ``[members, weeks]`` of the fitted parameter sets ``fitted``
    (one, or the ``--fits`` ensemble; :func:`jaxsim.forecasting.forecast_from_fits`): with
    ``--method params`` each member's held-out R(t) follows ``--forecast``; the network
    sets every week's rate itself. ``dispersion``: the observation noise's
    (:func:`observation_dispersion`), ``None`` for none."""
    if not isinstance(fitted, (list, tuple)):
        fitted = [fitted]
    return forecasting.forecast_from_fits(
        problem, fitted, args.members,
        parameter_forecast=args.forecast if args.method == "params" else "last", reversion=args.reversion,
        names=None if args.method == "params" else (), dispersion=dispersion,
        anchor=problem.observed if args.anchor == "on" else None, min_step_sd=MIN_STEP_SD, seed=args.seed,
    )


def heldout_scores(members: np.ndarray, observed: np.ndarray, train: int) -> dict:
    """MAE, RMSE and ND of the ensemble mean and WIS and coverage of the ensemble, over the
    held-out weeks."""
    return (calibration.heldout_metrics(members.mean(axis=0)[train:], observed[train:])
            | scoring.forecast_scores(members[:, train:], observed[train:]))


def ensemble_summary(members: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "mean": members.mean(axis=0),
        "q05": np.quantile(members, 0.05, axis=0),
        "q95": np.quantile(members, 0.95, axis=0),
    }


def weekly_table(*, epiweeks, week_end, train_weeks: int, reported, observed, forecast, persistence,
                 log_linear, gradient_free, rate, gradient_free_rate) -> pd.DataFrame:
    """One row per epiweek of the window: its first and last days (dates), ``fitted`` or
    ``held out``, the reported cases and the ones the fit used (scaled to the agents), the
    forecast ensemble's mean and 5/95% quantiles, the baselines (persistence and the
    log-linear trend on the held-out weeks, NaN on the fitted ones; the gradient-free
    fit's mean) and the weekly R(t) of the gradient and gradient-free fits."""
    weeks = len(observed)
    week_end = pd.DatetimeIndex(week_end).normalize()

    def held_out(values):
        return np.concatenate([np.full(train_weeks, np.nan), np.asarray(values, np.float64)])

    return pd.DataFrame({
        "epiweek": np.asarray(epiweeks, np.int64),
        "week_start": week_end - pd.Timedelta(days=6),
        "week_end": week_end,
        "period": np.where(np.arange(weeks) < train_weeks, "fitted", "held out"),
        "observed_reported": np.asarray(reported, np.float64),
        "observed": np.asarray(observed, np.float64),
        "forecast_mean": forecast["mean"], "forecast_q05": forecast["q05"], "forecast_q95": forecast["q95"],
        "persistence": held_out(persistence),
        "log_linear_mean": held_out(log_linear["mean"]),
        "gradient_free_mean": gradient_free["mean"],
        "transmission_rate": np.asarray(rate, np.float64)[:weeks],
        "gradient_free_transmission_rate": np.asarray(gradient_free_rate, np.float64)[:weeks],
    })


def plot_fit(path: Path, *, epiweeks, observed, train_weeks, forecast, persistence, gradient_free,
             rate, gradient_free_rate, title: str, method: str, week_starts=None):
    """Observed vs fitted/forecast weekly cases (with band, split, baselines); weekly R(t).
    With ``week_starts`` (each epiweek's first day) the x axis shows calendar dates, each
    week's value at its middle and the weekly R(t) as steps over its week (without them,
    the weeks' positions labelled by epiweek). Legends to the right of the panels; a
    missing observed week is a gap. Returns the figure (saved and closed)."""
    plt = outputs.pyplot()
    weeks = len(observed)

    def at(week):  # weeks from the window's first day to x positions
        week = np.asarray(week, np.float64)
        if week_starts is None:
            return week
        start = np.datetime64(pd.Timestamp(np.asarray(week_starts)[0]), "h")
        return start + np.rint(week * 7 * 24).astype("timedelta64[h]")

    x = at(np.arange(weeks) + 0.5)
    split = at(train_weeks)
    fig, (ax_cases, ax_rate) = plt.subplots(
        2, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    ax_cases.fill_between(x, forecast["q05"], forecast["q95"], color="tab:blue", alpha=0.2,
                          label="5-95% of ensemble")
    ax_cases.plot(x[:train_weeks], forecast["mean"][:train_weeks], color="tab:blue", marker="o",
                  label=f"fitted ({method}), ensemble mean")
    ax_cases.plot(x[train_weeks - 1:], forecast["mean"][train_weeks - 1:], color="tab:blue", marker="o",
                  linestyle="--", label="forecast, ensemble mean")
    ax_cases.plot(x[train_weeks:], persistence, color="tab:green", marker="s", linestyle=":",
                  label="persistence")
    ax_cases.plot(x, gradient_free, color="tab:orange", marker="^", linestyle=":",
                  label="gradient-free (Nelder-Mead)")
    ax_cases.plot(x, observed, color="black", marker="o", linewidth=2, label="observed")
    for ax in (ax_cases, ax_rate):
        ax.axvline(split, color="grey", linestyle="--", linewidth=1)
    ax_cases.text(ax_cases.convert_xunits(split), 1.0, "  held out ->", transform=ax_cases.get_xaxis_transform(),
                  va="top", fontsize=8, color="grey")
    ax_cases.set_ylabel("reported cases per week")
    ax_cases.set_ylim(bottom=0)
    outputs.legend_outside(ax_cases, fontsize=8)
    ax_cases.set_title(title)

    starts, width = at(np.arange(weeks)), at(1) - at(0)
    outputs.plot_periods(ax_rate, starts, np.asarray(rate, np.float64)[:weeks], width, color="tab:blue",
                         linewidth=1.5, label=f"gradient fit ({method})")
    outputs.plot_periods(ax_rate, starts, np.asarray(gradient_free_rate, np.float64)[:weeks], width,
                         color="tab:orange", linestyle=":", linewidth=1.5, label="gradient-free")
    ax_rate.set_ylabel("transmission rate R(t)\n(dimensionless)")
    ax_rate.set_xlim(at(0), at(weeks))
    if week_starts is None:
        ax_rate.set_xlabel("epiweek")
        ax_rate.set_xticks(x)
        ax_rate.set_xticklabels([str(w) for w in epiweeks], rotation=45, fontsize=8)
    else:
        outputs.format_date_axis(ax_rate, weeks=weeks)
        ax_rate.set_xlabel(f"date (ticks on Sundays, the first days of epiweeks {epiweeks[0]}..{epiweeks[-1]})")
    highest = np.nanmax(np.concatenate([np.ravel(rate), np.ravel(gradient_free_rate), [0.0]]))
    ax_rate.set_ylim(0, 1.15 * highest if highest > 0 else 1.0)  # the steps clear of the frame
    outputs.legend_outside(ax_rate, fontsize=8)
    fig.tight_layout()
    outputs.save_figure(fig, path)
    return fig


def run(args) -> int:
    """The run the parsed options ask for; 0 on success."""
    enable_compile_cache(args.compile_cache)
    wall_start = time.perf_counter()
    names = check_settings(args)
    llm_options.check_llm_arguments(args)
    frame = nyc_cases.load_weekly_cases(args.cases)
    observed_cases, start, prev = fit_window(args.nta, args.start_week, args.train_weeks + args.test_weeks, frame)
    people = census_people(args.nta)
    train, test = args.train_weeks, args.test_weeks
    total = train + test
    out = Path(args.out)

    # Population.
    progress.now("building the population")
    build_start = time.perf_counter()
    population = build_population(args, people)
    build_seconds = time.perf_counter() - build_start
    n = population.size
    print(f"population: {n:,} agents, {population.num_contacts:,} contacts "
          f"({', '.join(f'{k}: {v.num_edges:,}' for k, v in population.networks.items())})")
    stages = population.initial_states.get("disease_stage")
    if stages is not None and any(name.startswith("initial_") for name in names):
        raise InputError(
            f"--fit {args.fit!r}: initial shares have no effect, the population's disease_stages.csv sets day 0"
        )

    # Observed cases, scaled to the agents when they stand for fewer people than the census.
    case_scale = min(1.0, n / people)
    window = slice(start, start + total)
    reported = observed_cases.cases[window].astype(np.float64)
    observed = reported * case_scale
    epiweeks = [int(w) for w in observed_cases.epiweeks[window]]
    cases_with_prev = np.concatenate([[observed_cases.cases[prev]], reported]) * case_scale
    mobility_with_prev = np.concatenate([observed_cases.mobility[prev : prev + 1], observed_cases.mobility[window]])

    # Behaviour: the heuristic, or a language model's answers along a forward run with the
    # starting parameters, held fixed while the fit moves R(t) and each archetype's alignment.
    layer, groups, table = None, "age", None
    if args.behavior != "heuristic":
        area_names = nyc_cases.neighbourhood_names([args.nta], frame)
        grouping = behaviour.group_agents(population, llm_options.archetype_attributes(args))
        layer = behaviour.BehaviourLayer(
            policy=covid.ISOLATION_POLICY, grouping=grouping, backend=llm_options.backend_from_args(args),
            options={"neighbourhood": area_names[args.nta], "area_names": area_names,
                     "ascertainment": args.ascertainment},
            settings=llm_options.sampling_from_args(args), samples=args.llm_samples,
        )
        population = behaviour.with_group_attribute(population, grouping)
        groups, table = behaviour.ARCHETYPE_ATTRIBUTE, np.zeros((total, grouping.num_groups), np.float32)
    model = covid.covid_model(policy="heuristic" if layer is None else "inputs")

    # World, parameters and initial conditions from the start week's cases.
    setup = covid_setup(population, CaseWindow(observed_cases, start, people, float(n)), total,
                        ascertainment=args.ascertainment, isolation_groups=groups, isolation_prob=table,
                        on_device=False)
    world, params, initial_source = setup.world, setup.params, setup.initial_source
    memory.check_fits(
        memory.run_bytes(model, params, world, 7 * total, differentiable=True), f"calibrating {n:,} agents"
    )
    world = to_device(world)
    if layer is not None:
        print(f"asking the model for {layer.grouping.num_groups} archetypes x {total} weeks")
        k_init, k_run = sampling.keys_from_seed(args.seed)
        answers = behaviour.run_with_behaviour(
            model, k_run, engine.initial_state(model, k_init, params, world), params, world, 7 * total, [layer])
        world = world.with_inputs(isolation_prob=jnp.asarray(answers.tables["isolation_prob"]))
    features = None
    if args.method == "network":
        features = calibration.weekly_features(mobility_with_prev, cases_with_prev, known_weeks=train)
    problem = calibration.CalibrationProblem(
        model=model, world=world, params=params, observed=observed, train_periods=train,
        observation=calibration.Observation("new_cases", 7, scale=args.ascertainment),
        estimator="straight_through", features=features,
    )

    # Gradient fit.
    print(f"fitting {', '.join(names)} ({args.method}) to {args.nta} epiweeks {epiweeks[0]}..{epiweeks[train - 1]}: "
          f"{args.steps} Adam steps x {args.seeds} seeds, {args.loss} loss")
    on_step = cli.fit_progress(args.steps)
    progress.now("compiling the fit (its first step)")

    network = calibration.WeeklyParameterNetwork() if args.method == "network" else None
    known = observed_cases.cases[: start + train].astype(np.float64) * case_scale
    history = known[np.isfinite(known)]
    dispersion = observation_dispersion(args, history)
    fit_options = dict(steps=args.steps, learning_rate=args.learning_rate, seeds_per_step=args.seeds,
                       loss=args.loss, network=network, on_step=on_step, smoothing=args.smoothing)
    if args.fits > 1:
        print(f"  an ensemble of {args.fits} fits: to the observed weeks, then to {args.fits - 1} bootstrap "
              "resamples of them")
    fits = forecasting.bootstrap_fits(problem, args.fits, names, dispersion=dispersion,
                                      seed=args.seed, **fit_options)
    result = fits[0]
    if result.stopped != "completed":
        print(f"warning: the fit {result.stopped}", file=sys.stderr)
    fallback = None
    if not all(np.all(np.isfinite(np.asarray(getattr(result.params, name)))) for name in names):
        # Should not happen (fit keeps finite parameters); if it does, forecast from the start.
        fallback = "the fitted parameters are not finite; the forecast uses the starting parameters"
        print(f"warning: {fallback}", file=sys.stderr)
        result.params = params
    forecast_params = (
        calibration.extend_last_week(result.params, train) if args.method == "params" else result.params
    )
    members = forecast_members(problem, [forecast_params] + [fit.params for fit in fits[1:]], args,
                               dispersion=dispersion)
    forecast = ensemble_summary(members)
    metrics = heldout_scores(members, observed, train)
    train_metrics = calibration.heldout_metrics(forecast["mean"][:train], observed[:train])

    # Baselines on the same split.
    persistence = calibration.persistence_forecast(observed[:train], test)
    persistence_metrics = calibration.heldout_metrics(persistence, observed[train:])
    # A point forecast: its WIS is its absolute error; it has no intervals to cover anything.
    persistence_metrics |= {"wis": float(np.mean(scoring.weighted_interval_score(persistence[None], observed[train:]))),
                            "coverage_50": None, "coverage_90": None}
    log_linear = forecasting.log_linear_forecast(history, test, weeks=4, seed=args.seed)
    log_linear_metrics = heldout_scores(np.concatenate([np.tile(observed[:train], (len(log_linear), 1)), log_linear],
                                                       axis=1), observed, train)
    free_label = {"nelder-mead": "Nelder-Mead", "cma-es": "CMA-ES"}[args.gradient_free]
    print(f"gradient-free baseline: {free_label} with {result.simulator_runs} simulator runs")
    with progress.Progress(free_label, total=result.simulator_runs, unit="runs") as shown:
        free = calibration.gradient_free_fit(
            problem, names, simulator_runs=result.simulator_runs, seeds_per_evaluation=args.seeds,
            loss=args.loss, seed=args.seed, method=args.gradient_free, smoothing=args.smoothing,
            on_evaluation=lambda runs, loss: shown.update(runs, loss=loss),
        )
    free_params = calibration.extend_last_week(free.params, train)
    free_members = forecast_members(problem, free_params, args, dispersion=dispersion)
    free_forecast = ensemble_summary(free_members)
    free_metrics = heldout_scores(free_members, observed, train)

    # Outputs: staged, so that a failure leaves no half-written set of files.
    rate = np.asarray(forecast_params.transmission_rate, np.float64)
    free_rate = np.asarray(free_params.transmission_rate, np.float64)
    info = {
        "scenario": "calibrate_covid",
        "arguments": vars(args),
        "nta": args.nta,
        "start_week": args.start_week,
        "train_weeks": train,
        "test_weeks": test,
        "epiweeks": epiweeks,
        "method": args.method,
        "forecast_method": args.forecast if args.method == "params" else "network",
        "fits": {
            "count": args.fits,
            "transmission_rate": [np.asarray(fit.params.transmission_rate, np.float64)[:train] for fit in fits],
            "note": "the first fit is to the observed weeks, the others to bootstrap resamples of them",
        },
        "forecast_settings": {
            "reversion": args.reversion, "anchor": args.anchor, "smoothing": args.smoothing,
            "observation_noise": args.observation_noise,
            "dispersion": dispersion,
        },
        "fit": list(names),
        "loss": args.loss,
        "steps": args.steps,
        "seeds": args.seeds,
        "learning_rate": args.learning_rate,
        "members": args.members,
        "seed": args.seed,
        "ascertainment": args.ascertainment,
        "model": model.name,
        "fitted_parameters": nyc_calibration.fitted_report(forecast_params, world, names),
        "initial_parameters": nyc_calibration.fitted_report(params, world, names),
        "transmission_rate_note": (
            "held-out weeks repeat the last fitted week's rate; the forecast's members follow their own paths "
            f"(--forecast {args.forecast})" if args.method == "params"
            else "every week's rate is the network's output for that week's features"
        ),
        "loss_curve": result.loss_curve,
        "seconds": result.seconds,
        "compile_seconds": result.compile_seconds,
        "stopped": result.stopped,
        "fallback": fallback,
        "behavior": args.behavior,
        "llm": None if layer is None else layer.report(),
        "simulator_runs": result.simulator_runs,
        "heldout_metrics": metrics,
        "train_metrics": train_metrics,
        "baselines": {
            "persistence": persistence_metrics | {"forecast": persistence},
            "log_linear": log_linear_metrics | {
                "forecast": ensemble_summary(log_linear),
                "method": "a line through log(cases + 1) of the last 4 known weeks, extrapolated; intervals from "
                          "its residuals (jaxsim.forecasting.log_linear_forecast)",
            },
            "gradient_free": free_metrics | {
                "method": args.gradient_free,
                "seconds": free.seconds,
                "simulator_runs": free.simulator_runs,
                "stopped": free.stopped,
                "fitted_parameters": nyc_calibration.fitted_report(free_params, world, names),
                "loss_curve": free.loss_curve,
                "forecast": free_forecast,
            },
        },
        "observed": observed,
        "observed_reported": reported,
        "case_scale": case_scale,
        "census_people": people,
        "forecast": forecast,
        "network": None if network is None else {
            "hidden": network.hidden,
            "features": features,
            "feature_names": [c.removesuffix("_change_week") for c in nyc_cases.MOBILITY_COLUMNS]
            + ["log1p(latest known cases) / 5"],
        },
        "initial_conditions": {
            "source": initial_source,
            "exposed_share": float(params.initial_exposed_share),
            "infected_share": float(params.initial_infected_share),
        },
        "population": population.summary() | {"build_seconds": build_seconds},
        "versions": outputs.package_versions(),
        "caches": caches.describe(),
        "total_seconds": time.perf_counter() - wall_start,
    }
    week_end = observed_cases.week_end[window]
    table = weekly_table(epiweeks=epiweeks, week_end=week_end, train_weeks=train, reported=reported,
                         observed=observed, forecast=forecast, persistence=persistence,
                         log_linear=ensemble_summary(log_linear), gradient_free=free_forecast, rate=rate,
                         gradient_free_rate=free_rate)
    title = (f"{args.nta}, {n:,} agents: fit {epiweeks[0]}..{epiweeks[train - 1]}, "
             f"held out {weeks_span(epiweeks[train], epiweeks[-1])}" + (f" (cases x {case_scale:.3g})" if case_scale < 1 else ""))
    progress.now("writing the outputs")
    with outputs.StagedOutputs(out) as stage:
        nyc_calibration.write_calibration(stage.path / "calibration.json", info)
        outputs.write_table(table, stage.path, "calibration")
        plot_fit(
            stage.path / "fit.png", epiweeks=epiweeks, observed=observed, train_weeks=train,
            forecast=forecast, persistence=persistence, gradient_free=free_forecast["mean"],
            rate=rate, gradient_free_rate=free_rate, method=args.method, title=title,
            week_starts=table["week_start"].to_numpy(),
        )
        write_report(stage.path, title=f"calibrate_covid: {title}", info=info, source="calibration.json")

    print(f"\nheld-out epiweeks {weeks_span(epiweeks[train], epiweeks[-1])} ({test} week{'s' if test > 1 else ''})")
    print(f"{'':<28}{'MAE':>10}{'RMSE':>10}{'ND':>8}{'WIS':>9}{'cov50':>7}{'cov90':>7}{'seconds':>10}{'runs':>7}")
    rows = [
        (f"gradient fit ({args.method})", metrics, result.seconds, result.simulator_runs),
        ("persistence", persistence_metrics, None, None),
        ("log-linear trend", log_linear_metrics, None, None),
        (f"gradient-free ({free_label})", free_metrics, free.seconds, free.simulator_runs),
    ]
    for label, m, seconds, runs in rows:
        cover = "".join("-".rjust(7) if m[k] is None else f"{m[k]:>7.0%}" for k in ("coverage_50", "coverage_90"))
        print(f"{label:<28}{m['mae']:>10.2f}{m['rmse']:>10.2f}{m['nd']:>8.3f}{m['wis']:>9.2f}{cover}"
              f"{'-' if seconds is None else f'{seconds:.1f}':>10}{'-' if runs is None else runs:>7}")
    if metrics["mae"] > persistence_metrics["mae"] or metrics["wis"] > persistence_metrics["wis"]:
        print(f"note: the fit forecasts the held-out weeks worse than last-value persistence "
              f"(MAE {metrics['mae']:.2f} vs {persistence_metrics['mae']:.2f}, "
              f"WIS {metrics['wis']:.2f} vs {persistence_metrics['wis']:.2f})")
    print(f"wrote {out / 'calibration.json'}, {out / 'calibration.csv'} (and .parquet), {out / 'fit.png'}, "
          f"{out / REPORT_FILE}")
    return 0


def main(argv=None) -> int:
    """Parse ``argv`` and run (errors propagate; ``jaxsim calibrate_covid`` and
    ``scenarios/calibrate_covid.py`` report them in one line)."""
    return command.execute("calibrate_covid", argv)
