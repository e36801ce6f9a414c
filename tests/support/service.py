"""The real service as a subprocess for integration tests and benchmarks.

``ServiceProcess(env, work_dir)`` runs ``python -m uvicorn --factory judge.api.app:create_app``
on a free loopback port with the given ``CANARY_JUDGE_*`` environment; ``start()`` waits until
``/readyz`` answers 200, ``stop()`` sends SIGTERM (a graceful shutdown), ``kill()`` SIGKILL (a
crash: nothing gets to clean up). It can be started again on a new port with the same database.
``log_level`` is uvicorn's (``info`` adds its access log: one line per request, with the path);
``factory`` the app factory (tests that need one more route wrap the real one, see
``tests/support/raising_app.py``). ``run_until_exit`` runs a service whose startup must fail.
The service's clock is pinned (``CANARY_JUDGE_PINNED_NOW``): :data:`tests.support.clock.PINNED_NOW`
unless ``env`` pins another moment (tests over Prometheus data written near the wall clock pin
the moment their data ends).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.support.clock import PINNED_NOW
from tests.support.prometheus import free_port

REPO = Path(__file__).resolve().parents[2]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by process ``pid`` and by its living descendants
    (for the service: the forkserver and the judging workers, which live as long as the
    server). Benchmarks take the difference around what they measure."""
    import contextlib

    import psutil

    process = psutil.Process(pid)
    own = sum(process.cpu_times()[:2])
    descendants = 0.0
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            descendants += sum(child.cpu_times()[:2])
    return own, descendants
# How long a start may take before the test fails with the server's log. A wait, not a
# margin: it returns as soon as /healthz answers. Startup applies migrations; on the shared
# 2-core CI machine with other jobs burning CPU one start once took more than 30 s.
READY_TIMEOUT = 120.0


class ServiceProcess:
    """One ``canary-judge`` server process (see module doc)."""

    def __init__(
        self,
        env: Mapping[str, str],
        work_dir: Path,
        *,
        log_level: str = "warning",
        factory: str = "judge.api.app:create_app",
    ) -> None:
        self.env = dict(env)
        self.work_dir = work_dir
        self.log_level = log_level
        self.factory = factory
        self.log_file = work_dir / "service.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id (its judging workers are its descendants)."""
        assert self._process is not None, "the service is not running"
        return self._process.pid

    def start(self) -> ServiceProcess:
        self._launch()
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"service exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"service not ready after {READY_TIMEOUT:g} s:\n{self.log()}")

    def run_until_exit(self, timeout: float) -> tuple[int, float]:
        """Start a service that is expected to stop by itself (a startup that must fail): its
        exit status and the seconds it ran. Still running after ``timeout``: killed, and an
        ``AssertionError``."""
        started = time.monotonic()
        self._launch()
        assert self._process is not None
        try:
            status = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"service still running after {timeout:g} s:\n{self.log()}"
            ) from None
        self._process = None
        return status, time.monotonic() - started

    def _launch(self) -> None:
        self.port = free_port()
        env = {
            key: value for key, value in os.environ.items() if not key.startswith("CANARY_JUDGE_")
        }
        env["CANARY_JUDGE_PINNED_NOW"] = PINNED_NOW.isoformat()
        env.update(self.env)
        env["PYTHONPATH"] = str(REPO)
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    self.factory,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    self.log_level,
                ],
                cwd=self.work_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-6000:] if self.log_file.exists() else ""

    def pause(self) -> None:
        """SIGSTOP: the server freezes where it is (its state can be read without a race)."""
        assert self._process is not None, "the service is not running"
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: a paused server goes on."""
        assert self._process is not None, "the service is not running"
        self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: the process dies mid-work, as in a crash or an OOM kill."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: uvicorn shuts down gracefully."""
        self._end(signal.SIGTERM)

    def _end(self, how: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(how)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
