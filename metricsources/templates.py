"""Placeholder substitution for query templates, safe against values that would rewrite a query.

Templates use Kayenta's ``${name}`` placeholders: ``${scope}``, ``${location}`` and every
extended scope parameter. Kayenta expands them with FreeMarker and pastes values in verbatim
(``QueryConfigUtils.expandCustomFilter`` in spinnaker/kayenta ``kayenta-core``), so a scope
value such as ``x"} or vector(1) #`` would change what a PromQL query selects. Here the value
is escaped for the place it lands in, or refused with :class:`~judge.ports.ScopeValueError`:

PromQL (:func:`expand_promql`), by the lexical context of the placeholder:

- inside ``"..."``: ``\\`` and ``"`` are backslash-escaped and control characters written as
  ``\\uXXXX`` (PromQL strings follow Go's escape rules, see the Prometheus docs "Querying
  basics: String literals"), so the value stays one string literal;
- inside ``'...'``: the same with ``'``;
- inside a raw ```...``` string: values containing a backtick are refused (raw strings have no
  escapes);
- anywhere else (a metric name part, a range like ``[${window}]``): only ``[A-Za-z0-9_:.]``
  characters are accepted, which cannot add an operator, a selector or a comment.

Datadog (:func:`expand_datadog`): Datadog queries have no string literals; a value must be a
valid tag value (letters, digits, ``_ - : . /``), so it cannot close a ``{...}`` filter, add a
tag with ``,`` or start a function.

In a regex matcher (``=~"${scope}"``) the escaped value is still a regular expression, as the
template's author asked for: ``.`` matches any character there. Use ``=`` for exact matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from judge.errors import ScopeValueError

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""``${name}``: FreeMarker's interpolation syntax as Kayenta templates use it."""

_BARE_PROMQL = re.compile(r"[A-Za-z0-9_:.]+")
_DATADOG_TAG_VALUE = re.compile(r"[\w\-:./]+")
_DATADOG_TAG_LIST = re.compile(r"!?[\w\-:./*]+(,!?[\w\-:./*]+)*")


def unescape_kayenta(template: str) -> str:
    """Kayenta stores ``${`` as ``$\\{`` in saved configs (``QueryConfigUtils.escapeTemplates``);
    undo that so both spellings expand."""
    return template.replace("$\\{", "${")


def placeholders(template: str) -> list[str]:
    """Names of the placeholders in a template, in order of appearance."""
    return [m.group(1) for m in PLACEHOLDER.finditer(unescape_kayenta(template))]


def escape_promql_string(value: str, quote: str = '"') -> str:
    """The body of a PromQL string literal delimited by ``quote`` that reads back as ``value``.

    >>> escape_promql_string('x"} or vector(1) #')
    'x\\\\"} or vector(1) #'
    """
    if quote not in ('"', "'"):
        raise ValueError(f"quote must be '\"' or \"'\", got {quote!r}")
    out: list[str] = []
    for char in value:
        if char == "\\" or char == quote:
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def _promql_contexts(template: str) -> dict[int, str]:
    """For each placeholder start offset: the quote it sits in (``"``, ``'``, `````) or ``""``.

    A small lexer: it follows string literals (with backslash escapes in ``"`` and ``'``) and
    ``#`` comments, which is all that decides how a substituted value is read.
    """
    contexts: dict[int, str] = {}
    quote = ""
    i = 0
    while i < len(template):
        char = template[i]
        if template.startswith("${", i):
            match = PLACEHOLDER.match(template, i)
            if match:
                contexts[i] = quote
                i = match.end()
                continue
        if quote:
            if char == "\\" and quote != "`":
                i += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char == "#":
            # A comment runs to the end of the line; a placeholder in it is harmless but is
            # still checked as bare text, so nothing in a comment can end the comment early.
            end = template.find("\n", i)
            for match in PLACEHOLDER.finditer(template, i, len(template) if end < 0 else end):
                contexts[match.start()] = ""
            i = len(template) if end < 0 else end
            continue
        i += 1
    if quote:
        raise ScopeValueError(f"query template has an unterminated {quote} string: {template!r}")
    return contexts


_ANY_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def _check_names(template: str) -> None:
    """Refuse ``${...}`` that is not a plain name (FreeMarker expressions such as
    ``${app.name}`` or ``${x!"d"}``): left in place they would reach the query as text."""
    for match in _ANY_PLACEHOLDER.finditer(template):
        if not PLACEHOLDER.fullmatch(match.group(0)):
            raise ScopeValueError(
                f"placeholder {match.group(0)!r} is not a plain name; placeholders are "
                "${name} with letters, digits and '_' (extended scope parameters included)"
            )


def _lookup(name: str, bindings: Mapping[str, str], template: str) -> str:
    if name not in bindings:
        raise ScopeValueError(
            f"query template uses ${{{name}}}, but the scope has no such value "
            f"(available: {', '.join(sorted(bindings)) or 'none'}); add it to the scope's "
            "extended parameters"
        )
    return bindings[name]


def expand_promql(template: str, bindings: Mapping[str, str]) -> str:
    """Substitute ``${name}`` placeholders in a PromQL template, escaping by context.

    >>> expand_promql('up{version="${scope}"}', {"scope": 'x"} or vector(1) #'})
    'up{version="x\\\\"} or vector(1) #"}'
    """
    template = unescape_kayenta(template)
    _check_names(template)
    contexts = _promql_contexts(template)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = _lookup(name, bindings, template)
        quote = contexts.get(match.start(), "")
        if quote in ('"', "'"):
            return escape_promql_string(value, quote)
        if quote == "`":
            if "`" in value:
                raise ScopeValueError(
                    f"value of ${{{name}}} ({value!r}) contains a backtick and cannot be "
                    "placed in a raw `...` PromQL string"
                )
            return value
        if not _BARE_PROMQL.fullmatch(value):
            raise ScopeValueError(
                f"value of ${{{name}}} ({value!r}) is used outside a quoted string in the "
                "PromQL template, where only letters, digits, '_', ':' and '.' are safe; "
                f'quote the placeholder (label="${{{name}}}") to match any value'
            )
        return value

    return PLACEHOLDER.sub(substitute, template)


def _datadog_value(kind: str) -> Callable[[str, str], str]:
    pattern = _DATADOG_TAG_LIST if kind == "tags" else _DATADOG_TAG_VALUE
    allowed = (
        "comma-separated tags made of letters, digits and '_ - : . / * !'"
        if kind == "tags"
        else "letters, digits, '_', '-', ':', '.' and '/'"
    )

    def check(name: str, value: str) -> str:
        if not pattern.fullmatch(value):
            raise ScopeValueError(
                f"value of ${{{name}}} ({value!r}) is not safe in a Datadog query: "
                f"only {allowed} are allowed"
            )
        return value

    return check


def check_datadog_scope(value: str) -> str:
    """A Kayenta-style Datadog scope (``version:v2,region:eu``) placed inside ``{...}``."""
    return _datadog_value("tags")("scope", value)


def _whole_filter_item(template: str, start: int, end: int) -> bool:
    """Does the placeholder at ``start:end`` fill a whole item of a ``{...}`` tag filter
    (``{${scope}}``, ``{env:prod,${scope}}``), where a tag list only adds tags to the filter?"""
    before = template[:start].rstrip()
    after = template[end:].lstrip()
    inside = before.count("{") > before.count("}")
    return inside and before.endswith(("{", ",")) and after.startswith(("}", ","))


def expand_datadog(template: str, bindings: Mapping[str, str]) -> str:
    """Substitute placeholders in a Datadog query.

    A value must be a single tag value (``version:${scope}``), except where the placeholder
    is a whole item of a ``{...}`` filter (Kayenta's ``{${scope}}``): there a tag list such as
    ``version:v2,region:eu`` is accepted, as Kayenta's Datadog scopes are written.

    >>> expand_datadog("sum:app.errors{${scope}}", {"scope": "tag:some-tag,env:prod"})
    'sum:app.errors{tag:some-tag,env:prod}'
    """
    template = unescape_kayenta(template)
    _check_names(template)
    value, tags = _datadog_value("value"), _datadog_value("tags")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        check = tags if _whole_filter_item(template, match.start(), match.end()) else value
        return check(name, _lookup(name, bindings, template))

    return PLACEHOLDER.sub(substitute, template)
