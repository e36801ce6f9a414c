"""The ``curl`` commands the documents show work as shown, against the app in-process.

Each ``sh`` block of README.md and docs/ is read by bash itself (with ``curl`` and ``jq``
defined as shell functions that hand back their arguments), so quoting and ``$TOKEN``
expansion are exactly what a reader's shell would do. Commands that use a token run against an
app with ``CANARY_JUDGE_API_TOKENS`` set (``$TOKEN`` a judge token, ``$ADMIN_TOKEN`` an admin
one); the others against an app without tokens. Each must get past authentication (no 401 or
403) and must not break the service (no 5xx).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from judge.api.app import create_app
from tests.support.clock import service_settings

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
JUDGE_TOKEN = "docs-judge-token-1"
ADMIN_TOKEN = "docs-admin-token-2"
TOKEN_VARIABLES = ("$TOKEN", "$ADMIN_TOKEN")
STAND_INS = {"my-kayenta-config.json": "examples/configs/checkout-kayenta.json"}
"""Files a document names as the reader's own."""

_BASH = shutil.which("bash")


def _commands() -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        for block in re.findall(r"```sh\n(.*?)```", document.read_text(), flags=re.DOTALL):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                if line.strip().startswith("curl "):
                    found.append((str(document.relative_to(ROOT)), line.strip()))
    return found


COMMANDS = _commands()


def _curl_arguments(command: str, env: dict[str, str]) -> list[str]:
    """The arguments bash would hand to ``curl`` for this command line."""
    assert _BASH is not None
    # curl's arguments go to fd 3: its stdout may be piped into jq.
    script = ("exec 3>&1 >/dev/null; curl() { printf '%s\\0' \"$@\" >&3; }; "
              "jq() { cat >/dev/null; }; " + command)
    done = subprocess.run([_BASH, "-c", script], capture_output=True, env=env, cwd=ROOT,
                          check=True, timeout=10)
    return done.stdout.decode().split("\0")[:-1]


def _request(client: TestClient, arguments: list[str]) -> Any:
    method: str | None = None
    headers: dict[str, str] = {}
    data: bytes | None = None
    url = ""
    items = iter(arguments)
    for item in items:
        if item in ("-s", "--silent"):
            continue
        if item in ("-X", "--request"):
            method = next(items)
        elif item in ("-H", "--header"):
            name, _, value = next(items).partition(":")
            headers[name.strip()] = value.strip()
        elif item in ("-d", "--data", "--data-binary"):
            raw = next(items)
            if raw.startswith("@"):
                name = STAND_INS.get(raw[1:], raw[1:])
                data = (ROOT / name).read_bytes()
            else:
                data = raw.encode()
        elif item.startswith("-"):
            raise AssertionError(f"the test does not know curl's {item}")
        else:
            url = item
    parts = urlsplit(url if "://" in url else "http://" + url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if data is not None:
        headers.setdefault("content-type", "application/x-www-form-urlencoded")
    return client.request(method or ("POST" if data is not None else "GET"), path,
                          content=data, headers=headers)


@pytest.fixture(scope="module")
def apps() -> Iterator[dict[str, Any]]:
    with (
        TestClient(create_app(service_settings())) as open_app,
        TestClient(create_app(service_settings(
            api_tokens=f"judge:{JUDGE_TOKEN},admin:{ADMIN_TOKEN}",
        ))) as guarded,
    ):
        started = guarded.post(
            "/v1/analyses",
            json={"config_id": "demo", "baseline": {"scope": "stable"},
                  "canary": {"scope": "canary-good"}, "lookback": "30m"},
            headers={"Authorization": f"Bearer {JUDGE_TOKEN}"},
        )
        assert started.status_code == 202
        env = {**os.environ, "TOKEN": JUDGE_TOKEN, "ADMIN_TOKEN": ADMIN_TOKEN,
               "ID": started.json()["id"]}
        yield {"open": open_app, "guarded": guarded, "env": env}


def test_the_documents_show_curl_commands() -> None:
    assert len(COMMANDS) >= 6
    assert any("/t/$TOKEN/" in command for _doc, command in COMMANDS)


@pytest.mark.skipif(_BASH is None, reason="needs bash")
@pytest.mark.parametrize(("document", "command"), COMMANDS,
                         ids=[f"{d}:{i}" for i, (d, _c) in enumerate(COMMANDS)])
def test_documented_command(apps: dict[str, Any], document: str, command: str) -> None:
    uses_token = any(variable in command for variable in TOKEN_VARIABLES)
    client = apps["guarded"] if uses_token else apps["open"]
    answer = _request(client, _curl_arguments(command, apps["env"]))
    assert answer.status_code not in (401, 403), (document, command, answer.text)
    assert answer.status_code < 500, (document, command, answer.text)
