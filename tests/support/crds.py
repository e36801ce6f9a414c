"""Validating custom resources offline against the CustomResourceDefinitions vendored in
``tests/fixtures/crds`` (with their licences and versions, see its README): each served
version's ``openAPIV3Schema`` as JSON Schema, strict about unknown fields where the CRD does not
keep them (``kubectl apply --validate=strict`` refuses those). Used by
``tests/unit/test_manifests.py`` (the controllers' manifests in examples/ and docs/) and
``tests/unit/test_deploy.py`` (the service's own ServiceMonitor)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).resolve().parents[1] / "fixtures" / "crds"
CRD_FILES = ("argo-rollouts-analysis-template-crd.yaml", "argo-rollouts-rollout-crd.yaml",
             "flagger-crd.yaml", "prometheus-operator-servicemonitor-crd.yaml")


def strict_schema(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` wherever it lists properties and does
    not keep unknown fields (structural schemas prune them; a typo is then silently lost)."""
    if isinstance(schema, dict):
        out = {k: strict_schema(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        if out.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return out
    if isinstance(schema, list):
        return [strict_schema(v) for v in schema]
    return schema


def crd_schemas(files: tuple[str, ...] = CRD_FILES) -> dict[tuple[str, str], dict[str, Any]]:
    """``(apiVersion, kind) -> JSON Schema`` for every served version of every vendored CRD."""
    out = {}
    for name in files:
        for crd in yaml.safe_load_all((CRDS / name).read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                    # Kubernetes checks metadata itself; the CRD leaves it open.
                    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                    out[(f"{group}/{version['name']}", kind)] = strict_schema(schema)
    return out


def crd_problems(schemas: dict[tuple[str, str], dict[str, Any]],
                 resource: dict[str, Any]) -> list[str]:
    """What is wrong with ``resource`` by its CRD's schema, one line each (empty: valid).
    A resource of no vendored CRD is a problem too."""
    key = (resource.get("apiVersion", ""), resource.get("kind", ""))
    if key not in schemas:
        return [f"no vendored CRD serves {key}"]
    validator = jsonschema.Draft7Validator(schemas[key])
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in validator.iter_errors(resource)]
