"""Faults on loopback for tests: a TCP proxy that delays or stalls, and an HTTP server that
answers errors. Both listen on 127.0.0.1 only and forward to 127.0.0.1 only.

``SlowProxy(target_port, *, delay=..., stall_body=False)``
    Accepts connections on a free loopback port and forwards them to ``127.0.0.1:target_port``
    (a real Prometheus). ``delay`` seconds pass before a connection's first answer byte is
    forwarded (the source sees a read timeout before the headers); with ``stall_body`` the
    answer's status line and headers are forwarded at once and the body is held for
    ``delay`` (a timeout while reading the body, which ``requests`` reports as a
    ``ConnectionError``). ``delay`` and ``stall_body`` can be changed while it runs;
    ``delay=0`` forwards at once. ``connections`` counts accepted connections.

``ErrorServer(status, *, body=..., headers=...)``
    Answers every request with ``status``, ``body`` (default: Prometheus' error JSON) and
    ``headers`` (e.g. ``{"Retry-After": "1"}``). ``requests`` lists ``(time, path)`` of each
    request, for checking that retries waited.

Both are context managers (``start()`` / ``stop()``) and expose ``url``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CHUNK = 65536


class SlowProxy:
    """A loopback TCP proxy that holds answers back (see module doc)."""

    def __init__(self, target_port: int, *, delay: float = 30.0, stall_body: bool = False):
        self.target_port = target_port
        self.delay = delay
        self.stall_body = stall_body
        self.connections = 0
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SlowProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> SlowProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._spawn(self._serve, client)

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False when the proxy is stopping."""
        return not self._stopping.wait(seconds)

    def _serve(self, client: socket.socket) -> None:
        delay, stall_body = self.delay, self.stall_body
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        with client, upstream:
            client.settimeout(0.05)
            upstream.settimeout(0.05)
            held = b""
            answered_at: float | None = None  # when the first answer byte came
            headers_sent = False
            upstream_open = True
            while not self._stopping.is_set():
                asked = _receive(client)
                if asked is None:  # the client gave up (its timeout) or finished
                    return
                if asked:
                    try:
                        upstream.sendall(asked)
                    except OSError:
                        return
                if upstream_open:
                    answer = _receive(upstream)
                    if answer is None:
                        upstream_open = False
                    elif answer:
                        answered_at = answered_at or time.monotonic()
                        held += answer
                        if stall_body and not headers_sent and b"\r\n\r\n" in held:
                            head, _, held = held.partition(b"\r\n\r\n")
                            client.sendall(head + b"\r\n\r\n")
                            headers_sent = True
                if held and answered_at is not None and time.monotonic() - answered_at >= delay:
                    try:
                        client.sendall(held)
                    except OSError:
                        return
                    held = b""
                if not upstream_open and not held:
                    return


def _receive(sock: socket.socket) -> bytes | None:
    """What arrived (``b""``: nothing yet), or ``None`` once the peer closed or failed."""
    try:
        data = sock.recv(_CHUNK)
    except TimeoutError:
        return b""
    except OSError:
        return None
    return data or None


class ErrorServer:
    """An HTTP server on loopback that answers every request with one error (module doc)."""

    def __init__(
        self,
        status: int,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body if body is not None else json.dumps({
            "status": "error", "errorType": "internal",
            "error": f"injected failure: HTTP {status}",
        }).encode()
        self.headers = dict(headers or {})
        self.requests: list[tuple[float, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ErrorServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append((time.monotonic(), self.path))
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(fake.body)))
                for key, value in fake.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(fake.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> ErrorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
