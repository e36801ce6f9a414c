"""Side-by-side benchmark of the default judge and the Kayenta-compatible mode.

On the labelled scenarios of :mod:`judge.scenarios` (10 metrics, 60 one-minute points, daily
cycle, AR(1) noise with phi drawn in [0, 0.7], heavy-tailed latency, counts with zeros), prints:

- A/A false-failure rate per canary: share of A/A canaries where *some* metric failed (and the
  share whose verdict is ``fail``), for both modes;
- detection rate per regression kind at the generator's meaningful sizes (the target metric
  classified high/low);
- low traffic: share of canaries with a failing metric, and with a "not enough evidence"
  (``nodata``) count metric;
- sequential mode (default judge, anytime-valid), polled every minute for 60 minutes:
  false-failure rate on A/A runs and, per regression kind, the detection rate and the median
  minute of detection.

Run: ``.venv/bin/python benchmarks/bench_judges.py`` (``--quick`` for fewer repetitions).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

from judge.config import CanaryConfig
from judge.default_judge import judge_sequential
from judge.judging import judge
from judge.report import Classification
from judge.scenarios import ScenarioKind, generate_canary, history_config
from judge.sequential_state import SequentialState

REGRESSIONS = (
    ScenarioKind.SHIFTED_MEAN,
    ScenarioKind.WIDER_SPREAD,
    ScenarioKind.HEAVIER_TAIL,
    ScenarioKind.NEW_ERRORS,
)


def default_config(level: float | None = None) -> CanaryConfig:
    """The generator's metrics judged by the default judge; error counts on their counts.
    ``level`` overrides the family-wise level of the multiple-testing correction."""
    raw: dict[str, Any] = history_config("default").to_dict()
    if level is not None:
        raw["multiple_testing"]["level"] = level
    for metric in raw["metrics"]:
        if metric["name"] in ("errors", "timeouts"):
            metric["test"] = {"kind": "rate_ratio", "denominator": "requests"}
    return CanaryConfig.from_dict(raw)


def kayenta_config() -> CanaryConfig:
    return history_config("kayenta")


def _seed(kind: ScenarioKind, i: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([20261128, list(ScenarioKind).index(kind), i])


def fixed_horizon(reps: int, configs: dict[str, CanaryConfig]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {name: {} for name in configs}
    for kind in [ScenarioKind.AA, ScenarioKind.LOW_TRAFFIC, *REGRESSIONS]:
        counts: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name in configs}
        for i in range(reps):
            scenario = generate_canary(kind, seed=_seed(kind, i))
            for name, config in configs.items():
                report = judge(config, scenario.baseline, scenario.canary)
                failed = [m for m in report.metrics if m.classification.failed]
                if scenario.target is not None:
                    hit = report.metric(scenario.target).classification in (
                        Classification.HIGH, Classification.LOW)
                    counts[name][0] += hit
                else:
                    counts[name][0] += bool(failed)
                    counts[name][1] += report.verdict.value == "fail"
                    counts[name][2] += any(
                        m.classification is Classification.NODATA
                        and m.name in ("errors", "timeouts") for m in report.metrics)
        for name in configs:
            table[name][kind.value] = counts[name][0] / reps
            if scenario.target is None:
                table[name][kind.value + " verdict fail"] = counts[name][1] / reps
                table[name][kind.value + " nodata"] = counts[name][2] / reps
    return table


def sequential(reps: int, config: CanaryConfig) -> dict[str, tuple[float, float]]:
    """Per kind: (rate of failing at any poll, median minute of the failure)."""
    out: dict[str, tuple[float, float]] = {}
    for kind in [ScenarioKind.AA, *REGRESSIONS]:
        minutes: list[int] = []
        for i in range(reps):
            scenario = generate_canary(kind, seed=_seed(kind, 1000 + i))
            state = SequentialState.new(f"run-{i}", config.name)
            for minute in range(60):
                base = scenario.baseline.iloc[minute:minute + 1]
                can = scenario.canary.iloc[minute:minute + 1]
                report, state = judge_sequential(config, state, base, can)
                status = report.details["sequential"]["status"]
                if status != "continue":
                    break
            target = scenario.target
            failed = (
                report.metric(target).classification.failed if target is not None
                else report.verdict.value == "fail"
            )
            if failed:
                minutes.append(minute + 1)
        median = statistics.median(minutes) if minutes else float("nan")
        out[kind.value] = (len(minutes) / reps, median)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--level", type=float, default=None,
                        help="family-wise level of the default judge (default: the config's)")
    args = parser.parse_args()
    reps = args.reps or (40 if args.quick else 150)
    seq_reps = max(reps // 3, 10)
    started = time.perf_counter()
    configs = {"default": default_config(args.level), "kayenta": kayenta_config()}
    table = fixed_horizon(reps, configs)
    print(f"Fixed horizon (60 one-minute points, 10 metrics), {reps} canaries per kind")
    print(f"{'row':<32}{'default':>10}{'kayenta':>10}")
    for key in table["default"]:
        label = key if key.startswith(("aa", "low")) else f"{key} detected"
        if key == "aa":
            label = "aa: some metric failed"
        if key == "low_traffic":
            label = "low_traffic: some metric failed"
        print(f"{label:<32}{table['default'][key]:>10.3f}{table['kayenta'][key]:>10.3f}")
    seq = sequential(seq_reps, configs["default"])
    print(f"\nSequential default judge, polled every minute for 60 min, {seq_reps} runs per kind")
    print(f"{'kind':<20}{'failed':>10}{'median minute':>16}")
    for kind, (rate, median) in seq.items():
        print(f"{kind:<20}{rate:>10.3f}{median:>16.1f}")
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
