"""The install paths a Python user takes, for real, in a copy of the project with its own
virtual environment (nothing shared with the one running the tests):

1. ``pip install -e .`` (no extras): the library and CLI work, and ``canary-judge serve`` says
   in one line which extra to install (it was a uvicorn ModuleNotFoundError traceback);
2. README's ``scripts/serve`` in that environment: it adds only the ``server`` extra (no test
   or lint tools: issue 16 found ~870 MB of dev dependencies installed just to serve), serves
   on the ``--port`` given, and answers README's demo request.

pip installs from the indexes this machine's pip is configured with, as ``scripts/setup``
does. The time and size of each step are printed (``pytest -s``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.clock import PINNED_NOW
from tests.support.install import DEV_ONLY, installed, size_mb
from tests.support.prometheus import free_port

REPO = Path(__file__).resolve().parents[2]
COPY_IGNORES = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", "*.db", ".mypy_cache", ".ruff_cache", ".pytest_cache",
    ".hypothesis", "*.egg-info", "build", "dist", ".ipynb_checkpoints",
)
INSTALL_TIMEOUT = 900.0
"""pip resolving and installing numpy, scipy, pandas ... on a loaded machine."""


@pytest.mark.slow
def test_core_install_then_scripts_serve(tmp_path: Path) -> None:
    project = tmp_path / "canary-judge"
    shutil.copytree(REPO, project, ignore=COPY_IGNORES)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CANARY_JUDGE_", "VIRTUAL_ENV", "PYTHON"))}
    # The base interpreter (not this test's venv), as a new user's python3 would be.
    env["PYTHON"] = getattr(sys, "_base_executable", None) or "python3"
    venv = project / ".venv"

    began = time.monotonic()
    subprocess.run([env["PYTHON"], "-m", "venv", str(venv)], check=True, env=env, timeout=120)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-e", "."],
                   cwd=project, env=env, check=True, timeout=INSTALL_TIMEOUT)
    core_seconds, core_mb = time.monotonic() - began, size_mb(venv)
    core = installed(venv)
    assert "canary-judge" in core and "fastapi" not in core

    no_server = subprocess.run([str(venv / "bin" / "canary-judge"), "serve"], cwd=project,
                               env=env, capture_output=True, text=True, timeout=120)
    assert no_server.returncode == 3
    assert no_server.stderr.startswith("error: the service needs the 'server' extra (")
    assert no_server.stderr.endswith("is not installed): pip install 'canary-judge[server]'\n")
    assert no_server.stderr.count("\n") == 1  # one line, no traceback

    port = free_port()
    serve_env = {**env, "CANARY_JUDGE_PINNED_NOW": PINNED_NOW.isoformat()}
    log = (tmp_path / "serve.log").open("wb")
    began = time.monotonic()
    process = subprocess.Popen([str(project / "scripts" / "serve"), "--port", str(port)],
                               cwd=project, env=serve_env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = began + INSTALL_TIMEOUT
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "scripts/serve did not become ready"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        serve_seconds = time.monotonic() - began
        # README's demo request, as curl -d sends it (a form content type).
        answer = httpx.post(
            f"http://127.0.0.1:{port}/argo/v1/judge",
            content='{"config":"demo","baseline":"stable","canary":"canary-good"}',
            headers={"content-type": "application/x-www-form-urlencoded"}, timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["verdict"] == "pass", answer.text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    serving = installed(venv)
    assert {"fastapi", "uvicorn", "sqlalchemy"} <= serving
    assert not serving & DEV_ONLY, sorted(serving & DEV_ONLY)
    print(f"\ncore install: {core_seconds:.0f} s, .venv {core_mb:.0f} MB; scripts/serve "
          f"(server extra + start): {serve_seconds:.0f} s, .venv {size_mb(venv):.0f} MB")
