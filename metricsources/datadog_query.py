"""Datadog query text: Kayenta's query building, the rollup that follows the step, group-bys.

Pure text, no I/O (``DatadogSource.render`` shows it without a call).

**Which text** (:func:`render_datadog_query`), in Kayenta's order
(``DatadogMetricsService.buildQuery`` and ``QueryConfigUtils.expandCustomFilter`` in
spinnaker/kayenta):

1. ``query`` (native, ours): the template, expanded;
2. ``customInlineTemplate``: the whole query, expanded;
3. ``customFilterTemplate``: the named entry of the config's ``templates``, expanded, is the
   whole query (``metricName`` is then not used, as in Kayenta);
4. otherwise ``metricName{scope}``, the scope pasted as a tag list (``version:v2,region:eu``).

Bindings, as Kayenta's: ``${scope}``, ``${location}`` (when set), then every extended scope
parameter (which wins on a name clash). Beyond Kayenta, ``${metricName}`` is bound to the
query's ``metricName`` when it has one (Kayenta's Datadog service binds only scope and location,
so such a template fails there). Values are checked, never pasted blindly
(:func:`metricsources.templates.expand_datadog`).

**The rollup** (:func:`with_rollup`): Datadog picks the bucket size itself unless the query
says otherwise (300 s over a day), so every metric term of the query gets
``.rollup(<method>, <step>)`` appended after its functions, unless it already has a
``.rollup(...)``: ``avg`` by default, ``sum`` for a term with ``.as_count()`` (a count per
bucket), and only the interval (``.rollup(60)``) for a distribution percentile (``p99:``),
which has no rollup method (Datadog docs, "Rollup", and "Rollup for distributions with
percentiles"). A query's ``rollup`` setting overrides the method, or (``none``) leaves the query
as written and the answer on Datadog's own buckets, as Kayenta does.

**v2** (:func:`v2_queries`, ``POST /api/v2/query/timeseries``): the buckets are the request's
``interval`` (the step, in milliseconds), so ``auto`` adds no rollup; a method other than
``auto`` / ``none`` is still written into each query. A single query is sent under the name
``query``; named ``queries`` go with their ``formula``. The rendered text shows the formula and
its queries: ``errors / hits with errors = sum:...; hits = sum:...``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from judge.config.queries import DatadogApi, DatadogQuery, DatadogRollup
from judge.errors import FailureKind, FatalSourceError
from judge.ports import Scope
from metricsources.templates import check_datadog_scope, expand_datadog

_GROUP_BY = re.compile(r"\bby\s*\{([^}]*)\}")
_SPACE_AGGREGATOR = re.compile(r"([A-Za-z0-9_]+)\s*:\s*[A-Za-z_][\w.]*\s*$")
_PERCENTILE = re.compile(r"p\d+(\.\d+)?")
_FUNCTION_CALL = re.compile(r"\s*\.\s*([A-Za-z_]\w*)\s*\(")
_BY = re.compile(r"\s*by\s*\{")


def query_bindings(query: DatadogQuery, scope: Scope) -> dict[str, str]:
    """The template bindings for one scope (see module doc)."""
    bound = {"scope": scope.scope}
    if scope.location:
        bound["location"] = scope.location
    if query.metric_name:
        bound["metricName"] = query.metric_name
    bound.update(scope.params)
    return bound


def render_datadog_query(query: DatadogQuery, scope: Scope, templates: Mapping[str, str]) -> str:
    """The Datadog query text for one scope, before the rollup (see module doc).

    >>> render_datadog_query(DatadogQuery(metricName="avg:requests"), Scope("version:v2"), {})
    'avg:requests{version:v2}'
    """
    bindings = query_bindings(query, scope)
    if query.query is not None:
        return expand_datadog(query.query, bindings)
    if query.custom_inline_template:
        return expand_datadog(query.custom_inline_template, bindings)
    if query.custom_filter_template:
        if query.custom_filter_template not in templates:
            raise FatalSourceError(
                f"custom filter template {query.custom_filter_template!r} was not found "
                f"(defined: {', '.join(sorted(templates)) or 'none'})",
                kind=FailureKind.CONFIG,
            )
        return expand_datadog(templates[query.custom_filter_template], bindings)
    assert query.metric_name is not None  # guaranteed by DatadogQuery's validator
    return f"{query.metric_name}{{{check_datadog_scope(scope.scope) if scope.scope else '*'}}}"


def group_by_fields(query_text: str) -> tuple[str, ...]:
    """Tag names of a ``... by {a,b}`` clause, the Datadog form of Kayenta's groupByFields."""
    fields: list[str] = []
    for match in _GROUP_BY.finditer(query_text):
        fields.extend(f.strip() for f in match.group(1).split(",") if f.strip())
    return tuple(dict.fromkeys(fields))


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    """Index just after the bracket matching the one at ``start``."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == opening:
            depth += 1
        elif text[index] == closing:
            depth -= 1
            if depth == 0:
                return index + 1
    raise FatalSourceError(f"unbalanced {opening}{closing} in Datadog query {text!r}",
                           kind=FailureKind.CONFIG)


def _term_end(text: str, after_filter: int) -> tuple[int, list[str]]:
    """Where a metric term that ends its ``{filter}`` at ``after_filter`` ends (after its
    ``by {...}`` and ``.function(...)`` chain), and the names of those functions."""
    position = after_filter
    by = _BY.match(text, position)
    if by:
        position = _closing(text, by.end() - 1, "{", "}")
    functions: list[str] = []
    while call := _FUNCTION_CALL.match(text, position):
        functions.append(call.group(1))
        position = _closing(text, call.end() - 1, "(", ")")
    return position, functions


def with_rollup(query_text: str, step_seconds: int, rollup: DatadogRollup) -> str:
    """``query_text`` with ``.rollup(method, step)`` after every metric term that has none
    (see module doc).

    >>> with_rollup("sum:errors{v:1}.as_count() / sum:hits{v:1}.as_count()", 60,
    ...             DatadogRollup.AUTO)
    'sum:errors{v:1}.as_count().rollup(sum, 60) / sum:hits{v:1}.as_count().rollup(sum, 60)'
    """
    if rollup is DatadogRollup.NONE:
        return query_text
    pieces: list[str] = []
    done = 0
    position = 0
    while (brace := query_text.find("{", position)) >= 0:
        # A filter follows a metric name; a "by {" was consumed with its term.
        after_filter = _closing(query_text, brace, "{", "}")
        end, functions = _term_end(query_text, after_filter)
        position = end
        if "rollup" in functions:
            continue
        head = query_text[:brace]
        aggregator = _SPACE_AGGREGATOR.search(head)
        space = aggregator.group(1) if aggregator else ""
        if _PERCENTILE.fullmatch(space):
            call = f".rollup({step_seconds})"
        else:
            method = rollup.value if rollup is not DatadogRollup.AUTO else (
                "sum" if "as_count" in functions else "avg")
            call = f".rollup({method}, {step_seconds})"
        pieces.append(query_text[done:end] + call)
        done = end
    pieces.append(query_text[done:])
    return "".join(pieces)


V2_SINGLE_NAME = "query"
"""The name a single v2 query is sent under."""


def v2_queries(
    query: DatadogQuery, scope: Scope, templates: Mapping[str, str], step_seconds: int
) -> list[tuple[str, str]]:
    """``(name, query text)`` for each query of a v2 request (see module doc)."""
    if query.queries:
        bindings = query_bindings(query, scope)
        texts = [(name, expand_datadog(text, bindings)) for name, text in query.queries.items()]
    else:
        texts = [(V2_SINGLE_NAME, render_datadog_query(query, scope, templates))]
    if query.rollup in (DatadogRollup.AUTO, DatadogRollup.NONE):
        return texts
    return [(name, with_rollup(text, step_seconds, query.rollup)) for name, text in texts]


def render_query_text(
    query: DatadogQuery, scope: Scope, templates: Mapping[str, str], step_seconds: int
) -> str:
    """What a Datadog query runs as, in one line (v1: the query; v2: formula and queries)."""
    if query.api is DatadogApi.V1:
        return with_rollup(render_datadog_query(query, scope, templates), step_seconds,
                           query.rollup)
    named = v2_queries(query, scope, templates, step_seconds)
    if query.formula is None:
        return named[0][1]
    return f"{query.formula} with " + "; ".join(f"{name} = {text}" for name, text in named)
