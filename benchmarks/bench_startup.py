#!/usr/bin/env python
"""Wall time of whole commands, as a user waits for them: ``--help``, and the default COVID
run cold (empty cache folder) and warm (its compiled programs and population cached).

    python benchmarks/bench_startup.py [--repeats 3] [--command covid_nyc] [--extra "--days 21"]
                                       [--tree DIR --script scenarios/covid_nyc.py]

Each command runs in a fresh process (``python -m jaxsim ...``), ``--repeats`` times; the
table gives the median and the fastest wall seconds. "cold" runs use a new, empty
``JAXSIM_CACHE_DIR`` each time (nothing compiled, no population cached); "warm" runs share
one folder filled by a first, untimed run. Where the time goes in one warm run is printed
after the table (``python -X importtime`` for imports; the run's own timing from
``run.json``).

``--tree DIR --script PATH`` times another checkout (e.g. an older commit, made with
``git worktree add DIR COMMIT``) by running ``python DIR/PATH`` with ``DIR`` first on
``PYTHONPATH``: the before of a before/after. The caches are set by their single variables
(``JAXSIM_COMPILE_CACHE``, ``JAXSIM_POPULATION_CACHE``), which every version reads.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str], env: dict, cwd: Path = ROOT) -> float:
    begin = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - begin
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--command", default="covid_nyc", help="scenario to time (default covid_nyc)")
    parser.add_argument("--extra", default="", help="options added to the scenario's command line")
    parser.add_argument("--tree", help="another checkout to time (with --script)")
    parser.add_argument("--script", help="the script of --tree to run, e.g. scenarios/covid_nyc.py")
    args = parser.parse_args(argv)
    tree = Path(args.tree).resolve() if args.tree else ROOT

    base_env = {k: v for k, v in os.environ.items()
                if k not in ("JAXSIM_COMPILE_CACHE", "JAXSIM_POPULATION_CACHE", "JAXSIM_LLM_CACHE")}
    if args.tree:
        base_env["PYTHONPATH"] = os.pathsep.join([str(tree), base_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    work = Path(tempfile.mkdtemp(prefix="bench_startup-"))
    out = work / "out"
    program = [sys.executable, str(tree / args.script)] if args.script else [sys.executable, "-m", "jaxsim",
                                                                              args.command]
    run = [*program, "--out", str(out), "--no-progress", *shlex.split(args.extra)]
    rows = []

    def caches(root: Path) -> dict:
        return dict(base_env, JAXSIM_CACHE_DIR=str(root), JAXSIM_COMPILE_CACHE=str(root / "xla"),
                    JAXSIM_POPULATION_CACHE=str(root / "populations"))

    def row(name: str, times: list[float]) -> None:
        rows.append((name, statistics.median(times), min(times), len(times)))
        print(f"  {name}: " + ", ".join(f"{t:.2f}" for t in times) + " s", flush=True)

    env = caches(work / "unused")
    name = args.script or f"jaxsim {args.command}"
    if not args.script:
        row("jaxsim --help", [timed([sys.executable, "-m", "jaxsim", "--help"], env) for _ in range(args.repeats)])
    row(f"{name} --help", [timed([*program, "--help"], env, tree) for _ in range(args.repeats)])
    row("python -c 'import jax'", [timed([sys.executable, "-c", "import jax"], env) for _ in range(args.repeats)])
    row(f"{name} cold (empty cache)", [timed(run, caches(work / f"cold{i}"), tree) for i in range(args.repeats)])
    warm_env = caches(work / "warm")
    timed(run, warm_env, tree)  # fills the cache
    row(f"{name} warm (cached)", [timed(run, warm_env, tree) for _ in range(args.repeats)])

    print(f"\n{'command':<44} {'median s':>9} {'best s':>8} {'runs':>5}")
    print("-" * 69)
    for label, median, best, count in rows:
        print(f"{label:<44} {median:>9.2f} {best:>8.2f} {count:>5}")

    # Where one warm run's time goes.
    info = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    timing = info.get("timing", {})
    if timing:
        print(f"\none warm run: compile {timing.get('compile_seconds', 0):.2f} s, run {timing.get('run_seconds', 0):.3f} s, "
              f"population build {info.get('population', {}).get('build_seconds', 0):.2f} s")
    module = f"jaxsim.scenarios.{args.command}" if not args.script else "jaxsim.models.covid"
    trace = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                           env=warm_env, cwd=tree, capture_output=True, text=True).stderr
    tops = {}
    for line in trace.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].startswith("   ") and not parts[2].startswith("    "):
            tops[parts[2].strip()] = int(parts[1]) / 1e6
    if tops:
        print("imports of the program (seconds, largest first): "
              + ", ".join(f"{name} {seconds:.2f}" for name, seconds in sorted(tops.items(), key=lambda x: -x[1])[:8]))
    print(f"\nmachine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
