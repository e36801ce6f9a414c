"""Files and DataFrames as a metric source, for notebooks, backtests and the CLI.

The layout is one table in *wide* form: a column per metric, a ``side`` column whose values are
the scope values (``baseline`` / ``canary``, or versions such as ``v41`` / ``v42``), and an
optional ``time`` column::

    time,side,latency,errors
    2024-05-01T12:00:00Z,baseline,101.2,0
    2024-05-01T12:00:00Z,canary,99.8,1

One table keeps both sides' rows together (one file to pass around, and the same shape the
service stores); :meth:`FrameSource.from_pair` and :meth:`FileSource.from_files` accept the
two sides separately and label them. A metric reads the column named by its ``ColumnQuery``
(``column``, default: the metric's name; any other query type reads the metric's name too, so a
Prometheus config can be replayed from an exported file). With a ``time`` column and a scope
window, only rows with ``start <= time <= end`` are used, and rows on the window's grid
(``start + k*step``) are put on it with NaN where a row is missing, as every source answers.

Files: ``.csv``, ``.parquet`` (pyarrow), ``.json`` (records, ``[{"side": ..., ...}, ...]``) and
``.jsonl``. Read once, when the source is made.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from judge.config import CanaryConfig, MetricConfig
from judge.errors import BadDataError, FailureKind, FatalSourceError, QueryError
from judge.ports import FetchedSeries, FloatArray, Scope, TaggedSeries
from metricsources.grid import evaluation_grid, fill_grid, grid_positions

BASELINE = "baseline"
CANARY = "canary"


def read_table(path: str | Path) -> pd.DataFrame:
    """A table from a ``.csv``, ``.parquet``, ``.json`` (records) or ``.jsonl`` file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix == ".json":
        return pd.read_json(path, orient="records")
    if suffix in (".jsonl", ".ndjson"):
        return pd.read_json(path, orient="records", lines=True)
    raise ValueError(
        f"cannot read {path.name!r}: the suffix {suffix!r} is not one of .csv, .parquet, "
        ".json, .jsonl"
    )


def _utc(moment: datetime) -> pd.Timestamp:
    """A timestamp comparable with the UTC time column (naive datetimes are taken as UTC)."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


class FrameSource:
    """Metrics from an in-memory DataFrame (wide form with a scope column; see module doc)."""

    query_types: frozenset[str] | None = None
    """Any: a metric of any query type reads its column (a Prometheus config replayed from an
    exported file); in routing, a source that serves a metric's type exactly comes first."""

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        scope_column: str = "side",
        time_column: str | None = "time",
        label: str = "DataFrame",
    ) -> None:
        if scope_column not in frame.columns:
            raise ValueError(
                f"{label} has no {scope_column!r} column telling baseline rows from canary "
                f"rows (columns: {', '.join(map(str, frame.columns))})"
            )
        self.scope_column = scope_column
        self.label = label
        frame = frame.copy()
        frame[scope_column] = frame[scope_column].astype(str)
        self.time_column = time_column if time_column in frame.columns else None
        if self.time_column is not None:
            frame[self.time_column] = pd.to_datetime(frame[self.time_column], utc=True)
            frame = frame.sort_values(self.time_column, kind="stable")
        self.frame = frame

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label}, {len(self.frame)} rows)"

    @classmethod
    def from_pair(
        cls,
        baseline: pd.DataFrame,
        canary: pd.DataFrame,
        *,
        baseline_scope: str = BASELINE,
        canary_scope: str = CANARY,
        time_column: str | None = "time",
    ) -> FrameSource:
        """Two frames, one per side, labelled with the scope values the analysis will ask for."""
        joined = pd.concat(
            [baseline.assign(side=baseline_scope), canary.assign(side=canary_scope)],
            ignore_index=True,
        )
        return cls(joined, time_column=time_column, label="baseline and canary frames")

    def column(self, metric: MetricConfig) -> str:
        return metric.column

    def render(self, metric: MetricConfig, scope: Scope, config: CanaryConfig) -> str:
        text = f"{self.label}: column {self.column(metric)!r} where {self.scope_column} == " \
               f"{scope.scope!r}"
        if self.time_column is not None and (scope.start is not None or scope.end is not None):
            text += f" and {scope.start} <= {self.time_column} <= {scope.end}"
        return text

    async def fetch(
        self, metric: MetricConfig, scope: Scope, config: CanaryConfig
    ) -> FetchedSeries:
        # In memory: no I/O to wait for, so no thread either.
        return self.select(metric, scope, config)

    def select(self, metric: MetricConfig, scope: Scope, config: CanaryConfig) -> FetchedSeries:
        """The synchronous body of :meth:`fetch`."""
        rendered = self.render(metric, scope, config)
        column = self.column(metric)
        if column not in self.frame.columns:
            raise QueryError(
                f"{self.label} has no column {column!r} for metric {metric.name!r} "
                f"(columns: {', '.join(map(str, self.frame.columns))})"
            )
        rows = self.frame[self.frame[self.scope_column] == scope.scope]
        if rows.empty:
            present = sorted(self.frame[self.scope_column].unique())
            raise FatalSourceError(
                f"{self.label} has no rows with {self.scope_column} == {scope.scope!r} "
                f"(values present: {', '.join(present)})",
                kind=FailureKind.NO_SERIES,
            )
        if self.time_column is not None:
            times = rows[self.time_column]
            if scope.start is not None:
                rows = rows[times >= _utc(scope.start)]
                times = rows[self.time_column]
            if scope.end is not None:
                rows = rows[times <= _utc(scope.end)]
            since_epoch = rows[self.time_column] - pd.Timestamp(0, tz="UTC")
            timestamps: FloatArray = np.asarray(
                (since_epoch / pd.Timedelta(seconds=1)).to_numpy(), dtype=np.float64
            )
        else:
            timestamps = np.arange(len(rows), dtype=np.float64)
        raw = rows[column]
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() & raw.notna()
        if bad.any():
            raise BadDataError(
                f"column {column!r} of {self.label} has values that are not numbers, "
                f"e.g. {raw[bad].iloc[0]!r}"
            )
        series = TaggedSeries(tags={}, timestamps=timestamps,
                              values=values.to_numpy(dtype=np.float64))
        return FetchedSeries(query=rendered, series=(self._on_grid(series, scope),))

    def _on_grid(self, series: TaggedSeries, scope: Scope) -> TaggedSeries:
        """With a time column and a whole window, rows on the scope's grid (``start +
        k*step``) are put on it with NaN for the missing ones, as every source answers; rows
        off that grid (irregular times, another phase) are kept as they are."""
        if self.time_column is None or scope.start is None or scope.end is None:
            return series
        start, end, step = scope.window()
        grid = evaluation_grid(start.timestamp(), end.timestamp(), step.total_seconds())
        _index, on_grid = grid_positions(grid, series.timestamps)
        if series.timestamps.size == 0 or not on_grid.all() or \
                np.unique(series.timestamps).size != series.timestamps.size:
            return series
        return fill_grid(series, grid)


class FileSource(FrameSource):
    """Metrics from a CSV / Parquet / JSON file in the layout of :class:`FrameSource`."""

    def __init__(
        self, path: str | Path, *, scope_column: str = "side", time_column: str | None = "time"
    ) -> None:
        self.path = Path(path)
        super().__init__(read_table(self.path), scope_column=scope_column,
                         time_column=time_column, label=self.path.name)

    @classmethod
    def from_files(
        cls,
        baseline: str | Path,
        canary: str | Path,
        *,
        baseline_scope: str = BASELINE,
        canary_scope: str = CANARY,
        time_column: str | None = "time",
    ) -> FrameSource:
        """One file per side (no ``side`` column needed)."""
        return FrameSource.from_pair(
            read_table(baseline), read_table(canary), baseline_scope=baseline_scope,
            canary_scope=canary_scope, time_column=time_column,
        )
