"""The published OpenAPI document, fuzzed against the real server (issue 14, "No 5xx from any
input").

Schemathesis (a dev dependency) reads ``/openapi.json`` from the real server process (auth on,
an admin token sent) and runs every one of its checks on every operation: no 5xx, every
status and body as documented (each door's error shape, ``Allow`` on 405s), schema-violating
requests refused, and schema-valid requests served. The one change to the checks is written
out in ``tests/support/schemathesis_hooks.py``: what JSON Schema cannot say (what a config
means, what the store holds) is checked against the library instead of by status alone.
Bounded and derandomized (``--generation-deterministic``: the same cases every run).

Also walks every documented path with a method it does not take, and unknown paths under each
door: 405 with an ``Allow`` listing every documented method, 404, both in the door's shape.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.service import REPO, ServiceProcess

ADMIN_TOKEN = "fuzz-admin-token"
JUDGE_TOKEN = "fuzz-judge-token"
MAX_EXAMPLES = 10
"""Cases per operation and phase: about 30 s on a shared 2-core machine."""
FUZZ_TIMEOUT = 300.0
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    work_dir: Path = tmp_path_factory.mktemp("fuzz")
    env = {
        "CANARY_JUDGE_DATABASE_URL": f"sqlite:///{work_dir / 'judge.db'}",
        "CANARY_JUDGE_API_TOKENS": f"admin:{ADMIN_TOKEN},judge:{JUDGE_TOKEN}",
    }
    with ServiceProcess(env, work_dir) as running:
        yield running


def _documented(service: ServiceProcess) -> dict[str, set[str]]:
    """Each path of the OpenAPI document, and its methods."""
    document = httpx.get(f"{service.url}/openapi.json").json()
    return {path: {m.upper() for m in item} for path, item in document["paths"].items()}


def test_schemathesis_finds_nothing(service: ServiceProcess) -> None:
    operations = sum(len(methods) for methods in _documented(service).values())
    command = [
        str(Path(sys.executable).with_name("schemathesis")),  # installed by the dev extra
        "--config-file", str(REPO / "tests" / "fixtures" / "schemathesis.toml"),
        "run", f"{service.url}/openapi.json",
        "--header", f"Authorization: Bearer {ADMIN_TOKEN}",
        "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic",
        "--workers", "1", "--no-color",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks"}
    # Run where its caches and reports may go (not the repository).
    run = subprocess.run(command, capture_output=True, text=True, env=env,
                         cwd=service.work_dir, timeout=FUZZ_TIMEOUT, check=False)
    output = run.stdout + run.stderr
    summary = output[output.find("SUMMARY"):] if "SUMMARY" in output else output[-3000:]
    print(summary)
    assert run.returncode == 0, output[-20000:]
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert tested is not None and int(tested.group(1)) == operations, summary
    assert re.search(r"(\d+) generated, \1 passed", output), summary
    assert "Internal Server Error" not in service.log_file.read_text()


def _shape(path: str, body: Any) -> bool:
    """Whether ``body`` is the error shape of the door ``path`` belongs to."""
    if path.startswith("/argo/"):
        return body["verdict"] == "error" and bool(body["error"])
    if path.startswith("/flagger/"):
        return body["verdict"] == "error" and bool(body["reason"])
    if path.startswith(("/canary", "/judge")):
        return set(body) == {"timestamp", "status", "error", "message", "path"}
    return set(body) == {"error"} and bool(body["error"])


def test_every_path_answers_405_with_every_method_it_takes(service: ServiceProcess) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for template, methods in _documented(service).items():
        path = re.sub(r"\{[^}]+\}", "x", template)
        for method in sorted(set(METHODS) - methods):
            answer = httpx.request(method, f"{service.url}{path}", headers=admin)
            assert answer.status_code == 405, (method, path, answer.text)
            allowed = {m.strip() for m in answer.headers["allow"].split(",")}
            assert allowed == methods, (method, path, allowed)
            assert _shape(path, answer.json()), (method, path, answer.text)


@pytest.mark.parametrize(
    "path", ["/nope", "/v1/nope", "/v1/configs/x/y/z", "/argo/v1/nope", "/flagger/v1/nope",
             "/canaryConfig/x/y", "/canary/x/y"],
)
def test_unknown_paths_are_404_in_the_doors_shape(service: ServiceProcess, path: str) -> None:
    answer = httpx.get(f"{service.url}{path}",
                       headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert _shape(path, answer.json()), answer.text
