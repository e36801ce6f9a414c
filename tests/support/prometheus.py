"""A real Prometheus for tests: backfill known samples, start the server, query it, stop it.

API
---
``Sample(metric, labels, timestamp, value)``
    One sample; ``timestamp`` is epoch seconds (float or int), ``labels`` a mapping.

``openmetrics(samples, *, types=None) -> str``
    OpenMetrics text for ``promtool``: a ``# TYPE name gauge`` line per metric family (or the
    type given in ``types``), samples sorted by time within each family, and the final
    ``# EOF`` that the format requires.

``backfill(samples_or_text, data_dir) -> None``
    Runs ``promtool tsdb create-blocks-from openmetrics FILE DATA_DIR``: writes TSDB blocks
    at the samples' own (past) timestamps.

``PrometheusServer(data_dir, *, extra_args=())`` / ``.start()`` / ``.stop()`` / ``.url``
    ``prometheus --config.file=<empty> --storage.tsdb.path=DATA_DIR
    --web.listen-address=127.0.0.1:PORT --storage.tsdb.retention.time=10y`` on a free
    loopback port (the long retention keeps Prometheus from deleting backfilled blocks, and
    from refusing to query them). ``start()`` waits until ``/-/ready`` answers 200 (120 s at
    most, then raises with the server's log); ``stop()`` terminates it (SIGTERM, then
    SIGKILL after 10 s). It can be started again on the same port after a stop. Also a
    context manager.

``PrometheusServer(data_dir, network=net)`` runs it inside a
    :class:`tests.support.netns.PrivateNetwork`, for a process in that network (readiness is
    asked from there too).

``PrometheusServer(data_dir, tls=(cert, key))`` serves HTTPS instead (a ``--web.config.file``
    with ``tls_server_config``); ``url`` then starts ``https://`` and readiness is checked
    trusting ``cert``. ``self_signed_certificate(directory)`` makes such a pair for
    ``127.0.0.1`` with ``openssl`` (``(cert.pem, key.pem)``).

``running_prometheus(samples_or_text, tmp_dir, *, extra_args=(), tls=None)``
    Context manager doing all of the above: backfill into ``tmp_dir / "tsdb"``, start, yield,
    stop. It calls ``require_binary`` for ``prometheus`` and ``promtool`` first (skip locally,
    fail when ``CI=true``).

Typical use, one server per test module (startup takes about a second)::

    @pytest.fixture(scope="module")
    def prometheus(tmp_path_factory):
        samples = [Sample("up_ratio", {"version": "v1"}, T0 + 60 * k, 1.0) for k in range(60)]
        with running_prometheus(samples, tmp_path_factory.mktemp("prom")) as server:
            yield server

    def test_something(prometheus):
        source = PrometheusSource(prometheus.url)
"""

from __future__ import annotations

import contextlib
import math
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.requires import require_binary

if TYPE_CHECKING:
    from tests.support.netns import PrivateNetwork

# A wait, not a margin (returns once /-/ready answers); long enough for a loaded CI machine.
READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class Sample:
    metric: str
    labels: Mapping[str, str]
    timestamp: float
    value: float


@dataclass
class _Family:
    kind: str
    samples: list[Sample] = field(default_factory=list)


def _escape_label_value(value: str) -> str:
    """OpenMetrics label values escape only backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _label_text(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    escaped = (f'{k}="{_escape_label_value(v)}"' for k, v in sorted(labels.items()))
    return "{" + ",".join(escaped) + "}"


def _value_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def openmetrics(samples: Iterable[Sample], *, types: Mapping[str, str] | None = None) -> str:
    """OpenMetrics exposition text of ``samples`` (see module doc)."""
    families: dict[str, _Family] = {}
    for sample in samples:
        family = families.setdefault(
            sample.metric, _Family((types or {}).get(sample.metric, "gauge"))
        )
        family.samples.append(sample)
    lines: list[str] = []
    for name, family in families.items():
        lines.append(f"# TYPE {name} {family.kind}")
        for sample in sorted(family.samples, key=lambda s: s.timestamp):
            lines.append(
                f"{name}{_label_text(sample.labels)} {_value_text(sample.value)} "
                f"{sample.timestamp:.3f}"
            )
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def backfill(samples: Iterable[Sample] | str, data_dir: Path) -> None:
    """Write TSDB blocks for the samples into ``data_dir`` with promtool."""
    promtool = require_binary("promtool")
    text = samples if isinstance(samples, str) else openmetrics(samples)
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir.parent / f"{data_dir.name}-backfill.om"
    source.write_text(text)
    completed = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"promtool backfill failed ({completed.returncode}):\n{completed.stdout}\n"
            f"{completed.stderr}"
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrometheusServer:
    """A ``prometheus`` process serving ``data_dir`` on 127.0.0.1 (see module doc)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        extra_args: Sequence[str] = (),
        tls: tuple[Path, Path] | None = None,
        network: PrivateNetwork | None = None,
    ) -> None:
        self.binary = require_binary("prometheus")
        self.network = network
        self.data_dir = data_dir
        self.extra_args = tuple(extra_args)
        self.tls = tls
        if tls is not None:
            web_config = data_dir.parent / f"{data_dir.name}-web.yml"
            web_config.write_text(
                f"tls_server_config:\n  cert_file: {tls[0]}\n  key_file: {tls[1]}\n"
            )
            self.extra_args += (f"--web.config.file={web_config}",)
        self.port = free_port()
        self.config_file = data_dir.parent / f"{data_dir.name}-prometheus.yml"
        # No scrape jobs: the server must hold exactly the backfilled samples.
        self.config_file.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
        self.log_file = data_dir.parent / f"{data_dir.name}-prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The id of the process started: ``prometheus`` itself unless it runs in a private
        network (then its wrapper, with ``prometheus`` as a descendant)."""
        assert self._process is not None, "Prometheus is not running"
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> PrometheusServer:
        if self.running:
            return self
        with self.log_file.open("ab") as log:
            argv = [
                self.binary,
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=10y",
                *self.extra_args,
            ]
            self._process = subprocess.Popen(
                self.network.command(argv) if self.network is not None else argv,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        context = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else None
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited early:\n{self.log()}")
            if self.network is not None:
                with contextlib.suppress(subprocess.CalledProcessError):
                    if self.network.fetch(f"{self.url}/-/ready")[0] == 200:
                        return
                time.sleep(0.1)
                continue
            try:
                with urllib.request.urlopen(
                    f"{self.url}/-/ready", timeout=1, context=context
                ) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus not ready after {READY_TIMEOUT:g} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for ``127.0.0.1`` (valid one day), made with openssl."""
    openssl = require_binary("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True, check=True, timeout=60,
    )
    return cert, key


@contextlib.contextmanager
def running_prometheus(
    samples: Iterable[Sample] | str,
    tmp_dir: Path,
    *,
    extra_args: Sequence[str] = (),
    tls: tuple[Path, Path] | None = None,
) -> Iterator[PrometheusServer]:
    """Backfill ``samples`` into ``tmp_dir / "tsdb"``, start Prometheus on it, stop at exit."""
    require_binary("prometheus")
    data_dir = tmp_dir / "tsdb"
    backfill(samples, data_dir)
    with PrometheusServer(data_dir, extra_args=extra_args, tls=tls) as server:
        yield server
