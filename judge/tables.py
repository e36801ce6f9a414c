"""Checks on the tables a caller hands to :func:`judge.judge` (a notebook, a script, the
``/v1/judge`` body): a mistake in calling the library is an error that says what was expected,
never a verdict. A Series where a table belongs, a metric column that neither table has (a typo,
or long-format data), and timestamps that cannot be compared would otherwise come back as a
confident ``fail`` (a missing column is ``nodata``, which can force a score of 0).

What stays a classification is bad *data* in a well-formed call: a column that one side lacks
(the canary stopped reporting a metric), NaN, infinities, empty series, values that are not
numbers (:mod:`judge.judges.common`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from judge.config import CanaryConfig
from judge.errors import DataError

__all__ = ["LONG_FORMAT_COLUMNS", "check_tables", "time_warnings"]

LONG_FORMAT_COLUMNS = ("metric", "name", "__name__", "metric_name", "variable")
"""Column names that, next to a ``value`` column, mark a long-format table (one row per metric
and timestamp): what ``pandas.melt`` and most exports produce."""


def _columns(table: pd.DataFrame | Mapping[str, Any]) -> list[str]:
    return [str(c) for c in (table.columns if isinstance(table, pd.DataFrame) else table)]


def _check_type(side: str, table: Any) -> None:
    if isinstance(table, pd.DataFrame | Mapping):
        return
    if isinstance(table, pd.Series):
        name = table.name if table.name is not None else "metric"
        raise DataError(
            f"{side}: got a pandas Series ({name!r}); judge() takes a table with one column per "
            f"metric: pass {side}.to_frame() (its column is then {name!r}) or "
            f"{{{name!r}: series}}"
        )
    raise DataError(
        f"{side}: expected a pandas DataFrame (one column per metric, a DatetimeIndex for "
        f"timestamps) or a mapping from column name to values, got {type(table).__name__}"
    )


def _long_format_hint(columns: set[str]) -> str:
    key = next((c for c in LONG_FORMAT_COLUMNS if c in columns), None)
    if key is None or "value" not in columns:
        return ""
    return (f". The tables look like long format (a {key!r} and a 'value' column): pivot "
            f"them to one column per metric, e.g. df.pivot(index='timestamp', columns={key!r}, "
            "values='value')")


def _timezone(table: pd.DataFrame | Mapping[str, Any]) -> str | None:
    """``"aware"`` / ``"naive"`` for a DataFrame with a DatetimeIndex, else ``None``."""
    if isinstance(table, pd.DataFrame) and isinstance(table.index, pd.DatetimeIndex):
        return "naive" if table.index.tz is None else "aware"
    return None


def check_tables(
    config: CanaryConfig,
    baseline: pd.DataFrame | Mapping[str, Any],
    canary: pd.DataFrame | Mapping[str, Any],
    *,
    require_columns: bool = True,
) -> None:
    """Raise :class:`DataError` for a call that cannot be meant: a side that is not a table,
    a metric column that neither table has (``require_columns``; the message lists the columns
    there are and spots long-format tables), or one side's timestamps timezone-aware and the
    other's naive (a naive index is read as UTC, so local times would be silently shifted)."""
    _check_type("baseline", baseline)
    _check_type("canary", canary)
    if require_columns:
        have_b, have_c = set(_columns(baseline)), set(_columns(canary))
        absent = [m.column for m in config.metrics
                  if m.column not in have_b and m.column not in have_c]
        if absent:
            there = sorted(have_b | have_c)
            raise DataError(
                f"no column {', '.join(repr(c) for c in absent)} in the baseline or the canary "
                f"table (config {config.name!r} reads {sorted({m.column for m in config.metrics})}"
                f"; the tables have {there}){_long_format_hint(have_b | have_c)}"
            )
    zones = {"baseline": _timezone(baseline), "canary": _timezone(canary)}
    if None not in zones.values() and len(set(zones.values())) == 2:
        aware = "baseline" if zones["baseline"] == "aware" else "canary"
        naive = "canary" if aware == "baseline" else "baseline"
        raise DataError(
            f"the {aware}'s timestamps are timezone-aware and the {naive}'s are naive: "
            f"localize the {naive}'s index (e.g. {naive}.tz_localize('UTC'), or the zone it was "
            "recorded in) so that the same minute means the same time on both sides"
        )


def time_warnings(
    baseline: pd.DataFrame | Mapping[str, Any], canary: pd.DataFrame | Mapping[str, Any]
) -> list[str]:
    """Sentences for the report about the tables' timestamps: sides that do not overlap in time
    (a canary window shifted against its baseline, by design or by mistake) are compared as
    independent samples, never minute by minute; the report says so."""
    if _timezone(baseline) is None or _timezone(canary) is None:
        return []
    assert isinstance(baseline, pd.DataFrame) and isinstance(canary, pd.DataFrame)
    if baseline.empty or canary.empty:
        return []

    def utc(index: Any) -> pd.DatetimeIndex:
        assert isinstance(index, pd.DatetimeIndex)
        return index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")

    b, c = utc(baseline.index), utc(canary.index)
    b0, b1, c0, c1 = b.min(), b.max(), c.min(), c.max()
    if c0 > b1 or b0 > c1:
        gap = (c0 - b1) if c0 > b1 else (b0 - c1)
        later = "canary" if c0 > b1 else "baseline"
        return [
            f"The baseline ({b0:%Y-%m-%d %H:%M} to {b1:%Y-%m-%d %H:%M} UTC) and the canary "
            f"({c0:%Y-%m-%d %H:%M} to {c1:%Y-%m-%d %H:%M} UTC) do not overlap in time (the "
            f"{later} starts {_duration(gap)} after the other ends): they are compared as "
            "independent samples, so load that differs between the two windows can look like "
            "a regression. If both ran at once, check the tables' timestamps."
        ]
    return []


def _duration(delta: pd.Timedelta) -> str:
    seconds = float(delta / np.timedelta64(1, "s"))
    for unit, size in (("days", 86_400.0), ("hours", 3_600.0), ("minutes", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} seconds"
