"""A sequential analysis from Python, without the service (``judge.SequentialAnalysis`` and
``judge.analysis.poll_async``), against the in-process demo source (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import judge
from judge.api.seed import demo_config
from judge.ports import Scope, ScopePair
from metricsources.demo import DemoSource

START = datetime(2024, 1, 1, 12, tzinfo=UTC)
STEP = timedelta(minutes=1)


def _run(canary: str) -> judge.SequentialAnalysis:
    config = judge.CanaryConfig.from_dict(demo_config())
    return judge.SequentialAnalysis(
        config, {"demo": DemoSource()}, ScopePair(Scope("stable"), Scope(canary)),
        start=START, step=STEP,
    )


def _poll_until_decided(run: judge.SequentialAnalysis) -> tuple[int, judge.PollOutcome]:
    for minute in range(5, 61, 5):
        outcome = run.poll(START + minute * STEP, final=minute == 60)
        if outcome.status.decided:
            return minute, outcome
    return 60, outcome


def test_a_bad_canary_fails_early_and_no_point_is_counted_twice() -> None:
    run = _run("canary-bad")
    minute, outcome = _poll_until_decided(run)
    assert outcome.status is judge.SequentialStatus.FAIL
    assert outcome.report.verdict is judge.Verdict.FAIL
    assert minute <= 20
    # The window's first minute and every later minute, each once, whatever the polls.
    assert {len(seq.canary) for seq in outcome.state.metrics.values()} == {minute + 1}
    assert [o.new_points for o in run.outcomes] == [6] + [5] * (len(run.outcomes) - 1)
    assert outcome.last == START + minute * STEP
    assert outcome.report.details["sequential"]["last_point"] == outcome.last.isoformat()


def test_a_good_canary_is_never_failed_and_passes_by_its_last_poll() -> None:
    minute, outcome = _poll_until_decided(_run("canary-good"))
    assert minute == 60 and outcome.status is judge.SequentialStatus.PASS
    assert outcome.state.calls == 12


def test_polling_the_same_moment_again_adds_nothing() -> None:
    run = _run("canary-good")
    first = run.poll(START + 10 * STEP)
    again = run.poll(START + 10 * STEP)
    assert (first.new_points, again.new_points) == (11, 0)
    assert again.state.calls == 2


def test_an_unknown_source_name_is_a_fetch_error_not_points() -> None:
    config = judge.CanaryConfig.from_dict(demo_config())
    run = judge.SequentialAnalysis(config, DemoSource(), ScopePair(Scope("a"), Scope("b")),
                                   start=START, step=STEP)
    outcome = run.poll(START + 10 * STEP, final=True)
    assert outcome.new_points == 0 and set(outcome.fetch_errors) == {m.name for m in config.metrics}
    # A final poll with failed fetches is not final: a run never passes on data it did not see.
    assert outcome.status is judge.SequentialStatus.CONTINUE
    assert "not treated as final" in outcome.report.details["sequential"]["note"]


def test_the_kayenta_judge_has_no_sequential_mode() -> None:
    config = judge.CanaryConfig.from_dict(demo_config("kayenta"))
    run = judge.SequentialAnalysis(config, {"demo": DemoSource()},
                                   ScopePair(Scope("a"), Scope("b")), start=START, step=STEP)
    with pytest.raises(judge.ConfigError, match="sequential runs need the default judge"):
        run.poll(START + 10 * STEP)
