"""Native canary configs (``judge.config``): parsing, defaults, and errors that name paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from judge.config import (
    CanaryConfig,
    Direction,
    EffectMeasure,
    JudgeMode,
    MannWhitneyTest,
    NanStrategy,
    OutlierStrategy,
    ThresholdTest,
)
from judge.config.queries import ColumnQuery

CONFIGS = Path(__file__).parents[1] / "fixtures" / "configs"


def paths(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in error["loc"]) for error in exc.errors()]


def test_checkout_fixture_parses_with_every_kind_of_setting() -> None:
    config = CanaryConfig.load(CONFIGS / "checkout.yaml")
    assert config.mode is JudgeMode.DEFAULT
    assert (config.thresholds.pass_, config.thresholds.marginal) == (90.0, 70.0)
    latency = config.metric("p99 latency")
    assert latency.query == ColumnQuery(column="latency_p99_ms")
    assert latency.critical and latency.direction is Direction.INCREASE
    assert latency.outliers.strategy is OutlierStrategy.REMOVE
    assert isinstance(latency.test, MannWhitneyTest)
    assert latency.test.effect_size.allowed_increase == 1.1
    errors = config.metric("error rate")
    assert errors.nan_strategy is NanStrategy.REPLACE and errors.must_have_data
    assert isinstance(errors.test, ThresholdTest)
    assert errors.test.relative is not None and errors.test.relative.absolute == 0.001
    assert config.metric("gc pauses").muted


def test_defaults() -> None:
    config = CanaryConfig.from_dict({"metrics": [{"name": "latency"}]})
    metric = config.metrics[0]
    assert (config.name, config.mode, config.groups) == ("canary", JudgeMode.DEFAULT, {})
    assert (config.thresholds.pass_, config.thresholds.marginal) == (95.0, 75.0)
    assert metric.groups == ("default",)
    assert metric.direction is Direction.EITHER
    assert metric.nan_strategy is NanStrategy.REMOVE
    assert metric.outliers.strategy is OutlierStrategy.KEEP and metric.outliers.factor == 3.0
    assert isinstance(metric.test, MannWhitneyTest)
    assert (metric.test.confidence, metric.test.tolerance) == (0.98, 0.25)
    assert (metric.test.tails, metric.test.spread_reach) == (True, 1.0)
    assert metric.test.effect_size.measure is EffectMeasure.MEAN_RATIO


def test_test_kind_defaults_to_mann_whitney() -> None:
    config = CanaryConfig.from_dict({"metrics": [{"name": "m", "test": {"confidence": 0.9}}]})
    assert isinstance(config.metrics[0].test, MannWhitneyTest)
    assert config.metrics[0].test.confidence == 0.9


def test_cles_limits_default_to_one_half() -> None:
    config = CanaryConfig.from_dict(
        {"metrics": [{"name": "m", "test": {"effect_size": {"measure": "cles",
                                                            "allowed_increase": 0.8}}}]}
    )
    test = config.metrics[0].test
    assert isinstance(test, MannWhitneyTest)
    limits = test.effect_size
    assert (limits.allowed_increase, limits.allowed_decrease) == (0.8, 0.5)
    assert (limits.critical_increase, limits.critical_decrease) == (0.5, 0.5)


@pytest.mark.parametrize(
    ("raw", "path", "fragment"),
    [
        ({"metrics": [{"name": "m", "direction": "up"}]}, "metrics.0.direction",
         "'increase', 'decrease' or 'either'"),
        ({"metrics": [{"name": "m", "nan_strategy": "zero"}]}, "metrics.0.nan_strategy",
         "'remove' or 'replace'"),
        ({"metrics": [{"name": "m", "colour": "red"}]}, "metrics.0.colour", "Extra inputs"),
        ({"metrics": [{"name": "m", "test": {"kind": "bayes"}}]}, "metrics.0.test", "bayes"),
        ({"metrics": [{"name": "m", "test": {"confidence": 1.5}}]},
         "metrics.0.test.mann_whitney.confidence", "less than 1"),
        ({"metrics": [{"name": "m", "test": {"spread_reach": 0}}]},
         "metrics.0.test.mann_whitney.spread_reach", "greater than 0"),
        ({"metrics": [{"name": "m", "test": {"spread_reach": "wide"}}]},
         "metrics.0.test.mann_whitney.spread_reach", "valid number"),
        ({"metrics": [{"name": "m", "test": {"kind": "threshold"}}]},
         "metrics.0.test.threshold", "needs 'max', 'min' or 'relative'"),
        ({"metrics": [{"name": "m", "test": {"kind": "threshold", "aggregate": "percentile",
                                             "max": 1}}]},
         "metrics.0.test.threshold", "'percentile' is required"),
        ({"metrics": [{"name": "m", "groups": []}]}, "metrics.0.groups", "at least one group"),
        ({"metrics": []}, "metrics", "at least one metric"),
        ({}, "metrics", "Field required"),
        ({"metrics": [{"name": "m"}], "thresholds": {"pass": 50, "marginal": 70}},
         "thresholds", "must not be above 'pass'"),
        ({"metrics": [{"name": "m"}], "groups": {"a": 70, "b": 40}}, "groups",
         "add up to 110"),
        ({"metrics": [{"name": "m"}, {"name": "m"}]}, "", "'m' is used twice"),
        ({"metrics": [{"name": "m", "query": {"type": "prometheus"}}]},
         "metrics.0.query.prometheus", "needs 'promql'"),
        ({"metrics": [{"name": "m", "query": {"type": "prometheus", "metric_name": "x",
                                              "custom_filter_template": "t"}}]},
         "", "filter template 't'"),
        ({"mode": "fast", "metrics": [{"name": "m"}]}, "mode", "'default' or 'kayenta'"),
        # Group names: a weight no metric uses, a metric's group that gets no weight when
        # the weights leave nothing to share (each a typo that decides every canary).
        ({"metrics": [{"name": "m", "groups": ["errros"]}], "groups": {"errors": 100}}, "",
         "groups: ['errors'] have a weight but no metric is in them (the metrics' groups: "
         "['errros'])"),
        ({"metrics": [{"name": "a", "groups": ["lat"]}, {"name": "b", "groups": ["x"]}],
          "groups": {"lat": 100}}, "",
         "metrics[1].groups: ['x'] (metric 'b'): no weight in 'groups' (['lat']), whose "
         "weights already add up to 100: the metric would count for nothing"),
    ],
)
def test_malformed_configs_name_the_path(raw: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CanaryConfig.from_dict(raw)
    assert paths(caught.value) == [path]
    assert fragment in str(caught.value)


def test_groups_without_a_weight_share_what_is_left() -> None:
    config = CanaryConfig.from_dict({"groups": {"lat": 60}, "metrics": [
        {"name": "a", "groups": ["lat"]}, {"name": "b", "groups": ["errors"]}]})
    assert config.groups == {"lat": 60}  # 'errors' gets the other 40: valid, as in Kayenta
    assert CanaryConfig.from_dict({"metrics": [{"name": "a", "groups": ["x"]}]}).groups == {}
    # A second, unweighted group next to a weighted one (a tag) changes no score: allowed.
    tagged = CanaryConfig.from_dict({"groups": {"lat": 100}, "metrics": [
        {"name": "a", "groups": ["lat", "example"]}]})
    assert tagged.metrics[0].groups == ("lat", "example")


def test_malformed_fixture_files() -> None:
    with pytest.raises(ValidationError) as caught:
        CanaryConfig.load(CONFIGS / "malformed-unknown-field.yaml")
    assert paths(caught.value) == ["metrics.0.test.mann_whitney.confidance"]
    with pytest.raises(ValidationError) as caught:
        CanaryConfig.load(CONFIGS / "malformed-bad-direction.yaml")
    assert paths(caught.value) == ["metrics.0.direction"]


def test_native_round_trip_through_to_dict() -> None:
    config = CanaryConfig.load(CONFIGS / "checkout.yaml")
    assert CanaryConfig.from_dict(config.to_dict()) == config
