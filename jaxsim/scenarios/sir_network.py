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

Outputs (in ``--out``, default ``out/sir_network``): ``metrics.csv`` (and the same table
as ``metrics.parquet``) and ``run.json`` (:meth:`jaxsim.sim.Result.save`), ``sir.png``,
``ensemble.csv`` and ``ensemble.parquet`` with ``--members``, and ``report.html`` (one
page: the plot, the key numbers, links to the files; :mod:`jaxsim.report`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from jaxsim.scenarios import arguments, command

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


def parse_args(argv=None):
    """The options of this scenario (:mod:`jaxsim.scenarios.arguments`)."""
    return arguments.parse("sir_network", argv)


def run(args) -> int:
    """The run the parsed options ask for; 0 on success."""
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
        totals_of_members = members.totals("new_infections") / args.agents
        print(f"{args.members} members: final size {totals_of_members.mean():.1%} "
              f"(5-95%: {jnp.quantile(totals_of_members, 0.05):.1%}-{jnp.quantile(totals_of_members, 0.95):.1%}); "
              f"{args.members / max(members.run_seconds, 1e-9):.2f} members/s")
    result.save(out)
    result.plot(out / "sir.png", metrics=["infected", "recovered", "new_infections"], title="SIR on a random network")
    from jaxsim import outputs
    from jaxsim.report import REPORT_FILE, write_report

    if bands is not None:
        outputs.write_table(bands, out, "ensemble")
    totals = {"infections": int(frame["new_infections"].sum()), "peak_infected": int(frame["infected"].max()),
              "peak_day": peak}
    if bands is not None:
        totals |= {"members": args.members, "final_size_mean": float(totals_of_members.mean())}
    write_report(out, title=f"sir_network: SIR on a random network, {args.agents:,} agents",
                 info={"scenario": "sir_network", "arguments": vars(args)} | result.info | {"totals": totals})
    print(f"wrote {out / 'metrics.csv'} (and .parquet), {out / 'run.json'}, {out / 'sir.png'}"
          + (f", {out / 'ensemble.csv'} (and .parquet)" if bands is not None else "") + f", {out / REPORT_FILE}")
    return 0


def main(argv=None) -> int:
    """Parse ``argv`` and run (errors propagate; ``jaxsim sir_network`` and
    ``scenarios/sir_network.py`` report them in one line)."""
    return command.execute("sir_network", argv)
