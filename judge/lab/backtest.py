"""Backtests: replay labelled canaries under a config, and sweep a config's parameters.

A backtest judges every scenario (a past canary with its baseline and canary series and its
outcome, ``good`` or ``bad``; see :mod:`judge.lab.scenarios`) with one config and tabulates what the
judge said. Two error rates summarise it, as a release engineer counts them:

* **false failure**: a good release that did not pass (verdict ``marginal`` or ``fail``): the
  rollout was paused or rolled back for nothing;
* **missed bad release**: a bad release whose verdict was ``pass``; **detection** is its
  complement.

:func:`sweep` re-runs the backtest over a grid of config changes given as dotted paths into the
native config (``metrics.*.test.confidence``, ``thresholds.pass`` ...) and returns one row per
setting, so the trade-off between the two rates can be read (or plotted with
:func:`judge.lab.plots.plot_sweep`).

>>> from judge.lab.backtest import backtest
>>> from judge.lab.scenarios import generate_history, history_config
>>> result = backtest(history_config("kayenta"), generate_history(8, seed=1))
>>> sorted(result.summary().columns)[:4]
['detection', 'detection_high', 'detection_low', 'fail']
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd
from scipy.stats import binomtest

from judge.config import CanaryConfig
from judge.judging import judge
from judge.lab.scenarios import Label, Scenario
from judge.report import Classification, Report, Verdict
from judge.scoring import resolve_thresholds, score_report

__all__ = ["BacktestResult", "backtest", "configure", "set_path", "summarize", "sweep"]

RESERVED_COLUMNS = (
    "kind",
    "label",
    "verdict",
    "score",
    "failed",
    "nodata",
    "target",
    "target_classification",
)
"""Columns of :attr:`BacktestResult.frame` besides one per metric; a metric may not use one of
these names."""

_THRESHOLD_PREFIX = "thresholds."


@dataclass(frozen=True)
class BacktestResult:
    """What a config said about each scenario.

    ``frame``: one row per scenario, indexed by scenario ``id``, with columns ``kind``,
    ``label``, ``verdict``, ``score``, ``failed`` (names of failing metrics, comma-separated),
    ``nodata`` (how many metrics had too little data), ``target`` (the metric the regression
    was put in, if any), ``target_classification`` (what the judge said about that metric), and
    one column per metric with its classification. ``reports`` keeps each full report by id.
    """

    config: CanaryConfig
    frame: pd.DataFrame
    reports: Mapping[str, Report]
    seconds: float
    """Wall-clock time the judgments took."""

    def summary(self) -> pd.DataFrame:
        """Rates per scenario kind, then for all good, all bad and all scenarios.

        Columns: ``label``, ``n``; ``pass``, ``marginal``, ``fail`` (share of verdicts);
        ``false_failure`` (good releases: share not passed), ``missed`` (bad releases: share
        passed) and ``detection`` (bad: ``1 - missed``), the two headline rates each with its
        Wilson 95% interval (``false_failure_low`` / ``_high``, ``detection_low`` / ``_high``:
        a handful of canaries gives a wide one); ``target_flagged`` (bad: share whose
        regressed metric itself was classified high or low: caught for the right reason);
        ``some_nodata`` (share with at least one metric without enough data - what a judge
        should say on ``low_traffic``).
        """
        return summarize(self.frame)

    def rates(self) -> dict[str, float]:
        """The headline numbers: ``false_failure`` over good releases and ``detection`` over
        bad ones (NaN when there are none), each with its Wilson 95% interval
        (``false_failure_low`` / ``false_failure_high``, ``detection_low`` /
        ``detection_high``)."""
        summary = self.summary()
        return {
            key: _cell(summary, row, key)
            for row, rate in (("good (all)", "false_failure"), ("bad (all)", "detection"))
            for key in (rate, f"{rate}_low", f"{rate}_high")
        }


def _cell(frame: pd.DataFrame, row: str, column: str) -> float:
    return float(cast(float, frame.loc[row, column]))


def _row(scenario: Scenario, report: Report) -> dict[str, Any]:
    classes = {m.name: m.classification.value for m in report.metrics}
    failed = [m.name for m in report.metrics if m.classification.failed and not m.muted]
    target = scenario.target
    return {
        "id": scenario.id,
        "kind": str(scenario.kind),
        "label": None if scenario.label is None else scenario.label.value,
        "verdict": report.verdict.value,
        "score": report.score,
        "failed": ",".join(failed),
        "nodata": sum(m.classification is Classification.NODATA for m in report.metrics),
        "target": target,
        "target_classification": classes.get(target) if target is not None else None,
        **classes,
    }


def _frame(rows: Iterable[dict[str, Any]], metric_names: Sequence[str]) -> pd.DataFrame:
    columns = ["id", *RESERVED_COLUMNS, *metric_names]
    return pd.DataFrame(list(rows), columns=columns).set_index("id")


def _check_names(config: CanaryConfig) -> list[str]:
    names = [m.name for m in config.metrics]
    clash = sorted(set(names) & {*RESERVED_COLUMNS, "id"})
    if clash:
        raise ValueError(
            f"config: metric names {clash} clash with backtest columns; rename the metrics "
            f"(reserved: {', '.join(('id', *RESERVED_COLUMNS))})"
        )
    return names


PARALLEL_MIN_SCENARIOS = 64
"""Below this many canaries a backtest judges in this process: starting worker processes and
shipping them the data costs more than judging a few dozen canaries."""


def _judge_chunk(
    config: CanaryConfig, chunk: Sequence[Scenario], thresholds: Mapping[str, float] | None
) -> list[Report]:
    return [judge(config, s.baseline, s.canary, thresholds=thresholds) for s in chunk]


def _chunks(scenarios: list[Scenario], workers: int) -> list[list[Scenario]]:
    """Contiguous chunks, a few per worker: order is kept, and the slowest chunk bounds the
    wait less than one chunk per worker would."""
    size = max(1, math.ceil(len(scenarios) / (max(workers, 1) * 4)))
    return [scenarios[i:i + size] for i in range(0, len(scenarios), size)]


def _judge_on_cluster(
    client: Any, config: CanaryConfig, scenarios: list[Scenario],
    thresholds: Mapping[str, float] | None,
) -> list[Report]:
    """Chunks of canaries as tasks on a Dask cluster, gathered in order."""
    chunks = _chunks(scenarios, len(client.scheduler_info().get("workers", {})))
    futures = client.map(_judge_chunk, [config] * len(chunks), chunks,
                         [thresholds] * len(chunks), pure=False)
    return [report for part in client.gather(futures) for report in part]


def _workers(jobs: int | None, scenarios: int) -> int:
    if jobs is not None:
        if jobs < 1:
            raise ValueError(f"jobs must be >= 1 (or None for every core), got {jobs}")
        return min(jobs, max(scenarios, 1))
    if scenarios < PARALLEL_MIN_SCENARIOS:
        return 1
    return max(1, min(os.cpu_count() or 1, scenarios // (PARALLEL_MIN_SCENARIOS // 2)))


def backtest(
    config: CanaryConfig | Mapping[str, Any],
    scenarios: Iterable[Scenario],
    *,
    thresholds: Mapping[str, float] | None = None,
    jobs: int | None = None,
    client: Any | None = None,
) -> BacktestResult:
    """Judge every scenario with ``config`` (each canary on its own, as a one-shot judgment).

    ``thresholds`` (``{"pass": .., "marginal": ..}``) overrides the config's score thresholds.
    ``jobs``: worker processes; ``None`` uses every core for histories of
    :data:`PARALLEL_MIN_SCENARIOS` canaries or more (each judgment is independent, so the
    results are the same whatever the number of processes), ``1`` judges in this process.
    ``client``: a ``dask.distributed.Client``; the canaries are then judged on its cluster
    (chunks of them as tasks), whatever ``jobs`` says (``pip install 'canary-judge[cluster]'``).
    """
    config = config if isinstance(config, CanaryConfig) else CanaryConfig.from_dict(config)
    names = _check_names(config)
    scenarios = list(scenarios)
    seen: set[str] = set()
    for scenario in scenarios:
        if scenario.id in seen:
            raise ValueError(f"scenarios: id {scenario.id!r} appears twice")
        seen.add(scenario.id)
    started = time.perf_counter()
    workers = _workers(jobs, len(scenarios))
    if client is not None:
        judged = _judge_on_cluster(client, config, scenarios, thresholds)
    elif workers == 1:
        judged = _judge_chunk(config, scenarios, thresholds)
    else:
        chunks = _chunks(scenarios, workers)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            judged = [report for part in pool.map(_judge_chunk, itertools.repeat(config),
                                                  chunks, itertools.repeat(thresholds))
                      for report in part]
    reports = {s.id: report for s, report in zip(scenarios, judged, strict=True)}
    rows = [_row(s, reports[s.id]) for s in scenarios]
    seconds = time.perf_counter() - started
    return BacktestResult(
        config=config, frame=_frame(rows, names), reports=reports, seconds=seconds
    )


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """The summary of a backtest frame (see :meth:`BacktestResult.summary`)."""
    groups: list[tuple[str, pd.DataFrame]] = [
        (str(kind), part) for kind, part in frame.groupby("kind", sort=False)
    ]
    # Good kinds first, then bad ones, each in a stable (alphabetical) order.
    order = {Label.GOOD.value: 0, Label.BAD.value: 1}
    groups.sort(key=lambda item: (order.get(item[1]["label"].iloc[0], 2), item[0]))
    for label in (Label.GOOD, Label.BAD):
        groups.append((f"{label.value} (all)", frame[frame["label"] == label.value]))
    groups.append(("all", frame))
    rows = {}
    for name, part in groups:
        labels = set(part["label"].fillna("unknown"))
        label_name = str(labels.pop()) if len(labels) == 1 else "mixed"
        verdicts = part["verdict"]
        good = part["label"] == Label.GOOD.value
        bad = part["label"] == Label.BAD.value
        target_flagged = part.loc[bad, "target_classification"].isin(
            [Classification.HIGH.value, Classification.LOW.value]
        )
        false_failures = verdicts[good] != Verdict.PASS.value
        detected = verdicts[bad] != Verdict.PASS.value
        ff_low, ff_high = wilson_interval(int(false_failures.sum()), len(false_failures))
        det_low, det_high = wilson_interval(int(detected.sum()), len(detected))
        rows[name] = {
            "label": label_name if len(part) else "none",
            "n": len(part),
            "pass": _share(verdicts == Verdict.PASS.value),
            "marginal": _share(verdicts == Verdict.MARGINAL.value),
            "fail": _share(verdicts == Verdict.FAIL.value),
            "false_failure": _share(false_failures),
            "false_failure_low": ff_low,
            "false_failure_high": ff_high,
            "missed": _share(verdicts[bad] == Verdict.PASS.value),
            "detection": _share(detected),
            "detection_low": det_low,
            "detection_high": det_high,
            "target_flagged": _share(target_flagged),
            "some_nodata": _share(part["nodata"] > 0),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("kind")


RATE_CONFIDENCE = 0.95
"""Confidence of the intervals around every backtest rate: 0 false failures in 10 canaries is
"at most about 28%", not 0."""


def wilson_interval(count: int, n: int, confidence: float = RATE_CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for ``count`` of ``n`` (scipy's ``binomtest(...).proportion_ci``);
    NaN without trials."""
    if n <= 0:
        return float("nan"), float("nan")
    ci = binomtest(count, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _share(mask: pd.Series) -> float:
    """Mean of a boolean mask; NaN (not 0) when it is empty, so "no bad releases" never reads
    as "no bad release was missed"."""
    return float(mask.mean()) if len(mask) else float("nan")


# -- sweeps -------------------------------------------------------------------------------


def set_path(native: dict[str, Any], path: str, value: Any) -> int:
    """Set ``value`` at a dotted ``path`` in a native config mapping (as :meth:`CanaryConfig.
    to_dict` returns it), in place; return how many places were set.

    A segment addressing the ``metrics`` list is a metric name, a position, or ``*`` for every
    metric. With ``*`` a metric whose test has no such field (a threshold test has no
    ``confidence``) is skipped; without it a missing last key is created, so optional fields
    can be set. Raises ``KeyError`` naming the path when nothing matches.
    """
    parts = path.split(".")
    if not path or any(not part for part in parts):
        raise KeyError(f"path {path!r}: empty segment")
    count = _set(native, parts, value, wildcard=False, path=path)
    if count == 0:
        raise KeyError(f"path {path!r} matches nothing in the config")
    return count


def _set(node: Any, parts: list[str], value: Any, *, wildcard: bool, path: str) -> int:
    head, rest = parts[0], parts[1:]
    if isinstance(node, list):
        if head == "*":
            return sum(_set(item, rest, value, wildcard=True, path=path) for item in node)
        items = [item for item in node if isinstance(item, dict) and item.get("name") == head]
        if not items and head.isdigit() and int(head) < len(node):
            items = [node[int(head)]]
        if not items:
            if wildcard:
                return 0
            raise KeyError(f"path {path!r}: no item named or numbered {head!r}")
        return sum(_set(item, rest, value, wildcard=wildcard, path=path) for item in items)
    if not isinstance(node, dict):
        if wildcard:
            return 0
        raise KeyError(f"path {path!r}: {head!r} is below a value, not a mapping")
    if not rest:
        if head not in node and wildcard:
            return 0
        node[head] = value
        return 1
    if head not in node:
        if wildcard:
            return 0
        raise KeyError(f"path {path!r}: no key {head!r}")
    return _set(node[head], rest, value, wildcard=wildcard, path=path)


def configure(base: CanaryConfig | Mapping[str, Any], setting: Mapping[str, Any]) -> CanaryConfig:
    """``base`` with every ``path: value`` of ``setting`` applied (see :func:`set_path`),
    validated as a new config; ``base`` is left as it was.

    >>> from judge.lab.scenarios import history_config
    >>> tuned = configure(history_config(), {"thresholds.pass": 90})
    >>> tuned.thresholds.pass_
    90.0
    """
    native = base.to_dict() if isinstance(base, CanaryConfig) else copy.deepcopy(dict(base))
    for path, value in setting.items():
        set_path(native, path, value)
    return CanaryConfig.from_dict(native)


Grid = Mapping[str, Sequence[Any]]
"""Dotted paths (see :func:`set_path`) to the values to try."""


@dataclass(frozen=True)
class Combination:
    """One setting of a sweep: the values of its grid, split into what must be judged again
    and what only re-scores."""

    judged: dict[str, Any]
    scored: dict[str, Any]

    @property
    def setting(self) -> dict[str, Any]:
        return {**self.judged, **self.scored}


def _grids(grid: Grid | Sequence[Grid]) -> list[Grid]:
    grids = [grid] if isinstance(grid, Mapping) else list(grid)
    if not grids:
        raise ValueError("grid: give at least one path with values to try")
    for one in grids:
        if not isinstance(one, Mapping) or not one:
            raise ValueError("grid: each grid is a non-empty mapping path -> values")
        for path, values in one.items():
            if isinstance(values, str) or not isinstance(values, Sequence) or not values:
                raise ValueError(f"grid[{path!r}]: need a non-empty list of values")
    return grids


def combinations(
    base: CanaryConfig, grid: Grid | Sequence[Grid]
) -> tuple[list[Combination], list[tuple[dict[str, Any], str]]]:
    """Every combination of ``grid`` (a mapping, or a list of mappings whose combinations are
    joined, as scikit-learn's ``ParameterGrid`` does), each applied to ``base`` and validated
    before anything is judged: ``(valid, invalid)``, ``invalid`` holding each refused setting
    with the reason (e.g. ``thresholds.pass`` 70 below ``thresholds.marginal`` 75)."""
    base_native = base.to_dict()
    valid: list[Combination] = []
    invalid: list[tuple[dict[str, Any], str]] = []
    seen: set[str] = set()
    for one in _grids(grid):
        paths = list(one)
        for values in itertools.product(*(one[p] for p in paths)):
            setting = dict(zip(paths, values, strict=True))
            key = repr(sorted(setting.items(), key=lambda item: item[0]))
            if key in seen:
                continue
            seen.add(key)
            try:
                configure(base_native, setting)
            except ValueError as exc:
                # An invalid combination of values; a path that fits nothing (KeyError) is a
                # mistake in the grid, whatever its values, and goes up.
                invalid.append((setting, _reason(exc)))
                continue
            valid.append(Combination(
                judged={p: v for p, v in setting.items() if not p.startswith(_THRESHOLD_PREFIX)},
                scored={p: v for p, v in setting.items() if p.startswith(_THRESHOLD_PREFIX)},
            ))
    return valid, invalid


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(
            f"{'.'.join(str(part) for part in e.get('loc', ())) or 'config'}: {e.get('msg')}"
            for e in errors())
    return " ".join(str(exc).split()) or repr(exc)


def sweep(
    base_config: CanaryConfig | Mapping[str, Any],
    scenarios: Sequence[Scenario],
    grid: Grid | Sequence[Grid],
    *,
    reuse: Iterable[BacktestResult] = (),
    invalid: str = "raise",
    jobs: int | None = None,
    client: Any | None = None,
) -> pd.DataFrame:
    """Backtest every combination of ``grid`` values applied to ``base_config``.

    ``grid`` maps a dotted path (see :func:`set_path`) to the values to try, e.g.
    ``{"metrics.*.test.confidence": [0.95, 0.98, 0.99], "thresholds.pass": [90, 95]}``, or is
    a list of such mappings (their combinations joined; paths a grid does not set keep the
    base config's value and show as NaN). Every combination is validated before anything is
    judged: an invalid one (``thresholds.pass`` below ``thresholds.marginal``) raises
    ``ValueError`` listing all of them, or with ``invalid="skip"`` is left out and listed in
    ``table.attrs["skipped"]``. A path that fits nothing in the config raises ``KeyError``.

    Returns one row per combination: the values (one column per path), ``false_failure``,
    ``detection`` (each with ``_low`` / ``_high``, its Wilson 95% interval), ``fail_on_good``
    (share of good releases failed outright), and per kind ``false_failure:<kind>`` (good
    kinds) or ``detection:<kind>`` (bad kinds). ``table.attrs["no_effect"]`` lists the paths
    whose values never changed a verdict (with a warning): e.g. ``metrics.*.test.confidence``
    under a family-wise correction, which sets the level itself.

    Settings that only change ``thresholds.*`` re-score the same per-metric results instead of
    judging again (the classification of a metric does not depend on the score thresholds).
    ``reuse``: backtests already run on the same scenarios (e.g. of the base config); a setting
    whose config equals one of theirs takes its reports instead of judging again. ``jobs`` and
    ``client`` are :func:`backtest`'s (every core by default; a Dask cluster when given).
    """
    base = (
        base_config
        if isinstance(base_config, CanaryConfig)
        else CanaryConfig.from_dict(base_config)
    )
    if invalid not in ("raise", "skip"):
        raise ValueError(f"invalid: 'raise' or 'skip', got {invalid!r}")
    valid, refused = combinations(base, grid)
    if refused and invalid == "raise":
        listed = "; ".join(f"{setting}: {why}" for setting, why in refused)
        raise ValueError(f"{len(refused)} invalid combination(s) (pass invalid='skip' to leave "
                         f"them out): {listed}")
    ids = [s.id for s in scenarios]
    # Only backtests of these scenarios, scored with their own config's thresholds (not a
    # ``thresholds=`` override), can stand in for a setting.
    known = [r for r in reuse if list(r.frame.index) == ids and _own_thresholds(r)]
    judged: dict[str, BacktestResult] = {}
    rows = []
    verdicts = []
    for combination in valid:
        config = configure(base, combination.judged)
        key = repr(sorted(combination.judged.items(), key=lambda item: item[0]))
        if key not in judged:
            judged[key] = next((r for r in known if r.config == config), None) or backtest(
                config, scenarios, jobs=jobs, client=client)
        rescored = _rescore(config, judged[key], scenarios, combination.scored)
        rows.append({**combination.setting, **_sweep_rates(rescored)})
        verdicts.append(tuple(rescored["verdict"]))
    table = pd.DataFrame(rows)
    table.attrs["skipped"] = [{**setting, "reason": why} for setting, why in refused]
    table.attrs["no_effect"] = _no_effect(valid, verdicts)
    if table.attrs["no_effect"]:
        warnings.warn(
            f"these settings changed no verdict in the sweep: {table.attrs['no_effect']} "
            "(e.g. a test's confidence under a family-wise correction, which sets the level)",
            stacklevel=2,
        )
    return table


def _no_effect(valid: Sequence[Combination], verdicts: Sequence[tuple[Any, ...]]) -> list[str]:
    """Paths with more than one value whose values never changed any scenario's verdict with
    the other paths held fixed."""
    paths = sorted({p for c in valid for p in c.setting})
    quiet = []
    for path in paths:
        groups: dict[str, tuple[set[str], set[tuple[Any, ...]]]] = {}
        for combination, outcome in zip(valid, verdicts, strict=True):
            if path not in combination.setting:
                continue
            others = {p: v for p, v in combination.setting.items() if p != path}
            values, outcomes = groups.setdefault(
                repr(sorted(others.items(), key=lambda i: i[0])), (set(), set()))
            values.add(repr(combination.setting[path]))
            outcomes.add(outcome)
        compared = [outcomes for values, outcomes in groups.values() if len(values) > 1]
        if compared and all(len(outcomes) == 1 for outcomes in compared):
            quiet.append(path)
    return quiet


def _own_thresholds(result: BacktestResult) -> bool:
    limits = result.config.thresholds
    return all(
        (r.pass_threshold, r.marginal_threshold) == (limits.pass_, limits.marginal)
        for r in result.reports.values()
    )


def _rescore(
    config: CanaryConfig,
    result: BacktestResult,
    scenarios: Sequence[Scenario],
    setting: Mapping[str, Any],
) -> pd.DataFrame:
    if not setting:
        return result.frame
    variant = configure(config, setting)
    limits = resolve_thresholds(variant, None)
    names = [m.name for m in variant.metrics]
    rows = []
    for scenario in scenarios:
        report = result.reports[scenario.id]
        rescored = score_report(variant, report.metrics, limits, details=report.details)
        rows.append(_row(scenario, rescored))
    return _frame(rows, names)


def _sweep_rates(frame: pd.DataFrame) -> dict[str, float]:
    summary = summarize(frame)
    rates = {
        key: _cell(summary, row, key)
        for row, rate in (("good (all)", "false_failure"), ("bad (all)", "detection"))
        for key in (rate, f"{rate}_low", f"{rate}_high")
    }
    rates["fail_on_good"] = _cell(summary, "good (all)", "fail")
    for kind, row in summary.iterrows():
        if kind in ("good (all)", "bad (all)", "all"):
            continue
        if row["label"] not in (Label.GOOD.value, Label.BAD.value):
            continue  # no rate to give for releases whose outcome is unknown
        column = "false_failure" if row["label"] == Label.GOOD.value else "detection"
        rates[f"{column}:{kind}"] = float(row[column])
    return rates
