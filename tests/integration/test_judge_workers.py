"""``POST /v1/judge`` judged by worker processes (``judge_workers``), in the real server.

The server runs with two judging workers. Their answers must be the very report the judge
gives in this process (default and Kayenta mode, thresholds, gaps, requests in flight at once),
errors raised in a worker must reach the caller as they would in-process (a 422 naming what is
wrong), and a worker that dies must never leave a request hanging: killed while judging, that
request gets a 503 saying so and the next one is judged by its replacement; killed while idle,
nobody notices. When the server itself is killed, its workers go too.

The workers are found as the server's grandchildren (the server starts a forkserver, which
forks the workers). The judgment in flight when one is killed is found by its CPU time growing:
a large judgment (400 metrics x 1,440 points, over a second of CPU) runs long enough to be
seen at any machine load, and a slower machine only gives more time to see it.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest

from judge.config import CanaryConfig
from judge.judging import judge
from tests.support.service import ServiceProcess

WORKERS = 2


def _body(mode: str, metrics: int, points: int, seed: int, **extra: Any) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    names = [f"metric_{i:03d}" for i in range(metrics)]
    config = {"name": f"workers-{mode}", "mode": mode,
              "metrics": [{"name": name, "direction": "increase"} for name in names]}
    baseline = {name: [round(float(v), 3) for v in rng.normal(100, 5, points)] for name in names}
    canary = {name: [round(float(v), 3) for v in rng.normal(100 + 12 * (i % 2), 5, points)]
              for i, name in enumerate(names)}
    return {"config": config, "baseline": baseline, "canary": canary, **extra}


def _in_process(body: dict[str, Any]) -> dict[str, Any]:
    """The report the judge gives in this process, as JSON would carry it."""
    config = CanaryConfig.from_dict(body["config"])
    sides = {
        side: {name: [np.nan if v is None else v for v in values]
               for name, values in body[side].items()}
        for side in ("baseline", "canary")
    }
    thresholds = body.get("thresholds")
    report = judge(config, sides["baseline"], sides["canary"],
                   thresholds=None if thresholds is None else dict(thresholds))
    answer: dict[str, Any] = json.loads(json.dumps(report.to_dict()))
    return answer


def _workers(service: ServiceProcess) -> list[psutil.Process]:
    server = psutil.Process(service.pid)
    return [
        process for process in server.children(recursive=True)
        if process.ppid() != server.pid and process.status() != psutil.STATUS_ZOMBIE
    ]


def _wait_for_workers(service: ServiceProcess, count: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = _workers(service)
        if len(workers) == count:
            return workers
        time.sleep(0.05)
    raise AssertionError(f"expected {count} judging workers, found {len(_workers(service))}")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    work_dir: Path = tmp_path_factory.mktemp("judge-workers")
    env = {
        "CANARY_JUDGE_DATABASE_URL": f"sqlite:///{work_dir / 'judge.db'}",
        "CANARY_JUDGE_JUDGE_WORKERS": str(WORKERS),
        "CANARY_JUDGE_MAX_REQUEST_BYTES": "50000000",  # the large judgment below
    }
    with ServiceProcess(env, work_dir) as running:
        yield running


def test_workers_answer_as_the_judge_does_in_process(service: ServiceProcess) -> None:
    assert len(_wait_for_workers(service, WORKERS)) == WORKERS
    bodies = [
        _body("default", 5, 30, seed=1),
        _body("kayenta", 5, 30, seed=2),
        _body("default", 3, 60, seed=3, thresholds={"pass": 90, "marginal": 50}),
        _body("default", 8, 40, seed=4),
    ]
    bodies[3]["baseline"]["metric_000"][5] = None  # a gap
    bodies[3]["canary"]["metric_001"] = []  # no data on one side
    expected = [_in_process(body) for body in bodies]
    answers: list[httpx.Response | None] = [None] * 16

    def send(index: int) -> None:
        answers[index] = httpx.post(f"{service.url}/v1/judge", json=bodies[index % 4],
                                    timeout=60)

    # Sixteen at once: every worker busy, answers matched to their own requests.
    threads = [threading.Thread(target=send, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    verdicts = set()
    for index, answer in enumerate(answers):
        assert answer is not None and answer.status_code == 200, answer and answer.text
        assert answer.json() == expected[index % 4]
        verdicts.add(answer.json()["verdict"])
    assert len(verdicts) > 1  # the bodies differ in what they decide, not only in numbers


def test_an_error_raised_in_a_worker_reaches_the_caller(service: ServiceProcess) -> None:
    body = _body("default", 2, 30, seed=5)
    # A metric neither side has a column for: the judge refuses the call (DataError).
    body["config"]["metrics"].append({"name": "absent", "direction": "increase"})
    answer = httpx.post(f"{service.url}/v1/judge", json=body, timeout=60)
    assert answer.status_code == 422, answer.text
    assert "absent" in answer.json()["error"]
    # The worker that raised it judges the next request as usual.
    fine = _body("default", 2, 30, seed=5)
    for _ in range(WORKERS):
        assert httpx.post(f"{service.url}/v1/judge", json=fine, timeout=60).status_code == 200


def test_a_worker_killed_while_judging_gives_a_clear_error(service: ServiceProcess) -> None:
    workers = _wait_for_workers(service, WORKERS)
    large = _body("default", 400, 1440, seed=6)
    answer: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answer.append(
            httpx.post(f"{service.url}/v1/judge", json=large, timeout=120)
        )
    )
    used = {worker.pid: sum(worker.cpu_times()[:2]) for worker in workers}
    sender.start()
    busy = None
    while busy is None and sender.is_alive():
        for worker in workers:
            if sum(worker.cpu_times()[:2]) - used[worker.pid] >= 0.05:
                busy = worker
                break
        time.sleep(0.02)
    assert busy is not None, "no worker took the large judgment"
    busy.send_signal(signal.SIGKILL)
    sender.join(timeout=120)
    assert not sender.is_alive(), "the request hangs after its worker died"
    assert answer[0].status_code == 503, answer[0].text
    message = answer[0].json()["error"]
    assert "judging worker process died" in message and "send the request again" in message
    # Replaced: the pool is whole again and judges.
    replaced = _wait_for_workers(service, WORKERS)
    assert busy.pid not in {worker.pid for worker in replaced}
    small = _body("default", 5, 30, seed=7)
    for _ in range(WORKERS):
        judged = httpx.post(f"{service.url}/v1/judge", json=small, timeout=60)
        assert judged.status_code == 200 and judged.json() == _in_process(small)


def test_workers_killed_while_idle_are_replaced_unnoticed(service: ServiceProcess) -> None:
    workers = _wait_for_workers(service, WORKERS)
    for worker in workers:
        worker.send_signal(signal.SIGKILL)
    psutil.wait_procs(workers, timeout=30)
    body = _body("kayenta", 4, 30, seed=8)
    for _ in range(WORKERS + 1):
        answer = httpx.post(f"{service.url}/v1/judge", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json() == _in_process(body)
    assert not {w.pid for w in workers} & {w.pid for w in _wait_for_workers(service, WORKERS)}


def test_workers_end_with_a_killed_server(tmp_path: Path) -> None:
    env = {"CANARY_JUDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'judge.db'}",
           "CANARY_JUDGE_JUDGE_WORKERS": str(WORKERS)}
    service = ServiceProcess(env, tmp_path).start()
    server = psutil.Process(service.pid)
    helpers = server.children(recursive=True)  # the forkserver, the workers, multiprocessing's
    assert len(_wait_for_workers(service, WORKERS)) == WORKERS
    service.kill()
    _gone, alive = psutil.wait_procs(helpers, timeout=30)
    assert alive == [], f"left running after the server was killed: {alive}"
