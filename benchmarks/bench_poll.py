"""Does a sequential poll cost more as the run gets older? The 10th poll against the 1,000th.

A sequential run (default judge, ``judge.judging.poll``) of 5 metrics gets one new point a
side per metric at each poll. The run's state is built by polling 1,000 times; then the poll
that brings the 10th point and the one that brings the 1,000th are each timed again from
their saved states (a poll does not change the state it is given), median of ``--repeats``.
Two runs: an A/A run (no shift: it can stay undecided for long) and a run whose canary is 30%
higher on one metric (decided early: later polls only report the decision).

Printed: each poll's median milliseconds, the run's status at that poll and the ratio
1,000th / 10th (issue 18's target: <= 2, the state being updated rather than recomputed).

Run: ``.venv/bin/python benchmarks/bench_poll.py`` (``--points 200 --repeats 3`` for a
quicker run: ``--quick``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judge.config import CanaryConfig
from judge.judges.state import SequentialState
from judge.judging import poll

METRICS = 5


def _config() -> CanaryConfig:
    return CanaryConfig.from_dict({
        "name": "bench-poll",
        "metrics": [{"name": f"metric_{k}", "direction": "increase"} for k in range(METRICS)],
    })


def _points(points: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    baseline = rng.normal(100.0, 5.0, (points, METRICS))
    canary = rng.normal(100.0, 5.0, (points, METRICS))
    canary[:, 0] *= 1.0 + shift
    return baseline, canary


def _row(values: np.ndarray, index: int) -> dict[str, list[float]]:
    return {f"metric_{k}": [float(values[index, k])] for k in range(METRICS)}


def _timed_polls(points: int, shift: float, repeats: int, seed: int
                 ) -> dict[int, tuple[float, str]]:
    """Median ms and status of the polls bringing the 10th and the ``points``-th point."""
    config = _config()
    baseline, canary = _points(points, shift, seed)
    state = SequentialState.new("bench", config.name)
    before: dict[int, SequentialState] = {}
    undecided = 0  # the last poll that left the run undecided ("continue")
    for index in range(points):
        if index + 1 in (10, points):
            before[index + 1] = state
        previous = state
        report, state = poll(config, state, _row(baseline, index), _row(canary, index))
        if report.details["sequential"]["status"] == "continue":
            undecided, before[-1] = index + 1, previous
    timings: dict[int, tuple[float, str]] = {}
    for count, saved in before.items():
        point = (undecided if count == -1 else count) - 1
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            report, _state = poll(config, saved, _row(baseline, point), _row(canary, point))
            times.append(time.perf_counter() - began)
        timings[count] = (1000 * statistics.median(times),
                          str(report.details["sequential"]["status"]))
    timings[-2] = (float(undecided), "")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="200 points, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.points, args.repeats = 200, 3
    print(f"sequential polls, {METRICS} metrics, one new point a side per poll; medians of "
          f"{args.repeats}")
    print(f"{'run':<20}{'10th poll ms':>13}{f'{args.points}th poll ms':>15}{'status':>14}"
          f"{'ratio':>7}{'last undecided':>16}{'ms':>8}{'ratio':>7}")
    for name, shift, seed in (("A/A (no shift)", 0.0, 1), ("canary +30% on one", 0.3, 2)):
        timings = _timed_polls(args.points, shift, args.repeats, seed)
        early, late, late_status = timings[10][0], *timings[args.points]
        last, last_ms = int(timings[-2][0]), timings.get(-1, (float("nan"), ""))[0]
        print(f"{name:<20}{early:>13.2f}{late:>15.2f}{late_status:>14}{late / early:>7.2f}"
              f"{f'#{last}':>16}{last_ms:>8.2f}{last_ms / early:>7.2f}")
    print("target: a poll at 1,000 points <= 2x the 10th (issue 18); a run that has decided "
          "reports its decision, and the last undecided poll shows what an open run costs")


if __name__ == "__main__":
    main()
