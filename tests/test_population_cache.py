"""The on-disk cache of synthetic populations (jaxsim.nyc.cli.cached_synthetic_population)."""

import argparse
import warnings
from pathlib import Path

import numpy as np
import pytest

from jaxsim.nyc import cli, synthesis

NTAS = ["QN0103"]
SMALL = 2000  # agents: Astoria capped, fast to build


def assert_same_population(a, b):
    assert a.size == b.size
    assert a.labels == b.labels
    assert sorted(a.attributes) == sorted(b.attributes)
    for name in a.attributes:
        np.testing.assert_array_equal(a.attributes[name], b.attributes[name], err_msg=name)
        assert a.attributes[name].dtype == b.attributes[name].dtype, name
    assert list(a.networks) == list(b.networks)  # same layer order, not only the same layers
    for name in a.networks:
        x, y = a.networks[name], b.networks[name]
        np.testing.assert_array_equal(x.u, y.u, err_msg=name)
        np.testing.assert_array_equal(x.v, y.v, err_msg=name)
        assert (x.weight is None) == (y.weight is None)
    strip = lambda m: {k: v for k, v in m.items() if k != "source"}  # noqa: E731
    assert strip(a.metadata) == strip(b.metadata)


def entries(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def test_second_call_loads_the_cached_population(tmp_path):
    first = cli.cached_synthetic_population(NTAS, seed=3, max_agents=SMALL, cache_dir=tmp_path)
    assert "source" not in first.metadata  # built, not loaded
    assert "population_cache_key" not in first.metadata
    (entry,) = entries(tmp_path)
    assert (entry / "agents.csv").is_file()
    second = cli.cached_synthetic_population(NTAS, seed=3, max_agents=SMALL, cache_dir=tmp_path)
    assert second.metadata["source"] == str(entry)  # read from the cache entry
    assert not any(k.startswith("population_cache") for k in second.metadata)
    assert list(second.networks) == ["household", "community"]  # the build's order, not by name
    assert_same_population(second, first)
    assert_same_population(second, synthesis.synthesize_nyc_population(NTAS, seed=3, max_agents=SMALL))
    assert entries(tmp_path) == [entry]


def test_arguments_select_separate_entries(tmp_path):
    cli.cached_synthetic_population(NTAS, seed=3, max_agents=SMALL, cache_dir=tmp_path)
    cli.cached_synthetic_population(NTAS, seed=4, max_agents=SMALL, cache_dir=tmp_path)
    cli.cached_synthetic_population(NTAS, seed=3, max_agents=SMALL + 8, cache_dir=tmp_path)
    sized = cli.cached_synthetic_population(agents=SMALL, seed=3, cache_dir=tmp_path)
    assert len(entries(tmp_path)) == 4
    assert_same_population(sized, synthesis.synthesize_population_of_size(SMALL, seed=3))
    keys = {
        cli.synthetic_cache_key(NTAS, seed=3, max_agents=SMALL),
        cli.synthetic_cache_key(NTAS, seed=4, max_agents=SMALL),
        cli.synthetic_cache_key("all", seed=3),
        cli.synthetic_cache_key(agents=SMALL, seed=3),
    }
    assert len(keys) == 4
    assert len(cli.synthesis_version()) == 64 and cli.synthesis_version() == cli.synthesis_version()


@pytest.mark.parametrize("damage", ["garbage agents", "missing mapping", "foreign key"])
def test_damaged_entry_is_rebuilt_with_a_warning(tmp_path, damage):
    first = cli.cached_synthetic_population(NTAS, seed=5, max_agents=SMALL, cache_dir=tmp_path)
    (entry,) = entries(tmp_path)
    if damage == "garbage agents":
        (entry / "agents.csv").write_text("agent_id,age\n0,zebra\n")
    elif damage == "missing mapping":
        (entry / "mapping.json").unlink()
    else:
        text = (entry / "population.json").read_text()
        (entry / "population.json").write_text(text.replace('"population_cache_key": "', '"population_cache_key": "x'))
    with pytest.warns(UserWarning, match=f"population cache entry {entry} is unusable"):
        rebuilt = cli.cached_synthetic_population(NTAS, seed=5, max_agents=SMALL, cache_dir=tmp_path)
    assert_same_population(rebuilt, first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten entry loads cleanly
        again = cli.cached_synthetic_population(NTAS, seed=5, max_agents=SMALL, cache_dir=tmp_path)
    assert again.metadata["source"] == str(entry)
    assert_same_population(again, first)


def test_unwritable_cache_warns_and_still_returns_the_population(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="cannot write population cache entry"):
        population = cli.cached_synthetic_population(NTAS, seed=1, max_agents=SMALL, cache_dir=blocker)
    assert population.size == SMALL


def test_cache_folder_precedence_and_off(monkeypatch, tmp_path):
    monkeypatch.delenv(cli.POPULATION_CACHE_ENV, raising=False)
    monkeypatch.delenv("JAXSIM_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cli.population_cache_dir() == Path.home() / ".cache" / "jaxsim" / "populations"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cli.population_cache_dir() == tmp_path / "xdg" / "jaxsim" / "populations"
    monkeypatch.setenv(cli.POPULATION_CACHE_ENV, str(tmp_path / "env"))
    assert cli.population_cache_dir() == tmp_path / "env"
    assert cli.population_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.setenv(cli.POPULATION_CACHE_ENV, "OFF")
    assert cli.population_cache_dir() is None
    population = cli.cached_synthetic_population(NTAS, seed=1, max_agents=SMALL)
    assert population.size == SMALL and not (tmp_path / "env").exists()


def test_scenario_arguments_use_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(cli.POPULATION_CACHE_ENV, str(tmp_path / "cache"))
    parser = argparse.ArgumentParser()
    cli.add_population_arguments(parser)
    args = parser.parse_args(["--agents", str(SMALL), "--compile-cache", "off"])
    built = cli.population_from_args(args, seed=2)
    loaded = cli.population_from_args(args, seed=2)
    assert loaded.metadata["source"].startswith(str(tmp_path / "cache"))
    assert_same_population(loaded, built)
    args = parser.parse_args(["--ntas", "QN0103,QN0105", "--compile-cache", "off"])
    first = cli.population_from_args(args, seed=2)
    assert len(entries(tmp_path / "cache")) == 2
    assert cli.population_from_args(args, seed=2).metadata["source"].startswith(str(tmp_path / "cache"))
    assert first.labels["area"] == ["QN0103", "QN0105"]
