"""Tuning a config on labelled history as scikit-learn users expect: hold canaries out
(:func:`split_scenarios`, by canary or by a group such as the series they came from, so that
nothing leaks), trace false failures against detection as the pass threshold moves
(:func:`tradeoff_curve`), and pick the best setting of a :func:`~judge.lab.backtest.sweep`
under a constraint (:func:`select`), all as DataFrames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from judge.config import CanaryConfig
from judge.lab.backtest import BacktestResult, sweep
from judge.lab.scenarios import Scenario

__all__ = ["select", "split_scenarios", "tradeoff_curve"]


def split_scenarios(
    scenarios: Sequence[Scenario],
    *,
    test_share: float = 0.3,
    seed: int = 0,
    group: Callable[[Scenario], Hashable] | None = None,
) -> tuple[list[Scenario], list[Scenario]]:
    """``(train, test)``: about ``test_share`` of the canaries held out, whole groups at a
    time (``group(scenario)``, default each canary its own group: pass e.g. ``lambda s:
    s.meta["series"]`` so that canaries drawn from one series never sit on both sides), drawn
    separately among groups of good, bad and other canaries so that both halves have some of
    each where there are enough. The order within each half is the input's."""
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must be in (0, 1), got {test_share}")
    key = group or (lambda s: s.id)
    members: dict[Hashable, list[int]] = {}
    for position, scenario in enumerate(scenarios):
        members.setdefault(key(scenario), []).append(position)
    rng = np.random.default_rng(seed)
    strata: dict[str, list[Hashable]] = {}
    for name, positions in members.items():
        labels = {scenarios[p].label for p in positions}
        only = next(iter(labels)) if len(labels) == 1 else None
        strata.setdefault(only.value if only is not None else "mixed", []).append(name)
    held: set[int] = set()
    for names in strata.values():
        order = [names[i] for i in rng.permutation(len(names))]
        size = sum(len(members[n]) for n in names)
        taken = 0
        for name in order:
            if taken >= test_share * size or len(order) < 2:
                break
            held.update(members[name])
            taken += len(members[name])
    train = [s for p, s in enumerate(scenarios) if p not in held]
    test = [s for p, s in enumerate(scenarios) if p in held]
    if not train or not test:
        raise ValueError("too few canaries (or groups) to hold some out")
    return train, test


def tradeoff_curve(
    config: CanaryConfig | dict[str, Any],
    scenarios: Sequence[Scenario],
    *,
    passes: Iterable[float] | None = None,
    reuse: Iterable[BacktestResult] = (),
) -> pd.DataFrame:
    """False failures against detection as the pass threshold moves from 0 to 100 (or over
    ``passes``), from one backtest re-scored (the per-metric results do not depend on the
    thresholds): one row per threshold with ``false_failure`` and ``detection`` (each with
    its Wilson 95% interval) and the per-kind rates, as :func:`~judge.lab.backtest.sweep`
    gives them. The marginal threshold follows the pass one down where it would be above
    it."""
    base = config if isinstance(config, CanaryConfig) else CanaryConfig.from_dict(config)
    values = sorted(set(passes if passes is not None else range(0, 101, 5)))
    marginal = base.thresholds.marginal
    grids = [{"thresholds.pass": [float(p)], "thresholds.marginal": [min(marginal, float(p))]}
             for p in values]
    table = sweep(base, scenarios, grids, reuse=reuse)
    return table.rename(columns={"thresholds.pass": "pass_threshold",
                                 "thresholds.marginal": "marginal_threshold"})


def select(
    table: pd.DataFrame,
    *,
    maximize: str = "detection",
    max_false_failure: float = 0.02,
    bound: str = "upper",
) -> pd.Series:
    """The row of a sweep (or trade-off) table with the highest ``maximize`` among those whose
    false-failure rate is at most ``max_false_failure``: its Wilson upper bound with
    ``bound="upper"`` (a promise that holds beyond the canaries tuned on, the default) or the
    estimate with ``bound="estimate"``. Ties go to fewer false failures, then to the first
    row. Raises ``ValueError`` saying how close the best row came when none qualifies."""
    if bound not in ("upper", "estimate"):
        raise ValueError(f"bound: 'upper' or 'estimate', got {bound!r}")
    column = "false_failure_high" if bound == "upper" else "false_failure"
    for needed in (column, maximize):
        if needed not in table.columns:
            raise ValueError(f"the table has no {needed!r} column (a sweep or tradeoff_curve "
                             f"table has); columns: {list(table.columns)}")
    allowed = table[table[column] <= max_false_failure]
    if allowed.empty:
        best = table[column].min()
        raise ValueError(
            f"no setting keeps {column} <= {max_false_failure:g}; the lowest is "
            f"{best:.3g}" + (" (more labelled good canaries narrow the interval)"
                             if bound == "upper" and not math.isnan(best) else ""))
    ranked = allowed.assign(_order=np.arange(len(allowed))).sort_values(
        [maximize, "false_failure", "_order"], ascending=[False, True, True], kind="stable")
    return ranked.drop(columns="_order").iloc[0]
