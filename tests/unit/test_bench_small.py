"""``benchmarks/bench_small.py`` runs as the README says and prints every figure it promises.

Timings are not asserted (a shared machine would make that flaky); the architecture behind the
start-up figures is pinned by test_lazy_imports.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROWS = [
    "import judge",
    "canary-judge judge --help",
    "5 metrics x 30 (default mode)",
    "1 metric x 60 (default mode)",
    "5 metrics x 30 (kayenta mode)",
    "1 metric x 60 (kayenta mode)",
]


def test_bench_small_prints_each_call_with_its_baseline_and_ratio() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_small.py", "--repeats", "1"],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=300,
    )
    lines = done.stdout.splitlines()
    number = r"\d+\.\d+"
    for row in ROWS:
        found = [line for line in lines if line.startswith(row)]
        assert len(found) == 1, (row, done.stdout)
        figures = re.findall(number, found[0][len(row):])
        # median (best), baseline median (best), ratio: five positive numbers.
        assert len(figures) == 5, found[0]
        assert all(float(figure) > 0 for figure in figures), found[0]
