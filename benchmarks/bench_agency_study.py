#!/usr/bin/env python
"""The published limits-of-agency studies, run again from the answers shipped with jaxsim:
is the table reproduced bit for bit, and how long does the whole CPU-sized study take
with a warm LLM cache?

    python benchmarks/bench_agency_study.py [--published smollm2,qwen2.5-coder] [--out out/bench_agency]

For each published study (``jaxsim/scenarios/published/agency_study_<name>/``: its
``config.toml``, the model's ``answers.jsonl`` and its ``study.csv``) this runs
``jaxsim agency_study --published NAME`` in a fresh process (no model: every answer comes
from the shipped file), then compares the new ``study.csv`` with the shipped one, column
by column: the score columns must be equal bit for bit; the timing columns are the
machine's and are only reported. Prints one line per study: wall seconds of the whole
command (imports, populations, fits, forecasts, the unemployment half, outputs), the
rows, and whether every score matched. Exit status 1 when any score differs.

The first run on a machine also compiles the programs (the XLA compile cache then holds
them); ``--repeats 2`` times the second, warm run as well.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxsim.scenarios import agency_study  # noqa: E402
from jaxsim.scenarios.arguments import AGENCY_PUBLISHED  # noqa: E402

#: Columns that are the machine's, not the study's (never compared).
TIMING = ("wall_seconds", "llm_seconds", "simulator_seconds", "unemployment_wall_seconds", "calls_this_run",
          "cache_hits", "tokens_this_run", "unemployment_tokens_this_run")


def compare(shipped: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """The columns whose values differ (NaN equal to NaN), timing columns left out."""
    differ = []
    if list(shipped["architecture"]) != list(new["architecture"]):
        return ["architecture"]
    for column in shipped.columns:
        if column in TIMING:
            continue
        if column not in new.columns:
            differ.append(column)
            continue
        a, b = shipped[column].to_numpy(), new[column].to_numpy()
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            same = np.array_equal(a.astype(float), b.astype(float), equal_nan=True)
        else:
            same = np.array_equal(a.astype(str), b.astype(str))
        if not same:
            differ.append(column)
    return differ


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--published", default=",".join(AGENCY_PUBLISHED),
                        help=f"comma-separated published studies (default {','.join(AGENCY_PUBLISHED)})")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each (the first compiles)")
    parser.add_argument("--out", default="out/bench_agency", help="where the runs write")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.published.split(",") if n.strip()]
    unknown = [n for n in names if n not in AGENCY_PUBLISHED]
    if unknown:
        parser.error(f"--published: unknown {unknown}; published: {', '.join(AGENCY_PUBLISHED)}")
    rows, failed = [], False
    for name in names:
        folder = agency_study.PUBLISHED / f"agency_study_{name}"
        shipped = pd.read_csv(folder / "study.csv")
        for repeat in range(args.repeats):
            out = Path(args.out) / f"{name}_{repeat}"
            begin = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "jaxsim", "agency_study", "--published", name,
                                   "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
            seconds = time.perf_counter() - begin
            if done.returncode != 0:
                print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
                print(f"{name}: the command failed (exit {done.returncode})")
                return 1
            differ = compare(shipped, pd.read_csv(out / "study.csv"))
            failed |= bool(differ)
            rows.append((name, repeat + 1, seconds, len(shipped), int(shipped["model_calls"].sum()
                         + shipped.get("unemployment_model_calls", pd.Series([0])).sum()), differ))
    print(f"\n{'published':<15}{'run':>4}{'wall s':>9}{'rows':>6}{'answers':>9}  scores")
    for name, repeat, seconds, n, calls, differ in rows:
        verdict = "equal bit for bit" if not differ else f"DIFFER in {', '.join(differ)}"
        print(f"{name:<15}{repeat:>4}{seconds:>9.1f}{n:>6}{calls:>9}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
