"""Dependencies of the routes, as ``Annotated`` aliases (FastAPI's recommended style).

``get_settings`` is the override point for tests: ``app.dependency_overrides[get_settings]``.
Everything else hangs off ``app.state`` and is built once in ``create_app``'s lifespan.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from judge.api.runner import AnalysisRunner
from judge.api.service import Services
from judge.api.store import Store


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_store(request: Request) -> Store:
    return get_services(request).store


def get_runner(request: Request) -> AnalysisRunner:
    runner: AnalysisRunner = request.app.state.runner
    return runner


ServicesDep = Annotated[Services, Depends(get_services)]
StoreDep = Annotated[Store, Depends(get_store)]
RunnerDep = Annotated[AnalysisRunner, Depends(get_runner)]
