"""HTML of the report pages (Jinja2, autoescaped) and their plots (matplotlib SVG, drawn by
:mod:`judge.lab.plots`).

Everything a page needs is in the package: templates under ``templates/``, the stylesheet
inlined from ``static/pages.css``, no script, no CDN. Every value from a user (metric names,
reasons, config values, scope names) goes through Jinja's autoescaping; plots are SVG that
matplotlib writes with its text as paths (see :func:`judge.lab.plots.figure_svg`).

Plots are drawn one metric at a time: the service links each from the page (an ``<img>``
loaded lazily, cached once drawn), so a page of 50 metrics renders without waiting for 50
figures; :func:`analysis_page` with ``inline_plots=True`` (the CLI's self-contained file)
draws them all into the page.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from judge.pages.series import metric_series
from judge.pages.views import (
    MetricRow,
    ReportView,
    config_metric,
    parse_config,
    poll_entries,
    report_view,
)

PlotUrl = Callable[[MetricRow], str]
"""Where a metric's plot is served (the service), given its row."""

VERDICTS = ("pass", "marginal", "fail", "error")
RUN_STATUSES = ("continue", "pass", "fail", "inconclusive", "error")

_PLOT_LOCK = threading.Lock()
"""matplotlib is not thread-safe, and one figure at a time is also the CPU the service can
spare for plots (two cores shared with the analyses)."""


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("judge.pages", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Our own file, not user input: inlined as it is (no asset route, one request a page).
    env.globals["stylesheet"] = Markup(
        resources.files("judge.pages").joinpath("static/pages.css").read_text()
    )
    env.filters["when"] = _when
    return env


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def render(template: str, **context: Any) -> str:
    """A template of ``judge/pages/templates`` rendered with ``context`` (autoescaped)."""
    return _environment().get_template(template).render(**context)


@dataclass(frozen=True)
class Subject:
    """What a page is about, besides its report: an analysis or a sequential run."""

    kind: str
    """``analysis`` or ``run``."""
    id: str
    title: str
    status: str
    facts: tuple[tuple[str, str], ...]
    """Label / value pairs shown under the title (kind, created, window, config ...)."""
    config_link: str | None = None
    error: str | None = None


# -- plots ---------------------------------------------------------------------------------------
def _svg_element(svg: str) -> str:
    """The ``<svg>`` element alone (no XML declaration or doctype), to inline in HTML."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def metric_svg(
    report: Mapping[str, Any],
    index: int,
    *,
    config: Mapping[str, Any] | None,
    series: Mapping[str, Any] | None,
    polls: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The plots of the report's metric at ``index`` as SVG: its series over time, their
    distributions, and its estimate with the interval against the allowed change; for a
    sequential run (``polls`` given) also the evidence over the polls.

    Raises ``IndexError`` for an index the report does not have.
    """
    from matplotlib.figure import Figure

    from judge.lab.plots import figure_svg, plot_evidence, plot_metric
    from judge.report import MetricResult

    metrics = list(report.get("metrics") or ())
    if not 0 <= index < len(metrics):
        raise IndexError(index)
    result = MetricResult.from_dict(metrics[index])
    parsed = parse_config(config)
    metric = config_metric(parsed, result.name)
    unit = metric.unit if metric is not None else None
    baseline, canary = metric_series(series, result.name)
    column = metric.column if metric is not None and metric.name == result.name else result.name
    with _PLOT_LOCK:
        # Fixed margins (in figure fractions) instead of tight_layout, which would double the
        # time to draw: the labels are short and the same on every plot.
        figure = Figure(figsize=(13, 5.6 if polls else 3.2))
        margins = {"left": 0.055, "right": 0.99, "wspace": 0.22,
                   "top": 0.93 if polls else 0.9, "bottom": 0.09 if polls else 0.16}
        if polls:
            grid = figure.add_gridspec(2, 3, width_ratios=[2.2, 1.2, 1.2],
                                       height_ratios=[1, 0.8], hspace=0.45, **margins)
            axes = [figure.add_subplot(grid[0, i]) for i in range(3)]
            evidence_ax = figure.add_subplot(grid[1, :])
        else:
            grid = figure.add_gridspec(1, 3, width_ratios=[2.2, 1.2, 1.2], **margins)
            axes = [figure.add_subplot(grid[0, i]) for i in range(3)]
        plot_metric(result, {column: baseline}, {column: canary}, metric=metric, axes=axes,
                    unit=unit, tight=False)
        if polls:
            plot_evidence(result, poll_entries(polls, result.name), metric=metric,
                          ax=evidence_ax, unit=unit,
                          pass_margin=parsed.sequential.pass_margin if parsed else None)
        return figure_svg(figure)


# -- pages ---------------------------------------------------------------------------------------
def report_page(
    subject: Subject,
    report: Mapping[str, Any] | None,
    *,
    config: Mapping[str, Any] | None,
    plot_url: PlotUrl | None = None,
    series: Mapping[str, Any] | None = None,
    polls: Sequence[Mapping[str, Any]] = (),
    nav: bool = True,
    base: str = "",
) -> str:
    """The page of an analysis or run: verdict, score, the deciding rule, groups and metrics
    (failing and critical first), each with its plots.

    Plots are ``<img>`` links from ``plot_url`` (the service), or drawn into the page when
    ``plot_url`` is ``None`` (a self-contained file; slow for many metrics).
    """
    view: ReportView | None = None
    plots: dict[int, Markup] = {}
    if report is not None:
        parsed = parse_config(config)
        view = report_view(report, parsed)
        if plot_url is None:
            for row in view.metrics:
                svg = metric_svg(report, row.index, config=config, series=series, polls=polls)
                # matplotlib's SVG: its text drawn as paths, its comments escaped.
                plots[row.index] = Markup(_svg_element(svg))
    return render(
        "report.html", subject=subject, view=view, plot_url=plot_url, plots=plots,
        polls=polls, nav=nav, base=base,
    )


def standalone_page(
    subject: Subject,
    report: Mapping[str, Any],
    *,
    config: Mapping[str, Any] | None,
    series: Mapping[str, Any] | None,
    polls: Sequence[Mapping[str, Any]] = (),
) -> str:
    """A report page as one self-contained file (plots drawn into it, no links to the
    service): what ``canary-judge report --html`` and ``judge --html`` write."""
    return report_page(subject, report, config=config, series=series, polls=polls, nav=False)


def config_page(
    *,
    config_id: str,
    name: str,
    version: int,
    versions: Sequence[int],
    document: Mapping[str, Any],
    compare_to: int | None,
    compared: Mapping[str, Any] | None,
    facts: Sequence[tuple[str, str]],
    base: str = "",
) -> str:
    """A stored config at one version, its versions, and the diff from ``compare_to``."""
    text = _yaml(document)
    diff: list[tuple[str, str]] = []
    if compared is not None and compare_to is not None:
        lines = difflib.unified_diff(
            _yaml(compared).splitlines(), text.splitlines(),
            fromfile=f"version {compare_to}", tofile=f"version {version}", lineterm="",
        )
        diff = [(_diff_class(line), line) for line in lines]
    return render(
        "config.html", config_id=config_id, name=name, version=version,
        versions=list(versions), text=text, diff=diff, compare_to=compare_to, facts=facts,
        nav=True, base=base,
    )


def _yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True, width=100)


def _diff_class(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "added"
    if line.startswith("-"):
        return "removed"
    return "same"
