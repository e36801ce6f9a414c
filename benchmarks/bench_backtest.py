"""Backtest speed-up from worker processes (issue 20 item 5): the same history judged in this
process (``jobs=1``) and on every core (``jobs=None``), side by side, with the ratio.

    .venv/bin/python benchmarks/bench_backtest.py            # 320 canaries, the shipped history
    .venv/bin/python benchmarks/bench_backtest.py --canaries 64 --repeat 1   # quick

The results are checked to be identical; absolute times depend on the machine, the ratio on
its cores (a 2-core machine tops out near 2x, less the cost of shipping the data).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import pandas as pd

from judge.lab.backtest import backtest
from judge.lab.scenarios import history_config, load_history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=320)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=("default", "kayenta"), default="default")
    args = parser.parse_args(argv)
    history = load_history()[: args.canaries]
    config = history_config(args.mode)
    times: dict[str, list[float]] = {"jobs=1": [], "every core": []}
    frames = {}
    for _ in range(args.repeat):
        for name, jobs in (("jobs=1", 1), ("every core", None)):
            started = time.perf_counter()
            result = backtest(config, history, jobs=jobs)
            times[name].append(time.perf_counter() - started)
            frames[name] = result.frame
    pd.testing.assert_frame_equal(frames["jobs=1"], frames["every core"])
    serial, parallel = (statistics.median(times[k]) for k in ("jobs=1", "every core"))
    print(f"{len(history)} canaries, {args.mode} mode, {os.cpu_count()} cores, "
          f"median of {args.repeat}")
    print(f"  jobs=1      {serial:8.2f} s")
    print(f"  every core  {parallel:8.2f} s   speed-up {serial / parallel:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
