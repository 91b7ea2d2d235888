"""The ``jaxsim`` command: subcommands, options without JAX, one-line errors, the output
folder checked first, config.toml and ``jaxsim run``, Ctrl-C, the cache root."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxsim import caches
from jaxsim.scenarios import arguments, command

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--agents", "1500", "--days", "3", "--no-progress"]


def jaxsim_command(*args, env=None, timeout=600):
    """``python -m jaxsim *args`` in a subprocess (the installed ``jaxsim`` runs the same
    ``jaxsim.scenarios.command.main``)."""
    return subprocess.run([sys.executable, "-m", "jaxsim", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_help_and_parsing_import_no_jax():
    code = (
        "import sys\n"
        "from jaxsim.scenarios import arguments, command\n"
        "for name in arguments.SCENARIOS:\n"
        "    arguments.build_parser(name).format_help()\n"
        "command.usage()\n"
        "heavy = [m for m in ('jax', 'numpy', 'pandas', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    result = jaxsim_command("--help")
    assert result.returncode == 0 and all(name in result.stdout for name in arguments.SCENARIOS)
    result = jaxsim_command("covid", "--help")
    assert result.returncode == 0 and "--days" in result.stdout and "--no-cache" in result.stdout


def test_parser_defaults_are_the_librarys():
    """The values the light option module writes out equal the library's own."""
    from jaxsim import calibration, forecasting
    from jaxsim.models import covid
    from jaxsim.models.labour import calibration as labour_calibration
    from jaxsim.nyc import cases

    assert arguments.DEFAULT_TRANSMISSION_RATE == covid.DEFAULT_TRANSMISSION_RATE
    assert arguments.DEFAULT_ASCERTAINMENT == cases.DEFAULT_ASCERTAINMENT
    assert arguments.GRADIENT_FREE_METHODS == tuple(calibration.GRADIENT_FREE_METHODS)
    assert arguments.LOSSES == tuple(sorted(calibration.LOSSES))
    assert arguments.COVID_FITTABLE == tuple(sorted(calibration.fittable(covid.CovidParams)))
    assert arguments.PARAMETER_FORECASTS == tuple(forecasting.PARAMETER_FORECASTS)
    assert arguments.LABOUR_DEFAULT_FIT == tuple(labour_calibration.DEFAULT_FIT)
    assert set(arguments.LABOUR_FITTABLE) == set(labour_calibration.LABOUR_FITTABLE)
    assert arguments.LABOUR_ALIGNMENT == tuple(labour_calibration.WILLINGNESS_ALIGNMENT)


@pytest.mark.parametrize("args, says", [
    (["covid", "--days", "0"], "--days must be >= 1, got 0"),
    (["covid", "--bogus"], "unrecognized arguments: --bogus"),
    (["sir", "--agents", "1"], "--agents must be >= 2, got 1"),
    (["nope"], "no scenario 'nope'"),
])
def test_argument_errors_are_one_line(args, says):
    result = jaxsim_command(*args)
    assert result.returncode == 2
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "usage:" not in result.stderr


def test_output_folder_checked_before_any_work(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    begin = time.perf_counter()
    result = jaxsim_command("covid", *SMALL, "--out", blocker)
    assert result.returncode == 2 and result.stderr.strip() == f"error: --out {blocker}: exists and is not a folder"
    assert "population" not in result.stdout  # refused before building anything
    result = jaxsim_command("covid", *SMALL, "--out", blocker / "below")
    assert result.returncode == 2 and "is a file, not a folder" in result.stderr
    assert time.perf_counter() - begin < 60


def test_config_toml_reruns_the_same_run(tmp_path):
    env = dict(os.environ, JAXSIM_CACHE_DIR=str(tmp_path / "cache"))
    first = tmp_path / "first"
    result = jaxsim_command("covid", *SMALL, "--seed", "3", "--transmission-rate", "3.1", "--out", first, env=env)
    assert result.returncode == 0, result.stderr
    config = first / "config.toml"
    assert config.is_file() and f"jaxsim run {config}" in result.stdout
    name, options = command.read_config(config)
    assert name == "covid_nyc" and options["seed"] == 3 and options["transmission_rate"] == 3.1
    again = tmp_path / "again"
    result = jaxsim_command("run", config, "--out", again, env=env)
    assert result.returncode == 0, result.stderr
    assert (first / "metrics.csv").read_bytes() == (again / "metrics.csv").read_bytes()
    assert command.read_config(again / "config.toml")[1] == options | {"out": str(again)}


def test_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text('scenario = "covid_nyc"\n[options]\nno_such_option = 1\n')
    result = jaxsim_command("run", bad)
    assert result.returncode == 2 and "no_such_option" in result.stderr and str(bad) in result.stderr
    bad.write_text("scenario = [")
    result = jaxsim_command("run", bad)
    assert result.returncode == 2 and "not valid TOML" in result.stderr
    result = jaxsim_command("run", tmp_path / "missing.toml")
    assert result.returncode == 2 and "no such config file" in result.stderr


def test_config_round_trip_of_every_scenario():
    """Every scenario's defaults turn into a command line that parses back to them."""
    for name in arguments.SCENARIOS:
        args = arguments.parse(name, [])
        values = command.config_values(args)
        argv = command.config_argv(name, {k: v for k, v in values.items() if v is not None})
        assert vars(arguments.parse(name, argv)) == vars(args), name


@pytest.mark.parametrize("wait_for", ["", "population:"])
def test_ctrl_c_says_one_line_and_writes_nothing(tmp_path, wait_for):
    """SIGINT while starting (importing JAX) and while running: exit 130, one line, no
    traceback, no output folder."""
    out = tmp_path / "out"
    env = dict(os.environ, JAXSIM_CACHE_DIR=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "jaxsim", "covid", "--agents", "20000", "--days", "3000", "--no-progress",
         "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    if wait_for:
        for line in process.stdout:
            if wait_for in line:
                break
        time.sleep(1.0)
    else:
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted; nothing written", stderr
    assert "Traceback" not in stderr
    assert not out.exists() or not any(p for p in out.iterdir() if not p.name.startswith("."))


def test_cache_root_and_no_cache(monkeypatch, tmp_path):
    for name in ("JAXSIM_CACHE_DIR", "XDG_CACHE_HOME", *caches._ALL):
        monkeypatch.delenv(name, raising=False)
    assert caches.cache_root() == Path.home() / ".cache" / "jaxsim"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert caches.cache_root() == tmp_path / "xdg" / "jaxsim"
    monkeypatch.setenv("JAXSIM_CACHE_DIR", str(tmp_path / "root"))
    where = caches.describe()
    assert where["compile"] == str(tmp_path / "root" / "xla")
    assert where["populations"] == str(tmp_path / "root" / "populations")
    assert where["llm"] == str(tmp_path / "root" / "llm_responses.sqlite")
    caches.disable_all()
    assert set(caches.describe().values()) == {str(tmp_path / "root"), "off"}


def test_no_cache_run_writes_no_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in caches._ALL} | {"JAXSIM_CACHE_DIR": str(tmp_path / "cache")}
    result = jaxsim_command("covid", *SMALL, "--no-cache", "--out", tmp_path / "out", env=env)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "cache").exists()
    result = jaxsim_command("covid", *SMALL, "--out", tmp_path / "out2", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cache" / "xla").is_dir() and (tmp_path / "cache" / "populations").is_dir()
