"""The README's "Write your own model" code runs as written (on fewer agents), and its SIR
is the one ``jaxsim/scenarios/sir_network.py`` (``jaxsim sir_network``) runs."""

import re
from pathlib import Path

import numpy as np

from conftest import require_llama_cpp_or_skip

ROOT = Path(__file__).resolve().parents[1]


def section_blocks(title: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_write_your_own_model_runs(tmp_path, monkeypatch):
    require_llama_cpp_or_skip()
    monkeypatch.chdir(tmp_path)
    blocks = section_blocks("Write your own model")
    assert len(blocks) == 4
    model_code = blocks[0]
    assert len([line for line in model_code.splitlines() if line.strip()]) <= 30, "the SIR is at most 30 lines"
    namespace: dict = {}
    exec(model_code, namespace)
    exec(blocks[1].replace("n = 100_000", "n = 3_000"), namespace)
    assert namespace["table"]["new_infections"].sum() > 0 and (tmp_path / "sir.png").exists()
    assert (tmp_path / "out" / "sir" / "metrics.csv").exists()
    exec(blocks[2].replace("sim.ensemble(32)", "sim.ensemble(4)").replace("members=32", "members=4"), namespace)
    assert namespace["effect"]["differences"]["masks"]["new_infections"]["mean"] > 0
    assert namespace["fit"].stopped == "completed"
    exec(blocks[3], namespace)
    answers = np.asarray(namespace["run"].tables["caution"])
    assert answers.shape == (4, 1) and np.all((answers >= 0) & (answers <= 1))


def test_the_scenario_runs_the_readme_model():
    scenario = (ROOT / "jaxsim" / "scenarios" / "sir_network.py").read_text()
    model = scenario.split("# --- the user's model: README \"Write your own model\"")[1].split("\n", 1)[1]
    model = model.split("# --- end of")[0]
    readme = section_blocks("Write your own model")[0]

    def code(text):
        return [line.rstrip() for line in text.splitlines() if line.strip() and not line.startswith("#")]

    assert code(model) == code(readme)
