"""Spread statistics of the real-noise benchmark's canaries (issue 13, sixth round).

For the healthy canaries of :mod:`judge.lab.real_noise` whose level metrics the default judge
finds significantly more spread out (the spread check is the metric's worst component and its
adjusted p-value is at most the level), and for the spread x2 metrics it finds so, prints the
statistics that tell the two apart or do not: the upper half's ratio (canary / baseline
p90 - median, each from its own median), the MAD ratio, the *reach* (the canary's p90 above
the baseline's median, in baseline upper halves: the spread check's materiality rule, see
``docs/default-judge.md``, "Spread and tails"), the canary's median shift in baseline upper
halves, the spread p-value, the lag-1 autocorrelation and the series; whether the failure was
material (the metric failed) or passed as not material. Tuning series by default: the held-out
ones are for checking a change, not for choosing it.

Run (about a minute; ``--split held-out`` to check)::

    .venv/bin/python benchmarks/real_noise_spread.py --canaries 100
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

import judge
from judge.config import JudgeMode
from judge.lab.real_noise import (
    BENCHMARK_SEED,
    Flavour,
    Kind,
    LabelledCanary,
    RealSeriesSet,
    Split,
    benchmark_config,
    labelled_canary,
    level_metric_names,
    load_real_series,
)


@dataclass(frozen=True)
class SpreadRow:
    """One level metric the spread check found significantly wider."""

    flavour: Flavour
    kind: Kind
    index: int
    metric: str
    series: str
    classification: str
    upper_ratio: float
    mad_ratio: float
    reach: float
    median_shift: float
    p_value: float
    adjusted_p_value: float
    phi: float


def _median_shift(canary: LabelledCanary, metric: str) -> float:
    c = canary.canary[metric].to_numpy(dtype=np.float64)
    b = canary.baseline[metric].to_numpy(dtype=np.float64)
    median_b = float(np.median(b))
    half = float(np.quantile(b, 0.9)) - median_b
    return (float(np.median(c)) - median_b) / half if half > 0 else float("nan")


def spread_rows(
    series: RealSeriesSet, kind: Kind, flavour: Flavour, canaries: int, seed: int
) -> Iterator[SpreadRow]:
    """The significant spread components of ``canaries`` canaries of ``kind``: every level
    metric for healthy canaries, the regressed metric for the others."""
    config = benchmark_config(JudgeMode.DEFAULT)
    for index in range(canaries):
        canary = labelled_canary(series, kind, flavour, seed=seed, index=index)
        report = judge.judge(config, canary.baseline, canary.canary)
        names = level_metric_names() if canary.label.target is None else (canary.label.target,)
        for name in names:
            result = report.metric(name)
            tested = result.details.get("default_judge")
            spread = result.details.get("tails", {}).get("spread")
            if tested is None or spread is None or tested["worst"] != "spread":
                continue
            if tested["adjusted_p_value"] > tested["level"]:
                continue
            autocorrelation = result.details.get("autocorrelation", {})
            phi = autocorrelation.get("phi_canary", result.details.get("pairing", {}).get("phi"))
            yield SpreadRow(
                flavour, kind, index, name, canary.label.series_of(name),
                result.classification.value, spread["upper_half_ratio"], spread["mad_ratio"],
                spread["upper_reach"], _median_shift(canary, name), spread["p_value"],
                tested["adjusted_p_value"], float("nan") if phi is None else float(phi),
            )


def format_rows(rows: Sequence[SpreadRow]) -> str:
    header = ("| flavour | kind | canary | metric | series | classification | upper half ratio "
              "| MAD ratio | reach | median shift | spread p | adjusted p | phi |")
    lines = [header, "| --- | --- | ---: | --- | --- | --- |" + " ---: |" * 7]
    for r in rows:
        lines.append(
            f"| {r.flavour.value} | {r.kind.value} | {r.index} | {r.metric} | {r.series} | "
            f"{r.classification} | {r.upper_ratio:.3g} | {r.mad_ratio:.3g} | {r.reach:.3g} | "
            f"{r.median_shift:.3g} | {r.p_value:.2g} | {r.adjusted_p_value:.2g} | {r.phi:.2f} |"
        )
    return "\n".join(lines)


def summary(rows: Sequence[SpreadRow], kind: Kind) -> str:
    chosen = [r for r in rows if r.kind is kind]
    if not chosen:
        return f"{kind.value}: no significant spread component"
    failed = sum(r.classification != "pass" for r in chosen)

    def spread_of(values: list[float]) -> str:
        finite = sorted(v for v in values if np.isfinite(v))
        if not finite:
            return "-"
        return f"{finite[0]:.3g} / {statistics.median(finite):.3g} / {finite[-1]:.3g}"

    return (
        f"{kind.value}: {len(chosen)} significant spread components, {failed} failed (material),"
        f" {len(chosen) - failed} passed as not material; min / median / max of the upper half "
        f"ratio {spread_of([r.upper_ratio for r in chosen])}, reach "
        f"{spread_of([r.reach for r in chosen])}, median shift "
        f"{spread_of([r.median_shift for r in chosen])}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=100,
                        help="canaries per kind and flavour (default 100)")
    parser.add_argument("--seed", type=int, default=BENCHMARK_SEED)
    parser.add_argument("--split", choices=[s.value for s in Split], default=Split.TUNING.value)
    parser.add_argument("--series", default=None, help="folder of the real series (default: "
                        "$CANARY_JUDGE_REAL_SERIES or ../shared/data/real-series)")
    args = parser.parse_args(argv)
    if args.canaries < 1:
        parser.error(f"--canaries: at least 1, got {args.canaries}")
    series = load_real_series(args.series).select(Split(args.split))
    rows = [
        row
        for flavour in Flavour
        for kind in (Kind.HEALTHY, Kind.SPREAD)
        for row in spread_rows(series, kind, flavour, args.canaries, args.seed)
    ]
    print(f"Spread components found significant ({args.split} series, {args.canaries} canaries "
          f"per kind and flavour, seed {args.seed}):\n")
    print(format_rows(rows))
    print()
    for flavour in Flavour:
        for kind in (Kind.HEALTHY, Kind.SPREAD):
            print(f"{flavour.value}, {summary([r for r in rows if r.flavour is flavour], kind)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
