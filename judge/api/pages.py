"""The report pages: HTML for people, next to the JSON doors (every answer links here with
``report_url``, see :mod:`judge.api.links`).

- ``/ui/analyses``: analyses newest first, filtered by config, verdict and time, in pages;
- ``/ui/analyses/{id}``: one analysis: verdict, score, the deciding rule, groups, and each
  metric (failing and critical first) with its plots at ``.../plots/{index}.svg``;
- ``/ui/runs``, ``/ui/runs/{run_id}``: sequential runs, and one run with its polls and, per
  metric, the evidence over the polls;
- ``/ui/configs``, ``/ui/configs/{id}``: stored configs, one at a version, with the diff from
  another version;
- ``/ui/login``: a token form that sets the HttpOnly cookie the pages accept
  (:mod:`judge.api.auth`); ``/ui/logout`` clears it.

The pages need a ``judge`` token like the API's reads. HTML comes from :mod:`judge.pages`
(templates and stylesheet in the package, autoescaped); plots are drawn on first request and
kept (an analysis that finished never changes; a run's key includes its poll count).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from judge.api.auth import COOKIE_NAME, PAGES_PREFIX, parse_tokens, token_scope
from judge.api.deps import StoreDep
from judge.api.links import base_url
from judge.api.settings import Settings
from judge.api.store import AnalysisStatus, StoredAnalysis
from judge.errors import NotFoundError
from judge.pages.render import (
    RUN_STATUSES,
    VERDICTS,
    Subject,
    config_page,
    metric_svg,
    render,
    report_page,
)
from judge.pages.series import state_json
from judge.pages.views import number

router = APIRouter(prefix=PAGES_PREFIX, include_in_schema=False)
root_router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
_SVG = "image/svg+xml"


class PlotCache:
    """Drawn plots by key, the most recently used kept (a figure takes ~0.1 s to draw)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._plots: OrderedDict[tuple[Any, ...], str] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> str | None:
        svg = self._plots.get(key)
        if svg is not None:
            self._plots.move_to_end(key)
        return svg

    def put(self, key: tuple[Any, ...], svg: str) -> None:
        self._plots[key] = svg
        self._plots.move_to_end(key)
        while len(self._plots) > self.size:
            self._plots.popitem(last=False)


def _plots(request: Request) -> PlotCache:
    state = request.app.state
    if getattr(state, "plot_cache", None) is None:
        state.plot_cache = PlotCache()
    cache: PlotCache = state.plot_cache
    return cache


def _html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code,
                        headers={"Cache-Control": "no-store",
                                 "Content-Security-Policy": _CSP,
                                 "X-Content-Type-Options": "nosniff"})


_CSP = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
"""Pages run no script and load nothing but their own plots: even markup that slipped past
escaping could not run or send anything elsewhere."""


def _not_found(request: Request, message: str) -> HTMLResponse:
    return _html(render("error.html", status="Not found", message=message, nav=True,
                        base=base_url(request)), 404)


def _bad_request(request: Request, message: str) -> HTMLResponse:
    return _html(render("error.html", status="Bad request", message=message, nav=True,
                        base=base_url(request)), 400)


# -- lists ----------------------------------------------------------------------------------------
def _moment(raw: str | None, name: str) -> datetime | None:
    """A filter's time: ``2026-12-02T15:00`` (the browser's datetime-local, read as UTC) or
    any ISO 8601 time."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: {raw!r} is not a time (e.g. 2026-12-02T15:00)") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _page_links(request: Request, page: int, more: bool) -> tuple[str | None, str | None]:
    params = {k: v for k, v in request.query_params.items() if k != "page" and v}

    def link(number: int) -> str:
        return f"{request.url.path}?{urlencode({**params, 'page': number})}"

    return (link(page - 1) if page > 1 else None), (link(page + 1) if more else None)


Filter = Annotated[str | None, Query(max_length=200)]


@dataclass(frozen=True)
class ListFilters:
    """The filters and paging every list page takes (query parameters)."""

    config: str | None
    verdict: str | None
    since: str | None
    until: str | None
    page: int
    limit: int


def _filters(
    config: Filter = None,
    verdict: Filter = None,
    since: Filter = None,
    until: Filter = None,
    page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
) -> ListFilters:
    return ListFilters(config, verdict, since, until, page, limit)


FiltersDep = Annotated[ListFilters, Depends(_filters)]


def _list_page(
    request: Request,
    f: ListFilters,
    find: Callable[..., Sequence[Any]],
    row: Callable[[Any, str], dict[str, Any]],
    **page: Any,
) -> Response:
    """One page of a list: the filters parsed, one more row than shown fetched (is there a
    next page?), the rows built and rendered with links to the previous and next pages."""
    try:
        start, end = _moment(f.since, "since"), _moment(f.until, "until")
    except ValueError as exc:
        return _bad_request(request, str(exc))
    found = find(config_name=f.config, since=start, until=end,
                 offset=(f.page - 1) * f.limit, limit=f.limit + 1)
    base = base_url(request)
    previous_link, next_link = _page_links(request, f.page, len(found) > f.limit)
    return _html(render(
        "list.html", rows=[row(item, base) for item in found[:f.limit]], base=base, nav=True,
        filters={"config": f.config, "verdict": f.verdict, "since": f.since, "until": f.until},
        limit=f.limit, page=f.page, previous_link=previous_link, next_link=next_link, **page,
    ))


@router.get("/analyses", response_class=HTMLResponse)
def analyses_page(request: Request, store: StoreDep, f: FiltersDep) -> Response:
    """Analyses newest first, filtered by config name, verdict and creation time."""

    def row(a: Any, base: str) -> dict[str, Any]:
        return {
            "id": a.id,
            "verdict": a.verdict or a.status.value,
            "link": f"{base}{PAGES_PREFIX}/analyses/{quote(a.id, safe='')}",
            "label": a.id[:8],
            "cells": [a.config_name or "-", a.kind, a.verdict or "-", number(a.score),
                      a.status.value, _when(a.created_at)],
        }

    return _list_page(
        request, f, functools.partial(store.find_analyses, verdict=f.verdict), row,
        heading="Analyses", verdicts=VERDICTS, verdict_label="verdict",
        columns=["analysis", "config", "door", "verdict", "score", "status", "created"],
    )


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, store: StoreDep, f: FiltersDep) -> Response:
    """Sequential runs, most recently polled first, filtered by config, status and time."""

    def row(r: Any, base: str) -> dict[str, Any]:
        return {
            "id": r.run_id,
            "verdict": r.status,
            "link": f"{base}{PAGES_PREFIX}/runs/{quote(r.run_id, safe='/')}",
            "label": r.run_id,
            "cells": [r.config_name or "-", r.kind, r.status, str(r.calls),
                      _when(r.created_at), _when(r.updated_at)],
        }

    return _list_page(
        request, f, functools.partial(store.find_runs, status=f.verdict), row,
        heading="Sequential runs", verdicts=RUN_STATUSES, verdict_label="status",
        columns=["run", "config", "door", "status", "polls", "started", "last poll"],
    )


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


# -- one analysis ---------------------------------------------------------------------------------
def analysis_subject(analysis: StoredAnalysis, config_link: str | None) -> Subject:
    """What the page says about an analysis besides its report."""
    request = analysis.request
    facts = [("analysis", analysis.id), ("door", analysis.kind),
             ("created", _when(analysis.created_at)),
             ("finished", _when(analysis.finished_at))]
    if request.get("start") and request.get("end"):
        facts.append(("window", f"{request['start']} .. {request['end']}"))
    for name, pair in dict(request.get("scopes") or {}).items():
        facts.append((f"scopes ({name})", f"baseline {pair['baseline']['scope']}, "
                                          f"canary {pair['canary']['scope']}"))
    if analysis.config_version is not None:
        facts.append(("config version", str(analysis.config_version)))
    name = analysis.config.get("name") or "analysis"
    return Subject(
        kind="analysis", id=analysis.id, title=f"{name}: analysis {analysis.id[:8]}",
        status=analysis.status.value, facts=tuple(facts), config_link=config_link,
        error=analysis.error if analysis.status is not AnalysisStatus.SUCCEEDED else None,
    )


def _config_link(request: Request, config_id: str | None, version: int | None) -> str | None:
    if config_id is None:
        return None
    suffix = f"?version={version}" if version is not None else ""
    return f"{base_url(request)}{PAGES_PREFIX}/configs/{quote(config_id, safe='')}{suffix}"


@router.get("/analyses/{analysis_id}", response_class=HTMLResponse)
def analysis_page(analysis_id: str, request: Request, store: StoreDep) -> Response:
    """One analysis: verdict, score, why, groups, metrics with their plots."""
    try:
        analysis = store.get_analysis(analysis_id)
    except NotFoundError as exc:
        return _not_found(request, str(exc))
    base = base_url(request)
    prefix = f"{base}{PAGES_PREFIX}/analyses/{quote(analysis.id, safe='')}/plots"
    html = report_page(
        analysis_subject(analysis, _config_link(request, analysis.config_id,
                                                analysis.config_version)),
        analysis.report, config=analysis.config,
        plot_url=lambda row: f"{prefix}/{row.index}.svg", base=base,
    )
    return _html(html)


async def _svg(request: Request, key: tuple[Any, ...], draw: Any) -> Response:
    cache = _plots(request)
    svg = cache.get(key)
    if svg is None:
        try:
            drawn: str = await to_thread.run_sync(draw)
        except IndexError:
            return _not_found(request, "no such metric in this report")
        cache.put(key, drawn)
        svg = drawn
    return _svg_response(svg)


def _svg_response(svg: str) -> Response:
    return Response(svg, media_type=_SVG, headers={"Cache-Control": "private, max-age=300",
                                                   "X-Content-Type-Options": "nosniff"})


@router.get("/analyses/{analysis_id}/plots/{index}.svg")
async def analysis_plot(
    analysis_id: str, index: int, request: Request, store: StoreDep
) -> Response:
    """One metric's plots (series, distributions, estimate vs the allowed change) as SVG."""
    # A finished analysis never changes: its drawn plots are served without reading it again.
    key = ("analysis", analysis_id, index)
    if (svg := _plots(request).get(key)) is not None:
        return _svg_response(svg)
    try:
        analysis = await to_thread.run_sync(store.get_analysis, analysis_id)
    except NotFoundError as exc:
        return _not_found(request, str(exc))
    if analysis.report is None or not analysis.status.done:
        return _not_found(request, "this analysis has no report yet")
    report = analysis.report
    metrics = list(report.get("metrics") or ())
    if not 0 <= index < len(metrics):
        return _not_found(request, "no such metric in this report")
    series = await to_thread.run_sync(store.get_series, analysis.id,
                                      str(metrics[index].get("name")))
    return await _svg(request, key,
                      lambda: metric_svg(report, index, config=analysis.config, series=series))


# -- sequential runs ------------------------------------------------------------------------------
@router.get("/runs/{run_id:path}/plots/{index}.svg")
async def run_plot(run_id: str, index: int, request: Request, store: StoreDep) -> Response:
    """One metric of a run: its points, distributions, estimate, and the evidence over the
    polls."""
    try:
        run = await to_thread.run_sync(store.get_run, run_id)
    except NotFoundError as exc:
        return _not_found(request, str(exc))
    if run.report is None:
        return _not_found(request, "this run has no report yet")
    polls = [{"call": p.call, "metrics": p.metrics}
             for p in await to_thread.run_sync(store.run_polls, run.run_id)]
    report = run.report
    return await _svg(
        request, ("run", run.run_id, run.calls, index),
        lambda: metric_svg(report, index, config=run.config, series=state_json(run.state),
                           polls=polls),
    )


@router.get("/runs/{run_id:path}", response_class=HTMLResponse)
def run_page(run_id: str, request: Request, store: StoreDep) -> Response:
    """One sequential run: where it stands, its polls, and its metrics with the evidence."""
    try:
        run = store.get_run(run_id)
    except NotFoundError as exc:
        return _not_found(request, str(exc))
    polls = store.run_polls(run.run_id)
    sequential = dict((run.report or {}).get("details", {}).get("sequential") or {})
    facts = [("run", run.run_id), ("door", run.kind), ("polls", str(run.calls)),
             ("started", _when(run.created_at)), ("last poll", _when(run.updated_at)),
             ("data from", _when(run.window_start)), ("last point", _when(run.last_end))]
    if sequential.get("level") is not None:
        facts.append(("level", f"{float(sequential['level']):g}"))
    name = run.config.get("name") or "run"
    subject = Subject(kind="run", id=run.run_id, title=f"{name}: run {run.run_id}",
                      status=run.status, facts=tuple(facts),
                      config_link=_config_link(request, run.config_id, run.config_version))
    base = base_url(request)
    prefix = f"{base}{PAGES_PREFIX}/runs/{quote(run.run_id, safe='/')}/plots"
    html = report_page(
        subject, run.report, config=run.config,
        plot_url=lambda row: f"{prefix}/{row.index}.svg?calls={run.calls}",
        polls=[{"call": p.call, "status": p.status, "last_end": p.last_end,
                "created_at": p.created_at} for p in polls],
        base=base,
    )
    return _html(html)


# -- configs --------------------------------------------------------------------------------------
@router.get("/configs", response_class=HTMLResponse)
def configs_page(request: Request, store: StoreDep) -> Response:
    """Stored configs (latest versions)."""
    return _html(render("configs.html", configs=store.list_configs(), base=base_url(request),
                        nav=True))


@router.get("/configs/{config_id}", response_class=HTMLResponse)
def config_detail_page(
    config_id: str,
    request: Request,
    store: StoreDep,
    version: Annotated[int | None, Query(ge=1)] = None,
    compare: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """A config at a version (latest by default), its versions, and the diff from ``compare``
    (default: the version before)."""
    try:
        latest = store.find_config(config_id)
        shown = store.get_config(latest.id, version) if version else latest
        versions = store.config_versions(latest.id)
        earlier = compare if compare is not None else (
            max((v for v in versions if v < shown.version), default=None))
        compared = store.get_config(latest.id, earlier).native if earlier else None
    except NotFoundError as exc:
        return _not_found(request, str(exc))
    facts = [("id", shown.id), ("format", shown.original_format),
             ("applications", ", ".join(shown.applications) or "all"),
             ("this version saved", _when(shown.updated_at))]
    return _html(config_page(
        config_id=shown.id, name=shown.name, version=shown.version, versions=versions,
        document=shown.native, compare_to=earlier, compared=compared, facts=facts,
        base=base_url(request),
    ))


# -- login ----------------------------------------------------------------------------------------
def _safe_next(raw: str | None) -> str:
    """Where to go after logging in: a page of this service only (never another site)."""
    if raw and raw.startswith(PAGES_PREFIX + "/") and "//" not in raw and "\\" not in raw:
        return raw
    return f"{PAGES_PREFIX}/analyses"


def login_html(asked: str, message: str, *, base: str = "", enforced: bool = True) -> str:
    """The login form (also what a refused page answers with, see ``judge.api.auth``)."""
    return render("login.html", next=_safe_next(asked), message=message, base=base,
                  enforced=enforced, nav=False)


def _settings(request: Request) -> Settings:
    services = request.app.state.services
    settings: Settings = services.settings
    return settings


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, next_page: Annotated[str | None, Query(alias="next")] = None
) -> Response:
    """The token form."""
    enforced = bool(_settings(request).api_tokens)
    return _html(login_html(next_page or "", "", base=base_url(request), enforced=enforced))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the token of the form; a valid one is kept in an HttpOnly cookie for the pages."""
    settings = _settings(request)
    body = (await request.body()).decode("utf-8", errors="replace")
    fields = parse_qs(body, max_num_fields=10)
    token = (fields.get("token") or [""])[0].strip()
    target = _safe_next((fields.get("next") or [""])[0])
    base = base_url(request)
    enforced = bool(settings.api_tokens)
    if not token:
        return _html(login_html(target, "give an API token", base=base, enforced=enforced), 400)
    if enforced:
        tokens = parse_tokens(t.get_secret_value() for t in settings.api_tokens)
        if token_scope(tokens, token) is None:
            return _html(login_html(target, "invalid API token", base=base,
                                    enforced=enforced), 401)
    answer = RedirectResponse(f"{base}{target}", status_code=303)
    answer.set_cookie(
        COOKIE_NAME, quote(token, safe=""), httponly=True, samesite="strict",
        secure=base.startswith("https://"), path="/",
    )
    return answer


@router.post("/logout")
def logout(request: Request) -> Response:
    """Forget the login cookie."""
    answer = RedirectResponse(f"{base_url(request)}{PAGES_PREFIX}/login", status_code=303)
    answer.delete_cookie(COOKIE_NAME, path="/")
    return answer


# -- entry points ---------------------------------------------------------------------------------
# Relative redirects: a request that came with its token in the path (/t/TOKEN/) keeps it.
@router.get("")
def pages_home() -> Response:
    return RedirectResponse("ui/analyses", status_code=303)


@root_router.get("/")
def home() -> Response:
    """The service's address in a browser: the list of analyses."""
    return RedirectResponse("ui/analyses", status_code=303)
