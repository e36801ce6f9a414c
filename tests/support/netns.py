"""A private network for a server under test, as a container has: a Linux network namespace
with only its own loopback (``unshare --net``), held open by a sleeping process. A server in it
can listen on ``0.0.0.0:8080`` exactly as its image says without meeting another process on
this machine, and nothing in it can reach any other address. Commands run in it through
``nsenter``; needs root (and util-linux, iproute2: ``scripts/setup`` installs ``ip``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from tests.support.requires import require_binary, require_root

_FETCH = """
import json, sys, urllib.error, urllib.request
url, method, body, headers = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
request = urllib.request.Request(url, method=method, data=body.encode() or None,
                                 headers=headers)
try:
    with urllib.request.urlopen(request, timeout=20) as answer:
        status, text = answer.status, answer.read().decode()
except urllib.error.HTTPError as exc:
    status, text = exc.code, exc.read().decode()
print(json.dumps({"status": status, "body": text}))
"""


class PrivateNetwork:
    """``with PrivateNetwork() as net:`` ... ``net.command([...])`` runs argv inside it."""

    def __init__(self) -> None:
        require_root("a network namespace of the test's own (unshare --net)")
        self._tools = {name: require_binary(name) for name in ("unshare", "nsenter", "ip")}
        self._holder: subprocess.Popen[str] | None = None

    def __enter__(self) -> PrivateNetwork:
        self._holder = subprocess.Popen(
            [self._tools["unshare"], "--net", "--", "sh", "-c",
             f"{self._tools['ip']} link set lo up && echo up && exec sleep 86400"],
            stdout=subprocess.PIPE, text=True,
        )
        assert self._holder.stdout is not None
        assert self._holder.stdout.readline().strip() == "up", "no network namespace"
        return self

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` to run in the namespace (unshare/nsenter exec it: same process id)."""
        assert self._holder is not None
        return [self._tools["nsenter"], f"--net=/proc/{self._holder.pid}/ns/net", "--", *argv]

    def fetch(self, url: str, *, method: str = "GET", body: str = "",
              headers: dict[str, str] | None = None) -> tuple[int, str]:
        """An HTTP request from inside the namespace: status and body."""
        done = subprocess.run(
            self.command([sys.executable, "-c", _FETCH, url, method, body,
                          json.dumps(headers or {})]),
            capture_output=True, text=True, timeout=60, check=True,
        )
        answer: dict[str, Any] = json.loads(done.stdout)
        return int(answer["status"]), str(answer["body"])

    def __exit__(self, *exc: object) -> None:
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait(timeout=10)
            self._holder = None
