"""Side-by-side benchmark of the default judge and the Kayenta-compatible mode.

On the labelled scenarios of :mod:`judge.lab.scenarios` (10 metrics, 60 one-minute points, daily
cycle, AR(1) noise with phi drawn in [0, 0.7], heavy-tailed latency, counts with zeros), prints:

- A/A false-failure rate per canary: share of A/A canaries where *some* metric failed (and the
  share whose verdict is ``fail``), for both modes; the same at phi = 0.7 for every canary;
- detection rate per regression kind at the generator's meaningful sizes (the target metric
  classified high/low);
- low traffic: share of canaries with a failing metric, with verdict ``fail``, and with a "not
  enough evidence" (``nodata``) count metric;
- sequential mode (default judge, anytime-valid), polled every minute for 60 minutes:
  false-failure rate on A/A runs and, per regression kind at its meaningful size and at twice
  it ("x2", a clear regression), the detection rate and the median minute of detection; the
  last poll is the run's ``final`` call (undecided metrics pass or stay "not enough evidence").

Run: ``.venv/bin/python benchmarks/bench_judges.py`` (about 10 minutes on 2 cores; A/A rows
1000 canaries / runs each; ``--quick`` for fewer repetitions,
``--jobs`` worker processes, 2 by default).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from scipy.stats import binomtest

from judge.config import CanaryConfig
from judge.judges.state import SequentialState
from judge.judging import judge, poll
from judge.lab.scenarios import MEANINGFUL_SIZE, ScenarioKind, generate_canary, history_config
from judge.report import Classification

REGRESSIONS = (
    ScenarioKind.SHIFTED_MEAN,
    ScenarioKind.WIDER_SPREAD,
    ScenarioKind.HEAVIER_TAIL,
    ScenarioKind.NEW_ERRORS,
)
COUNT_METRICS = ("errors", "timeouts")


def default_config(level: float | None = None) -> CanaryConfig:
    """The generator's metrics judged by the default judge; error counts on their counts.
    ``level`` overrides the family-wise level of the multiple-testing correction."""
    raw: dict[str, Any] = history_config("default").to_dict()
    if level is not None:
        raw["multiple_testing"]["level"] = level
    for metric in raw["metrics"]:
        if metric["name"] in COUNT_METRICS:
            metric["test"] = {"kind": "rate_ratio", "denominator": "requests"}
    return CanaryConfig.from_dict(raw)


def kayenta_config() -> CanaryConfig:
    return history_config("kayenta")


def _seed(kind: ScenarioKind, i: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([20261128, list(ScenarioKind).index(kind), i])


def clear_size(kind: ScenarioKind) -> float:
    """Twice the meaningful size (for the spread factor: twice its excess over 1)."""
    size = MEANINGFUL_SIZE[kind]
    return 1.0 + 2.0 * (size - 1.0) if kind is ScenarioKind.WIDER_SPREAD else 2.0 * size


# -- one unit of work each (run in worker processes) ---------------------------------------------

_LEVEL: float | None = None


def _configs() -> dict[str, CanaryConfig]:
    return {"default": default_config(_LEVEL), "kayenta": kayenta_config()}


def _init(level: float | None) -> None:
    global _LEVEL
    _LEVEL = level


def _fixed_case(job: tuple[str, ScenarioKind, float | None, int]) -> dict[str, tuple[int, ...]]:
    """(failed-or-detected, verdict fail, count nodata) per mode for one canary."""
    _label, kind, phi, i = job
    scenario = generate_canary(kind, seed=_seed(kind, i), phi=phi)
    out = {}
    for name, config in _configs().items():
        report = judge(config, scenario.baseline, scenario.canary)
        if scenario.target is not None:
            hit = report.metric(scenario.target).classification in (
                Classification.HIGH, Classification.LOW)
            out[name] = (int(hit), 0, 0)
        else:
            failed = any(m.classification.failed for m in report.metrics)
            nodata = any(m.classification is Classification.NODATA and m.name in COUNT_METRICS
                         for m in report.metrics)
            out[name] = (int(failed), int(report.verdict.value == "fail"), int(nodata))
    return out


def _sequential_case(
    job: tuple[str, ScenarioKind, float | None, int, float | None],
) -> tuple[str, int]:
    """How a polled sequential run ended (``fail`` of the target metric or, on A/A, of any;
    ``pass``; ``inconclusive`` at the last, ``final`` call) and at which minute."""
    _label, kind, size, i, phi = job
    config = default_config(_LEVEL)
    scenario = generate_canary(kind, seed=_seed(kind, 1000 + i), size=size, phi=phi)
    state = SequentialState.new(f"run-{i}", config.name)
    last = len(scenario.baseline) - 1
    for minute in range(last + 1):
        report, state = poll(
            config, state,
            scenario.baseline.iloc[minute:minute + 1], scenario.canary.iloc[minute:minute + 1],
            final=minute == last,
        )
        status = report.details["sequential"]["status"]
        if status == "continue":
            continue
        target = scenario.target
        failed = (report.metric(target).classification.failed if target is not None
                  else status == "fail")
        if failed:
            return "fail", minute + 1
        # A regression run that failed on another metric than the regressed one is not a
        # detection (and counts as neither fail nor pass).
        return ("other" if status == "fail" else status), minute + 1
    return "continue", len(scenario.baseline)


def _wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson's 95% score interval for a binomial proportion (scipy's; Wilson 1927, JASA 22):
    the rates here are a few percent, where the plain +- 2 SE interval goes below 0."""
    interval = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)


def _grouped(jobs: list[Any], results: Iterable[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for job, result in zip(jobs, results, strict=True):
        grouped.setdefault(job[0], []).append(result)
    return grouped


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--reps", type=int, default=None, help="canaries per fixed-horizon row")
    parser.add_argument("--aa-reps", type=int, default=None,
                        help="canaries per fixed-horizon A/A row (default 1000, --quick: --reps)")
    parser.add_argument("--seq-reps", type=int, default=None, help="runs per sequential row")
    parser.add_argument("--seq-aa-reps", type=int, default=None,
                        help="runs per sequential A/A row (default 1000, --quick: --seq-reps)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--level", type=float, default=None,
                        help="family-wise level of the default judge (default: the config's)")
    args = parser.parse_args()
    reps = args.reps or (40 if args.quick else 200)
    # The A/A false-failure rate is compared with a 2% target: 200 canaries give a standard
    # error of 1%, so the A/A rows get 1000 (about 20 s each on 2 cores).
    aa_reps = args.aa_reps or (reps if args.quick else max(reps, 1000))
    seq_reps = args.seq_reps or (15 if args.quick else 60)
    # The sequential false-failure rate is a few percent: 60 runs cannot tell 2% from 6%
    # (one or two runs either way), so the A/A rows get more.
    seq_aa_reps = args.seq_aa_reps or (seq_reps if args.quick else max(seq_reps, 1000))
    started = time.perf_counter()

    fixed_jobs: list[tuple[str, ScenarioKind, float | None, int]] = []
    rows = [("aa", ScenarioKind.AA, None), ("aa phi=0.7", ScenarioKind.AA, 0.7),
            ("low_traffic", ScenarioKind.LOW_TRAFFIC, None)]
    rows += [(kind.value, kind, None) for kind in REGRESSIONS]
    for label, kind, phi in rows:
        count = aa_reps if kind is ScenarioKind.AA else reps
        fixed_jobs += [(label, kind, phi, i) for i in range(count)]
    seq_jobs: list[tuple[str, ScenarioKind, float | None, int, float | None]] = [
        ("aa", ScenarioKind.AA, None, i, None) for i in range(seq_aa_reps)]
    seq_jobs += [("aa phi=0.7", ScenarioKind.AA, None, i, 0.7) for i in range(seq_aa_reps)]
    for kind in REGRESSIONS:
        seq_jobs += [(kind.value, kind, None, i, None) for i in range(seq_reps)]
        seq_jobs += [(f"{kind.value} x2", kind, clear_size(kind), i, None)
                     for i in range(seq_reps)]

    with ProcessPoolExecutor(max_workers=args.jobs, initializer=_init,
                             initargs=(args.level,)) as pool:
        fixed = _grouped(fixed_jobs, pool.map(_fixed_case, fixed_jobs, chunksize=8))
        seq = _grouped(seq_jobs, pool.map(_sequential_case, seq_jobs, chunksize=2))

    level = default_config(args.level).multiple_testing.level
    print(f"Fixed horizon: 60 one-minute points, 10 metrics, {reps} canaries per row; "
          f"default judge Holm at family level {level:g}")
    print(f"{'row':<36}{'default':>10}{'kayenta':>10}")
    for label, kind, _phi in rows:
        results = fixed[label]
        for index, what in enumerate(("some metric failed", "verdict fail", "count nodata")):
            if kind.label.value == "bad" and index > 0:
                continue
            name = f"{label}: {what}" if kind.label.value == "good" else f"{label} detected"
            values = [np.mean([r[mode][index] for r in results]) for mode in ("default",
                                                                              "kayenta")]
            interval = ""
            if kind.label.value == "good" and index == 0:
                low, high = _wilson(sum(r["default"][0] for r in results), len(results))
                interval = f"   default 95% CI [{low:.3f}, {high:.3f}]"
            print(f"{name:<36}{values[0]:>10.3f}{values[1]:>10.3f}{interval}")
    print(f"\nSequential default judge (anytime-valid at level "
          f"{default_config().sequential.level:g}), polled every minute for 60 minutes, "
          f"{seq_reps} runs per row, {seq_aa_reps} per A/A row")
    print(f"{'row':<24}{'failed':>8}{'median min':>12}{'passed':>8}{'median min':>12}")
    for label, outcomes in seq.items():
        cells = []
        for wanted in ("fail", "pass"):
            minutes = [minute for status, minute in outcomes if status == wanted]
            median = statistics.median(minutes) if minutes else float("nan")
            cells.append(f"{len(minutes) / len(outcomes):>8.3f}{median:>12.1f}")
        if label.startswith("aa"):
            low, high = _wilson(sum(status == "fail" for status, _ in outcomes), len(outcomes))
            cells.append(f"   failed 95% CI [{low:.3f}, {high:.3f}]")
        print(f"{label:<24}{''.join(cells)}")
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
