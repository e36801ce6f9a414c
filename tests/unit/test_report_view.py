"""A report in a terminal or a notebook: short repr, summary() and _repr_html_ with failures
first, and unknown metric names answered with the names there are (issue 20 item 6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from judge import judge
from judge.config import CanaryConfig
from judge.errors import UnknownMetricError
from judge.report import Report

CONFIG = CanaryConfig.from_dict({"name": "checkout", "metrics": [
    {"name": "cpu", "direction": "increase"},
    {"name": "<b>latency</b>", "direction": "increase", "critical": True},
    {"name": "gone", "direction": "increase"},
]})


def _report() -> Report:
    rng = np.random.default_rng(7)
    base = pd.DataFrame({"cpu": rng.normal(50, 1, 60), "<b>latency</b>": rng.normal(100, 2, 60),
                         "gone": rng.normal(5, 1, 60)})
    can = pd.DataFrame({"cpu": rng.normal(50, 1, 60), "<b>latency</b>": rng.normal(140, 2, 60)})
    return judge(CONFIG, base, can)


def test_unknown_metric_names_list_the_names_there_are() -> None:
    report = _report()
    with pytest.raises(KeyError) as caught:
        report.metric("tmp")
    assert isinstance(caught.value, UnknownMetricError)
    assert str(caught.value) == ("no metric 'tmp' in the report of config 'checkout'; its "
                                 "metrics are ['cpu', '<b>latency</b>', 'gone']")
    with pytest.raises(KeyError, match=r"no metric 'tmp' in config 'checkout'; its metrics"):
        CONFIG.metric("tmp")


def test_summary_puts_failures_first_and_counts_the_passes() -> None:
    report = _report()
    lines = report.summary().splitlines()
    assert lines[0].startswith("FAIL (score ") and "config 'checkout', default mode" in lines[0]
    assert lines[1] == report.reason
    # the critical failure first, then the metric the canary stopped reporting
    assert lines[2].startswith("  <b>latency</b> (critical): high - ")
    assert lines[3].startswith("  gone: nodata - ")
    assert lines[-1] == "  1 of 3 metrics passed."


def test_repr_is_short_and_the_html_view_escapes_user_input() -> None:
    report = _report()
    assert repr(report) == (f"Report(verdict='fail', score={report.score!r}, metrics=3, "
                            "config_name='checkout')")
    html = report._repr_html_()
    assert "<b>latency</b>" not in html and "&lt;b&gt;latency&lt;/b&gt;" in html
    rows = html.split("<tbody>")[1].split("</tr>")
    assert "&lt;b&gt;latency" in rows[0] and "gone" in rows[1] and ">cpu<" in rows[2]
    assert ">FAIL</b>" in html
