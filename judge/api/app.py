"""The FastAPI application: wiring, guards (auth, size limit, redaction), errors, health, metrics.

``create_app(settings)`` is the one place the parts are put together (ports and adapters: the
routers are thin adapters over ``judge.api.service``). Nothing happens at import time; the
store, the sources and the background runner are built in the app's lifespan.

Run it with ``canary-judge serve`` or ``uvicorn --factory judge.api.app:create_app``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from judge.api import argo, auth, flagger, kayenta, native, pages
from judge.api.bodies import FormAsJson
from judge.api.openapi_errors import describe_errors
from judge.api.runner import AnalysisRunner
from judge.api.schemas import ArgoJudgeOut, FlaggerOut, HealthOut, SourceHealthOut
from judge.api.seed import seed_demo_configs
from judge.api.service import Services, settings_clock
from judge.api.settings import Settings, get_settings
from judge.api.sources import SourceRegistry
from judge.api.store import Store, safe_url
from judge.api.telemetry import ServiceMetrics, configure_logging
from judge.api.workers import JudgePool, JudgeWorkerError, available_cores
from judge.errors import (
    ConfigError,
    ConflictError,
    DataError,
    NotFoundError,
    StoreUnavailableError,
)
from judge.redaction import Redactor, RedactResponses

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

def route_group(path: str) -> str:
    """Which contract a path answers under: ``argo``, ``kayenta``, ``flagger`` or ``native``."""
    if path.startswith("/argo/"):
        return "argo"
    if path.startswith("/flagger/"):
        return "flagger"
    if kayenta.is_kayenta_path(path):
        return "kayenta"
    return "native"


def error_body(group: str, status_code: int, message: str, path: str) -> tuple[int, Any]:
    """An error in the caller's dialect (``judge.api.openapi_errors`` describes each). Argo's
    web provider gets 200 for a request that cannot be served (see ``judge.api.argo``)."""
    if group == "argo":
        body = ArgoJudgeOut(verdict="error", error=message, reason=message)
        return 200, body.model_dump(mode="json", by_alias=True)
    if group == "flagger":
        answer = FlaggerOut(verdict="error", reason=message, error=message, canary="", phase="")
        return status_code, answer.model_dump(mode="json")
    if group == "kayenta":
        return status_code, kayenta.spring_error(status_code, message, path)
    return status_code, {"error": message}


def reject_body(path: str, status_code: int, message: str) -> tuple[int, Any]:
    """A refusal before routing (auth, size) in the dialect of the door ``path`` belongs to,
    with its own status on every door: a request without a valid token is not judged, and the
    Argo web door's 200 would make it look answered (Argo records the 401 as an Error)."""
    _status, body = error_body(route_group(path), status_code, message, path)
    return status_code, body


class GuardMiddleware:
    """The request size limit, before any routing or body parsing (auth is the layer above:
    :class:`judge.api.auth.AuthMiddleware`).

    A pure ASGI middleware (not ``BaseHTTPMiddleware``) so it adds almost nothing per request
    and never buffers a body that declares its length.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limit = settings.max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        group = route_group(path)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                await self._reject(send, group, 400, "invalid Content-Length header", path)
                return
            if too_big:
                await self._reject(
                    send, group, 413,
                    f"request body is {int(declared)} bytes, above the limit of {self.limit} "
                    "(CANARY_JUDGE_MAX_REQUEST_BYTES)", path,
                )
                return
            await self.app(scope, receive, send)
            return
        # No declared length (chunked): read up to the limit, then replay what was read.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await self._reject(
                    send, group, 413,
                    f"request body is above the limit of {self.limit} bytes "
                    "(CANARY_JUDGE_MAX_REQUEST_BYTES)", path,
                )
                return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _reject(send: Send, group: str, status_code: int, message: str, path: str) -> None:
        # Its own status on every door, as the refusals of auth (see reject_body).
        _status, body = error_body(group, status_code, message, path)
        await send_json(send, status_code, body)


async def send_json(send: Send, status: int, body: Any) -> None:
    """A complete JSON answer, from ASGI middleware (outside FastAPI's responses)."""
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class InternalErrorMiddleware:
    """A bug answers 500 in its door's dialect, and the connection stays open for the next
    request.

    Starlette's outermost ``ServerErrorMiddleware`` answers an unhandled exception and then
    raises it again (for the server to log), and uvicorn closes a connection whose app raised
    after its answer started: the client's next keep-alive request on it failed with a reset.
    This layer sits just outside the routes (inside auth and redaction, so its answer is
    redacted like any other), logs the exception once, and answers without raising. An
    exception after an answer has started still reaches the server, which closes the
    connection: half a response can end no other way.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:
                raise
            path: str = scope["path"]
            logger.exception("unhandled error", extra={"path": path})
            group = route_group(path)
            self.metrics.request_errors.labels(group, "500").inc()
            status, body = error_body(group, 500, f"internal error: {type(exc).__name__}", path)
            await send_json(send, status, body)


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route of ``app`` answers on ``path`` (a 405's ``Allow``: each FastAPI
    route holds one method, and Starlette's 405 names only those of the first route it met).
    Asks the router itself, so path converters (``{run_id:path}``) match as they do there."""
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({"type": "http", "path": path, "method": method, "root_path": ""})[0]
            is Match.FULL
            for route in app.router.routes
        )
    ]


def _install_error_handlers(app: FastAPI) -> None:
    def reply(
        request: Request, status_code: int, message: str, *, keep_status: bool = False,
        headers: dict[str, str] | None = None, **extra: Any,
    ) -> JSONResponse:
        """The error in the door's shape; ``keep_status``: with ``status_code`` on the Argo
        door too (an Error measurement there, not an Inconclusive one)."""
        group = route_group(request.url.path)
        status, body = error_body(group, status_code, message, request.url.path)
        if keep_status:
            status = status_code
        if group == "native":
            body.update(extra)
        if status >= 500 or status == 200:
            request.app.state.metrics.request_errors.labels(group, str(status_code)).inc()
        return JSONResponse(status_code=status, content=jsonable_encoder(body), headers=headers)

    async def bad_request(request: Request, exc: Exception) -> Response:
        field = getattr(exc, "field", None)
        return reply(request, 400, str(exc), field=field)

    async def not_found(request: Request, exc: Exception) -> Response:
        # A KeyError's str() is its repr ('x'): its message is the argument.
        message = str(exc.args[0]) if exc.args else str(exc)
        return reply(request, 404, message)

    async def conflict(request: Request, exc: Exception) -> Response:
        return reply(request, 409, str(exc))

    async def timed_out(request: Request, exc: Exception) -> Response:
        return reply(request, 504, str(exc))

    async def unprocessable(request: Request, exc: Exception) -> Response:
        return reply(request, 422, str(exc))

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ValidationError | RequestValidationError)
        errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) else exc.errors()
        cleaned = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in errors
        ]
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in cleaned
        )
        return reply(request, 422, summary, detail=cleaned)

    async def unavailable(request: Request, exc: Exception) -> Response:
        # The database or a judging worker, not the request: 503 on every door (Argo: an Error
        # measurement).
        logger.error("%s", exc)
        return reply(request, 503, str(exc), keep_status=True)

    async def routing(request: Request, exc: Exception) -> Response:
        # Unknown paths (404) and methods (405), in the door's shape; these keep their status on
        # the Argo door too (a wrong URL or method in a template is an Error measurement there,
        # never an Inconclusive one).
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        headers = dict(exc.headers or {})
        if exc.status_code == 404:
            message = f"no route {path} (the routes are listed at /docs)"
        elif exc.status_code == 405:
            allowed = allowed_methods(request.app, path)
            headers["Allow"] = ", ".join(allowed)
            message = f"{request.method} is not allowed on {path}; allowed: {', '.join(allowed)}"
        else:
            message = str(exc.detail)
        return reply(request, exc.status_code, message, keep_status=True, headers=headers)

    async def internal(request: Request, exc: Exception) -> Response:
        # Only what InternalErrorMiddleware cannot catch (an error in a middleware around it).
        logger.exception("unhandled error", extra={"path": request.url.path})
        return reply(request, 500, f"internal error: {type(exc).__name__}")

    # The one exception tree (judge.errors), mapped once for every router: the request or its
    # config (400), what it names (404), a concurrent change (409), the database not answering
    # (503); pydantic's field errors and data the judge cannot take (422); the time budget
    # (504); routing (404, 405). Anything else is a bug (500, logged; see
    # InternalErrorMiddleware).
    app.add_exception_handler(ConfigError, bad_request)
    app.add_exception_handler(DataError, unprocessable)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(ConflictError, conflict)
    app.add_exception_handler(StoreUnavailableError, unavailable)
    app.add_exception_handler(JudgeWorkerError, unavailable)
    app.add_exception_handler(StarletteHTTPException, routing)
    app.add_exception_handler(TimeoutError, timed_out)
    app.add_exception_handler(ValidationError, invalid)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, internal)


def open_store(settings: Settings, redactor: Redactor) -> Store:
    """The store, its tables created and the demo configs seeded; a database that is locked or
    unreachable for ``database_timeout_seconds`` stops startup with one log line saying which
    database and why (:class:`StoreUnavailableError`; uvicorn then exits with status 3)."""
    database = safe_url(settings.database_url)
    try:
        store = Store(settings.database_url, timeout_seconds=settings.database_timeout_seconds,
                      pool_size=settings.database_pool_size,
                      max_overflow=settings.database_max_overflow)
    except Exception as exc:  # a URL SQLAlchemy cannot use, a driver that is not installed
        logger.critical("cannot start: database %s: %s: %s", database, type(exc).__name__, exc)
        raise StoreUnavailableError(f"database {database}: {exc}") from None
    try:
        store.add_write_filter(redactor.text)
        store.create_schema()
        if settings.seed_demo_configs:
            seed_demo_configs(store)
    except StoreUnavailableError as exc:
        logger.critical("cannot start: %s", exc)
        store.close()
        raise
    return store


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service. ``settings`` default to the environment and ``CANARY_JUDGE_SETTINGS_FILE``."""
    settings = settings or get_settings()
    metrics = ServiceMetrics()
    # Secrets never leave: one redactor at every edge (logs, responses, the database).
    redactor = Redactor(settings.secret_values())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_json, redactor)
        store = await to_thread.run_sync(open_store, settings, redactor)
        sources = SourceRegistry.from_settings(settings, metrics)
        judges = JudgePool(
            available_cores() if settings.judge_workers is None else settings.judge_workers
        )
        # Workers started now, each with the judge imported: the first requests do not pay it.
        workers = await to_thread.run_sync(judges.start)
        services = Services(settings=settings, store=store, sources=sources, metrics=metrics,
                            clock=settings_clock(settings), judges=judges)
        runner = AnalysisRunner(services)
        app.state.services = services
        app.state.runner = runner
        health_watch = (
            asyncio.create_task(sources.watch(settings.source_check_interval_seconds),
                                name="source-health")
            if settings.source_check_interval_seconds > 0 else None
        )
        await runner.resume_interrupted()
        # What is built by now (modules, the app, pools) lives as long as the service: out
        # of the collector's sight (gc.freeze), a full collection walks only what came since.
        # Parsing a day of points (orjson: some 1,500 lists an answer) sets off collections
        # that otherwise walked every object of the process: 0.55 -> 0.24 ms of CPU a range
        # query (docs/performance.md, "Fetching"). Unfrozen at shutdown, so that an app
        # made and stopped in a longer-lived process (tests, notebooks) leaks nothing.
        gc.freeze()
        logger.info(
            "canary-judge ready",
            extra={"database": safe_url(settings.database_url), "sources": sources.names(),
                   "default_source": sources.default_name, "judge_workers": workers},
        )
        try:
            yield
        finally:
            gc.unfreeze()
            if health_watch is not None:
                health_watch.cancel()
                await asyncio.gather(health_watch, return_exceptions=True)
            await runner.stop()
            await judges.aclose()
            sources.close()
            store.close()

    # Swagger UI and ReDoc from the package's own files: /docs works offline and behind a
    # strict proxy (FastAPI's default loads them from a CDN).
    app = FastAPIOffline(
        static_url=auth.DOCS_ASSETS_PATH,
        title="canary-judge",
        version="0.1.0",
        summary="Automated canary analysis: is the canary as good as the baseline?",
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.redactor = redactor
    app.dependency_overrides[get_settings] = lambda: settings
    # Outermost last: redaction of every body, then auth (before anything reads the request),
    # then the size limit, then unhandled errors, then `curl -d` bodies read as the JSON
    # they are (innermost).
    app.add_middleware(FormAsJson)
    app.add_middleware(InternalErrorMiddleware, metrics=metrics)
    app.add_middleware(GuardMiddleware, settings=settings)
    open_groups = [
        group
        for group, is_open in (("kayenta", settings.open_kayenta_paths),
                               ("flagger", settings.open_flagger_paths),
                               ("argo", settings.open_argo_paths))
        if is_open
    ]
    app.add_middleware(
        auth.AuthMiddleware,
        tokens=[token.get_secret_value() for token in settings.api_tokens],
        open_groups=open_groups,
        max_body_bytes=settings.max_request_bytes,
        group_of=route_group,
        reject=reject_body,
        login_page=lambda asked, why: pages.login_html(
            asked, why, base=(settings.external_url or "").rstrip("/")
        ),
    )
    app.add_middleware(RedactResponses, redactor=redactor)
    _install_error_handlers(app)
    app.include_router(native.router)
    app.include_router(argo.router)
    app.include_router(flagger.router)
    app.include_router(kayenta.router)
    app.include_router(pages.router)
    app.include_router(pages.root_router)

    @app.get("/healthz", response_model=HealthOut, tags=["health"])
    async def healthz() -> HealthOut:
        """The process is up."""
        return HealthOut(status="ok")

    @app.get("/readyz", response_model=HealthOut, tags=["health"],
             responses={503: {"model": HealthOut}})
    def readyz(request: Request) -> Any:
        """Ready when the database answers (503 otherwise). The metric sources' health is
        reported in ``sources`` but never makes this fail: restarting or unrouting the pod
        cannot fix a Prometheus outage, and analyses answer ``error`` meanwhile."""
        services = request.app.state.services
        health = {name: SourceHealthOut(**h.to_json())
                  for name, h in services.sources.health().items()}
        down = sorted(name for name, h in health.items() if h.status == "down")
        try:
            services.store.ping()
        except Exception as exc:
            return JSONResponse(
                status_code=503,
                content={"status": "unavailable", "detail": f"database: {type(exc).__name__}",
                         "database": "unavailable",
                         "sources": {n: h.model_dump(mode="json") for n, h in health.items()}},
            )
        detail = (
            f"metric source(s) down: {', '.join(down)}; analyses that need them answer "
            "'error' (no verdict) until they are back; the service stays in rotation"
            if down else None
        )
        return HealthOut(status="ready", detail=detail, database="ok", sources=health)

    @app.get("/metrics", tags=["health"], response_class=Response)
    def prometheus_metrics() -> Response:
        """The service's own metrics in Prometheus' text format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            described = argo.describe_in_openapi(build_openapi())
            described = auth.describe_in_openapi(described, enforced=bool(settings.api_tokens))
            app.openapi_schema = describe_errors(described, route_group)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app

