"""Side summaries: the spelled-out mean and standard deviation are numpy's to the bit, and the
shortcut for clean input gives what the general cleaning path gives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from judge.config import CanaryConfig, MetricConfig
from judge.judges.common import _clean_side, summarize_side


def _metric(outliers: str, nan_strategy: str = "remove") -> MetricConfig:
    config = CanaryConfig.from_dict({
        "name": "summaries",
        "metrics": [{"name": "latency", "direction": "increase", "nan_strategy": nan_strategy,
                     "outliers": {"strategy": outliers}}],
    })
    return config.metrics[0]


def test_mean_and_std_are_numpys_to_the_bit() -> None:
    generator = np.random.default_rng(20_261_203)
    for trial in range(2_000):
        size = int(generator.integers(1, 3_000))
        values = generator.lognormal(3.0, generator.uniform(0.1, 3.0), size)
        values *= 10.0 ** generator.uniform(-5.0, 5.0)
        if trial % 3 == 0:
            values = np.round(values, 2)
        summary = summarize_side(values)
        assert summary.mean == float(values.mean())
        assert summary.std == (float(values.std(ddof=1)) if size > 1 else 0.0)


@pytest.mark.parametrize("nan_strategy", ["remove", "replace"])
def test_clean_input_shortcut_matches_the_general_path(nan_strategy: str) -> None:
    generator = np.random.default_rng(7)
    kept, checked = _metric("keep", nan_strategy), _metric("remove", nan_strategy)
    for _ in range(200):
        values = np.round(generator.lognormal(3.0, 0.5, int(generator.integers(1, 200))), 3)
        fast_values, fast = _clean_side(kept, values)
        # With outlier removal the general path runs; its cleaning leaves clean values alone
        # unless they are outliers, so compare where it removed none.
        general_values, general = _clean_side(checked, values)
        if general.outliers_removed == 0:
            assert np.array_equal(fast_values, general_values)
            assert fast == general
        assert fast_values is not values
    dirty = np.array([1.0, math.nan, 3.0, math.inf, 2.0])
    cleaned, summary = _clean_side(kept, dirty)
    assert (summary.nan_count, summary.infinite_count) == (1, 1)
    assert cleaned.size == (3 if nan_strategy == "remove" else 4)
