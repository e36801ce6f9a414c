"""Batched tests take at most ``BATCH_ROWS`` metrics at once (peak memory, issue 18): a
judgment of more metrics than that gives every metric the result it gets in one batch of all
of them, and the test's numbers it gets alone."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from judge.judges import common
from judge.judges import kayenta as kayenta_judge
from judge.judges.default import evaluate
from judge.judging import judge_series

METRICS = 2 * common.BATCH_ROWS + 7  # three batches, the last one short


def _series() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(18)
    return {
        # (baseline, canary): every third canary 35% higher.
        f"m{k:03d}": (rng.lognormal(3.0, 0.4, 180).round(3),
                      rng.lognormal(3.0 + 0.3 * (k % 3 == 0), 0.4, 180).round(3))
        for k in range(METRICS)
    }


def _config(mode: str) -> dict[str, Any]:
    return {"name": f"batches-{mode}", "mode": mode,
            "metrics": [{"name": f"m{k:03d}", "direction": "increase"} for k in range(METRICS)]}


def _metrics(report: Any) -> list[str]:
    return [json.dumps(metric.to_dict(), sort_keys=True) for metric in report.metrics]


@pytest.mark.parametrize("mode", ["default", "kayenta"])
def test_batches_give_the_numbers_of_one_batch_and_of_each_metric_alone(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    series = _series()
    batched = judge_series(_config(mode), series)
    with monkeypatch.context() as patched:
        patched.setattr(evaluate, "BATCH_ROWS", 10**6)
        patched.setattr(kayenta_judge, "BATCH_ROWS", 10**6)
        whole = judge_series(_config(mode), series)
    assert _metrics(batched) == _metrics(whole)
    assert batched.verdict == whole.verdict and batched.score == whole.score
    classifications = {metric.classification for metric in batched.metrics}
    assert len(classifications) > 1  # shifted and unshifted metrics both judged
    # Alone, a metric's test gives the same numbers (its decision may differ in the default
    # judge: Holm's correction counts the metrics judged together).
    for name in ("m000", f"m{common.BATCH_ROWS:03d}", f"m{METRICS - 1:03d}"):
        alone = judge_series({**_config(mode), "metrics": [
            {"name": name, "direction": "increase"}]}, {name: series[name]})
        assert _numbers(alone.metric(name)) == _numbers(batched.metric(name))


def _numbers(metric: Any) -> tuple[float, ...]:
    return (metric.estimate, metric.low, metric.high, metric.p_value, metric.effect_size,
            metric.baseline.mean, metric.canary.mean)
