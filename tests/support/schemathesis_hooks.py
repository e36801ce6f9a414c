"""Schemathesis hooks for ``tests/integration/test_openapi_fuzz.py`` (loaded with
``SCHEMATHESIS_HOOKS=tests.support.schemathesis_hooks``).

One check, ``accepted_unless_a_documented_rule_refuses``, takes the place of Schemathesis'
``positive_data_acceptance`` (every other check runs as it comes, and
``argo_refusals_judge_nothing`` is added). A request that fits its
published schema must be served, and the published schemas say everything about a request's
shape, including the rules between fields (one of ``config`` / ``config_id``, ``baseline`` +
``canary`` or ``scopes``, ``start`` + ``end`` or ``lookback``, see ``judge.api.schemas``). What
JSON Schema cannot say is what a *config* means and what the *store* holds, so a schema-valid
request may still be refused (400/422), but only for one of these reasons, each documented in
docs/service.md ("Errors"):

- the config it carries breaks a rule of the config format: decided here by the library itself
  (``judge.api.plans.parse_config_document`` refuses the same document), not by the message;
- it names a config, version, analysis or source that does not exist;
- its window or series cannot be judged as asked: marginal above pass, end before start, more
  points than ``CANARY_JUDGE_MAX_POINTS_PER_SERIES``, series no metric reads, data a Kayenta
  pair needs.

The Argo web door answers a refusal with HTTP 200 and ``verdict: "error"`` (Argo's
Inconclusive): those count as refusals too. Anything else is a failure naming the status and
the message.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import schemathesis
from pydantic import ValidationError

from judge.api.plans import parse_config_document
from judge.errors import JudgeError

DOCUMENTED_REFUSALS: dict[str, re.Pattern[str]] = {
    "a stored thing that does not exist": re.compile(
        r"no config with id|has no version|no analysis with id|no sequential run|"
        r"no metric source named|unknown source|not a configured source|"
        r"no source (serves|named)"
    ),
    "thresholds: marginal above pass": re.compile(r"must not be above 'pass'|marginal.*pass"),
    "a window that cannot be fetched": re.compile(
        r"must be after '?start|points per series|too many points|is too long|"
        r"CANARY_JUDGE_MAX_POINTS_PER_SERIES|give both 'start' and 'end'"
    ),
    "Argo's query parameters pass and marginal given apart": re.compile(
        r"thresholds\.(pass|marginal): Input should be a valid number"
    ),
    "series that no metric of the config reads": re.compile(
        r"match no metric|are not metrics of the canaryConfig"
    ),
}


def _message(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body)
    for key in ("message", "error", "reason"):
        if isinstance(body.get(key), str):
            return str(body[key])
    return json.dumps(body)


def _config_documents(case: Any) -> list[Any]:
    """The config documents a request carries (a body that is one, or one inline)."""
    body = getattr(case, "body", None)
    path = case.operation.path
    if path in ("/v1/configs", "/v1/configs/{config_id}", "/canaryConfig",
                "/canaryConfig/{config_id}"):
        return [body]
    if isinstance(body, dict):
        return [body[key] for key in ("config", "canaryConfig")
                if isinstance(body.get(key), dict)]
    return []


def _config_is_refused_by_the_library(document: Any) -> bool:
    if not isinstance(document, dict):
        return True
    try:
        parse_config_document(document)
    except (JudgeError, ValidationError, ValueError, TypeError):
        return True
    return False


def _body_fits_its_schema(case: Any) -> bool:
    """Whether the body really fits the published schema. Schemathesis' generator sometimes
    labels "positive" a body that breaks it (an extra property beside an ``allOf``); such a
    body is rightly refused, and no finding."""
    document = case.operation.schema.raw_schema
    operation = document["paths"][case.operation.path][case.operation.method.lower()]
    content = operation.get("requestBody", {}).get("content", {})
    described = content.get(case.media_type or "application/json", {}).get("schema")
    if described is None or case.body is None:
        return True
    root = {**described, "components": document.get("components", {})}
    return bool(jsonschema.Draft202012Validator(root).is_valid(case.body))


@schemathesis.check
def accepted_unless_a_documented_rule_refuses(ctx: Any, response: Any, case: Any) -> None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if not _body_fits_its_schema(case):
        return None
    status = response.status_code
    try:
        body = response.json()
    except Exception:
        body = response.text
    argo_refusal = (
        case.operation.path.startswith("/argo/") and status == 200
        and isinstance(body, dict) and body.get("verdict") == "error"
        and body.get("analysis_id") is None
    )
    if not (argo_refusal or status in (400, 422)):
        return None
    message = _message(body)
    if any(_config_is_refused_by_the_library(doc) for doc in _config_documents(case)):
        return None
    if any(rule.search(message) for rule in DOCUMENTED_REFUSALS.values()):
        return None
    raise AssertionError(
        f"a request that fits the published schema was refused ({status}) for a reason the "
        f"docs do not list: {message}"
    )


@schemathesis.check
def argo_refusals_judge_nothing(ctx: Any, response: Any, case: Any) -> None:
    """The Argo web door answers a schema-violating request with HTTP 200 (Argo's
    Inconclusive; ``tests/fixtures/schemathesis.toml`` lets ``negative_data_rejection`` take
    it): that 200 must be a refusal, ``verdict: "error"``, with nothing judged."""
    meta = case.meta
    if meta is None or meta.generation.mode.is_positive:
        return None
    if not case.operation.path.startswith("/argo/") or response.status_code != 200:
        return None
    body = response.json()
    if body.get("verdict") != "error" or body.get("analysis_id") is not None:
        raise AssertionError(f"a schema-violating request was judged: {body}")
    return None
