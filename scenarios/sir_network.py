#!/usr/bin/env python
"""A user's SIR model on a random contact network, a million agents by default.

    python scenarios/sir_network.py [--agents 1000000] [--degree 10] [--days 100]
                                    [--beta 0.05] [--gamma 0.1] [--members 0] [--seed 0] [--out DIR]

Methods
-------
Model. The SIR model of the README's "Write your own model", as a user writes it with
jaxsim's public API (the 30 lines between the markers below): each day a susceptible agent
with ``k`` infectious neighbours is infected with probability ``1 - (1 - beta)^k``, then
each infected agent recovers with probability ``gamma`` (a geometric infectious period of
mean ``1 / gamma`` days). Day 0 has a ``seed_share`` of agents infected.

Population. ``--agents`` agents on an Erdos-Renyi contact network of mean degree
``--degree`` (:func:`jaxsim.generators.erdos_renyi`).

Runs. One run, and with ``--members M`` an ensemble of ``M`` runs as one compiled ``vmap``
(quantile bands of the infected per day).

Outputs (in ``--out``, default ``out/sir_network``): ``metrics.csv`` and ``run.json``
(:meth:`jaxsim.sim.Result.save`), ``sir.png``, and ``ensemble.csv`` with ``--members``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# --- the user's model: README "Write your own model" ------------------------------------
import jax
import jax.numpy as jnp

import jaxsim


@jaxsim.params
class SIR:
    beta: jax.Array = jaxsim.param(0.05, bounds=(0, 1), fit_bounds=(0, 0.5), units="infection probability per contact per day")
    gamma: jax.Array = jaxsim.param(0.1, bounds=(0, 1), units="recovery probability per day")
    seed_share: jax.Array = jaxsim.param(1e-4, bounds=(0, 1), units="share of agents infected on day 0")


@jaxsim.state
class People:
    infected: jax.Array   # float32 [N]: 1 while infected
    recovered: jax.Array  # float32 [N]: 1 once recovered


def init(key, p, world):
    infected = jaxsim.bernoulli(key, jnp.full(world.num_slots, p.seed_share)) * world.real_agents()
    return People(infected=infected, recovered=jnp.zeros_like(infected))


def infect(key, s, p, t, world):
    k = jaxsim.neighbour_sum(s.infected, world.graph)  # infectious neighbours of each agent
    susceptible = world.real_agents() * (1 - s.infected) * (1 - s.recovered)
    new = jaxsim.bernoulli(key, susceptible * (1 - (1 - p.beta) ** k))
    return s.replace(infected=s.infected + new), {"new_infections": new.sum()}


def recover(key, s, p, t, world):
    done = jaxsim.bernoulli(key, s.infected * p.gamma)
    return s.replace(infected=s.infected - done, recovered=s.recovered + done), {"recoveries": done.sum()}


def counts(s, p, world):
    return {"infected": s.infected.sum(), "recovered": s.recovered.sum()}


sir = jaxsim.Model("sir", [infect, recover], init=init, observe=counts, params_type=SIR)
# --- end of the user's model -------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1_000_000, help="agents (default 1,000,000)")
    parser.add_argument("--degree", type=float, default=10.0, help="mean contacts per agent (default 10)")
    parser.add_argument("--days", type=int, default=100, help="days to simulate (default 100)")
    parser.add_argument("--beta", type=float, default=0.05, help="infection probability per contact per day")
    parser.add_argument("--gamma", type=float, default=0.1, help="recovery probability per day")
    parser.add_argument("--members", type=int, default=0, help="ensemble members (default 0: one run only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the network and the runs")
    parser.add_argument("--out", default="out/sir_network", help="output directory")
    args = parser.parse_args(argv)
    for flag, value, low in (("--agents", args.agents, 2), ("--days", args.days, 1), ("--members", args.members, 0)):
        if value < low:
            parser.error(f"{flag} must be >= {low}, got {value}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    begin = time.perf_counter()
    network = jaxsim.generators.erdos_renyi(args.agents, args.degree, seed=args.seed)
    population = jaxsim.generators.population(args.agents, {"contacts": network})
    print(f"population: {args.agents:,} agents, {network.num_edges:,} contacts "
          f"({time.perf_counter() - begin:.1f} s to build)")
    sim = jaxsim.Sim(sir, population, days=args.days, seed=args.seed, beta=args.beta, gamma=args.gamma)
    result = sim.run()
    timing = result.info["timing"]
    steps = args.agents * args.days
    print(f"simulated {args.days} days in {timing['run_seconds']:.2f} s (compile {timing['compile_seconds']:.1f} s, "
          f"{steps / max(timing['run_seconds'], 1e-9):,.0f} agent-steps/s)")
    frame = result.frame()
    peak = int(frame["infected"].idxmax())
    print(f"peak {int(frame['infected'].max()):,} infected on day {peak}; "
          f"{int(frame['new_infections'].sum()):,} infections in all "
          f"({frame['new_infections'].sum() / args.agents:.1%} of the agents)")
    bands = None
    if args.members:
        members = sim.ensemble(args.members)
        bands = members.quantiles(["infected", "new_infections"])
        totals = members.totals("new_infections") / args.agents
        print(f"{args.members} members: final size {totals.mean():.1%} "
              f"(5-95%: {jnp.quantile(totals, 0.05):.1%}-{jnp.quantile(totals, 0.95):.1%}); "
              f"{args.members / max(members.run_seconds, 1e-9):.2f} members/s")
    result.save(out)
    result.plot(out / "sir.png", metrics=["infected", "recovered", "new_infections"], title="SIR on a random network")
    if bands is not None:
        bands.to_csv(out / "ensemble.csv", index=False)
    print(f"wrote {out / 'metrics.csv'}, {out / 'run.json'}, {out / 'sir.png'}"
          + (f", {out / 'ensemble.csv'}" if bands is not None else ""))
    return 0


if __name__ == "__main__":
    from jaxsim import cli

    sys.exit(cli.run_cli(main))
