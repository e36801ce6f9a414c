"""Real-noise benchmark (issue 13): the judges on canaries built from real production series.

Canaries come from :mod:`judge.lab.real_noise` (the NAB series of ``../shared/data/real-series``,
override with ``CANARY_JUDGE_REAL_SERIES``), in both flavours (concurrent: neighbouring points
split between the sides; independent: each side block-bootstrapped from one longer window), one
table per split of the series (``tuning``; ``held-out``: speed_t4013, ec2_network_in_5abac7,
Twitter_volume_IBM, never to be tuned on). Config: the one the docs lead to
(:func:`judge.lab.real_noise.benchmark_config`): nine level metrics ``direction: increase``
with the default test, ``errors`` critical with ``rate_ratio`` over ``requests`` (Kayenta mode:
Mann-Whitney on per-minute error counts), ``requests`` ``direction: decrease``, thresholds
95 / 75; 60 one-minute points a side.

Per kind of canary (healthy, low traffic, shift, spread, tail outliers, error jump, ramp, shift
only in low-traffic minutes, a metric flat at 0 or missing on the canary), for the default judge
and for the same canaries in Kayenta mode: share **not promoted** (verdict is not ``pass``) and
share **failed** (verdict ``fail``), with Wilson 95% intervals; and for the default judge's
sequential mode, polled every 5 points with ``final`` on the last poll: share promoted by the
last poll, share failed, and the median number of points at which the run ended (the first poll
whose status is not ``continue``; a run still undecided ends at the last poll). Then, for the
canaries that should be promoted, which metrics stopped them, and on which series.

Run (the full run: about 12 CPU-minutes, 594 s on a shared 2-core machine)::

    .venv/bin/python benchmarks/bench_real_noise.py --canaries 200 --sequential-canaries 100

``--canaries`` per kind, flavour and split (default 50); ``--flavour``, ``--holdout-only`` /
``--tuning-only``, ``--kinds shift,tail``, ``--sequential off``, ``--sequential-canaries`` (fewer
sequential runs than fixed-horizon canaries), ``--points`` per side, ``--seed``, ``--jobs``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

import pandas as pd
from scipy.stats import binomtest

import judge
from judge.config import CanaryConfig, JudgeMode
from judge.judges.state import SequentialState
from judge.lab.real_noise import (
    BENCHMARK_SEED,
    DEFAULT_SPEC,
    EXPECTED,
    KIND_DESCRIPTIONS,
    CanarySpec,
    Expected,
    Flavour,
    Kind,
    LabelledCanary,
    RealSeriesSet,
    Split,
    benchmark_config,
    labelled_canary,
    load_real_series,
    with_overrides,
)
from judge.report import Classification, Report

# -- every call into the judge (re-point these after a restructuring) ---------------------------


def judge_fixed(config: CanaryConfig, baseline: pd.DataFrame, canary: pd.DataFrame) -> Report:
    """One fixed-horizon judgment through the public API (either mode)."""
    return judge.judge(config, baseline, canary)


def new_sequential_run(config: CanaryConfig, run_id: str) -> SequentialState:
    """The state of a new sequential (polled) run, as ``judge/api/runs.py`` starts one."""
    return SequentialState.new(run_id, config.name)


def poll_sequential(
    config: CanaryConfig,
    state: SequentialState,
    baseline_new: pd.DataFrame,
    canary_new: pd.DataFrame,
    *,
    final: bool,
) -> tuple[Report, SequentialState, str]:
    """One poll with the points since the last one: report, new state and the run's status
    (``continue``, ``pass``, ``fail``, ``inconclusive``)."""
    report, state = judge.poll(config, state, baseline_new, canary_new, final=final)
    return report, state, str(report.details["sequential"]["status"])


# -- one canary ---------------------------------------------------------------------------------

POLL_EVERY = 5
"""Points between two polls of a sequential run (a poll every 5 minutes)."""


@dataclass(frozen=True)
class Blame:
    """A metric that did not pass: its classification and the real series it came from."""

    metric: str
    classification: str
    series: str
    counted: bool
    """It counts against the canary: classified ``high`` / ``low`` / ``nodata_fail`` /
    ``error``, or a critical metric that did not pass (an unscored ``nodata`` does not)."""
    low_traffic: bool = False
    """Its reason names low traffic as the cause (counts: not even 0 events against 0 would
    have been enough evidence at the canary's traffic)."""


@dataclass(frozen=True)
class FixedOutcome:
    verdict: str
    reason: str
    target: str | None
    """The regressed metric's classification (``None`` for healthy kinds)."""
    blame: tuple[Blame, ...] = ()


@dataclass(frozen=True)
class SequentialOutcome:
    status: str
    """How the run ended: ``pass``, ``fail`` or ``inconclusive`` (undecided at the last poll)."""
    points: int
    """Points seen at the poll that ended it."""
    blame: tuple[Blame, ...] = ()


@dataclass(frozen=True)
class CanaryOutcome:
    split: Split
    flavour: Flavour
    kind: Kind
    index: int
    error_rate: float
    """The baseline's error rate (0 for half the healthy canaries)."""
    default: FixedOutcome
    kayenta: FixedOutcome
    sequential: SequentialOutcome | None = None


def _blame(report: Report, canary: LabelledCanary) -> tuple[Blame, ...]:
    return tuple(
        Blame(m.name, m.classification.value, canary.label.series_of(m.name),
              m.classification.failed or m.critical_failure,
              m.reason.startswith("Low traffic"))
        for m in report.metrics
        if m.classification is not Classification.PASS
    )


def _fixed(config: CanaryConfig, canary: LabelledCanary) -> FixedOutcome:
    report = judge_fixed(config, canary.baseline, canary.canary)
    target = canary.label.target
    return FixedOutcome(
        report.verdict.value, report.reason,
        None if target is None else report.metric(target).classification.value,
        _blame(report, canary),
    )


def _sequential(config: CanaryConfig, canary: LabelledCanary, run_id: str) -> SequentialOutcome:
    state = new_sequential_run(config, run_id)
    points = len(canary.baseline)
    ends = [*range(POLL_EVERY, points, POLL_EVERY), points]
    start = 0
    for end in ends:
        report, state, status = poll_sequential(
            config, state, canary.baseline.iloc[start:end], canary.canary.iloc[start:end],
            final=end == points,
        )
        start = end
        if status != "continue":
            return SequentialOutcome(status, end, _blame(report, canary))
    raise AssertionError("the final poll always ends a sequential run")


@dataclass(frozen=True)
class Job:
    split: Split
    flavour: Flavour
    kind: Kind
    index: int
    sequential: bool


@dataclass(frozen=True)
class Context:
    """What every job needs (built once per worker process by :func:`make_context`)."""

    series: dict[Split, RealSeriesSet]
    seed: int
    spec: CanarySpec
    default: CanaryConfig
    kayenta: CanaryConfig


def evaluate(job: Job, context: Context) -> CanaryOutcome:
    """Draw canary ``job.index`` of its kind and judge it: default and Kayenta mode at fixed
    horizon, and (``job.sequential``) the default judge's sequential mode."""
    canary = labelled_canary(context.series[job.split], job.kind, job.flavour,
                             seed=context.seed, index=job.index, spec=context.spec)
    sequential = None
    if job.sequential:
        run_id = f"{job.split.value}-{job.flavour.value}-{job.kind.value}-{job.index}"
        sequential = _sequential(context.default, canary, run_id)
    return CanaryOutcome(
        split=job.split, flavour=job.flavour, kind=job.kind, index=job.index,
        error_rate=canary.label.baseline_error_rate,
        default=_fixed(context.default, canary), kayenta=_fixed(context.kayenta, canary),
        sequential=sequential,
    )


_WORKER_CONTEXT: Context | None = None


def _init_worker(path: str | None, seed: int, spec: CanarySpec, splits: tuple[Split, ...],
                 overrides: tuple[tuple[str, Any], ...]) -> None:
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = make_context(load_real_series(path), seed, spec, splits, overrides)


def _evaluate_in_worker(job: Job) -> CanaryOutcome:
    assert _WORKER_CONTEXT is not None
    return evaluate(job, _WORKER_CONTEXT)


def make_context(
    series: RealSeriesSet, seed: int, spec: CanarySpec, splits: Iterable[Split],
    overrides: tuple[tuple[str, Any], ...] = (),
) -> Context:
    """``overrides``: settings of the default-mode config (:func:`judge.lab.real_noise.
    with_overrides`); Kayenta mode stays the reference it is."""
    return Context(
        series={split: series.select(split) for split in splits}, seed=seed, spec=spec,
        default=with_overrides(benchmark_config(JudgeMode.DEFAULT, spec), dict(overrides)),
        kayenta=benchmark_config(JudgeMode.KAYENTA, spec),
    )


# -- a run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    canaries: int = 50
    """Canaries per kind, flavour and split."""
    sequential_canaries: int | None = None
    """Of those, how many also run in sequential mode (``None``: all; 0: none)."""
    seed: int = BENCHMARK_SEED
    splits: tuple[Split, ...] = (Split.TUNING, Split.HELD_OUT)
    flavours: tuple[Flavour, ...] = (Flavour.CONCURRENT, Flavour.INDEPENDENT)
    kinds: tuple[Kind, ...] = tuple(Kind)
    spec: CanarySpec = DEFAULT_SPEC
    jobs: int = 2
    overrides: tuple[tuple[str, Any], ...] = ()
    """Settings of the default-mode config (``--set``)."""

    def jobs_list(self) -> list[Job]:
        sequential = (self.canaries if self.sequential_canaries is None
                      else self.sequential_canaries)
        return [
            Job(split, flavour, kind, index, index < sequential)
            for split in self.splits
            for flavour in self.flavours
            for kind in self.kinds
            for index in range(self.canaries)
        ]


def _with_progress(outcomes: Iterable[CanaryOutcome], total: int,
                   progress: TextIO | None) -> list[CanaryOutcome]:
    done: list[CanaryOutcome] = []
    step = max(1, total // 10)
    for outcome in outcomes:
        done.append(outcome)
        if progress is not None and (len(done) % step == 0 or len(done) == total):
            print(f"  {len(done)} / {total} canaries", file=progress, flush=True)
    return done


def run(settings: Settings, series: RealSeriesSet | None = None, path: str | None = None,
        progress: TextIO | None = None) -> list[CanaryOutcome]:
    """Judge every canary of ``settings``; in this process when ``settings.jobs == 1`` (then
    ``series`` may be given), else in worker processes that load the series from ``path``.
    Each canary has its own seed: the outcomes do not depend on the number of processes.
    ``progress``: where to report every tenth of the way (e.g. ``sys.stderr``)."""
    jobs = settings.jobs_list()
    if settings.jobs <= 1:
        context = make_context(series if series is not None else load_real_series(path),
                               settings.seed, settings.spec, settings.splits,
                               settings.overrides)
        return _with_progress((evaluate(job, context) for job in jobs), len(jobs), progress)
    with ProcessPoolExecutor(
        max_workers=settings.jobs, initializer=_init_worker,
        initargs=(path, settings.seed, settings.spec, settings.splits, settings.overrides),
    ) as pool:
        return _with_progress(pool.map(_evaluate_in_worker, jobs, chunksize=4), len(jobs),
                              progress)


# -- tables -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """``count`` of ``n`` canaries, with Wilson's 95% score interval (scipy's; Wilson 1927,
    JASA 22: near 0% and 100% the +- 2 SE interval leaves [0, 1])."""

    count: int
    n: int

    @property
    def share(self) -> float:
        return self.count / self.n if self.n else float("nan")

    def interval(self) -> tuple[float, float]:
        if not self.n:
            return float("nan"), float("nan")
        ci = binomtest(self.count, self.n).proportion_ci(confidence_level=0.95,
                                                         method="wilson")
        return float(ci.low), float(ci.high)

    def cell(self) -> str:
        if not self.n:
            return "-"
        low, high = self.interval()
        return f"{100 * self.share:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


@dataclass(frozen=True)
class Row:
    split: Split
    flavour: Flavour
    kind: Kind
    default_not_promoted: Rate
    default_failed: Rate
    kayenta_not_promoted: Rate
    kayenta_failed: Rate
    sequential_promoted: Rate
    sequential_failed: Rate
    sequential_median_points: float

    @property
    def n(self) -> int:
        return self.default_failed.n


def summarise(outcomes: Sequence[CanaryOutcome]) -> list[Row]:
    """One row per (split, flavour, kind) present, in that order."""
    groups: dict[tuple[Split, Flavour, Kind], list[CanaryOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.split, outcome.flavour, outcome.kind), []).append(outcome)
    rows = []
    order = {k: i for i, k in enumerate(Kind)}
    for (split, flavour, kind), items in sorted(
        groups.items(), key=lambda kv: (list(Split).index(kv[0][0]),
                                        list(Flavour).index(kv[0][1]), order[kv[0][2]])
    ):
        n = len(items)
        seq = [o.sequential for o in items if o.sequential is not None]
        rows.append(Row(
            split=split, flavour=flavour, kind=kind,
            default_not_promoted=Rate(sum(o.default.verdict != "pass" for o in items), n),
            default_failed=Rate(sum(o.default.verdict == "fail" for o in items), n),
            kayenta_not_promoted=Rate(sum(o.kayenta.verdict != "pass" for o in items), n),
            kayenta_failed=Rate(sum(o.kayenta.verdict == "fail" for o in items), n),
            sequential_promoted=Rate(sum(s.status == "pass" for s in seq), len(seq)),
            sequential_failed=Rate(sum(s.status == "fail" for s in seq), len(seq)),
            sequential_median_points=(float(statistics.median(s.points for s in seq))
                                      if seq else float("nan")),
        ))
    return rows


_HEADER = (
    "| kind | truth | n | default: not promoted | default: failed | Kayenta mode: not promoted "
    "| Kayenta mode: failed | sequential: promoted | sequential: failed "
    "| sequential: median points to the end |"
)


def format_tables(rows: Sequence[Row], points: int = DEFAULT_SPEC.points) -> str:
    """Markdown: one table per (split, flavour)."""
    out: list[str] = []
    keys = list(dict.fromkeys((r.split, r.flavour) for r in rows))
    for split, flavour in keys:
        out.append(f"\n**{split.value} series, {flavour.value} canaries** ({points} points a "
                   f"side; percentages with Wilson 95% intervals)\n")
        out.append(_HEADER)
        out.append("| --- | --- | ---: " + "| ---: " * 7 + "|")
        for r in rows:
            if (r.split, r.flavour) != (split, flavour):
                continue
            median = ("-" if r.sequential_failed.n == 0
                      else f"{r.sequential_median_points:g}")
            out.append(
                f"| {KIND_DESCRIPTIONS[r.kind]} | {EXPECTED[r.kind].value} | {r.n} "
                f"| {r.default_not_promoted.cell()} | {r.default_failed.cell()} "
                f"| {r.kayenta_not_promoted.cell()} | {r.kayenta_failed.cell()} "
                f"| {r.sequential_promoted.cell()} | {r.sequential_failed.cell()} | {median} |"
            )
    return "\n".join(out)


def _metric_family(metric: str) -> str:
    return metric if metric in ("errors", "requests") else "level"


def _cause(blame: Blame, outcome: CanaryOutcome) -> str:
    family = _metric_family(blame.metric)
    if family == "errors":
        low = ", low traffic" if blame.low_traffic else ""
        return f"errors {blame.classification}, error rate {outcome.error_rate:.2%}{low}"
    return f"{family} {blame.classification}: {blame.series}"


def stop_causes(outcomes: Iterable[CanaryOutcome]) -> Iterator[tuple[str, int, int]]:
    """For canaries that should be promoted and were not (default judge, fixed horizon):
    ``(cause, canaries, of which failed)`` per cause, most frequent first. A cause is a metric
    that counted against the canary (its classification and the series it came from; error
    counts: with the error rate), or else the verdict's reason."""
    causes: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for o in outcomes:
        if EXPECTED[o.kind] is not Expected.PROMOTE or o.default.verdict == "pass":
            continue
        seen = {f"{_cause(b, o)} ({o.kind.value})" for b in o.default.blame if b.counted}
        if not seen:
            # Held at marginal by a required metric without enough evidence (critical or
            # mustHaveData), or by the score: name the metrics that were not a pass.
            seen = {f"{_cause(b, o)}, not enough evidence ({o.kind.value})"
                    for b in o.default.blame if b.classification == "nodata"}
        if not seen:
            seen = {f"no metric counted against it: {o.default.reason[:100]}"}
        for cause in seen:
            causes[cause] += 1
            failed[cause] += o.default.verdict == "fail"
    for cause, count in causes.most_common():
        yield cause, count, failed[cause]


def sequential_stop_causes(outcomes: Iterable[CanaryOutcome]) -> Iterator[tuple[str, int]]:
    """For canaries that should be promoted, sequential runs that did not pass, per way they
    ended: the metrics that failed them (``fail``), that stopped them as ``inconclusive`` (a
    failed metric that could not fail the canary), or, for a run that ended undecided, the
    metrics that held it. A run stopped early by one failed metric lists that metric only, not
    every metric still undecided at that poll."""
    causes: Counter[str] = Counter()
    for o in outcomes:
        s = o.sequential
        if s is None or EXPECTED[o.kind] is not Expected.PROMOTE or s.status == "pass":
            continue
        counted = [b for b in s.blame if b.counted]
        blamed = counted if counted or s.status == "fail" else list(s.blame)
        causes.update({f"{s.status}: {_cause(b, o)} ({o.kind.value})" for b in blamed})
    yield from causes.most_common()


def target_table(rows_of: Sequence[CanaryOutcome]) -> str:
    """Markdown: per regression kind and flavour, the share of canaries whose regressed metric
    itself was classified ``high`` / ``low`` (detection not carried by another metric), and the
    share where it was ``nodata`` ("not enough evidence", not scored)."""
    flavours = list(dict.fromkeys(o.flavour for o in rows_of))
    kinds = list(dict.fromkeys(o.kind for o in rows_of if EXPECTED[o.kind] is Expected.STOP))
    head = "| regressed metric itself failed | " + " | ".join(
        f"{f.value}: default | {f.value}: Kayenta mode" for f in flavours) + " |"
    out = [head, "| --- " + "| ---: " * (2 * len(flavours)) + "|"]
    for kind in kinds:
        cells = []
        for flavour in flavours:
            mine = [o for o in rows_of if o.kind is kind and o.flavour is flavour]
            for fixed in ([o.default for o in mine], [o.kayenta for o in mine]):
                hits = sum(f.target in ("high", "low") for f in fixed)
                nodata = Rate(sum(f.target == "nodata" for f in fixed), len(fixed))
                cells.append(Rate(hits, len(fixed)).cell()
                             + (f"; nodata {100 * nodata.share:.0f}%" if nodata.count else ""))
        out.append(f"| {KIND_DESCRIPTIONS[kind]} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _parse_setting(text: str) -> tuple[str, Any]:
    path, sep, value = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"--set: expected KEY=VALUE, got {text!r}")
    try:
        return path, json.loads(value)
    except json.JSONDecodeError:
        return path, value


def _parse_kinds(text: str) -> tuple[Kind, ...]:
    try:
        return tuple(Kind(k.strip()) for k in text.split(",") if k.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--kinds: comma-separated names among {', '.join(k.value for k in Kind)}"
        ) from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--canaries", type=int, default=50,
                        help="canaries per kind, flavour and split (default 50)")
    parser.add_argument("--seed", type=int, default=BENCHMARK_SEED)
    parser.add_argument("--flavour", choices=("both", *(f.value for f in Flavour)),
                        default="both")
    parser.add_argument("--points", type=int, default=DEFAULT_SPEC.points,
                        help="points (minutes) per side (default 60)")
    parser.add_argument("--sequential", choices=("on", "off"), default="on",
                        help="also run the default judge's sequential mode (default on)")
    parser.add_argument("--sequential-canaries", type=int, default=None,
                        help="sequential runs per row (default: --canaries)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--holdout-only", action="store_true", help="only the held-out series")
    which.add_argument("--tuning-only", action="store_true", help="only the tuning series")
    parser.add_argument("--kinds", type=_parse_kinds, default=tuple(Kind),
                        help="comma-separated kinds (default: all)")
    parser.add_argument("--series", default=None,
                        help="folder of the real series (default: $CANARY_JUDGE_REAL_SERIES "
                             "or ../shared/data/real-series)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--set", type=_parse_setting, action="append", default=[],
                        metavar="KEY=VALUE", dest="overrides",
                        help="a setting of the default-mode config, e.g. "
                             "multiple_testing.level=0.05 or "
                             "metrics.errors.test.negligible_rate=0.005 (repeatable; "
                             "metrics.*.… sets every metric)")
    args = parser.parse_args(argv)
    try:
        with_overrides(benchmark_config(), dict(args.overrides))
    except ValueError as exc:
        parser.error(f"--set: {exc}")

    splits = ((Split.HELD_OUT,) if args.holdout_only else
              (Split.TUNING,) if args.tuning_only else (Split.TUNING, Split.HELD_OUT))
    flavours = tuple(Flavour) if args.flavour == "both" else (Flavour(args.flavour),)
    settings = Settings(
        canaries=args.canaries,
        sequential_canaries=0 if args.sequential == "off" else args.sequential_canaries,
        seed=args.seed, splits=splits, flavours=flavours, kinds=args.kinds,
        spec=CanarySpec(points=args.points), jobs=args.jobs, overrides=tuple(args.overrides),
    )
    try:
        load_real_series(args.series)
    except FileNotFoundError as exc:
        print(f"bench_real_noise: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    outcomes = run(settings, path=args.series, progress=sys.stderr)
    rows = summarise(outcomes)
    print(f"Real-noise benchmark: {args.canaries} canaries per row, seed {args.seed}, "
          f"{args.points} points a side, sequential polls every {POLL_EVERY} points")
    if args.overrides:
        print("Default-mode config changed: "
              + ", ".join(f"{path} = {json.dumps(value)}" for path, value in args.overrides))
    print(format_tables(rows, args.points))
    for split in splits:
        mine = [o for o in outcomes if o.split is split]
        if any(EXPECTED[k] is Expected.STOP for k in settings.kinds):
            print(f"\n**{split.value} series: detections by the regressed metric itself** "
                  "(classified high / low; fixed horizon)\n")
            print(target_table(mine))
    for split in splits:
        for flavour in flavours:
            mine = [o for o in outcomes if o.split is split and o.flavour is flavour]
            where = f"{split.value} series, {flavour.value}"
            print(f"\nWhy canaries that should be promoted were not ({where}; default judge, "
                  "fixed horizon): canaries / of which failed")
            for cause, count, failed in stop_causes(mine):
                print(f"  {count:5d} / {failed:5d}  {cause}")
            if any(o.sequential is not None for o in mine):
                print(f"Sequential runs of those canaries that did not pass ({where}):")
                for cause, count in sequential_stop_causes(mine):
                    print(f"  {count:5d}  {cause}")
    print(f"\n({time.perf_counter() - started:.0f} s, {settings.jobs} processes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
