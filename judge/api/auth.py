"""Who may call what: API tokens with scopes, checked before routing and before any body is read.

Tokens come from ``CANARY_JUDGE_API_TOKENS`` (comma-separated). Each entry is ``SCOPE:TOKEN`` or
a bare ``TOKEN``:

- ``judge:TOKEN`` reads and judges: every ``GET``, judging (``/v1/judge``, ``/judge``), analyses,
  sequential polls, executions, and the Argo, Flagger and Kayenta doors;
- ``admin:TOKEN`` also changes what verdicts depend on: stored configs (``/v1/configs``,
  ``/canaryConfig``) and sequential runs (``DELETE /v1/runs/{id}``);
- a bare ``TOKEN`` (the format from before scopes) is an ``admin`` token, so existing
  deployments keep working; give controllers ``judge`` tokens.

A token that itself contains ``:`` must be given with its scope (``admin:ab:cd``); an entry such
as ``admn:xyz`` (letters, a colon, no known scope) is refused at startup rather than read as an
all-powerful bare token.

A caller presents a token in one of four ways (the first one present is the one checked):

1. ``Authorization: Bearer TOKEN`` (people, scripts, Argo's ``web`` provider);
2. a path prefix ``/t/TOKEN`` before any route: ``/t/TOKEN/canaryConfig``. For callers that
   only take a base address: Argo's ``kayenta`` provider (``address: http://host:8080/t/TOKEN``;
   it appends ``/canaryConfig?...`` and ``/canary/...``), Kayenta's remote judge
   (``baseUrl``), Flagger's webhook ``url``. The prefix is removed before anything else sees
   the request (routing, logs, access logs);
3. Flagger's webhook ``metadata.token`` on ``POST /flagger/v1/check`` (Flagger cannot set
   headers); the key is removed from the body before the webhook is read;
4. on the report pages only (``/`` and ``/ui/...``, all ``GET``), the cookie
   ``canary_judge_token`` that the login form (``POST /ui/login``) sets: HttpOnly,
   ``SameSite=Strict``, so page scripts cannot read it and other sites cannot send it. A page
   asked for without a valid token answers 401 with the login form instead of JSON.

With no tokens configured nothing is checked, and a ``/t/...`` prefix or ``metadata.token`` is
still removed (switching auth on or off needs no change in the controllers).

:data:`ROUTE_ACCESS` says what every route needs; it is the one list of open routes (health,
readiness, metrics, API docs). A route missing from it needs an ``admin`` token (fail closed);
``tests/unit/test_api_auth.py`` checks the list against the app's routes and
``docs/service.md``. Tokens are compared in constant time (SHA-256 digests of equal length,
every configured token compared every time).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

from starlette.routing import Match

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Reject = Callable[[str, int, str], tuple[int, Any]]
"""``(path, status, message) -> (status, body)``: an error in the door's dialect."""


class Access(StrEnum):
    """What a route needs."""

    OPEN = "open"
    """No token: health, readiness, the service's metrics, the API's documentation."""
    JUDGE = "judge"
    """A ``judge`` or ``admin`` token: reads and judgments."""
    ADMIN = "admin"
    """An ``admin`` token: changes to stored configs and sequential runs."""


OPEN, JUDGE, ADMIN = Access.OPEN, Access.JUDGE, Access.ADMIN

ROUTE_ACCESS: dict[tuple[str, str], Access] = {
    # Open: nothing of the service's state or judgment.
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/redoc"): OPEN,
    # Native API.
    ("POST", "/v1/judge"): JUDGE,
    ("GET", "/v1/configs"): JUDGE,
    ("POST", "/v1/configs"): ADMIN,
    ("GET", "/v1/configs/{config_id}"): JUDGE,
    ("PUT", "/v1/configs/{config_id}"): ADMIN,
    ("DELETE", "/v1/configs/{config_id}"): ADMIN,
    ("GET", "/v1/configs/{config_id}/versions"): JUDGE,
    ("GET", "/v1/configs/{config_id}/kayenta"): JUDGE,
    ("POST", "/v1/analyses"): JUDGE,
    ("GET", "/v1/analyses"): JUDGE,
    ("GET", "/v1/analyses/{analysis_id}"): JUDGE,
    ("POST", "/v1/runs/{run_id}/poll"): JUDGE,
    ("GET", "/v1/runs"): JUDGE,
    ("GET", "/v1/runs/{run_id}"): JUDGE,
    ("DELETE", "/v1/runs/{run_id}"): ADMIN,
    # Argo Rollouts web provider, Flagger.
    ("GET", "/argo/v1/judge"): JUDGE,
    ("POST", "/argo/v1/judge"): JUDGE,
    ("POST", "/flagger/v1/check"): JUDGE,
    # Kayenta's API (Argo's kayenta provider, Spinnaker) and Kayenta's remote judge.
    ("GET", "/canaryConfig"): JUDGE,
    ("POST", "/canaryConfig"): ADMIN,
    ("GET", "/canaryConfig/{config_id}"): JUDGE,
    ("PUT", "/canaryConfig/{config_id}"): ADMIN,
    ("DELETE", "/canaryConfig/{config_id}"): ADMIN,
    ("POST", "/canary/{id}"): JUDGE,
    ("POST", "/canary"): JUDGE,
    ("GET", "/canary/executions"): JUDGE,
    ("GET", "/canary/{id}"): JUDGE,
    ("POST", "/judge"): JUDGE,
    # Report pages (HTML; judge/api/pages.py). The login form must answer without a token.
    ("GET", "/"): JUDGE,
    ("GET", "/ui"): JUDGE,
    ("GET", "/ui/analyses"): JUDGE,
    ("GET", "/ui/analyses/{analysis_id}"): JUDGE,
    ("GET", "/ui/analyses/{analysis_id}/plots/{index}.svg"): JUDGE,
    ("GET", "/ui/runs"): JUDGE,
    ("GET", "/ui/runs/{run_id}"): JUDGE,
    ("GET", "/ui/runs/{run_id}/plots/{index}.svg"): JUDGE,
    ("GET", "/ui/configs"): JUDGE,
    ("GET", "/ui/configs/{config_id}"): JUDGE,
    ("GET", "/ui/login"): OPEN,
    ("POST", "/ui/login"): OPEN,
    ("POST", "/ui/logout"): OPEN,
}
"""Every route by method and path (as OpenAPI writes it), and what it needs."""

DOCS_ASSETS_PATH = "/docs-assets"
"""Where the Swagger UI and ReDoc files are served from the package (``fastapi-offline``):
open, as ``/docs`` is, which loads them."""
OPEN_MOUNTS = frozenset((DOCS_ASSETS_PATH,))
"""Static mounts (no methods, not in :data:`ROUTE_ACCESS`) anyone may read."""

SCOPES: dict[str, Access] = {"judge": JUDGE, "admin": ADMIN}
UNSCOPED = ADMIN
"""The scope of a bare token (the format from before scopes): everything, as it was."""

TOKEN_PATH_PREFIX = "/t/"
COOKIE_NAME = "canary_judge_token"
"""The login form's cookie, read on the report pages only (see module doc)."""
PAGES_PREFIX = "/ui"
LoginPage = Callable[[str, str], str]
"""``(path asked for, message) -> HTML``: the login form a refused page answers with."""


def is_page(path: str) -> bool:
    """A report page's path (where the login cookie is read): ``/`` and ``/ui/...``."""
    return path == "/" or path == PAGES_PREFIX or path.startswith(PAGES_PREFIX + "/")
FLAGGER_CHECK = "/flagger/v1/check"
METADATA_TOKEN_KEY = "token"

_CONVERTER = re.compile(r"\{(\w+):\w+\}")
_SCOPE_LIKE = re.compile(r"^[a-z]+$")


def openapi_path(route_path: str) -> str:
    """A route's path as OpenAPI writes it (``{run_id:path}`` -> ``{run_id}``)."""
    return _CONVERTER.sub(r"{\1}", route_path)


def flat_routes(routes: Sequence[Any]) -> list[Any]:
    """The app's routes with included routers expanded (newer FastAPI keeps them nested);
    each has ``path``, ``methods`` and ``matches(scope)``."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI that flattens routers when they are included
        return list(routes)
    return list(iter_route_contexts(routes))


def required_access(method: str, path: str) -> Access:
    """What ``method`` on the route ``path`` needs; unlisted routes need ``admin``."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    if path in OPEN_MOUNTS and method == "GET":
        return OPEN
    return ROUTE_ACCESS.get((method, openapi_path(path)), ADMIN)


@dataclass(frozen=True)
class ApiToken:
    scope: Access
    digest: bytes


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_tokens(entries: Iterable[str]) -> tuple[ApiToken, ...]:
    """The configured tokens with their scopes. Errors name an entry by position only."""
    tokens: list[ApiToken] = []
    seen: set[bytes] = set()
    for position, entry in enumerate(entries, start=1):
        prefix, colon, rest = entry.partition(":")
        if colon and prefix in SCOPES:
            scope, token = SCOPES[prefix], rest
        elif colon and _SCOPE_LIKE.match(prefix):
            raise ValueError(
                f"api_tokens: entry {position} starts with an unknown scope "
                f"(known: {', '.join(SCOPES)}); a token containing ':' needs its scope "
                "in front, e.g. admin:TOKEN"
            )
        else:
            scope, token = UNSCOPED, entry
        if not token:
            raise ValueError(f"api_tokens: entry {position} has an empty token")
        digest = _digest(token)
        if digest in seen:
            raise ValueError(f"api_tokens: entry {position} repeats an earlier token")
        seen.add(digest)
        tokens.append(ApiToken(scope=scope, digest=digest))
    return tuple(tokens)


_HOW = (
    "send 'Authorization: Bearer <token>', or put the token in the path: /t/<token>/..."
)
_HINTS = {
    "argo": _HOW,
    "kayenta": "Argo's kayenta provider and Kayenta send no headers: give the address "
    "with the token, http://host:port/t/<token> (or send 'Authorization: Bearer <token>')",
    "flagger": "Flagger sends no headers: set metadata.token in the webhook, or put the "
    "token in its url: http://host:port/t/<token>/flagger/v1/check",
    "native": _HOW,
}


class AuthMiddleware:
    """Pure ASGI middleware: finds the route, takes the token, refuses or lets through.

    It runs before routing and before any body is parsed, so a caller without a valid token
    learns nothing (no 404/405/422), and it rewrites the request in place (``scope['path']``
    and ``raw_path`` without ``/t/TOKEN``; Flagger's body without ``metadata.token``) so the
    server's access log and everything downstream see the request without its token.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: Iterable[str],
        open_groups: Iterable[str] = (),
        max_body_bytes: int,
        group_of: Callable[[str], str],
        reject: Reject,
        login_page: LoginPage | None = None,
    ) -> None:
        self.app = app
        self.login_page = login_page
        self.tokens = parse_tokens(tokens)
        self.open_groups = frozenset(open_groups)
        self.limit = max_body_bytes
        self.group_of = group_of
        self.reject = reject
        self._routes: list[Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path_token = _take_path_token(scope)
        method: str = scope["method"]
        metadata_token: str | None = None
        if scope["path"] == FLAGGER_CHECK and method == "POST":
            body = await _read_body(receive, self.limit)
            if body is None:
                await self._refuse(send, scope, 413, f"request body is above the limit of "
                                   f"{self.limit} bytes (CANARY_JUDGE_MAX_REQUEST_BYTES)")
                return
            body, metadata_token = _take_metadata_token(body)
            _set_content_length(scope, len(body))
            receive = _replay(body, receive)
        if not self.tokens:
            await self.app(scope, receive, send)
            return
        route_path = self._route_path(scope)
        access = required_access(method, route_path) if route_path else JUDGE
        if access is OPEN:
            await self.app(scope, receive, send)
            return
        cookie_token = _cookie(scope) if is_page(scope["path"]) else None
        presented = next(
            (t for t in (_bearer(scope), path_token, metadata_token, cookie_token)
             if t is not None), None
        )
        group = self.group_of(scope["path"])
        if presented is None:
            if access is JUDGE and group in self.open_groups:
                await self.app(scope, receive, send)
                return
            await self._refuse(send, scope, 401, f"missing API token: {_HINTS[group]}")
            return
        granted = self._scope_of(presented)
        if granted is None:
            await self._refuse(send, scope, 401, f"invalid API token: {_HINTS[group]}")
            return
        if access is ADMIN and granted is not ADMIN:
            await self._refuse(
                send, scope, 403,
                f"this token's scope ({granted.value}) does not allow {method} "
                f"{openapi_path(route_path or scope['path'])}: it needs an admin token",
            )
            return
        scope.setdefault("state", {})["api_scope"] = granted.value
        await self.app(scope, receive, send)

    def _scope_of(self, presented: str) -> Access | None:
        return token_scope(self.tokens, presented)

    def _route_path(self, scope: Scope) -> str | None:
        """The path template of the route this request goes to (``None``: no route). A path
        that matches with another method (a 405 to come) counts as that route."""
        if self._routes is None:  # the routes are all in place once a request arrives
            app = scope.get("app")
            self._routes = flat_routes(getattr(getattr(app, "router", None), "routes", ()))
        partial: str | None = None
        for route in self._routes:
            match, _child = route.matches(scope)
            if match is Match.FULL:
                return str(route.path)
            if match is Match.PARTIAL and partial is None:
                partial = str(route.path)
        return partial

    async def _refuse(self, send: Send, scope: Scope, status_code: int, message: str) -> None:
        if self.login_page is not None and is_page(scope["path"]):
            # A browser: the login form, still a 401 (nothing of the page is shown).
            asked = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}"
                                     if scope.get("query_string") else "")
            why = ("log in with an API token" if status_code == 401 and "missing" in message
                   else message.split(":", 1)[0])
            page = self.login_page(asked, why).encode()
            await send({"type": "http.response.start", "status": status_code, "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(page)).encode())]})
            await send({"type": "http.response.body", "body": page})
            return
        status, body = self.reject(scope["path"], status_code, message)
        payload = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(payload)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def token_scope(tokens: Sequence[ApiToken], presented: str) -> Access | None:
    """The scope ``presented`` grants among ``tokens`` (``None``: not a token of ours)."""
    digest = _digest(presented)
    # Every token is compared, equal-length digests: no timing hint of which one matched.
    matches = [(hmac.compare_digest(digest, t.digest), t.scope) for t in tokens]
    return next((granted for matched, granted in matches if matched), None)


def _cookie(scope: Scope) -> str | None:
    """The login cookie's token, if the request carries one."""
    from http.cookies import CookieError, SimpleCookie

    for name, value in scope.get("headers", ()):
        if name.lower() == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:
                continue
            if COOKIE_NAME in jar:
                return unquote(jar[COOKIE_NAME].value)
    return None


def _take_path_token(scope: Scope) -> str | None:
    """Remove a leading ``/t/TOKEN`` from the request's path (in place); the token, or None."""
    path: str = scope["path"]
    if not path.startswith(TOKEN_PATH_PREFIX):
        return None
    raw: bytes = scope.get("raw_path") or path.encode()
    segment, _slash, rest = raw[len(TOKEN_PATH_PREFIX):].partition(b"/")
    new_raw = b"/" + rest
    scope["raw_path"] = new_raw
    scope["path"] = unquote(new_raw.decode("latin-1"))
    return unquote(segment.decode("latin-1"))


def _bearer(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer`` header; other schemes are not ours."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            header: bytes = value
            scheme, _space, token = header.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _take_metadata_token(body: bytes) -> tuple[bytes, str | None]:
    """Flagger's body without ``metadata.token``, and the token (``""`` if not a string)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body, None
    metadata = payload.get("metadata") if isinstance(payload, dict) else None
    if not isinstance(metadata, dict) or METADATA_TOKEN_KEY not in metadata:
        return body, None
    token = metadata.pop(METADATA_TOKEN_KEY)
    return json.dumps(payload).encode(), token if isinstance(token, str) else ""


def _set_content_length(scope: Scope, length: int) -> None:
    headers = [
        (name, value) for name, value in scope.get("headers", ())
        if name.lower() not in (b"content-length", b"transfer-encoding")
    ]
    headers.append((b"content-length", str(length).encode()))
    scope["headers"] = headers


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def describe_in_openapi(schema: dict[str, Any], *, enforced: bool) -> dict[str, Any]:
    """Mark each operation of an OpenAPI document with what it needs.

    Every operation gets ``x-access`` (``open``, ``judge``, ``admin``). When tokens are
    enforced, protected operations also get the ``bearer`` security requirement and their
    refusals (401; 403 for ``admin`` routes), and the document the ``bearer`` scheme.
    """
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            access = required_access(method, path)
            operation["x-access"] = access.value
            if not enforced or access is OPEN:
                continue
            operation["security"] = [{"bearer": []}]
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", {"description": "missing or invalid API token"})
            if access is ADMIN:
                responses.setdefault("403", {"description": "the token is not admin"})
    if enforced:
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (CANARY_JUDGE_API_TOKENS); callers that cannot "
            "send headers put it in the path, /t/<token>/..., or Flagger's metadata.token",
        }
    return schema
