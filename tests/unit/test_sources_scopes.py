"""Scopes (Kayenta's controlScope / experimentScope) and the docstring examples of the source
modules."""

from __future__ import annotations

import doctest
import importlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from judge.errors import FatalSourceError
from judge.ports import Scope, ScopePair, TaggedSeries


def test_scope_pair_from_kayenta_json() -> None:
    pair = ScopePair.from_kayenta({
        "controlScope": {"scope": "app-v041", "location": "us-east-1",
                         "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:30:00Z",
                         "step": 60, "extendedScopeParams": {"namespace": "prod", "port": 8080}},
        "experimentScope": {"scope": "app-v042", "location": "us-east-1",
                            "start": "2024-05-01T12:00:00", "end": 1714567800000, "step": 30},
    })
    assert pair.baseline.start == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert pair.baseline.params == {"namespace": "prod", "port": "8080"}
    assert pair.baseline.bindings() == {"scope": "app-v041", "location": "us-east-1",
                                        "namespace": "prod", "port": "8080"}
    assert pair.canary.start == datetime(2024, 5, 1, 12, tzinfo=UTC)  # naive is UTC
    assert pair.canary.end == datetime(2024, 5, 1, 12, 50, tzinfo=UTC)  # epoch ms
    assert pair.canary.step == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("raw", "message"),
    [({"scope": "v1", "start": "yesterday"}, "not an ISO-8601 instant"),
     ({"scope": "v1", "stepp": 60}, "unknown scope field"),
     ({"location": "eu"}, "needs 'scope'"),
     ({"scope": "v1", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T11:00:00Z"},
      "must be after 'start'"),
     ({"scope": "v1", "extendedScopeParams": {"scope": "v2"}}, "would shadow")],
)
def test_bad_kayenta_scopes_are_refused_with_the_field_named(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Scope.from_kayenta(raw)


def test_scope_pair_needs_both_sides() -> None:
    with pytest.raises(ValueError, match="experimentScope"):
        ScopePair.from_kayenta({"controlScope": {"scope": "v1"}})


def test_window_defaults_and_missing_window() -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    scope = Scope("v1").with_window(start, start + timedelta(hours=1))
    assert scope.window() == (start, start + timedelta(hours=1), timedelta(minutes=1))
    own = Scope("v1", start=start - timedelta(days=1), end=start - timedelta(hours=23))
    assert own.with_window(start, start + timedelta(hours=1)).start == own.start
    with pytest.raises(FatalSourceError, match="no time window"):
        Scope("v1").window()
    with pytest.raises(ValueError, match="'step' must be positive"):
        Scope("v1", step=timedelta(0))


def test_tagged_series_checks_its_shape() -> None:
    with pytest.raises(ValueError, match="same length"):
        TaggedSeries({}, np.arange(3.0), np.arange(2.0))


@pytest.mark.parametrize(
    "module",
    ["judge.ports", "metricsources.templates", "metricsources.prometheus",
     "metricsources.datadog", "metricsources.datadog_query", "metricsources.datadog_sites",
     "metricsources.grid"],
)
def test_docstring_examples_hold(module: str) -> None:
    failures, tried = doctest.testmod(importlib.import_module(module))
    assert tried > 0 and failures == 0


def test_package_exports_resolve_lazily() -> None:
    import metricsources
    from metricsources.demo import DemoSource

    assert metricsources.DemoSource is DemoSource
    assert sorted(metricsources.__all__) == [
        "DatadogSource", "DemoSource", "FileSource", "FrameSource", "PrometheusSource"]
    with pytest.raises(AttributeError, match="no attribute 'InfluxSource'"):
        _ = metricsources.InfluxSource
