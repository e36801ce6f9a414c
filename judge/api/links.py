"""Addresses of the report pages, for the ``report_url`` every answer carries.

Built from ``CANARY_JUDGE_EXTERNAL_URL`` (the address people's browsers reach the service at,
which the service cannot know behind a proxy or an ingress), else from the address the request
was sent to. A token given in the request's path (``/t/TOKEN``) is never part of it: the
auth middleware removed it before any route runs, and a browser logs in instead.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request

PAGES_PREFIX = "/ui"


def base_url(request: Request) -> str:
    """The service's external address, without a trailing ``/``."""
    configured = request.app.state.services.settings.external_url
    if configured:
        return str(configured).rstrip("/")
    return str(request.base_url).rstrip("/")


def analysis_url(request: Request, analysis_id: str) -> str:
    """The page of a stored analysis."""
    return f"{base_url(request)}{PAGES_PREFIX}/analyses/{quote(analysis_id, safe='')}"


def run_url(request: Request, run_id: str) -> str:
    """The page of a sequential run (run ids may hold ``/``: Flagger's do)."""
    return f"{base_url(request)}{PAGES_PREFIX}/runs/{quote(run_id, safe='/')}"
