"""The errors every operation can answer, in its door's shape, written into the OpenAPI document.

A client (or a schema fuzzer) then knows each status and body before meeting it: the native
API's ``{"error", "field", "detail"}``, Kayenta's (Spring Boot's) ``{timestamp, status, error,
message, path}``, the Argo web door's and Flagger's own answer models with ``verdict:
"error"``. The bodies themselves are built by ``judge.api.app.error_body``; this module only
describes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from judge.api.schemas import ArgoJudgeOut, ErrorOut, FlaggerOut


class SpringErrorOut(BaseModel):
    """Spring Boot's error body, as Kayenta answers (and its clients show)."""

    timestamp: str
    status: int
    error: str
    message: str
    path: str


ERROR_MODELS: dict[str, type[BaseModel]] = {
    "native": ErrorOut,
    "kayenta": SpringErrorOut,
    "argo": ArgoJudgeOut,
    "flagger": FlaggerOut,
}
"""The body of an error answer, by door (``judge.api.app.route_group``)."""

ERROR_STATUSES: dict[str, str] = {
    "400": "the request cannot be served as given (the message names the field)",
    "404": "no config, analysis, execution or run with that id",
    "409": "a concurrent change got there first (nothing was changed): send it again",
    "413": "the body is above CANARY_JUDGE_MAX_REQUEST_BYTES",
    "422": "the body or a parameter does not fit its schema (each offending field named)",
    "503": "the database, or a metric source the answer needs, did not answer (no verdict)",
    "504": "no answer within the time budget (CANARY_JUDGE_SYNC_TIMEOUT_SECONDS)",
}
"""What any operation that reads state or judges may answer besides its successes (and the
401/403 of authentication, see ``judge.api.auth.describe_in_openapi``)."""


def add_component(schema: dict[str, Any], model: type[BaseModel]) -> str:
    """``model`` (and the models it holds) among the document's schemas; its ``$ref``."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    generated = model.model_json_schema(
        ref_template="#/components/schemas/{model}",
        mode="validation" if model.__name__.endswith("Request") else "serialization",
    )
    for name, definition in generated.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault(model.__name__, generated)
    return f"#/components/schemas/{model.__name__}"


def describe_errors(
    schema: dict[str, Any], group_of: Callable[[str], str]
) -> dict[str, Any]:
    """Give every operation that is not ``open`` (``x-access``, set first) its error answers
    with the body of its door; FastAPI's own 422 (``{"detail"}``) is replaced by the shape the
    service really answers."""
    refs = {group: add_component(schema, model) for group, model in ERROR_MODELS.items()}
    for path, item in schema.get("paths", {}).items():
        ref = refs[group_of(path)]
        for operation in item.values():
            if not isinstance(operation, dict) or operation.get("x-access") == "open":
                continue
            responses = operation.setdefault("responses", {})
            for status in (*ERROR_STATUSES, "401", "403"):
                if status in ("401", "403") and status not in responses:
                    continue  # only where authentication is on (judge.api.auth)
                described = responses.setdefault(
                    status, {"description": ERROR_STATUSES.get(status, "")}
                )
                described["content"] = {"application/json": {"schema": {"$ref": ref}}}
    return schema
