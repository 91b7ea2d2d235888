#!/usr/bin/env python
"""Are the library models' gradients right? Each estimator against finite differences.

    python benchmarks/bench_gradients.py                       # SIR, opinion, Schelling
    python benchmarks/bench_gradients.py --models sir --agents 1000000 --seeds 8
    python benchmarks/bench_gradients.py --estimators stochastic --step 0.1

For every model, loss and gradient estimator (:mod:`jaxsim.sampling`), one
:func:`jaxsim.gradcheck.check_gradients`: the autodiff gradient over ``--seeds`` keys
against common-random-number central differences (relative step ``--step``), per
parameter: both means with their standard errors, the relative error of autodiff, a
verdict (ok within 20%; biased when outside by more than two standard errors; else
uncertain) and the value-and-gradient time as a multiple of the forward run. The
problems (the initial state fixed, only the run differentiated):

- ``sir``: an SIR epidemic (:mod:`jaxsim.models.sir`) on an Erdos-Renyi graph (``--agents``,
  mean degree 10, 0.1% infectious on day 0), ``--days`` days; loss = the infections of the
  run (the sum of the ``new_infections`` flow: the status counts are integers, without gradient);
  parameters ``tau`` (0.06) and ``gamma`` (0.2).
- ``opinion``: Deffuant (:mod:`jaxsim.models.opinion`), the same graph, 30 days; loss =
  the final opinion variance; ``epsilon`` (0.3), ``mu`` (0.3), ``meeting_prob`` (0.8).
- ``schelling``: Schelling (:mod:`jaxsim.models.schelling`) on a grid of about ``--agents``
  / 10 cells, softness 0.05, 14 days; loss = total moves; ``threshold`` (0.3).

The table is what a model author needs before calibrating: which estimator gives the
right gradient for which parameter, at what cost. Forward values do not depend on the
estimator, so the finite differences are the same for every estimator of a model.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import jax
import jax.numpy as jnp

import jaxsim
from jaxsim import generators, gradcheck

ESTIMATORS = ("straight_through", "gumbel_softmax", "stochastic")


def random_graph(agents: int):
    """A population on one Erdos-Renyi contact layer, mean degree 10."""
    return generators.population(agents, {"contacts": generators.erdos_renyi(agents, 10.0, seed=0)})


def losses(model, params, world, days: int, reduce):
    """``loss_for(estimator)``: the loss ``reduce(metrics)`` of a ``days``-day run from one
    fixed initial state (only the run is differentiated)."""
    state = model.init(jax.random.key(1), params, world)

    def loss_for(estimator):
        def loss(key, p):
            _, metrics = jaxsim.simulate(model, key, state, p, world, days, estimator=estimator)
            return reduce(metrics)
        return loss

    return loss_for


def sir_problem(agents: int, days: int):
    from jaxsim.models import sir

    world = sir.build_world(random_graph(agents))
    params = sir.default_params(world, tau=0.06, gamma=0.2, initial_infected_share=0.001)
    # float32 flows carry the gradient (the status counts are integers)
    loss_for = losses(sir.sir_model(), params, world, days, lambda metrics: jnp.sum(metrics["new_infections"]))
    return "SIR, infections", params, ("tau", "gamma"), loss_for


def opinion_problem(agents: int, days: int):
    from jaxsim.models import opinion

    world = opinion.build_world(random_graph(agents))
    params = opinion.default_params(world, epsilon=0.3, mu=0.3, meeting_prob=0.8)
    loss_for = losses(opinion.opinion_model(), params, world, 30, lambda metrics: metrics["opinion_variance"][-1])
    return "opinion, final variance", params, ("epsilon", "mu", "meeting_prob"), loss_for


def schelling_problem(agents: int, days: int):
    from jaxsim.models import schelling

    side = max(int(math.sqrt(agents / 10)), 20)
    world = schelling.grid_world(side, side)
    params = schelling.default_params(world, threshold=0.3, softness=0.05)
    loss_for = losses(schelling.schelling_model(), params, world, 14,
                      lambda metrics: jnp.sum(metrics["moves"]).astype(jnp.float32))
    return f"Schelling {side}x{side}, total moves", params, ("threshold",), loss_for


PROBLEMS = {"sir": sir_problem, "opinion": opinion_problem, "schelling": schelling_problem}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="sir,opinion,schelling")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS))
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=60, help="SIR days")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--step", type=float, default=0.05, help="relative finite-difference step")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(PROBLEMS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {sorted(PROBLEMS)}")
    estimators = [e.strip() for e in args.estimators.split(",") if e.strip()]
    for estimator in estimators:
        jaxsim.sampling.check_estimator(estimator)

    print(f"backend {jax.default_backend()} ({jax.devices()[0]}); {args.seeds} seeds; relative step {args.step}")
    header = (f"| model, loss | estimator | parameter | autodiff | finite differences | rel. error | verdict "
              f"| grad / forward |")
    rows = [header, "| --- | --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for name in models:
        start = time.perf_counter()
        title, params, names, loss_for = PROBLEMS[name](args.agents, args.days)
        print(f"{title}: built in {time.perf_counter() - start:.1f} s", flush=True)
        for estimator in estimators:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", gradcheck.GradientWarning)
                report = gradcheck.check_gradients(loss_for(estimator), params, names, seeds=args.seeds,
                                                   relative_step=args.step, repeats=2)
            print(f"  {estimator}: {time.perf_counter() - start:.1f} s", flush=True)
            for c in report.coordinates:
                rows.append(
                    f"| {title} | {estimator} | {c.name} = {c.value:.3g} | {c.autodiff_mean:.4g} +- {c.autodiff_se:.2g} "
                    f"| {c.fd_mean:.4g} +- {c.fd_se:.2g} | {c.relative_error:.0%} | {c.verdict} "
                    f"| {report.cost_ratio:.2f}x |"
                )
    print()
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
