"""Your own history as labelled canaries: past rollouts from a table or a file (CSV or Parquet,
wide or long format) into :class:`~judge.lab.scenarios.Scenario` objects that
:func:`~judge.lab.backtest.backtest` and :func:`~judge.lab.backtest.sweep` take.

Two layouts, as exports come:

- **wide**: one row per canary, side and point; columns ``id``, ``side`` (``baseline`` /
  ``canary``), optionally ``time``, then one column per metric;
- **long**: one row per canary, side, point and metric; columns ``id``, ``side``, optionally
  ``time``, ``metric`` and ``value`` (what ``DataFrame.melt`` and most metric exports give).

The truth about each canary comes from ``label`` / ``kind`` columns (one value per canary) or
from ``labels`` (a mapping ``id -> "good" | "bad" | None``, or a table with ``id``, ``label``
and optionally ``kind``). Timestamps are kept as given, at whatever step (nothing is put on a
one-minute grid), and values at full precision.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from judge.errors import DataError
from judge.lab.scenarios import Scenario

__all__ = ["read_scenarios", "scenarios_from_table"]

_KEYS = ("id", "side")
_SIDES = ("baseline", "canary")
_TRUTH = ("label", "kind")


def _require(table: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"the history table needs the column(s) {missing}; it has "
                        f"{[str(c) for c in table.columns]}")


def _wide(table: pd.DataFrame) -> pd.DataFrame:
    """The long layout pivoted to one column per metric (rows keep their ``time``, or their
    order within each canary, side and metric when there is none)."""
    rest = [c for c in table.columns if c not in (*_KEYS, "time", "metric", "value", *_TRUTH)]
    if rest:
        raise DataError(f"a long-format history has columns id, side, [time], metric, value "
                        f"[, label, kind]; these are not among them: {rest}")
    table = table.copy()
    if "time" not in table.columns:
        table["time"] = table.groupby([*_KEYS, "metric"], sort=False).cumcount()
    truth = [c for c in _TRUTH if c in table.columns]
    duplicated = table.duplicated([*_KEYS, "time", "metric"])
    if duplicated.any():
        first = table.loc[duplicated, [*_KEYS, "time", "metric"]].iloc[0].to_dict()
        raise DataError(f"two values for one canary, side, time and metric: {first}")
    wide = table.pivot(index=[*_KEYS, "time"], columns="metric", values="value")
    wide.columns = [str(c) for c in wide.columns]
    wide = wide.reset_index()
    if truth:
        per_canary = table.drop_duplicates("id").set_index("id")[truth]
        wide = wide.join(per_canary, on="id")
    return wide


def _truth_of(table: pd.DataFrame, labels: Any) -> dict[str, tuple[Any, Any]]:
    """``id -> (label, kind)`` from ``labels`` or the table's own columns."""
    truth: dict[str, tuple[Any, Any]] = {}
    if labels is not None:
        if isinstance(labels, pd.DataFrame):
            _require(labels, ("id", "label"))
            for row in labels.itertuples(index=False):
                truth[str(row.id)] = (row.label, getattr(row, "kind", None))
        elif isinstance(labels, Mapping):
            truth = {str(k): (v, None) for k, v in labels.items()}
        else:
            raise DataError("labels: a mapping id -> 'good' | 'bad' | None, or a table with "
                            f"columns id, label [, kind]; got {type(labels).__name__}")
        return truth
    present = [c for c in _TRUTH if c in table.columns]
    if not present:
        return truth
    per_canary = table.groupby("id", sort=False)[present].nunique(dropna=False)
    mixed = per_canary[(per_canary > 1).any(axis=1)]
    if len(mixed):
        raise DataError(f"canary {str(mixed.index[0])!r} has more than one "
                        f"{'/'.join(present)}: each canary is one rollout with one outcome")
    first = table.drop_duplicates("id")
    for position, canary_id in enumerate(first["id"]):
        values = {c: first[c].iloc[position] for c in present}
        truth[str(canary_id)] = (values.get("label"), values.get("kind"))
    return truth


def _clean_label(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value


def scenarios_from_table(
    table: pd.DataFrame,
    *,
    labels: Mapping[str, Any] | pd.DataFrame | None = None,
    kind: str = "past",
) -> list[Scenario]:
    """Labelled canaries from one table in the wide or long layout (module docstring), in the
    order their ids first appear. ``kind`` is the group a backtest reports them under when
    the table has no ``kind`` column. Raises :class:`judge.errors.DataError` naming what is
    wrong (a missing column, a side that is neither baseline nor canary, a canary with only
    one side, two outcomes for one canary)."""
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(table).__name__}")
    _require(table, _KEYS)
    if "metric" in table.columns and "value" in table.columns:
        table = _wide(table)
    sides = set(table["side"].astype(str))
    if not sides <= set(_SIDES):
        raise DataError(f"side must be 'baseline' or 'canary'; the table also has "
                        f"{sorted(sides - set(_SIDES))}")
    truth = _truth_of(table, labels)
    metrics = [c for c in table.columns if c not in (*_KEYS, "time", *_TRUTH)]
    if not metrics:
        raise DataError("the history table has no metric columns (besides id, side, time, "
                        "label, kind)")
    scenarios = []
    for canary_id, rows in table.groupby("id", sort=False):
        frames = {}
        for side in _SIDES:
            part = rows[rows["side"].astype(str) == side]
            if part.empty:
                raise DataError(f"canary {str(canary_id)!r} has no {side} rows")
            if "time" in part.columns and pd.api.types.is_numeric_dtype(part["time"]):
                index: pd.Index = pd.Index(part["time"].to_numpy(), name="point")
            elif "time" in part.columns:
                index = pd.DatetimeIndex(pd.to_datetime(part["time"], format="ISO8601"),
                                         name="time")
            else:
                index = pd.RangeIndex(len(part))
            frame = part[metrics].copy()
            frame.index = index
            frames[side] = frame.sort_index(kind="stable")
        label, own_kind = truth.get(str(canary_id), (None, None))
        scenarios.append(Scenario(
            id=str(canary_id), kind=str(_clean_label(own_kind) or kind),
            label=_clean_label(label), baseline=frames["baseline"], canary=frames["canary"],
        ))
    return scenarios


def read_scenarios(
    path: str | Path,
    *,
    labels: Mapping[str, Any] | pd.DataFrame | None = None,
    kind: str = "past",
) -> list[Scenario]:
    """:func:`scenarios_from_table` of a file: CSV (``.csv``, ``.csv.gz``, ``.tsv``) or Parquet
    (``.parquet``, needs ``pip install 'canary-judge[files]'``), wide or long."""
    path = Path(path)
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith(".parquet"):
        try:
            table = pd.read_parquet(path)
        except ImportError as exc:
            raise DataError("reading Parquet needs pyarrow: pip install "
                            "'canary-judge[files]'") from exc
    elif suffixes.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        table = pd.read_csv(path, sep="\t" if ".tsv" in suffixes else ",")
    else:
        raise DataError(f"{path.name}: a history file is .csv, .csv.gz, .tsv or .parquet")
    return scenarios_from_table(table, labels=labels, kind=kind)
