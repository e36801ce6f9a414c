"""How fast is batch judging? ``judge.stats.mann_whitney_many`` against its alternatives.

On the same synthetic data in one run (latency-like lognormal samples, some metrics shifted),
prints times as ratios:

- our batch judge on 500 metrics x 1440 points per side (asymptotic method, confidence 0.98,
  as Kayenta), and a scaling table over 60 / 1440 / 10000 points and 1 / 50 / 500 metrics;
- the naive way: a per-metric loop of ``scipy.stats.mannwhitneyu`` plus a Hodges-Lehmann
  interval from all n*m pairwise differences (``np.subtract.outer``, median, and the normal
  approximation's order statistics read with ``np.quantile``), timed on a subset of metrics and
  extrapolated (labelled so);
- R's ``wilcox.test(conf.int = TRUE, exact = FALSE)`` per-metric loop on the same data, timed
  inside R with ``proc.time`` around the loop only (the data go through a temporary binary
  file), when Rscript is installed; with ``--quick`` on a subset, extrapolated and labelled;
- one row-wise ``numpy.sort`` of the data (each metric's canary and baseline values as one row,
  metrics x 2 * points), the floor any rank-based method pays;
- the whole default judge (``judge_series`` in ``mode: default``: autocorrelation-corrected
  shift with its Hodges-Lehmann interval, spread and both tail checks, Holm over the metrics)
  and the whole Kayenta-mode judgment on the same data, with a scaling table for the default
  judge.

With numba installed (the ``fast`` extra), the whole judgments use the compiled merge counts
(``judge.stats._compiled``); they are also timed with ``CANARY_JUDGE_COMPILED=0``, repeats
alternated, and the ratio printed.

Times are the best of several repeats, both wall clock and CPU time of this process (the CPU
ratio is the steadier one on a shared machine); R's loop runs once and reports both too. The
numbers of our judge are checked against R's on the metrics R ran.

Run: ``.venv/bin/python benchmarks/bench_batch.py`` (``--quick`` for a smaller, faster run).
Targets (issue 6): 500 x 1440 at least 100x faster than R's loop and within 10x of the sort.
Targets (issue 18): the whole Kayenta-mode judgment within 10x of the sort floor, the whole
default judge within 20x; the peak memory of a whole judgment (``tracemalloc``) within 5x the
input arrays' size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from scipy import special, stats

from judge.config import CanaryConfig
from judge.judging import judge_series
from judge.report import Report
from judge.stats import MannWhitneyResult, _compiled, mann_whitney_many

CONFIDENCE = 0.98
SEED = 20_240_601

R_LOOP = r"""
args <- commandArgs(trailingOnly = TRUE)
path <- args[1]; metrics <- as.integer(args[2]); n <- as.integer(args[3])
confidence <- as.numeric(args[4]); out <- args[5]
con <- file(path, "rb")
values <- readBin(con, "double", n = metrics * 2 * n)
close(con)
data <- matrix(values, nrow = 2 * n)
results <- matrix(NA_real_, nrow = metrics, ncol = 4)
started <- proc.time()
for (k in seq_len(metrics)) {
  test <- wilcox.test(data[1:n, k], data[(n + 1):(2 * n), k], conf.int = TRUE,
                      conf.level = confidence, exact = FALSE, correct = TRUE)
  results[k, ] <- c(test$estimate, test$conf.int, test$p.value)
}
spent <- proc.time() - started
write.table(results, out, row.names = FALSE, col.names = FALSE)
cat(sprintf("%.6f %.6f\n", spent[["elapsed"]], spent[["user.self"]] + spent[["sys.self"]]))
"""


def make_data(metrics: int, points: int, seed: int = SEED) -> np.ndarray:
    """(metrics, 2, points): canary then baseline; a quarter of the metrics shifted by 5%."""
    generator = np.random.default_rng(seed)
    location = generator.uniform(2.0, 6.0, size=(metrics, 1, 1))
    spread = generator.uniform(0.2, 0.8, size=(metrics, 1, 1))
    data = np.exp(location + spread * generator.standard_normal((metrics, 2, points)))
    shifted = generator.random(metrics) < 0.25
    data[shifted, 0, :] *= 1.05
    return np.round(data, 3)


def sort_rows(data: np.ndarray) -> np.ndarray:
    """(metrics, 2 * points): each metric's canary and baseline values as one row, the matrix a
    row-wise sort (the floor) orders."""
    return np.ascontiguousarray(data.reshape(data.shape[0], -1))


def pairs_of(data: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(data[k, 0], data[k, 1]) for k in range(data.shape[0])]


class Timing:
    """Best wall-clock and best CPU seconds over repeats (CPU time is steadier on a shared
    machine; wall time is what a caller waits)."""

    def __init__(self, wall: float, cpu: float) -> None:
        self.wall = wall
        self.cpu = cpu

    def scaled(self, factor: float) -> Timing:
        return Timing(self.wall * factor, self.cpu * factor)


def best_time(action: Callable[[], object], repeats: int) -> Timing:
    wall = cpu = float("inf")
    for _ in range(repeats):
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        action()
        wall = min(wall, time.perf_counter() - started_wall)
        cpu = min(cpu, time.process_time() - started_cpu)
    return Timing(wall, cpu)


def with_and_without_kernels(
    action: Callable[[], object], repeats: int
) -> tuple[Timing, Timing | None]:
    """Best times of ``action`` with the compiled counts (``judge.stats._compiled``) and in
    numpy, their repeats alternated so both meet the same machine; the second is None when
    the kernels are not there (numba not installed, or ``CANARY_JUDGE_COMPILED=0``)."""
    action()  # loads (and on a first run compiles) the kernels if they are there
    if not _compiled.loaded():
        return best_time(action, repeats), None
    compiled = numpy_only = Timing(float("inf"), float("inf"))
    for _ in range(repeats):
        with_kernels = best_time(action, 1)
        os.environ["CANARY_JUDGE_COMPILED"] = "0"
        try:
            without = best_time(action, 1)
        finally:
            del os.environ["CANARY_JUDGE_COMPILED"]
        compiled = Timing(min(compiled.wall, with_kernels.wall), min(compiled.cpu,
                                                                     with_kernels.cpu))
        numpy_only = Timing(min(numpy_only.wall, without.wall), min(numpy_only.cpu, without.cpu))
    return compiled, numpy_only


def ours(data: np.ndarray) -> list[MannWhitneyResult]:
    return mann_whitney_many(pairs_of(data), confidence=CONFIDENCE, method="asymptotic")


def judge_config(metrics: int, mode: str) -> CanaryConfig:
    """``metrics`` latency-like metrics (bad when they increase) judged in ``mode``."""
    test: dict[str, object] = {"kind": "mann_whitney"}
    if mode == "default":
        test["tails"] = True
    return CanaryConfig.from_dict({
        "name": f"bench-{mode}",
        "mode": mode,
        "metrics": [{"name": f"m{k}", "direction": "increase", "test": test}
                    for k in range(metrics)],
    })


def whole_judgment(data: np.ndarray, config: CanaryConfig) -> Report:
    """A whole judgment (``judge_series``): tests, decisions, reasons, score."""
    series = {f"m{k}": (data[k, 1], data[k, 0]) for k in range(data.shape[0])}
    return judge_series(config, series)


def peak_memory(action: Callable[[], object]) -> int:
    """Bytes allocated at the peak of ``action`` beyond what was allocated before it
    (``tracemalloc``, which numpy reports its arrays' buffers to)."""
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def naive_one(canary: np.ndarray, baseline: np.ndarray) -> tuple[float, float, float, float]:
    """scipy's test plus the textbook Hodges-Lehmann interval from all pairwise differences."""
    p_value = stats.mannwhitneyu(canary, baseline, alternative="two-sided").pvalue
    differences = np.subtract.outer(canary, baseline).ravel()
    n, m = canary.size, baseline.size
    z = -special.ndtri((1.0 - CONFIDENCE) / 2.0)
    k = max(int(np.floor(n * m / 2.0 - z * np.sqrt(n * m * (n + m + 1) / 12.0))), 1)
    low, high = np.quantile(differences, [(k - 1) / (n * m - 1), (n * m - k) / (n * m - 1)])
    return float(np.median(differences)), float(low), float(high), float(p_value)


def naive(data: np.ndarray) -> None:
    for k in range(data.shape[0]):
        naive_one(data[k, 0], data[k, 1])


def r_loop(data: np.ndarray, rscript: str) -> tuple[Timing, np.ndarray]:
    """Time of R's wilcox.test loop (measured inside R) and R's (estimate, low, high, p)."""
    metrics, _, points = data.shape
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        # Column-major (points within a metric, canary first) is what R's matrix() expects.
        np.ascontiguousarray(data.reshape(metrics, 2 * points)).astype("<f8").tofile(
            folder / "data.bin"
        )
        (folder / "loop.R").write_text(R_LOOP)
        completed = subprocess.run(
            [
                rscript,
                str(folder / "loop.R"),
                str(folder / "data.bin"),
                str(metrics),
                str(points),
                repr(CONFIDENCE),
                str(folder / "out.txt"),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results = np.loadtxt(folder / "out.txt", ndmin=2)
    wall, cpu = (float(part) for part in completed.stdout.strip().splitlines()[-1].split())
    return Timing(wall, cpu), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller scaling table and subsets")
    arguments = parser.parse_args()
    quick: bool = arguments.quick
    repeats = 3 if quick else 5

    metrics, points = 500, 1440
    data = make_data(metrics, points)
    print(f"data: {metrics} metrics x {points} points per side, lognormal, rounded to 1e-3")

    matrix = sort_rows(data)
    floor = best_time(lambda: np.sort(matrix, axis=1), repeats)
    ours_time = best_time(lambda: ours(data), repeats)
    results = ours(data)

    naive_metrics = 10 if quick else 25
    naive_time = best_time(lambda: naive(data[:naive_metrics]), 1).scaled(metrics / naive_metrics)

    rscript = shutil.which("Rscript")
    r_metrics = 20 if quick else metrics
    r_time: Timing | None = None
    agreement = float("nan")
    agreement_scaled = float("nan")
    if rscript is not None:
        r_seconds, r_results = r_loop(data[:r_metrics], rscript)
        r_time = r_seconds.scaled(metrics / r_metrics)
        mine = np.array([[r.estimate, r.low, r.high, r.p_value] for r in results[:r_metrics]])
        gaps = np.abs(mine[:, :3] - r_results[:, :3])
        subset = data[:r_metrics]
        scale = subset[:, 0].max(axis=1) - subset[:, 1].min(axis=1)
        scale -= subset[:, 0].min(axis=1) - subset[:, 1].max(axis=1)
        agreement = float(gaps.max())
        agreement_scaled = float((gaps / np.maximum(scale, 1.0)[:, None]).max())

    default_time, default_numpy = with_and_without_kernels(
        partial(whole_judgment, data, judge_config(metrics, "default")), repeats)
    kayenta_time, kayenta_numpy = with_and_without_kernels(
        partial(whole_judgment, data, judge_config(metrics, "kayenta")), repeats)
    rows: list[tuple[str, Timing]] = [
        ("numpy.sort, row-wise, of all values (floor)", floor),
        ("ours: mann_whitney_many", ours_time),
        ("default judge: judge_series, mode default (shift, spread, tails, Holm)", default_time),
        ("kayenta mode: judge_series, mode kayenta", kayenta_time),
        (f"naive: scipy mannwhitneyu + outer HL (extrapolated from {naive_metrics})", naive_time),
    ]
    if r_time is not None:
        label = "R wilcox.test(conf.int=TRUE, exact=FALSE) loop"
        if r_metrics < metrics:
            label += f" (extrapolated from {r_metrics})"
        rows.append((label, r_time))
    print()
    print(f"{'method':72} {'wall s':>8} {'x ours':>7} {'cpu s':>8} {'x ours':>7}")
    for label, timing in rows:
        print(
            f"{label:72} {timing.wall:8.3f} {timing.wall / ours_time.wall:7.1f}"
            f" {timing.cpu:8.3f} {timing.cpu / ours_time.cpu:7.1f}"
        )
    if r_time is None:
        print("R wilcox.test loop: Rscript not installed, skipped")
    print()
    print(
        f"ours / sort floor: {ours_time.wall / floor.wall:.1f}x wall, "
        f"{ours_time.cpu / floor.cpu:.1f}x cpu (target: within 10x)"
    )
    print(
        f"default judge / kayenta-mode judgment: {default_time.wall / kayenta_time.wall:.1f}x "
        f"wall, {default_time.cpu / kayenta_time.cpu:.1f}x cpu; default judge / sort floor: "
        f"{default_time.wall / floor.wall:.1f}x wall, {default_time.cpu / floor.cpu:.1f}x cpu"
        " (target: within 20x)"
    )
    print(
        f"kayenta-mode judgment / sort floor: {kayenta_time.wall / floor.wall:.1f}x wall, "
        f"{kayenta_time.cpu / floor.cpu:.1f}x cpu (target: within 10x)"
    )
    if default_numpy is not None and kayenta_numpy is not None:
        print(
            "without / with the compiled counts (CANARY_JUDGE_COMPILED=0 against the fast "
            f"extra, alternated): default judge {default_numpy.cpu / default_time.cpu:.2f}x "
            f"cpu ({default_numpy.cpu:.3f} s), kayenta mode "
            f"{kayenta_numpy.cpu / kayenta_time.cpu:.2f}x cpu ({kayenta_numpy.cpu:.3f} s)"
        )
    else:
        print("compiled counts: numba not installed (the fast extra) or switched off; "
              "everything above ran in numpy")
    if r_time is not None:
        print(
            f"R loop / default judge: {r_time.wall / default_time.wall:.0f}x wall, "
            f"{r_time.cpu / default_time.cpu:.0f}x cpu"
        )
        print(
            f"R loop / ours: {r_time.wall / ours_time.wall:.0f}x wall, "
            f"{r_time.cpu / ours_time.cpu:.0f}x cpu (target: at least 100x)"
        )
        print(
            f"largest |ours - R| in estimate and limits over {r_metrics} metrics: "
            f"{agreement:.2e} ({agreement_scaled:.1e} of the range of the differences)"
        )

    for mode in ("default", "kayenta"):
        peak = peak_memory(partial(whole_judgment, data, judge_config(metrics, mode)))
        print(
            f"peak memory of the whole {mode}-mode judgment: {peak / 1e6:.1f} MB, "
            f"{peak / data.nbytes:.1f}x the input arrays ({data.nbytes / 1e6:.1f} MB; "
            "target: within 5x)"
        )

    print()
    sizes = (60, 1440) if quick else (60, 1440, 10_000)
    counts = (1, 50) if quick else (1, 50, 500)
    print("scaling: wall seconds of mann_whitney_many (cpu ratio to the row-wise sort floor)")
    print(f"{'points per side':>16} " + " ".join(f"{c:>10} metrics" for c in counts))
    for size in sizes:
        cells = []
        for count in counts:
            table_data = make_data(count, size, seed=SEED + size + count)
            table_rows = sort_rows(table_data)
            seconds = best_time(partial(ours, table_data), repeats)
            sort_seconds = best_time(partial(np.sort, table_rows, axis=1), repeats)
            cells.append(f"{seconds.wall:8.3f}s ({seconds.cpu / sort_seconds.cpu:5.1f}x)")
        print(f"{size:>16} " + " ".join(f"{cell:>18}" for cell in cells))

    print()
    print("scaling: wall seconds of the whole default judge (judge_series, mode default; cpu "
          "ratio to the row-wise sort floor)")
    print(f"{'points per side':>16} " + " ".join(f"{c:>10} metrics" for c in counts))
    for size in sizes:
        cells = []
        for count in counts:
            table_data = make_data(count, size, seed=SEED + size + count)
            table_rows = sort_rows(table_data)
            config = judge_config(count, "default")
            seconds = best_time(partial(whole_judgment, table_data, config), repeats)
            sort_seconds = best_time(partial(np.sort, table_rows, axis=1), repeats)
            cells.append(f"{seconds.wall:8.3f}s ({seconds.cpu / sort_seconds.cpu:5.1f}x)")
        print(f"{size:>16} " + " ".join(f"{cell:>18}" for cell in cells))


if __name__ == "__main__":
    main()
