"""The persistent compilation cache of the scenario scripts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaxsim import compile_cache

ROOT = Path(__file__).resolve().parents[1]


def test_cache_folder_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.delenv("JAXSIM_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert compile_cache.resolve_cache_dir() == Path.home() / ".cache" / "jaxsim" / "xla"
    monkeypatch.setenv("JAXSIM_CACHE_DIR", str(tmp_path / "root"))  # the one root of every cache
    assert compile_cache.resolve_cache_dir() == tmp_path / "root" / "xla"
    monkeypatch.setenv(compile_cache.ENVIRONMENT_VARIABLE, str(tmp_path / "env"))
    assert compile_cache.resolve_cache_dir() == tmp_path / "env"
    assert compile_cache.resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert compile_cache.resolve_cache_dir("off") is None
    monkeypatch.setenv(compile_cache.ENVIRONMENT_VARIABLE, "OFF")
    assert compile_cache.resolve_cache_dir() is None


def test_unusable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="a_file.*cannot be created"):
        compile_cache.enable_compile_cache(blocker / "cache")


def test_scenario_fills_the_cache_and_reuses_it(tmp_path):
    cache = tmp_path / "xla"
    env = {**os.environ, compile_cache.ENVIRONMENT_VARIABLE: str(cache)}
    for name in ("first", "second"):
        done = subprocess.run(
            [sys.executable, str(ROOT / "scenarios" / "covid_nyc.py"), "--agents", "1000",
             "--days", "3", "--out", str(tmp_path / name), "--no-progress"],
            capture_output=True, text=True, timeout=300, env=env,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads((tmp_path / name / "run.json").read_text())["timing"]["compile_seconds"] > 0
        if name == "first":
            entries = set(os.listdir(cache))
            assert any("chunk" in e for e in entries), sorted(entries)[:5]
    # The second process found every program already compiled: no new cache entries.
    assert set(os.listdir(cache)) == entries
    # Same seed, same metrics, whether compiled or loaded from the cache.
    assert (tmp_path / "first" / "metrics.csv").read_text() == (tmp_path / "second" / "metrics.csv").read_text()
    done = subprocess.run(
        [sys.executable, str(ROOT / "scenarios" / "covid_nyc.py"), "--agents", "1000", "--days", "2",
         "--out", str(tmp_path / "off"), "--compile-cache", "off", "--no-progress"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr
    # A 2-day run compiles a program the cache does not hold; with the cache off it is
    # not written there.
    assert set(os.listdir(cache)) == entries
