"""The service's image definition and Kubernetes manifests, checked offline.

- ``Dockerfile`` (read with dockerfile-parse, ``tests/support/dockerfile.py``): two stages,
  the runtime installs only the package's wheel with the ``server`` extra from the builder's
  wheels, runs as uid 10001, has a HEALTHCHECK without curl, and serves on the port it exposes.
  ``tests/integration/test_image.py`` runs its commands.
- ``deploy/`` rendered by kustomize (``kubectl kustomize``, as ``kubectl apply -k`` does):
  every object valid against Kubernetes' own schemas (``kubernetes-validate``, strict: an
  unknown field is an error) and the ServiceMonitor against the Prometheus Operator's CRD
  (vendored, ``tests/fixtures/crds``); the pod's environment is accepted by the service's real
  settings class; the security context, probes, Secret references and each overlay's shape.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from judge.api.settings import ENV_PREFIX, Settings
from tests.support.crds import crd_problems, crd_schemas
from tests.support.dockerfile import read_dockerfile
from tests.support.kustomize import (
    DEPLOY,
    OVERLAYS,
    STAND_IN_POD_NAME,
    STAND_IN_SECRET,
    container,
    cpu_cores,
    kubectl,
    memory_bytes,
    one,
    pod_environment,
    render,
    resource_field,
)

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
"""An older minor version (clusters lag behind releases) and the newest the package knows."""
SECRET = STAND_IN_SECRET
DOCKERFILE = read_dockerfile()
RENDERED = {overlay: render(DEPLOY / "overlays" / overlay) for overlay in OVERLAYS}
CRD_SCHEMAS = crd_schemas(("prometheus-operator-servicemonitor-crd.yaml",))


# -- the image ---------------------------------------------------------------------------------

def test_the_image_builds_in_one_stage_and_runs_in_another() -> None:
    builder, runtime = DOCKERFILE.stages
    assert (builder.name, runtime.name) == ("builder", "runtime")
    assert builder.base == runtime.base and builder.base.startswith("python:3.")
    # The builder makes wheels of the package and its dependencies, with the extras asked for.
    assert builder.args == {"EXTRAS": "server"} == runtime.args
    assert builder.runs == ['python -m pip wheel --no-cache-dir --wheel-dir /wheels ".[server]"']
    # The runtime copies no source: it installs from the builder's wheels only (--no-index).
    assert runtime.copies == []
    install = runtime.runs[0]
    assert runtime.run_flags[0] == ["--mount=type=bind,from=builder,source=/wheels,"
                                    "target=/wheels"]
    assert "--no-index --find-links=/wheels \"canary-judge[server]\"" in install


def test_a_build_argument_chooses_the_extras() -> None:
    with_files = read_dockerfile(build_args={"EXTRAS": "server,files"})
    assert '".[server,files]"' in with_files.stage("builder").runs[0]
    assert '"canary-judge[server,files]"' in with_files.final.runs[0]


def test_the_image_installs_no_development_extra() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for extra in ("dev", "notebooks", "cluster"):
        assert f"[{extra}" not in text and f",{extra}" not in text


def test_the_image_runs_as_uid_10001_and_never_as_root() -> None:
    runtime = DOCKERFILE.final
    assert runtime.user == "10001:10001"
    assert "useradd --uid 10001 --gid 10001" in runtime.runs[1]
    # The only directory it writes by default (SQLite's ./canary-judge.db) is its own volume.
    assert runtime.workdir == "/data" and runtime.volumes == ["/data"]
    assert "install -d -o 10001 -g 10001 /data" in runtime.runs[1]


def test_healthcheck_is_python_against_healthz_on_the_exposed_port() -> None:
    runtime = DOCKERFILE.final
    assert runtime.expose == ["8080"]
    assert runtime.cmd == ["canary-judge", "serve", "--host", "0.0.0.0", "--port", "8080"]
    assert runtime.healthcheck is not None
    assert runtime.healthcheck[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8080/healthz" in runtime.healthcheck[2]
    assert "curl" not in " ".join(runtime.healthcheck)
    assert set(runtime.healthcheck_options) == {"interval", "timeout", "start-period", "retries"}


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (relative to the context) out (its patterns here are
    plain names and ``**/`` globs, where fnmatch agrees with Docker's matching)."""
    parts = path.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts))):
            return True
        if pattern.startswith("**/") and any(fnmatch.fnmatch(p, bare) for p in parts):
            return True
    return False


def test_dockerignore_keeps_what_the_build_copies_and_drops_the_rest() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)  # _ignored does not model exceptions
    copied = [word for words in DOCKERFILE.stage("builder").copies for word in words[:-1]]
    assert copied == ["pyproject.toml", "README.md", "LICENSE", "judge", "metricsources"]
    for source in [*copied, "judge/api/app.py", "judge/pages/templates/report.html"]:
        assert (ROOT / source).exists(), source
        assert not _ignored(source, patterns), source
    for dropped in (".git", ".venv", "tests/unit/test_deploy.py", "judge/__pycache__/x.pyc",
                    "canary-judge.db", "canary_judge.egg-info", "docs/deploy.md",
                    "deploy/base/deployment.yaml"):
        assert _ignored(dropped, patterns), dropped


# -- the manifests -----------------------------------------------------------------------------

def _validate(resource: dict[str, Any], version: str) -> list[str]:
    if resource["apiVersion"].startswith("monitoring.coreos.com/"):
        return crd_problems(CRD_SCHEMAS, resource)
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(str(p) for p in exc.path) or '(top)'}: {exc.message}"]
    return []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid(overlay: str, version: str) -> None:
    kinds = sorted(o["kind"] for o in RENDERED[overlay])
    extra = {"sqlite": "PersistentVolumeClaim", "postgres": "PodDisruptionBudget"}[overlay]
    assert kinds == sorted(["ConfigMap", "Deployment", "Service", "ServiceMonitor", extra])
    for resource in RENDERED[overlay]:
        problems = _validate(resource, version)
        assert problems == [], f"{overlay} {resource['kind']}: {problems}"


def test_the_validation_is_strict() -> None:
    deployment = copy.deepcopy(one(RENDERED["sqlite"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert any("readinesProbe" in p for p in _validate(deployment, KUBERNETES_VERSIONS[-1]))
    monitor = copy.deepcopy(one(RENDERED["sqlite"], "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["scrapeInterval"] = "30s"  # the field is `interval`
    assert any("scrapeInterval" in p for p in _validate(monitor, KUBERNETES_VERSIONS[-1]))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_is_locked_down(overlay: str) -> None:
    pod = one(RENDERED[overlay], "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    spec = container(RENDERED[overlay])
    assert spec["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
    }
    # A read-only root: the only writable places are volumes, /tmp (matplotlib, temporary
    # files) and the image's working directory (the SQLite file, where there is one).
    mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
    assert set(mounts) == {"/tmp", DOCKERFILE.final.workdir}
    assert DOCKERFILE.final.env["MPLCONFIGDIR"].startswith("/tmp/")
    assert spec["resources"]["requests"].keys() == {"cpu", "memory"}
    assert "memory" in spec["resources"]["limits"]


def test_the_pod_runs_as_the_image_user() -> None:
    user, _, group = (DOCKERFILE.final.user or "").partition(":")
    pod = one(RENDERED["sqlite"], "Deployment")["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        int(user), int(group))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_and_port_match_the_service_and_the_image(overlay: str) -> None:
    spec = container(RENDERED[overlay])
    # The image's CMD serves: the manifests do not override it.
    assert "command" not in spec and "args" not in spec
    assert spec["ports"] == [{"name": "http", "containerPort": int(DOCKERFILE.final.expose[0]),
                              "protocol": "TCP"}]
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert spec["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = one(RENDERED[overlay], "Service")
    template_labels = one(RENDERED[overlay], "Deployment")["spec"]["template"]["metadata"][
        "labels"]
    assert service["spec"]["selector"].items() <= template_labels.items()
    monitor = one(RENDERED[overlay], "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"][
        "labels"].items()
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_written(overlay: str) -> None:
    assert not [o for o in RENDERED[overlay] if o["kind"] == "Secret"]
    spec = container(RENDERED[overlay])
    by_name = {e["name"]: e for e in spec["env"]}
    assert all("valueFrom" in e and "value" not in e for e in spec["env"])
    assert by_name["CANARY_JUDGE_API_TOKENS"]["valueFrom"]["secretKeyRef"] == {
        "name": "canary-judge", "key": "api-tokens"}  # required: no token, no start
    config = one(RENDERED[overlay], "ConfigMap")["data"]
    for key in config:
        assert not key.endswith(("TOKENS", "KEY")), key
    if overlay == "postgres":
        assert "CANARY_JUDGE_DATABASE_URL" not in config
        assert by_name["CANARY_JUDGE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "canary-judge", "key": "database-url"}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in os.environ:
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_environment_is_accepted_by_the_settings(
        overlay: str, clean_environment: pytest.MonkeyPatch) -> None:
    environment = pod_environment(RENDERED[overlay], SECRET)
    assert all(name.startswith(ENV_PREFIX) for name in environment)
    for name, value in environment.items():
        clean_environment.setenv(name, value)
    settings = Settings()
    assert len(settings.api_tokens) == 2
    assert settings.prometheus_url == "http://prometheus-operated.monitoring.svc:9090"
    assert settings.default_source_name() == "prometheus"
    assert settings.demo_source is False and settings.log_json is True
    if overlay == "sqlite":
        # On the PersistentVolumeClaim, mounted at the image's working directory.
        assert settings.database_url == "sqlite:////data/canary-judge.db"
        mounts = {m["name"]: m["mountPath"] for m in container(RENDERED[overlay])["volumeMounts"]}
        assert settings.database_url.removeprefix("sqlite:///").startswith(mounts["data"] + "/")
    else:
        assert settings.database_url == SECRET["database-url"]
        # Leases named after the pod (unique among live pods), held 30 s without renewal.
        assert settings.replica_name() == STAND_IN_POD_NAME
        assert settings.lease_seconds == 30
    # One judging worker per core of the CPU limit: the base's 2.
    assert settings.judge_workers == 2


def _workers_env(spec: dict[str, Any]) -> dict[str, Any]:
    (entry,) = [e for e in spec["env"] if e["name"] == f"{ENV_PREFIX}JUDGE_WORKERS"]
    return dict(entry["valueFrom"]["resourceFieldRef"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_judging_workers_follow_the_cpu_limit(overlay: str) -> None:
    spec = container(RENDERED[overlay])
    # The container's own limit in whole cores, never the node's CPUs (what the Downward API
    # gives for a limit the container does not set, and what the service would count).
    assert _workers_env(spec) == {"containerName": spec["name"], "resource": "limits.cpu",
                                  "divisor": "1"}
    assert "cpu" in spec["resources"]["limits"]
    assert cpu_cores(spec["resources"]["limits"]["cpu"]) >= cpu_cores(
        spec["resources"]["requests"]["cpu"])
    assert memory_bytes(spec["resources"]["limits"]["memory"]) >= memory_bytes(
        spec["resources"]["requests"]["memory"])


@pytest.mark.parametrize(("quantity", "expected"), [
    ("512Mi", 512 * 2**20), ("1Gi", 2**30), ("400M", 400 * 10**6), ("1048576", 2**20),
    ("1.5Gi", 3 * 2**29), ("128k", 128_000)])
def test_memory_quantities_read_as_kubernetes_reads_them(quantity: str, expected: int) -> None:
    assert memory_bytes(quantity) == expected


@pytest.mark.parametrize("quantity", ["512MB", "1g", "Mi", "5m", "-1Gi"])
def test_a_malformed_memory_quantity_is_refused(quantity: str) -> None:
    with pytest.raises(AssertionError, match="not a memory quantity"):
        memory_bytes(quantity)


@pytest.mark.parametrize(("limit", "workers"), [
    ("2", 2), ("250m", 1), ("1", 1), ("1500m", 2), ("1.5", 2), ("4", 4), ("100m", 1)])
def test_a_cpu_limit_becomes_a_whole_number_of_workers_that_the_settings_take(
        limit: str, workers: int, clean_environment: pytest.MonkeyPatch) -> None:
    """The Downward API rounds a fraction of a core up, so any limit gives at least one
    worker; the settings read the value the kubelet writes."""
    spec = copy.deepcopy(container(RENDERED["sqlite"]))
    spec["resources"]["limits"]["cpu"] = limit
    value = resource_field(spec, _workers_env(spec))
    assert value == str(workers)
    clean_environment.setenv(f"{ENV_PREFIX}JUDGE_WORKERS", value)
    assert Settings().judge_workers == workers >= 1


def test_a_workers_reference_without_a_cpu_limit_is_refused() -> None:
    spec = copy.deepcopy(container(RENDERED["sqlite"]))
    del spec["resources"]["limits"]["cpu"]
    with pytest.raises(AssertionError, match="node's allocatable CPU"):
        resource_field(spec, _workers_env(spec))


def _service_link_variables(service: dict[str, Any]) -> dict[str, str]:
    """What the kubelet adds to a pod for a Service when ``enableServiceLinks`` is on (Docker
    links' names: ``{NAME}_SERVICE_HOST``, ``{NAME}_PORT_{PORT}_TCP`` ...)."""
    name = service["metadata"]["name"].upper().replace("-", "_")
    address, variables = "10.0.0.10", {}
    for port in service["spec"]["ports"]:
        number, protocol = port["port"], port.get("protocol", "TCP")
        prefix = f"{name}_PORT_{number}_{protocol}"
        variables |= {
            f"{name}_SERVICE_HOST": address, f"{name}_SERVICE_PORT": str(number),
            f"{name}_SERVICE_PORT_{port['name'].upper()}": str(number),
            f"{name}_PORT": f"{protocol.lower()}://{address}:{number}",
            prefix: f"{protocol.lower()}://{address}:{number}", f"{prefix}_PROTO": "tcp",
            f"{prefix}_PORT": str(number), f"{prefix}_ADDR": address,
        }
    return variables


def test_service_links_are_off_because_the_settings_refuse_them(
        clean_environment: pytest.MonkeyPatch) -> None:
    service = one(RENDERED["sqlite"], "Service")
    links = _service_link_variables(service)
    assert all(name.startswith(ENV_PREFIX) for name in links)  # the Service is canary-judge
    for name, value in links.items():
        clean_environment.setenv(name, value)
    with pytest.raises(ValidationError, match="CANARY_JUDGE_SERVICE_HOST is not a setting"):
        Settings()
    for overlay in OVERLAYS:
        assert one(RENDERED[overlay], "Deployment")["spec"]["template"]["spec"][
            "enableServiceLinks"] is False


def test_sqlite_overlay_is_one_replica_on_a_volume() -> None:
    deployment = one(RENDERED["sqlite"], "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    claim = one(RENDERED["sqlite"], "PersistentVolumeClaim")
    assert volumes["data"] == {"name": "data",
                               "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_postgres_overlay_is_three_replicas_with_a_disruption_budget() -> None:
    deployment = one(RENDERED["postgres"], "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0,
                                                               "maxSurge": 1}
    budget = one(RENDERED["postgres"], "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


# -- docs/deploy.md ----------------------------------------------------------------------------

DOC = ROOT / "docs" / "deploy.md"
_BLOCK = re.compile(r"(?:^(<!-- not run:[^\n]*-->)\n)?^```(\w*)\n(.*?)^```", re.S | re.M)


def _doc_blocks(language: str) -> list[tuple[bool, str]]:
    """``(runnable, text)`` of each fenced block of ``language`` in docs/deploy.md."""
    return [(not marker, text) for marker, lang, text in _BLOCK.findall(DOC.read_text())
            if lang == language]


def test_the_docs_commands_run_offline() -> None:
    blocks = _doc_blocks("sh")
    runnable = [text for ok, text in blocks if ok]
    assert len(runnable) == 2 and len(blocks) == 5  # the others say why they are not run
    env = {**os.environ, "PATH": f"{Path(kubectl()).parent}{os.pathsep}{os.environ['PATH']}"}
    secret_block, check_block = runnable
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", secret_block], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    secret = yaml.safe_load(done.stdout)
    assert secret["kind"] == "Secret" and set(secret["data"]) == {"api-tokens", "database-url"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", check_block], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed for resource deployment/canary-judge") == 2
    assert "ERROR" not in done.stdout


def test_the_docs_own_overlay_renders_and_its_settings_load(
        tmp_path: Path, clean_environment: pytest.MonkeyPatch) -> None:
    (block,) = [text for _, text in _doc_blocks("yaml")]
    (tmp_path / "canary-judge").symlink_to(ROOT)  # "next to a checkout of this repository"
    (tmp_path / "my-canary-judge").mkdir()
    (tmp_path / "my-canary-judge" / "kustomization.yaml").write_text(block)
    objects = render(tmp_path / "my-canary-judge")
    assert {o["metadata"].get("namespace") for o in objects} == {"canary"}
    assert container(objects)["image"] == "registry.example.com/platform/canary-judge:0.1.0"
    assert one(objects, "Deployment")["spec"]["replicas"] == 5  # N replicas of the postgres one
    for resource in objects:
        assert _validate(resource, KUBERNETES_VERSIONS[-1]) == [], resource["kind"]
    for name, value in pod_environment(objects, SECRET).items():
        clean_environment.setenv(name, value)
    settings = Settings()
    assert settings.prometheus_url == "http://prometheus.monitoring.svc:9090"
    assert settings.external_url == "https://canary-judge.example.com"
    assert settings.database_url == SECRET["database-url"]
    assert settings.replica_name() == STAND_IN_POD_NAME and settings.judge_workers == 2
