"""The layers of the code import in one direction only:

    scenarios (jaxsim.scenarios) -> jaxsim.nyc -> jaxsim.models -> jaxsim (core) -> jaxsim.kernels

A core module imports no model and no NYC code; a model imports no NYC code; a kernel
imports nothing of jaxsim but other kernels; one model package does not import another
(models meet through declared bridges, :func:`jaxsim.coupling.compose`). Every import
statement counts, also those inside functions.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Layer of a module by its dotted name, lowest first.
LAYERS = ("kernels", "core", "models", "nyc", "scenarios")


def module_name(path: Path, root: Path = ROOT) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = list(relative.parts)
    if parts[0] == "kernels":
        parts = ["jaxsim", "kernels"] + parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(name: str) -> str | None:
    if name.startswith("jaxsim.kernels"):
        return "kernels"
    if name.startswith("jaxsim.models"):
        return "models"
    if name.startswith("jaxsim.nyc"):
        return "nyc"
    if name.startswith("scenarios") or name.startswith("jaxsim.scenarios") or name == "jaxsim.__main__":
        return "scenarios"
    if name == "jaxsim" or name.startswith("jaxsim."):
        return "core"
    return None


def model_package(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["jaxsim", "models"] else None


def imports_of(path: Path, name: str) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in the file (relative ones resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            found.append((node.lineno, base))
            for alias in node.names:  # "from jaxsim import covid" imports jaxsim.covid
                found.append((node.lineno, f"{base}.{alias.name}"))
    return found


def sources(root: Path = ROOT):
    files = sorted((root / "jaxsim").rglob("*.py")) + sorted((root / "kernels").rglob("*.py"))
    files += sorted((root / "scenarios").glob("*.py"))
    return files


def violations(root: Path = ROOT) -> list[str]:
    problems = []
    for path in sources(root):
        name = module_name(path, root)
        own = layer_of(name)
        for line, imported in imports_of(path, name):
            target = layer_of(imported)
            if target is None or target == own:
                if own == "models" and target == "models":
                    mine, theirs = model_package(name), model_package(imported)
                    if theirs is not None and mine is not None and mine != theirs:
                        problems.append(f"{path.relative_to(root)}:{line}: model {mine} imports model {theirs} "
                                        f"({imported})")
                continue
            if LAYERS.index(target) > LAYERS.index(own):
                problems.append(f"{path.relative_to(root)}:{line}: {own} imports {target} ({imported})")
    return problems


def test_imports_point_down_only():
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path):
    """A core module importing a model, a kernel importing the core, a model importing NYC
    code and a model importing another model are each reported (the check is not vacuous)."""
    fake = tmp_path / "repo"
    (fake / "jaxsim" / "models" / "a").mkdir(parents=True)
    (fake / "jaxsim" / "models" / "b").mkdir(parents=True)
    (fake / "jaxsim" / "nyc").mkdir(parents=True)
    (fake / "kernels").mkdir()
    (fake / "scenarios").mkdir()
    (fake / "jaxsim" / "__init__.py").write_text("")
    (fake / "jaxsim" / "engine.py").write_text("def f():\n    from jaxsim.models import covid\n")
    (fake / "kernels" / "k.py").write_text("from jaxsim.engine import World\n")
    (fake / "jaxsim" / "models" / "a" / "__init__.py").write_text("from jaxsim.nyc import boroughs\n")
    (fake / "jaxsim" / "models" / "b" / "__init__.py").write_text("from jaxsim.models.a import x\n")
    (fake / "jaxsim" / "nyc" / "__init__.py").write_text("from jaxsim.models import a\n")
    (fake / "scenarios" / "s.py").write_text("from jaxsim.nyc import setup\n")
    found = violations(fake)
    assert any("engine.py" in v and "core imports models" in v for v in found), found
    assert any("kernels/k.py" in v and "kernels imports core" in v for v in found), found
    assert any("models/a/__init__.py" in v and "models imports nyc" in v for v in found), found
    assert any("model b imports model a" in v for v in found), found
    assert not any("nyc/__init__.py" in v or "scenarios/s.py" in v for v in found), found


def test_curated_surface_imports_cheaply_and_names_resolve():
    import subprocess
    import sys

    code = ("import sys, jaxsim; assert 'jax' not in sys.modules, 'import jaxsim pulled in jax'; "
            "names = [getattr(jaxsim, n) for n in jaxsim.__all__]; print(len(names))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= 15


@pytest.mark.parametrize("name", ["Model", "Sim", "params", "param", "neighbour_sum", "bernoulli", "compose"])
def test_public_names(name):
    import jaxsim

    assert getattr(jaxsim, name) is not None
