"""The moment every test pins the service's clock to, so a request with a lookback (a window
ending "now") judges the same window, hence the same demo series, whenever the test runs.

The demo source seeds its noise from the window; with the wall clock a verdict near a
threshold changed from one minute to the next (issue 16's flaky Flagger test).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from judge.api.settings import Settings

PINNED_NOW = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
"""A Monday afternoon (UTC): the demo source's daily cycle near its peak."""


def service_settings(**overrides: Any) -> Settings:
    """In-process service settings for tests: an in-memory store, plain logs, the pinned
    clock, judging in the test's own process (no worker processes: they are the integration
    tests' part, tests/integration/test_judge_workers.py); each overridable."""
    values: dict[str, Any] = {"database_url": "sqlite://", "log_json": False,
                              "pinned_now": PINNED_NOW, "judge_workers": 0}
    values.update(overrides)
    return Settings(**values)
