"""The real service with one more route that raises, for the test that a bug's 500 leaves the
client's keep-alive connection usable (no route of the service raises on purpose).

Run as ``uvicorn --factory tests.support.raising_app:create_app`` (``ServiceProcess(...,
factory=...)``); everything else is ``judge.api.app.create_app`` unchanged.
"""

from __future__ import annotations

from fastapi import FastAPI

from judge.api import app as service_app

RAISING_PATHS = ("/v1/test-bug", "/canary/test-bug/raise")
"""A native path and a Kayenta one (answers in Spring's shape), both raising ``RuntimeError``."""


def create_app() -> FastAPI:
    app = service_app.create_app()

    def bug() -> None:
        raise RuntimeError("a bug that only this test app has")

    for path in RAISING_PATHS:
        app.add_api_route(path, bug, methods=["GET"])
    return app
