"""Several real ``canary-judge serve`` processes on one database, and the load they share.

``Replicas(database_url, work_dir, count=3, lease_seconds=3, demo_delay=0.2)``
    ``count`` server processes (:class:`tests.support.service.ServiceProcess`, each in its own
    folder of ``work_dir`` with its own log) on one database, named ``replica-0`` ...
    (``CANARY_JUDGE_REPLICA_ID``), with a short lease. ``start()`` starts them all,
    ``pause(i)`` / ``resume(i)`` freeze and thaw one (SIGSTOP / SIGCONT), ``kill(i)`` SIGKILLs
    one, ``restart(i)`` starts it again under a new name (``replica-<i>-<restarts>``: a new
    pod), ``stop()`` ends them all. ``live()`` the running ones. Also a context manager.

``submit_analyses(replicas, count) -> dict[id, expected verdict]``
    ``count`` background analyses over pinned windows (deterministic data: ``canary-good``
    passes, ``canary-bad`` fails), sent round-robin to the live replicas: native analyses of
    the demo config, and every fifth a Kayenta execution (``POST /canary/demo-kayenta``; its
    execution id is its analysis id) over the window Kayenta's judge is tested on.

``wait_until(condition, what, deadline_seconds)``
    Poll ``condition()`` every 0.1 s until it holds; an ``AssertionError`` naming ``what``
    after the (generous) deadline. Tests wait on state, never on time.

``poll_run(url, run_id, minute)``
    One poll of sequential run ``run_id`` through the native door, the window ending
    ``minute`` minutes after :data:`T0`: its answer (status code and body).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support.service import ServiceProcess

T0 = datetime(2024, 3, 4, 10, tzinfo=UTC)
KAYENTA_END = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
"""The window ``tests/unit/test_api_controllers.py`` pins Kayenta executions to (Kayenta's
judge takes autocorrelated minutes as independent: on some windows it fails a good canary)."""
CANARIES = {"canary-good": "pass", "canary-bad": "fail"}


class Replicas:
    """Server processes sharing one database (see module doc)."""

    def __init__(
        self,
        database_url: str,
        work_dir: Path,
        *,
        count: int = 3,
        lease_seconds: float = 3.0,
        demo_delay: float = 0.2,
        max_concurrent: int = 4,
    ) -> None:
        self.env = {
            "CANARY_JUDGE_DATABASE_URL": database_url,
            "CANARY_JUDGE_LEASE_SECONDS": str(lease_seconds),
            "CANARY_JUDGE_DEMO_DELAY_SECONDS": str(demo_delay),
            "CANARY_JUDGE_MAX_CONCURRENT_ANALYSES": str(max_concurrent),
            "CANARY_JUDGE_SOURCE_CHECK_INTERVAL_SECONDS": "0",
            # A poll may wait for another replica's poll of its run, on a busy machine: a
            # generous budget, so the test never hinges on timing.
            "CANARY_JUDGE_SYNC_TIMEOUT_SECONDS": "40",
        }
        self.work_dir = work_dir
        self.names = [f"replica-{index}" for index in range(count)]
        self.processes: list[ServiceProcess | None] = [None] * count
        self._restarts = [0] * count

    def _process(self, index: int) -> ServiceProcess:
        folder = self.work_dir / self.names[index]
        folder.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "CANARY_JUDGE_REPLICA_ID": self.names[index]}
        return ServiceProcess(env, folder)

    def start(self) -> Replicas:
        for index in range(len(self.names)):
            process = self._process(index)
            self.processes[index] = process.start()
        return self

    def pause(self, index: int) -> None:
        """Freeze replica ``index`` (SIGSTOP), to read what it holds without a race."""
        process = self.processes[index]
        assert process is not None, f"{self.names[index]} is not running"
        process.pause()

    def resume(self, index: int) -> None:
        process = self.processes[index]
        assert process is not None, f"{self.names[index]} is not running"
        process.resume()

    def kill(self, index: int) -> None:
        process = self.processes[index]
        if process is not None:
            process.kill()
        self.processes[index] = None

    def restart(self, index: int) -> str:
        """Start replica ``index`` again, as a new pod would be: a new name. Returns it."""
        self._restarts[index] += 1
        self.names[index] = f"replica-{index}-{self._restarts[index]}"
        self.processes[index] = self._process(index).start()
        return self.names[index]

    def live(self) -> list[ServiceProcess]:
        return [process for process in self.processes if process is not None]

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{process.log()}" for name, process
                         in zip(self.names, self.processes, strict=True) if process is not None)

    def stop(self) -> None:
        for index, process in enumerate(self.processes):
            if process is not None:
                process.stop()
            self.processes[index] = None

    def __enter__(self) -> Replicas:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def submit_analyses(replicas: Replicas, count: int) -> dict[str, str]:
    """``count`` analyses, round-robin over the live replicas: id -> expected verdict."""
    expected: dict[str, str] = {}
    live = replicas.live()
    for number in range(count):
        canary = "canary-bad" if number % 3 == 2 else "canary-good"
        url = live[number % len(live)].url
        if number % 5 == 4:
            expected[_kayenta_execution(url, canary)] = CANARIES[canary]
            continue
        start = T0 + timedelta(hours=number % 6)
        created = httpx.post(
            f"{url}/v1/analyses",
            json={"config_id": "demo", "baseline": {"scope": "baseline"},
                  "canary": {"scope": canary}, "start": start.isoformat(),
                  "end": (start + timedelta(hours=1)).isoformat()},
            timeout=30,
        )
        assert created.status_code == 202, created.text
        expected[created.json()["id"]] = CANARIES[canary]
    return expected


def _kayenta_execution(url: str, canary: str) -> str:
    def scope(name: str) -> dict[str, Any]:
        return {"scope": name, "region": "", "step": 60,
                "start": (KAYENTA_END - timedelta(hours=1)).isoformat(),
                "end": KAYENTA_END.isoformat()}

    started = httpx.post(
        f"{url}/canary/demo-kayenta",
        params={"application": "shop", "metricsAccountName": "demo"},
        json={"scopes": {"default": {"controlScope": scope("baseline"),
                                     "experimentScope": scope(canary)}},
              "thresholds": {"pass": 95, "marginal": 75}},
        timeout=30,
    )
    assert started.status_code == 200, started.text
    execution_id: str = started.json()["canaryExecutionId"]
    return execution_id


def wait_until(condition: Callable[[], bool], what: str, deadline_seconds: float) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {deadline_seconds:g} s")


def poll_run(url: str, run_id: str, minute: int) -> tuple[int, dict[str, Any]]:
    answer = httpx.post(
        f"{url}/v1/runs/{run_id}/poll",
        json={"config_id": "demo", "baseline": {"scope": "stable"},
              "canary": {"scope": "canary-good"}, "start": T0.isoformat(),
              "end": (T0 + timedelta(minutes=minute)).isoformat()},
        timeout=60,
    )
    return answer.status_code, answer.json()


@contextmanager
def running(replicas: Replicas) -> Iterator[Replicas]:
    """``replicas`` started; on the way out stopped, their logs attached to a failure."""
    replicas.start()
    try:
        yield replicas
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{replicas.logs()}") from exc
    finally:
        replicas.stop()
