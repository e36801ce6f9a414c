"""The container image's commands, run for real without Docker (none on the test machines):

1. the builder stage: its ``COPY`` instructions lay out a build context, and its ``RUN``
   (``pip wheel``) builds the package's wheel and its dependencies' from it;
2. the runtime stage's install ``RUN``: a new virtual environment with the package and the
   ``server`` extra from those wheels alone (``--no-index``), and nothing of the dev extra;
3. the image's ``CMD`` as uid 10001, with the image's ``ENV``, in the image's working
   directory, listening on ``0.0.0.0:8080`` in a network namespace of its own (as a container's
   network: only loopback); its ``HEALTHCHECK`` command passes once it is up and fails once it
   is stopped; ``/healthz``, ``/readyz`` and a demo judgment answer;
4. the same with the pod environment the ``sqlite`` overlay renders (deploy/): ready, tokens in
   force, ``/metrics`` open to the ServiceMonitor's scrapes, the database on the volume;
5. the same with the ``postgres`` overlay's pod environment, its Secret's ``database-url`` naming
   a real PostgreSQL server in the container's network: ready, the schema migrated to Alembic's
   head at startup, a judgment stored under a lease named after the pod, and as many judging
   worker processes as the CPU limit has cores (the Downward API's value).

Container paths (``/wheels``, ``/opt/venv``, ``/data``, ``/tmp``) become directories of the
test (``tests/support/dockerfile.on_host``). What this does not run: ``docker build`` itself
(the base image, ``useradd``, BuildKit's bind mount) — docs/deploy.md says so. The time and
size of each step, and the server's memory, are printed (``pytest -s``). The build runs once
for the module's tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest

from judge.api.migrations.run import head_revision
from tests.support.clock import PINNED_NOW
from tests.support.dockerfile import Dockerfile, on_host, read_dockerfile, substitute
from tests.support.install import DEV_ONLY, installed, size_mb
from tests.support.kustomize import (
    DEPLOY,
    STAND_IN_POD_NAME,
    STAND_IN_SECRET,
    container,
    memory_bytes,
    pod_environment,
    render,
)
from tests.support.netns import PrivateNetwork
from tests.support.postgres import PostgresServer
from tests.support.prometheus import PrometheusServer, Sample, backfill
from tests.support.requires import require_binary, require_root

REPO = Path(__file__).resolve().parents[2]
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH of the official python images, which the Dockerfile's ENV extends."""
INSTALL_TIMEOUT = 900.0
"""pip downloading and building wheels of numpy, scipy, pandas ... on a loaded machine."""
START_TIMEOUT = 120.0
"""Importing the service on a busy 2-core machine; far above its usual few seconds."""
UID = 10001


@dataclass(frozen=True)
class _Built:
    """The image's build, run on this machine: its root directory, the Dockerfile, the runtime's
    virtual environment, and the build's measurements."""

    root: Path
    dockerfile: Dockerfile
    venv: Path
    measured: dict[str, float]


@pytest.fixture(scope="module")
def built() -> Iterator[_Built]:
    """Steps 1 and 2, once for the module, in a directory the image's user can reach (pytest's
    tmp_path is under a root-only 0700 directory), removed afterwards."""
    require_root(f"runs the image's command as uid {UID}")
    root = Path(tempfile.mkdtemp(prefix="canary-judge-image-"))
    root.chmod(0o755)
    try:
        dockerfile = read_dockerfile()
        venv, measured = _build(dockerfile, root)
        yield _Built(root, dockerfile, venv, measured)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _owned_directory(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True)
    os.chown(path, UID, UID)
    path.chmod(mode)
    return path


def _reachable_by_everyone(path: Path) -> bool:
    """Whether any user may run ``path``: it and every directory above it executable by
    others."""
    return all(part.stat().st_mode & stat.S_IXOTH for part in (path, *path.parents))


def _image_python() -> Path:
    """The interpreter standing for the python image's, which its unprivileged user can run:
    this test's base interpreter, else Debian's (``scripts/setup`` installs its venv module).
    The service re-executes it as uid 10001 for its judging workers' forkserver, so one in a
    directory only root may enter (a pyenv build in root's home) would not do."""
    base = Path(getattr(sys, "_base_executable", None) or sys.executable).resolve()
    for candidate in (base, Path("/usr/bin/python3").resolve()):
        if candidate.is_file() and _reachable_by_everyone(candidate):
            return candidate
    pytest.fail(f"no Python interpreter uid {UID} may run ({base} is not one): "
                "scripts/setup installs Debian's python3-venv")


def _build_environment(root: Path) -> dict[str, str]:
    """This machine's environment (its pip configuration reaches the package index) without
    this test's virtual environment or settings; ``python`` an interpreter the image's user can
    run, as the python image's is."""
    bin_dir = root / "python-image-bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(_image_python())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CANARY_JUDGE_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{bin_dir}:{IMAGE_PATH}"
    return env


def _build(dockerfile: Dockerfile, root: Path) -> tuple[Path, dict[str, float]]:
    """Steps 1 and 2: the builder's context and wheels, the runtime's virtual environment."""
    builder, runtime = dockerfile.stage("builder"), dockerfile.final
    context, wheels, venv = root / "src", root / "wheels", root / "venv"
    context.mkdir()
    for words in builder.copies:
        *sources, destination = words
        assert not any(word.startswith("--") for word in words), words
        target = context / destination
        for source in sources:
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(REPO / source, target / source)
    env = _build_environment(root)
    paths = {builder.workdir: context, "/wheels": wheels, "/opt/venv": venv}
    measured: dict[str, float] = {}
    for stage, label in ((builder, "wheels"), (runtime, "install")):
        began = time.monotonic()
        # Every RUN of the builder; the runtime's pip step (its other RUN adds the user, which
        # the test stands in for with directories owned by uid 10001).
        for command in stage.runs:
            if stage is runtime and "pip install" not in command:
                assert command.startswith("groupadd --gid 10001"), command
                continue
            done = subprocess.run(["sh", "-c", on_host(command, paths)], cwd=context, env=env,
                                  capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
            assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        measured[f"{label}_seconds"] = time.monotonic() - began
    measured["wheels_mb"], measured["venv_mb"] = size_mb(wheels), size_mb(venv)
    return venv, measured


def _image_environment(dockerfile: Dockerfile, paths: Mapping[str, Path],
                       extra: Mapping[str, str]) -> dict[str, str]:
    """The container's environment: the image's ENV (PATH first in the venv), HOME of the
    image's user, TMPDIR standing for the container's own /tmp, then ``extra`` (settings, as
    ``docker run -e`` or a pod's env)."""
    env = {"PATH": IMAGE_PATH, "HOME": str(paths["/data"]), "TMPDIR": str(paths["/tmp"])}
    for name, value in dockerfile.final.env.items():
        env[name] = on_host(substitute(value, env), paths)
    env.update({name: on_host(value, paths) for name, value in extra.items()})
    return env


def _healthcheck(net: PrivateNetwork, dockerfile: Dockerfile, env: Mapping[str, str]) -> int:
    """Exit status of the image's HEALTHCHECK command (Docker runs it as the image's user)."""
    assert dockerfile.final.healthcheck is not None
    done = subprocess.run(
        net.command([require_binary("setpriv"), f"--reuid={UID}", f"--regid={UID}",
                     "--clear-groups", "--", *dockerfile.final.healthcheck]),
        env=dict(env), capture_output=True, timeout=60,
    )
    return done.returncode


class _Container:
    """The image's CMD running in a private network as the image's user."""

    def __init__(self, net: PrivateNetwork, dockerfile: Dockerfile, env: Mapping[str, str],
                 workdir: Path, log: Path) -> None:
        assert dockerfile.final.cmd is not None
        self.net, self.dockerfile, self.env, self.log = net, dockerfile, dict(env), log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                net.command([require_binary("setpriv"), f"--reuid={UID}", f"--regid={UID}",
                             "--clear-groups", "--", *dockerfile.final.cmd]),
                env=self.env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
            )

    def wait_healthy(self) -> float:
        """Seconds until the HEALTHCHECK passes."""
        began = time.monotonic()
        while _healthcheck(self.net, self.dockerfile, self.env) != 0:
            assert self.process.poll() is None, self.log.read_text()[-4000:]
            assert time.monotonic() - began < START_TIMEOUT, self.log.read_text()[-4000:]
            time.sleep(0.5)
        return time.monotonic() - began

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def descendants(self) -> list[psutil.Process]:
        """Every process the container's command started (the judging workers' forkserver,
        the workers)."""
        return psutil.Process(self.process.pid).children(recursive=True)

    def stop(self) -> None:
        """SIGTERM, as Docker and the kubelet stop a container; it must shut down gracefully
        (uvicorn re-raises the signal once done, so the status may be the signal's)."""
        self.process.terminate()
        status = self.process.wait(timeout=60)
        log = self.log.read_text()
        assert status in (0, -signal.SIGTERM), log[-4000:]
        assert "Application shutdown complete." in log, log[-4000:]


@pytest.mark.slow
def test_image_commands_build_install_and_serve(built: _Built) -> None:
    dockerfile, venv, image_root = built.dockerfile, built.venv, built.root
    measured = dict(built.measured)
    port = dockerfile.final.expose[0]
    base = f"http://127.0.0.1:{port}"

    distributions = installed(venv)
    assert {"canary-judge", "fastapi", "uvicorn", "sqlalchemy", "prometheus-client", "alembic",
            "psycopg", "psycopg-binary"} <= distributions  # one image for both overlays
    assert not distributions & DEV_ONLY, sorted(distributions & DEV_ONLY)
    assert "pyarrow" not in distributions and "distributed" not in distributions

    # -- as `docker run canary-judge`: no settings (SQLite in the working directory, demo) --
    data = _owned_directory(image_root / "data")
    tmp = _owned_directory(image_root / "tmp", 0o1777)
    paths = {"/opt/venv": venv, "/data": data, "/tmp": tmp}
    env = _image_environment(dockerfile, paths,
                             {"CANARY_JUDGE_PINNED_NOW": PINNED_NOW.isoformat()})
    assert Path(env["PATH"].split(":")[0]) == venv / "bin"
    with PrivateNetwork() as net:
        container = _Container(net, dockerfile, env, data, image_root / "run.log")
        try:
            measured["healthy_seconds"] = container.wait_healthy()
            status, body = net.fetch(f"{base}/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok", body
            status, body = net.fetch(f"{base}/readyz")
            assert status == 200 and json.loads(body)["status"] == "ready", body
            status, body = net.fetch(
                f"{base}/argo/v1/judge", method="POST",
                body='{"config":"demo","baseline":"stable","canary":"canary-good"}',
                headers={"content-type": "application/json"})
            assert status == 200 and json.loads(body)["verdict"] == "pass", body
            measured["rss_mb"] = container.rss_mb()
        finally:
            container.stop()
        # A stopped service fails the HEALTHCHECK (it is not a check that always passes).
        assert _healthcheck(net, dockerfile, env) != 0
    database = data / "canary-judge.db"
    assert database.is_file() and database.stat().st_uid == UID

    # -- as the sqlite overlay's pod: its ConfigMap and Secret references as environment --
    pod_data = _owned_directory(image_root / "pod-data")
    pod_tmp = _owned_directory(image_root / "pod-tmp", 0o1777)
    pod_paths = {"/opt/venv": venv, "/data": pod_data, "/tmp": pod_tmp}
    pod_env = pod_environment(render(DEPLOY / "overlays" / "sqlite"), STAND_IN_SECRET)
    env = _image_environment(dockerfile, pod_paths, pod_env)
    assert env["CANARY_JUDGE_DATABASE_URL"] == f"sqlite:///{pod_data}/canary-judge.db"
    with PrivateNetwork() as net:
        container = _Container(net, dockerfile, env, pod_data, image_root / "pod.log")
        try:
            container.wait_healthy()
            status, body = net.fetch(f"{base}/readyz")
            ready = json.loads(body)
            # The Prometheus it names is not reachable here: reported, yet the pod is ready.
            assert status == 200 and ready["database"] == "ok", body
            assert set(ready["sources"]) == {"prometheus"}
            status, body = net.fetch(f"{base}/metrics")
            assert status == 200 and "canary_judge_" in body  # the ServiceMonitor's scrape
            judge = {"method": "POST", "body": '{"config":"checkout","baseline":"a","canary":"b"}',
                     "headers": {"content-type": "application/json"}}
            assert net.fetch(f"{base}/argo/v1/judge", **judge)[0] == 401  # tokens in force
            headers = {**judge["headers"], "authorization": "Bearer deploy-test-judge"}
            status, body = net.fetch(f"{base}/argo/v1/judge", method="POST",
                                     body=judge["body"], headers=headers)
            # Authorised, and answered as Argo's door answers: the config is unknown here (demo
            # configs are not seeded), an `error` without a verdict.
            answer = json.loads(body)
            assert status == 200 and answer["verdict"] == "error", body
            assert answer["error"] == "no config with id or name 'checkout'", body
        finally:
            container.stop()
    assert (pod_data / "canary-judge.db").stat().st_uid == UID
    print("\nimage commands: " + ", ".join(f"{k} {v:.0f}" for k, v in measured.items()))


_INLINE_CONFIG = {
    "name": "checkout-image-test",
    "metrics": [
        {"name": "p99 latency", "direction": "increase",
         "query": {"type": "prometheus", "promql": 'latency_p99_seconds{version="${scope}"}'}},
    ],
}


def _latency_samples() -> list[Sample]:
    """Two hours of per-minute p99 latencies up to the pinned now, the same distribution for
    baseline and canary (seeded): a canary that passes."""
    rng = np.random.default_rng(18)
    end = int(PINNED_NOW.timestamp())
    return [Sample("latency_p99_seconds", {"version": version}, end - 60 * k,
                   float(0.25 + 0.01 * rng.standard_normal()))
            for version in ("stable", "canary") for k in range(121)]


@pytest.mark.slow
def test_image_command_serves_the_postgres_overlay_pod(built: _Built) -> None:
    dockerfile, venv, image_root = built.dockerfile, built.venv, built.root
    base = f"http://127.0.0.1:{dockerfile.final.expose[0]}"
    pod_data = _owned_directory(image_root / "pg-pod-data")
    pod_tmp = _owned_directory(image_root / "pg-pod-tmp", 0o1777)
    paths = {"/opt/venv": venv, "/data": pod_data, "/tmp": pod_tmp}
    objects = render(DEPLOY / "overlays" / "postgres")
    tsdb = image_root / "pg-pod-prometheus" / "tsdb"
    tsdb.mkdir(parents=True)
    backfill(_latency_samples(), tsdb)
    # PostgreSQL and Prometheus in the container's own network (nothing else could reach
    # them), a fresh database named in the Secret's database-url as an operator's would be.
    with (PrivateNetwork() as net, PostgresServer(network=net) as server,
          PrometheusServer(tsdb, network=net) as prometheus):
        url = server.create_database("canary_judge")
        pod_env = pod_environment(objects, {**STAND_IN_SECRET, "database-url": url})
        # What an operator's overlay changes (docs/deploy.md): their Prometheus; and the clock
        # pinned to the samples' hour.
        assert pod_env["CANARY_JUDGE_PROMETHEUS_URL"].startswith("http://prometheus-operated.")
        pod_env |= {"CANARY_JUDGE_PROMETHEUS_URL": prometheus.url,
                    "CANARY_JUDGE_PINNED_NOW": PINNED_NOW.isoformat()}
        env = _image_environment(dockerfile, paths, pod_env)
        assert env["CANARY_JUDGE_DATABASE_URL"] == url
        assert env["CANARY_JUDGE_REPLICA_ID"] == STAND_IN_POD_NAME
        cpu_limit = container(objects)["resources"]["limits"]["cpu"]
        assert env["CANARY_JUDGE_JUDGE_WORKERS"] == cpu_limit == "2"
        assert server.query("canary_judge", "SELECT count(*) FROM pg_tables "
                            "WHERE schemaname = 'public'") == [["0"]]
        container_ = _Container(net, dockerfile, env, pod_data, image_root / "pg-pod.log")
        try:
            healthy = container_.wait_healthy()
            status, body = net.fetch(f"{base}/readyz")
            assert status == 200 and json.loads(body)["database"] == "ok", body
            # Migrated at startup: Alembic's head revision, the store's tables.
            assert server.query("canary_judge", "SELECT version_num FROM alembic_version") == [
                [head_revision()]]
            tables = {row[0] for row in server.query(
                "canary_judge", "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            assert {"configs", "analyses", "analysis_attempts", "sequential_runs"} <= tables
            # One judging worker per core of the CPU limit: the forkserver's children.
            (forkserver,) = [p for p in psutil.Process(container_.process.pid).children()
                             if "forkserver" in " ".join(p.cmdline())]
            assert len(forkserver.children()) == int(cpu_limit)
            # A judgment through Argo's door, fetched from Prometheus, judged by a worker and
            # stored under this pod's lease.
            headers = {"content-type": "application/json",
                       "authorization": "Bearer deploy-test-judge"}
            request = {"config": _INLINE_CONFIG, "baseline": "stable", "canary": "canary"}
            status, body = net.fetch(f"{base}/argo/v1/judge", method="POST",
                                     body=json.dumps(request), headers=headers)
            answer = json.loads(body)
            assert status == 200 and answer["verdict"] == "pass", body
            # Proportional set sizes: pages the forked workers share with the forkserver are
            # counted once, as the pod's memory cgroup counts them.
            processes = [psutil.Process(container_.process.pid), *container_.descendants()]
            tree_mb = sum(p.memory_full_info().pss for p in processes) / 2**20
            rss_mb = sum(p.memory_info().rss for p in processes) / 2**20
        finally:
            container_.stop()
        # The manifest's memory request must cover what the pod was measured to hold.
        request_mb = memory_bytes(container(objects)["resources"]["requests"]["memory"]) / 2**20
        assert tree_mb < request_mb, (tree_mb, request_mb)
        rows = server.query("canary_judge", "SELECT a.id, a.kind, a.status, t.replica_id, "
                            "a.report IS NOT NULL FROM analyses a "
                            "JOIN analysis_attempts t ON t.analysis_id = a.id")
        assert rows == [[answer["analysis_id"], "argo", "succeeded", STAND_IN_POD_NAME, "t"]]
    print(f"\npostgres pod: healthy after {healthy:.0f} s; after a judgment {len(processes)} "
          f"processes ({cpu_limit} judging workers), {tree_mb:.0f} MB proportional set size "
          f"({rss_mb:.0f} MB resident summed over them)")
