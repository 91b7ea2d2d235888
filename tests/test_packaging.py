"""``pip install .`` gives everything a user runs without a clone: the ``jaxsim`` command,
the scenario programs and the data the default run reads."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_command_the_programs_and_the_data(tmp_path):
    # Built from a copy of what a fresh clone has (an editable install's jaxsim.egg-info
    # would otherwise add the files it lists, hiding a package missing from pyproject.toml).
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("jaxsim", "kernels"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=600,
    )
    wheel, = tmp_path.glob("jaxsim-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for program in ("command", "arguments", "covid_nyc", "calibrate_covid", "counterfactual_isolation",
                    "nyc_economy", "sir_network"):
        assert f"jaxsim/scenarios/{program}.py" in names, program
    assert "jaxsim/__main__.py" in names and "jaxsim/kernels/neighbour_sums.py" in names
    for data in ("weekly_cases_mobility_by_neighborhood.csv", "households_by_nta.csv", "default_fit_QN0103.json",
                 "monthly_unemployment_by_borough.csv", "monthly_ui_claims_by_borough.csv"):
        assert f"jaxsim/nyc/data/{data}" in names, data
    from jaxsim.scenarios.arguments import AGENCY_PUBLISHED

    for name in AGENCY_PUBLISHED:  # the published limits-of-agency studies (replayed with no model)
        for file in ("config.toml", "answers.jsonl", "study.csv"):
            assert f"jaxsim/scenarios/published/agency_study_{name}/{file}" in names, (name, file)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "jaxsim = jaxsim.scenarios.command:main" in text
    # Every package of the source tree is in the wheel (a new subpackage not listed in
    # pyproject.toml would be left out silently).
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "jaxsim").rglob("__init__.py")}
    for package in packages:
        assert f"{package}/__init__.py" in names, package
