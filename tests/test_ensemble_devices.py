"""Ensemble members spread over several devices (``run_ensemble(devices=...)``).

The suite runs with one CPU device; the runs on 2 and 3 devices happen in a subprocess
started with XLA_FLAGS=--xla_force_host_platform_device_count=3 (the flag must be set
before JAX starts), which is this file run as a script: ``python
tests/test_ensemble_devices.py OUT.npz``. It saves every ensemble and the members' single
runs; the tests compare them here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HOST_DEVICES = 3
DAYS = 14
#: ``(devices, batch_size)`` of the ensembles the script runs; 10 members: with 3 devices
#: and 2 per device the last call is padded.
CONFIGS = ((1, None), (2, None), (3, 2), (None, None))


def _setting():
    import jax

    from conftest import random_population
    from jaxsim import ensemble
    from jaxsim import interventions as iv
    from jaxsim.models import covid

    population = random_population(2000, seed=31)
    world = covid.build_world(population)
    params = covid.default_params(
        world, 2, contact_normaliser=covid.default_contact_normaliser(world),
        initial_exposed_share=0.01, initial_infected_share=0.01, transmission_rate=4.0,
    )
    sets = [params.replace(interventions=iv.combine(covid.scale_contacts("community", scale, start=5)))
            for scale in (1.0, 0.3)]
    batch, keys, members = ensemble.cross(sets, ensemble.member_keys(9, 5), ["baseline", "closed"])
    return jax, covid, ensemble, world, sets, batch, keys, members


def _run_configs(out: Path) -> None:
    jax, covid, ensemble, world, sets, batch, keys, members = _setting()
    from jaxsim import engine, sharding

    saved = {}
    for devices, batch_size in CONFIGS:
        result = ensemble.run_ensemble(covid.covid_model(), keys, batch, world, DAYS, devices=devices,
                                       batch_size=batch_size, members=members)
        tag = f"d{devices}_b{batch_size}"
        saved[f"{tag}_devices"] = result.devices
        saved[f"{tag}_batch"] = result.batch_size
        for name, values in result.metrics.items():
            saved[f"{tag}_{name}"] = values
    model = covid.covid_model()
    for member in range(keys.shape[0]):
        init_key, run_key = jax.random.split(keys[member])
        params = sets[member // 5]
        state = covid.initial_state(init_key, params, world)
        _, metrics = jax.jit(engine.simulate, static_argnums=(0, 5))(model, run_key, state, params, world, DAYS)
        for name, values in metrics.items():
            saved[f"single{member}_{name}"] = np.asarray(values)
    # A world split over the devices keeps its members on one device.
    split = sharding.shard_world(world, sharding.make_mesh(2))
    try:
        ensemble.run_ensemble(covid.covid_model(), keys[:2], sets[0], split, 3, devices=2)
    except ensemble.EnsembleError as err:
        saved["split_world_error"] = str(err)
    default = ensemble._ensemble_devices(None, split, 4)
    saved["split_world_default_devices"] = len(default)
    np.savez(out, **saved)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ensemble_devices") / "runs.npz"
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={HOST_DEVICES}".strip()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, __file__, str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(np.load(out))


@pytest.mark.parametrize("devices, batch_size", CONFIGS)
def test_members_on_several_devices_equal_their_single_runs(runs, devices, batch_size):
    tag = f"d{devices}_b{batch_size}"
    expected_devices = HOST_DEVICES if devices is None else devices
    assert int(runs[f"{tag}_devices"]) == expected_devices
    if batch_size is not None:
        assert int(runs[f"{tag}_batch"]) == batch_size
    names = [k[len(tag) + 1:] for k in runs if k.startswith(tag) and k not in (f"{tag}_devices", f"{tag}_batch")]
    assert "new_infections" in names
    for member in range(10):
        for name in names:
            np.testing.assert_array_equal(runs[f"{tag}_{name}"][member], runs[f"single{member}_{name}"],
                                          err_msg=f"{tag} member {member} {name}")


def test_a_world_split_over_devices_keeps_members_on_one(runs):
    assert "split over 2 devices" in str(runs["split_world_error"])
    assert int(runs["split_world_default_devices"]) == 1


def test_device_counts_are_checked():
    import jax

    from jaxsim import ensemble
    from jaxsim.models import covid
    from conftest import random_population

    population = random_population(300, seed=3)
    world = covid.build_world(population)
    params = covid.default_params(world, 1, contact_normaliser=covid.default_contact_normaliser(world))
    keys = ensemble.member_keys(0, 2)
    available = jax.local_device_count()
    for bad, message in [(available + 1, "between 1 and the"), (0, "between 1 and the"),
                         (True, "whole number"), (1.5, "whole number")]:
        with pytest.raises(ensemble.EnsembleError, match=message):
            ensemble.run_ensemble(covid.covid_model(), keys, params, world, 2, devices=bad)
    if jax.default_backend() == "cpu":
        with pytest.raises(ensemble.EnsembleError, match="xla_force_host_platform_device_count"):
            ensemble.run_ensemble(covid.covid_model(), keys, params, world, 2, devices=available + 1)
    result = ensemble.run_ensemble(covid.covid_model(), keys, params, world, 2)
    assert result.devices == min(available, 2)


if __name__ == "__main__":
    _run_configs(Path(sys.argv[1]))
