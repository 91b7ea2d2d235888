"""Memory estimates and the refusal to allocate what does not fit."""

import jax
import numpy as np
import pytest

from jaxsim import memory
from jaxsim.models import covid
from jaxsim.population import EdgeList

from conftest import random_population


def test_world_estimate_matches_allocated_bytes():
    population = random_population(n=2999, seed=1)
    population.networks["weighted"] = EdgeList.from_pairs(
        np.arange(0, 100), np.arange(1, 101), weight=np.ones(100, np.float32)
    )
    world = covid.build_world(population)
    allocated = sum(leaf.nbytes for leaf in jax.tree.leaves(world))
    assert covid.estimate_world_bytes(population) == allocated


def test_run_estimate_grows_with_members_and_gradients():
    population = random_population(n=1000, seed=1)
    world = covid.build_world(population)
    params = covid.default_params(world, 4)
    model = covid.covid_model()
    one = memory.run_bytes(model, params, world, 28)
    assert memory.run_bytes(model, params, world, 28, members=10) > 5 * (one - covid.estimate_world_bytes(population))
    assert memory.run_bytes(model, params, world, 28, differentiable=True) > one


def test_refuses_with_estimate_and_capacity(monkeypatch):
    with pytest.raises(memory.InsufficientMemoryError, match=r"needs about 1\.00 GiB .* has 0\.50 GiB available"):
        memory.check_fits(2**30, "a test run", capacity=2**29)
    memory.check_fits(2**20, "a small run", capacity=2**30)  # fits: no error
    population = random_population(n=500, seed=1)
    monkeypatch.setattr(memory, "device_capacity_bytes", lambda device=None: 1000)
    with pytest.raises(memory.InsufficientMemoryError, match="contact graph of 500 agents"):
        covid.build_world(population)


def test_capacity_is_known_on_this_machine():
    capacity = memory.device_capacity_bytes()
    assert capacity is None or capacity > 2**26


def test_scenario_refuses_cleanly(monkeypatch, tmp_path, capsys):
    from pathlib import Path

    from conftest import load_script
    from jaxsim import cli

    scenario = load_script(Path(__file__).resolve().parents[1] / "scenarios" / "covid_nyc.py")
    monkeypatch.setattr(memory, "device_capacity_bytes", lambda device=None: 10_000)
    code = cli.run_cli(scenario.main, ["--agents", "800", "--days", "3", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "error: a run of 800 agents needs about" in err and "available" in err
    assert not (tmp_path / "o").exists()
