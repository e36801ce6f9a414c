"""The series an analysis judged, kept as JSON for its report page's plots.

A report holds numbers about the data (means, an estimate, an interval) but not the data; the
page draws the baseline and canary series over time and their distributions, so the service
keeps what :func:`judge.analysis.analyze_async` fetched (its ``on_pairs``) next to the
analysis. The form is plain JSON so any database stores it::

    {"version": 1,
     "metrics": {"p99 latency": {"baseline": {"t": [epoch seconds...], "v": [values...]},
                                 "canary":   {"t": [...], "v": [...]}},
                 "errors": {"error": "why it could not be fetched"}}}

``t`` is ``null`` for series without timestamps (then plotted by position); a NaN value is
``null``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from judge.fetching import SeriesPairs
    from judge.judges.common import MetricData

SERIES_VERSION = 1


def _side_json(values: Any, times: Any) -> dict[str, Any]:
    floats = np.asarray(values, dtype=np.float64).ravel()
    stamps: list[float] | None = None
    if times is not None:
        nanos = np.asarray(times).astype("datetime64[ns]").astype(np.int64)
        stamps = (nanos / 1e9).tolist()
    return {
        "t": stamps,
        "v": [value if math.isfinite(value) else None for value in floats.tolist()],
    }


def metric_json(data: MetricData) -> dict[str, Any]:
    """One metric's two series as JSON."""
    return {
        "baseline": _side_json(data.baseline, data.baseline_times),
        "canary": _side_json(data.canary, data.canary_times),
    }


def series_json(pairs: SeriesPairs) -> dict[str, Any]:
    """Every metric of a fetch as JSON (a metric that could not be fetched: its reason)."""
    metrics: dict[str, Any] = {}
    for name, value in pairs.pairs.items():
        metrics[name] = {"error": value} if isinstance(value, str) else metric_json(value)
    return {"version": SERIES_VERSION, "metrics": metrics}


def sequences_json(sequences: Mapping[str, tuple[list[float], list[float]]]) -> dict[str, Any]:
    """A sequential run's points (per metric: baseline and canary values seen so far, in
    order; the run keeps no timestamps) in the same form."""
    return {
        "version": SERIES_VERSION,
        "metrics": {
            name: {"baseline": _side_json(baseline, None), "canary": _side_json(canary, None)}
            for name, (baseline, canary) in sequences.items()
        },
    }


def inputs_json(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """A judgment's inputs (``judge.judging.inputs_from_tables``: per metric a
    ``MetricData``, or why it has none) in the same form."""
    from judge.judges.common import MetricData

    metrics: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, MetricData):
            metrics[name] = metric_json(value)
        else:
            metrics[name] = {"error": str(getattr(value, "reason", value))}
    return {"version": SERIES_VERSION, "metrics": metrics}


def state_json(state: str) -> dict[str, Any]:
    """A sequential run's points so far per metric, from its stored state
    (``SequentialState.to_json()``; the run keeps no timestamps)."""
    from judge.judges.state import SequentialState

    parsed = SequentialState.from_json(state)
    return sequences_json({name: (seq.baseline, seq.canary)
                           for name, seq in parsed.metrics.items()})


def _side_series(raw: Mapping[str, Any] | None) -> pd.Series:
    if not raw:
        return pd.Series(dtype=float)
    values = np.array([math.nan if v is None else float(v) for v in raw.get("v") or ()])
    stamps = raw.get("t")
    if stamps is None or len(stamps) != len(values):
        return pd.Series(values, dtype=float)
    index = pd.to_datetime(np.asarray(stamps, dtype=np.float64), unit="s", utc=True)
    return pd.Series(values, index=index, dtype=float)


def metric_series(stored: Mapping[str, Any] | None, name: str) -> tuple[pd.Series, pd.Series]:
    """A metric's baseline and canary as float Series (time-indexed when timestamps were
    kept); empty Series when nothing was kept for it."""
    metrics = (stored or {}).get("metrics") or {}
    entry = metrics.get(name) or {}
    return _side_series(entry.get("baseline")), _side_series(entry.get("canary"))
