"""How much does a small call cost? Start-up and small judgments, against bare baselines.

Prints medians over repeats, each next to a baseline measured in the same run:

- ``import judge`` in a fresh interpreter, against a fresh interpreter that imports nothing;
- ``canary-judge judge --help``, against the same bare interpreter;
- one whole judgment in-process (``judge.judge_series``, default and Kayenta mode) of 5 metrics
  x 30 points a side and of 1 metric x 60 points a side, against ranking the same data with
  numpy (one ``argsort`` of each metric's pooled values, the least any rank test does).

Run: ``.venv/bin/python benchmarks/bench_small.py`` (``--repeats N``).
Targets (issue 18): ``import judge`` <= 0.5 s, ``canary-judge judge --help`` <= 0.7 s,
5 x 30 <= 2 ms and 1 x 60 <= 1 ms in-process.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SEED = 20_261_202
TARGETS_MS = {"import judge": 500.0, "canary-judge judge --help": 700.0,
              "5 metrics x 30": 2.0, "1 metric x 60": 1.0}


class Timing:
    """Median and best of repeated wall-clock times (on a shared machine the best is the
    steadier figure; the median is what a caller typically waits)."""

    def __init__(self, times: list[float]) -> None:
        self.median = statistics.median(times)
        self.best = min(times)


def median_seconds(action: Callable[[], object], repeats: int) -> Timing:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return Timing(times)


def run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True)


def make_series(metrics: int, points: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``metrics`` latency-like pairs (baseline, canary) of ``points`` each."""
    generator = np.random.default_rng(SEED + metrics * 1000 + points)
    return {
        f"m{k}": (np.round(generator.lognormal(3.0, 0.3, points), 3),
                  np.round(generator.lognormal(3.0, 0.3, points), 3))
        for k in range(metrics)
    }


def bare_rank(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for baseline, canary in series.values():
        np.argsort(np.concatenate([baseline, canary]), kind="stable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="start-up repeats (calls: x100)")
    repeats: int = parser.parse_args().repeats

    python = sys.executable
    command = shutil.which("canary-judge", path=str(Path(python).parent)) or "canary-judge"
    bare = median_seconds(lambda: run([python, "-c", "pass"]), repeats)
    rows: list[tuple[str, Timing, Timing, str]] = [
        ("import judge", median_seconds(lambda: run([python, "-c", "import judge"]), repeats),
         bare, "bare interpreter"),
        ("canary-judge judge --help",
         median_seconds(lambda: run([command, "judge", "--help"]), repeats), bare,
         "bare interpreter"),
    ]

    import judge  # after the start-up figures: their interpreters are fresh anyway

    calls = 100 * repeats
    for mode in ("default", "kayenta"):
        for metrics, points in ((5, 30), (1, 60)):
            config = judge.CanaryConfig.from_dict({
                "name": f"small-{mode}", "mode": mode,
                "metrics": [{"name": f"m{k}", "direction": "increase"} for k in range(metrics)],
            })
            series = make_series(metrics, points)
            for _ in range(20):  # warm caches (first calls import and compile)
                judge.judge_series(config, series)
            seconds = median_seconds(lambda: judge.judge_series(config, series), calls)  # noqa: B023
            baseline = median_seconds(lambda: bare_rank(series), calls)  # noqa: B023
            label = f"{metrics} metric{'s' if metrics > 1 else ''} x {points}"
            rows.append((f"{label} ({mode} mode)", seconds, baseline, "numpy argsort"))

    print("medians (best) over repeats, milliseconds; ratio = median / baseline's median")
    print(f"{'call':38} {'ms':>17} {'target':>7} {'baseline ms':>17} {'ratio':>7}  baseline")
    for label, seconds, baseline, baseline_label in rows:
        target = next((t for key, t in TARGETS_MS.items() if label.startswith(key)), None)
        print(f"{label:38} {seconds.median * 1e3:8.3f} ({seconds.best * 1e3:6.3f}) "
              f"{'' if target is None else f'{target:g}':>7} "
              f"{baseline.median * 1e3:8.3f} ({baseline.best * 1e3:6.3f}) "
              f"{seconds.median / baseline.median:7.1f}  {baseline_label}")


if __name__ == "__main__":
    main()
