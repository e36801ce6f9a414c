"""Every ``sh``/``bash``/``console``/``shell`` block of README.md, docs/ and examples/ runs, as
shown, against the real server process and a real Prometheus.

The docs' convention (tests/support/docblocks.py): the service is ``localhost:8080``, which
is replaced by the address of a live ``canary-judge`` server; ``$TOKEN`` / ``$ADMIN_TOKEN`` are a
judge and an admin token of that server, ``$ID`` an analysis it stored. A block using a token
runs against a server with API tokens set, the others against one without. Both judge from a
real Prometheus backfilled with the checkout service's series (tests/support/checkout_series.py),
and the demo source, with the clock pinned at the end of that data.

Each command runs in bash (``set -o pipefail``) from a directory that links the checkout's
top-level entries (``examples/``, ``deploy/``, ``.venv`` ...) and holds stand-ins for the files
a document names as the reader's own (``my-config.yaml``, ``kayenta-config.json``,
``my-kayenta-config.json``, ``settings.yaml``). Its exit status must be the one the doc gives
(``# exits N``, else 0): curl runs with ``--fail-with-body`` (from a ``.curlrc``), so an HTTP
error is a failed command. An output the doc shows (``# {...}``, ``# http...``) must match what
the command printed: every field shown, with its value (``...`` leaves out members, items, or
the rest of a text). A command that starts a server (``canary-judge serve``, ``uvicorn``) runs
on a free loopback port until it answers ``/readyz``, then stops.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import docblocks
from tests.support.checkout_series import checkout_samples
from tests.support.clock import PINNED_NOW
from tests.support.prometheus import PrometheusServer, free_port, running_prometheus
from tests.support.requires import require_binary
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.prometheus

ROOT = docblocks.ROOT
JUDGE_TOKEN = "docs-judge-token-1"
ADMIN_TOKEN = "docs-admin-token-2"
TOKEN_VARIABLES = ("$TOKEN", "$ADMIN_TOKEN")
STAND_INS = {
    "my-config.yaml": "examples/configs/checkout.yaml",
    "kayenta-config.json": "examples/configs/checkout-kayenta.json",
    "my-kayenta-config.json": "examples/configs/checkout-kayenta.json",
}
"""Files a document names as the reader's own -> the example that stands in for them."""
SERVER_COMMAND = re.compile(r"^\s*(canary-judge serve|uvicorn)\b")
READY_TIMEOUT = 120.0  # a wait (returns once ready); the CI machine may be loaded
COMMAND_TIMEOUT = 120.0

DOCUMENTS = sorted({b.path for b in docblocks.blocks(docblocks.SHELL_LANGUAGES)})


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with running_prometheus(checkout_samples(PINNED_NOW),
                            tmp_path_factory.mktemp("prometheus")) as server:
        yield server


def _start(prometheus: PrometheusServer, work: Path, tokens: str | None) -> dict[str, str]:
    work.mkdir()
    env = {"CANARY_JUDGE_PROMETHEUS_URL": prometheus.url,
           "CANARY_JUDGE_DATABASE_URL": f"sqlite:///{work / 'judge.db'}",
           "CANARY_JUDGE_LOG_JSON": "false"}
    if tokens:
        env["CANARY_JUDGE_API_TOKENS"] = tokens
    service = ServiceProcess(env, work).start()
    _SERVICES.append(service)
    # An analysis for the commands that show one ($ID), finished before they run.
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if tokens else {}
    started = httpx.post(f"{service.url}/v1/analyses", headers=headers, timeout=30, json={
        "config_id": "demo", "baseline": {"scope": "stable"},
        "canary": {"scope": "canary-good"}, "lookback": "30m"})
    assert started.status_code == 202, started.text
    analysis = started.json()["id"]
    deadline = time.monotonic() + 60
    while httpx.get(f"{service.url}/v1/analyses/{analysis}", headers=headers,
                    timeout=30).json()["status"] not in ("succeeded", "failed", "error"):
        assert time.monotonic() < deadline, service.log()
        time.sleep(0.2)
    return {"port": str(service.port), "ID": analysis, "url": service.url,
            "CANARY_JUDGE_DATABASE_URL": env["CANARY_JUDGE_DATABASE_URL"]}


_SERVICES: list[ServiceProcess] = []


@pytest.fixture(scope="module")
def servers(prometheus: PrometheusServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, str]]]:
    require_binary("curl")
    require_binary("jq")
    base = tmp_path_factory.mktemp("docs-servers")
    try:
        yield {"open": _start(prometheus, base / "open", None),
               "guarded": _start(prometheus, base / "guarded",
                                 f"judge:{JUDGE_TOKEN},admin:{ADMIN_TOKEN}")}
    finally:
        while _SERVICES:
            _SERVICES.pop().stop()


def _reader_directory(work: Path, prometheus: PrometheusServer) -> Path:
    """Where a reader runs the commands: the checkout's examples and .venv, the stand-ins."""
    docblocks.reader_checkout(work)
    if not (work / ".venv").exists():
        (work / ".venv").symlink_to(Path(sys.prefix))
    for name, example in STAND_INS.items():
        shutil.copy(ROOT / example, work / name)
    (work / "settings.yaml").write_text(
        f"database_url: sqlite:///{work / 'settings.db'}\n"
        f"sources:\n  prometheus: {{type: prometheus, url: '{prometheus.url}'}}\n"
        "default_source: prometheus\nlog_json: false\n")
    (work / ".curlrc").write_text("fail-with-body\n")
    return work


def _environment(work: Path, server: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_JUDGE_")}
    env.update(HOME=str(work), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
               TOKEN=JUDGE_TOKEN, ADMIN_TOKEN=ADMIN_TOKEN, ID=server["ID"],
               CANARY_JUDGE_DATABASE_URL=server["CANARY_JUDGE_DATABASE_URL"],
               CANARY_JUDGE_PINNED_NOW=PINNED_NOW.isoformat())
    return env


def _live(text: str, port: str) -> str:
    return text.replace(docblocks.SERVICE_ADDRESS, f"localhost:{port}")


@pytest.mark.parametrize("document", DOCUMENTS)
def test_documented_commands_run(servers: dict[str, dict[str, str]],
                                 prometheus: PrometheusServer, tmp_path: Path,
                                 document: str) -> None:
    # A document's blocks run in order, as a reader runs them (a config stored, then used),
    # on servers holding only their demo configs (another document may have stored the same).
    for server in servers.values():
        _forget_stored_configs(server["url"])
    work = _reader_directory(tmp_path / "reader", prometheus)
    ran = 0
    for block in docblocks.blocks(docblocks.SHELL_LANGUAGES):
        if block.path != document:
            continue
        server = servers["guarded" if any(v in block.text for v in TOKEN_VARIABLES)
                         else "open"]
        env = _environment(work, server)
        for command in docblocks.commands(block):
            where = f"{block.path}:{command.line}"
            if SERVER_COMMAND.match(command.text):
                # Its own store (./canary-judge.db or the settings file's), not the live one's.
                own = {k: v for k, v in env.items() if k != "CANARY_JUDGE_DATABASE_URL"}
                _serve(command.text, work, own, where)
            else:
                _run(command, work, env, server["port"], where)
            ran += 1
    assert ran > 0


def _forget_stored_configs(url: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    listed = httpx.get(f"{url}/v1/configs", headers=headers, timeout=30)
    assert listed.status_code == 200, listed.text
    for config in listed.json():
        if config["name"] not in ("demo", "demo-kayenta"):
            gone = httpx.delete(f"{url}/v1/configs/{config['id']}", headers=headers, timeout=30)
            assert gone.status_code in (200, 204), gone.text


def _run(command: docblocks.Command, work: Path, env: dict[str, str], port: str,
         where: str) -> None:
    done = subprocess.run(["bash", "-c", "set -o pipefail\n" + _live(command.text, port)],
                          cwd=work, env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, check=False)
    shown = f"{where}: {command.text}\nexit {done.returncode}\n{done.stdout[-3000:]}" \
            f"\n{done.stderr[-3000:]}"
    assert done.returncode == command.expected_status, shown
    if command.expected_output is not None:
        assert_output_matches(_live(command.expected_output, port), done.stdout, shown)


def _serve(text: str, work: Path, env: dict[str, str], where: str) -> None:
    """Start the documented server command on a free loopback port, wait until ready, stop."""
    port = free_port()
    code = text.split("#", 1)[0].replace("--host 0.0.0.0", "--host 127.0.0.1")
    if "--port" in code:
        code = re.sub(r"--port \d+", f"--port {port}", code)
    else:
        code = SERVER_COMMAND.sub(lambda m: f"{m.group(1)} --port {port}", code, count=1)
    log = work / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(["bash", "-c", "exec " + code.strip()], cwd=work, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert process.poll() is None, f"{where}: {code}\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{where}: not ready\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# --- comparing a shown output with the real one -----------------------------------------------

ELIDED = "\u2026"


def assert_output_matches(shown: str, printed: str, context: str) -> None:
    """Every field the doc shows is in the output, with its value (see module doc)."""
    if shown.startswith(("{", "[")):
        expected = _shown_json(shown)
        actual = json.loads(printed)
        problems = list(_mismatches(expected, actual, "$"))
        assert problems == [], f"{context}\nshown: {shown}\n" + "\n".join(problems)
    else:
        pattern = ".*".join(re.escape(part) for part in shown.split("..."))
        assert re.fullmatch(pattern, printed.strip(), flags=re.S), f"{context}\nshown: {shown}"


def _shown_json(text: str) -> Any:
    # A list's "..." becomes an item that stands for "and more"; members' "..." are dropped.
    marked = re.sub(r"\[\s*\.\.\.\s*\]", f'["{ELIDED}"]', text)
    marked = re.sub(r",\s*\.\.\.\s*\]", f', "{ELIDED}"]', marked)
    return docblocks.loads_abbreviated_json(marked)


def _mismatches(expected: Any, actual: Any, path: str) -> Iterator[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            yield f"{path}: {actual!r} is not an object"
            return
        for key, value in expected.items():
            if key not in actual:
                yield f"{path}.{key}: missing"
            else:
                yield from _mismatches(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        if not isinstance(actual, list):
            yield f"{path}: {actual!r} is not a list"
            return
        open_ended = bool(expected) and expected[-1] == ELIDED
        items = expected[:-1] if open_ended else expected
        if len(actual) < len(items) or (not open_ended and len(actual) != len(items)):
            yield f"{path}: {len(actual)} items, shown {len(items)}{'+' if open_ended else ''}"
            return
        for i, item in enumerate(items):
            yield from _mismatches(item, actual[i], f"{path}[{i}]")
    elif isinstance(expected, str) and "..." in expected:
        pattern = ".*".join(re.escape(part) for part in expected.split("..."))
        if not isinstance(actual, str) or not re.fullmatch(pattern, actual, flags=re.S):
            yield f"{path}: {actual!r} does not read {expected!r}"
    elif expected != actual:
        yield f"{path}: {actual!r}, shown {expected!r}"


def test_output_comparison_reads_the_docs_abbreviations() -> None:
    actual = json.dumps({"verdict": "fail", "score": 0.0, "fail": True, "id": "6f0c1",
                         "failed_metrics": ["latency", "errors"], "metrics": [{"a": 1}]})
    assert_output_matches('{"verdict":"fail","score":0.0,...,"failed_metrics":["latency",...],'
                          '"metrics":[...],"id":"6f0c..."}', actual, "")
    for wrong in ('{"verdict":"pass",...}', '{"failed_metrics":["latency"]}',
                  '{"missing":1}', '{"id":"7...",...}'):
        with pytest.raises(AssertionError):
            assert_output_matches(wrong, actual, "")
    assert_output_matches("http://localhost:9/ui/analyses/...", "http://localhost:9/ui/analyses/ab\n",
                          "")
