"""Every controller manifest under examples/ and docs/ is valid against the controller's own
CustomResourceDefinition (vendored in tests/fixtures/crds with their licences and versions),
offline: the CRD's ``openAPIV3Schema`` as JSON Schema, strict about unknown fields where the
CRD does not keep them (``kubectl apply --validate=strict`` refuses those)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support import docblocks
from tests.support.crds import crd_problems, crd_schemas

ROOT = Path(__file__).resolve().parents[2]


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every YAML document with an apiVersion of the vendored CRDs' groups: the examples' files
    and the ``yaml`` blocks of README.md and docs/."""
    found: list[tuple[str, dict[str, Any]]] = []
    sources: list[tuple[str, str]] = [
        (str(p.relative_to(ROOT)), p.read_text())
        for p in sorted((ROOT / "examples").rglob("*.y*ml"))
    ]
    for block in docblocks.blocks(docblocks.DATA_LANGUAGES):
        if block.language == "yaml":
            sources.append((block.where, block.text))
    for where, text in sources:
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue  # not a manifest (a fragment); controller manifests parse
        for doc in documents:
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith(
                    ("argoproj.io/", "flagger.app/")):
                found.append((f"{where}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}",
                              doc))
    return found


def _excerpts() -> list[tuple[str, str, Any]]:
    """Each key of the docs' excerpts of manifests (an AnalysisTemplate's metrics, args, one
    metric's provider, a Canary's webhooks): ``(file:line, key, value)``."""
    found = []
    for block in docblocks.blocks(docblocks.DATA_LANGUAGES):
        for document in docblocks.load_data(block):
            if docblocks.is_manifest_excerpt(document):
                found.extend((block.where, key, value) for key, value in document.items())
    return found


def _part(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The schema at ``path``, without ``required``: an excerpt leaves out what it is not
    about (unknown fields and wrong types are still errors)."""
    for step in path:
        schema = schema["items"] if step == "[]" else schema["properties"][step]
    return _optional(schema)


def _optional(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _optional(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_optional(v) for v in schema]
    return schema


SCHEMAS = crd_schemas()
MANIFESTS = _manifests()
EXCERPTS = _excerpts()


def test_the_vendored_crds_and_the_manifests_are_found() -> None:
    assert {("argoproj.io/v1alpha1", "AnalysisTemplate"), ("argoproj.io/v1alpha1", "Rollout"),
            ("flagger.app/v1beta1", "Canary")} <= set(SCHEMAS)
    kinds = {doc["kind"] for _, doc in MANIFESTS}
    assert {"AnalysisTemplate", "Rollout", "Canary"} <= kinds
    assert len(MANIFESTS) >= 9


@pytest.mark.parametrize(("where", "manifest"), MANIFESTS, ids=[w for w, _ in MANIFESTS])
def test_manifest_is_valid_against_its_crd(where: str, manifest: dict[str, Any]) -> None:
    problems = crd_problems(SCHEMAS, manifest)
    assert problems == [], f"{where}:\n" + "\n".join(problems)


def test_the_docs_excerpts_are_found() -> None:
    assert {key for _, key, _ in EXCERPTS} >= {"metrics", "provider", "webhooks"}


@pytest.mark.parametrize(("where", "key", "excerpt"), EXCERPTS,
                         ids=[f"{w}:{k}" for w, k, _ in EXCERPTS])
def test_manifest_excerpt_is_valid_against_its_part_of_the_crd(
        where: str, key: str, excerpt: Any) -> None:
    kind, path = docblocks.EXCERPT_KEYS[key]
    validator = jsonschema.Draft7Validator(_part(SCHEMAS[kind], path))
    problems = [f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
                for e in validator.iter_errors(excerpt)]
    assert problems == [], f"{where} ({kind[1]} {'.'.join(path)}):\n" + "\n".join(problems)


def test_the_check_catches_what_the_issue_reported() -> None:
    # The Argo kayenta template without `region` in its scopes (Argo's CRD requires it), and a
    # misspelt field, are refused.
    template = next(doc for where, doc in MANIFESTS
                    if "analysistemplate-kayenta" in where)
    broken = copy.deepcopy(template)
    provider = broken["spec"]["metrics"][0]["provider"]["kayenta"]
    del provider["scopes"][0]["controlScope"]["region"]
    validator = jsonschema.Draft7Validator(SCHEMAS[("argoproj.io/v1alpha1", "AnalysisTemplate")])
    assert any("'region' is a required property" in e.message
               for e in validator.iter_errors(broken))
    typo = copy.deepcopy(template)
    typo["spec"]["metrics"][0]["sucessCondition"] = typo["spec"]["metrics"][0].pop(
        "successCondition", "true")
    assert any("sucessCondition" in e.message for e in validator.iter_errors(typo))
