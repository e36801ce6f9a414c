"""Sequential (polled) runs through the real server process, as a controller polls them.

An AnalysisTemplate polls every minute with the rollout's name and revision as the run id;
here each poll moves the window's end on by one minute over the demo source (explicit windows,
so a "minute" takes milliseconds). The run's state lives in the SQLite file: the server is
killed mid-run and started again, and the run must carry on from its stored state, with
every minute's point judged exactly once (``points == minutes + 1``: the first poll covers
both ends of its first minute).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from judge.api.seed import demo_config
from tests.support.service import ServiceProcess

T0 = datetime(2024, 3, 4, 10, tzinfo=UTC)
ARGO_WEB_TIMEOUT = 10.0
MAX_MINUTES = 180


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    env = {"CANARY_JUDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'judge.db'}"}
    with ServiceProcess(env, tmp_path) as process:
        yield process


def _poll(service: ServiceProcess, run_id: str, canary: str, minute: int,
          **extra: Any) -> dict[str, Any]:
    """One measurement of an AnalysisTemplate with ``provider.web`` (POST, JSON body)."""
    answer = httpx.post(
        f"{service.url}/argo/v1/judge",
        json={
            "config": "demo",
            "baseline": "stable",
            "canary": canary,
            "run_id": run_id,
            "start": T0.isoformat(),
            "end": (T0 + timedelta(minutes=minute)).isoformat(),
            **extra,
        },
        timeout=ARGO_WEB_TIMEOUT,
    )
    assert answer.status_code == 200  # Argo's web provider reads anything else as an Error
    body: dict[str, Any] = answer.json()
    assert body["error"] is None, body["error"]
    return body


def test_a_bad_canary_fails_early_and_the_decision_is_final(service: ServiceProcess) -> None:
    statuses = []
    for minute in range(1, MAX_MINUTES + 1):
        body = _poll(service, "checkout-7f9c", "canary-bad", minute)
        statuses.append(body["status"])
        # failureCondition: result.status == "fail"; anything else is not a failure yet
        if body["status"] != "continue":
            break
    assert statuses[-1] == "fail", statuses
    assert set(statuses[:-1]) <= {"continue"}
    assert len(statuses) <= 30, f"a 30% regression took {len(statuses)} minutes to fail"
    assert body["verdict"] == "fail" and "latency" in body["failed_metrics"]
    # Later polls keep the decision, however the data goes on.
    again = _poll(service, "checkout-7f9c", "canary-bad", len(statuses) + 5)
    assert again["status"] == "fail"
    assert again["sequential"]["calls"] == len(statuses) + 1


def test_a_good_canary_passes_and_the_run_survives_a_restart(service: ServiceProcess) -> None:
    run_id, restart_at = "checkout-rev-12", 25
    body: dict[str, Any] = {}
    minute = 0
    for minute in range(1, MAX_MINUTES + 1):
        if minute == restart_at:
            service.kill()  # a crash: nothing gets to clean up
            service.start()
        body = _poll(service, run_id, "canary-good", minute)
        sequential = body["sequential"]
        assert body["status"] != "fail", body["reason"]
        # Counts neither reset nor double, across the restart too.
        assert sequential["calls"] == minute
        assert sequential["points"] == minute + 1
        assert sequential["new_points"] == (2 if minute == 1 else 1)
        if body["status"] == "pass":
            break
    assert body["status"] == "pass", body["reason"]
    assert minute > restart_at, "the run should still be undecided when the server restarts"
    assert {m["classification"] for m in body["metrics"]} == {"pass"}
    # A poll for the same moment (a retry, or another replica's poll) gets the same answer:
    # no point counted twice, no call counted.
    repeat = _poll(service, run_id, "canary-good", minute)
    assert repeat["sequential"] == body["sequential"]
    assert (repeat["status"], repeat["score"]) == (body["status"], body["score"])
    stored = httpx.get(f"{service.url}/v1/runs/{run_id}", timeout=10).json()
    assert stored["status"] == "pass"
    assert stored["calls"] == minute
    assert stored["config_name"] == "demo"
    assert stored["last_point"].startswith((T0 + timedelta(minutes=minute)).isoformat()[:16])


def test_final_poll_settles_an_undecided_run(service: ServiceProcess) -> None:
    for minute in range(1, 11):
        assert _poll(service, "short-run", "canary-good", minute)["status"] == "continue"
    # The gate before promotion: successCondition result.status == "pass".
    last = _poll(service, "short-run", "canary-good", 11, final=True)
    assert last["status"] in ("pass", "inconclusive")
    assert last["status"] != "fail"
    if last["status"] == "inconclusive":
        assert last["verdict"] == "marginal"
    # A run id belongs to one config.
    other = httpx.post(
        f"{service.url}/argo/v1/judge",
        json={"config": "demo-kayenta", "baseline": "stable", "canary": "canary-good",
              "run_id": "short-run"},
        timeout=ARGO_WEB_TIMEOUT,
    ).json()
    assert other["status"] == "error"
    assert "judges config 'demo'" in other["error"]


def test_flagger_sequential_answers(service: ServiceProcess) -> None:
    def hook(canary: str, checksum: str, **meta: str) -> httpx.Response:
        return httpx.post(
            f"{service.url}/flagger/v1/check",
            json={"name": "checkout", "namespace": "shop", "phase": "Progressing",
                  "checksum": checksum,
                  "metadata": {"config": "demo", "baseline": "stable", "canary": canary,
                               "lookback": "10m", "sequential": "true", **meta}},
            timeout=10,
        )

    undecided = hook("canary-good", "rev1")
    assert undecided.status_code == 202, undecided.text  # a passed check: traffic moves on
    assert undecided.json()["sequential"]["run_id"] == "shop/checkout/rev1"
    assert undecided.json()["sequential"]["status"] == "continue"
    stored = httpx.get(f"{service.url}/v1/runs/shop/checkout/rev1", timeout=10)
    assert stored.status_code == 200 and stored.json()["kind"] == "flagger"
    gate = hook("canary-good", "rev1", gate="promotion")
    assert gate.status_code == 425  # confirm-promotion: promotion waits
    no_revision = hook("canary-good", "")
    assert no_revision.status_code == 400 and "runId" in no_revision.json()["error"]
    # The service's clock is pinned: the first poll judges 30 minutes of a 30% regression.
    failed = hook("canary-bad", "rev2", lookback="30m")
    assert failed.status_code == 412, failed.text
    assert failed.json()["sequential"]["status"] == "fail"
    # Latency and four metrics that only a decrease would harm (memory grows on a bad canary),
    # in one group: latency failing alone leaves 80 at best, so the run can no longer pass,
    # yet it is no fail by that config's scoring. Decided marginal, it answers as a
    # fixed-horizon marginal does: 412, or 200 with allowMarginal.
    memory = {"query": {"type": "demo", "signal": "memory", "level": 100, "noise": 0.05},
              "source": "demo", "direction": "decrease"}
    one_of_five = {
        "name": "demo-one-of-five", "thresholds": {"pass": 95, "marginal": 75},
        "metrics": [demo_config()["metrics"][0] | {"groups": ["default"]},
                    *({"name": f"memory_{i}"} | memory for i in range(4))],
    }
    created = httpx.post(f"{service.url}/v1/configs", json=one_of_five, timeout=10)
    assert created.status_code == 201, created.text
    marginal = hook("canary-bad", "rev3", lookback="30m", config="demo-one-of-five")
    assert marginal.status_code == 412, marginal.text
    body = marginal.json()
    assert body["sequential"]["status"] == "inconclusive", body["reason"]
    assert body["verdict"] == "marginal" and body["score"] == 80.0
    assert body["reason"].startswith("Cannot pass any more: latency failed")
    allowed = hook("canary-bad", "rev4", lookback="30m", config="demo-one-of-five",
                   allowMarginal="true")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["sequential"]["status"] == "inconclusive"


def test_native_run_endpoints(service: ServiceProcess) -> None:
    poll = {"config_id": "demo", "baseline": {"scope": "stable"},
            "canary": {"scope": "canary-bad"}, "start": T0.isoformat()}
    for minute in (20, 40):
        answer = httpx.post(
            f"{service.url}/v1/runs/native-1/poll",
            json={**poll, "end": (T0 + timedelta(minutes=minute)).isoformat()},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["status"] == "fail"
    assert run["sequential"]["points"] == 41  # 21 points, then 20 new ones
    assert run["report"]["verdict"] == "fail"
    listed = httpx.get(f"{service.url}/v1/runs", timeout=10).json()
    assert [r["run_id"] for r in listed] == ["native-1"] and listed[0]["report"] is None
    kayenta = httpx.post(
        f"{service.url}/v1/runs/native-2/poll",
        json={**poll, "config_id": "demo-kayenta", "end": (T0 + timedelta(minutes=5)).isoformat()},
        timeout=10,
    )
    assert kayenta.status_code == 400 and "default judge" in kayenta.json()["error"]
    assert httpx.delete(f"{service.url}/v1/runs/native-1", timeout=10).status_code == 204
    assert httpx.get(f"{service.url}/v1/runs/native-1", timeout=10).status_code == 404
