"""The one exception tree of canary-judge. Every error the library, a source adapter or the
service raises on purpose is a :class:`JudgeError`; each door (HTTP routers, the CLI) maps this
tree to its own answers in one place, by class::

    JudgeError                        anything canary-judge reports on purpose
    ├── ConfigError                   a config or request that cannot be used (names the field)
    ├── DataError                     not a series of numbers, or a state that does not fit
    ├── NotFoundError                 no config, analysis or run with that id
    ├── ConflictError                 changed since it was read (another writer saved first)
    ├── StoreUnavailableError         the service's database did not answer (locked, unreachable)
    └── SourceError                   anything a metric source reports (its kind: FailureKind)
        ├── RetryableSourceError      worth another attempt: 5xx, 408, 429, refused, timed out
        │   ├── SourceConnectionError     no connection, or it broke (refused, reset, DNS)
        │   ├── SourceTimeoutError        the source did not answer in time
        │   └── RateLimitError            429, or a rate limit known to be used up: wait
        └── FatalSourceError          retrying cannot help
            ├── SourceAuthError           401 / 403: missing or wrong credentials
            ├── QueryError                the source rejected the query (bad PromQL, 400, 422)
            ├── ScopeValueError           a scope value cannot be substituted safely
            ├── MalformedResponseError    the answer is not in the documented format
            │   └── BadDataError          the answer holds values that cannot be judged
            └── UnsupportedSourceError    no source serves this kind of query

A metric whose data breaks (a :class:`DataError`, a :class:`SourceError` while fetching it) is
classified ``error`` with the reason and never aborts the other metrics; these exceptions reach
a caller only for what concerns the whole request. pydantic's ``ValidationError`` (a config's
fields) is not wrapped: it already names every offending field, and doors map it with
:class:`ConfigError`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

__all__ = [
    "OUTAGE_KINDS",
    "BadDataError",
    "ConfigError",
    "ConflictError",
    "DataError",
    "FailureKind",
    "FatalSourceError",
    "JudgeError",
    "MalformedResponseError",
    "NotFoundError",
    "QueryError",
    "RateLimitError",
    "RetryableSourceError",
    "ScopeValueError",
    "SourceAuthError",
    "SourceConnectionError",
    "SourceError",
    "SourceTimeoutError",
    "StoreUnavailableError",
    "UnknownMetricError",
    "UnsupportedSourceError",
    "failure_kind",
]


class JudgeError(Exception):
    """Anything canary-judge reports on purpose. Messages never contain credentials."""


class ConfigError(JudgeError, ValueError):
    """A config or request that cannot be used as given; ``field`` names the part that is
    wrong (a dotted path such as ``metadata.step``), when one part is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DataError(JudgeError, ValueError):
    """Input that is not a series of numbers, or a stored state that does not fit the call."""


class NotFoundError(JudgeError, LookupError):
    """No config, analysis or run with that id."""


class UnknownMetricError(JudgeError, KeyError):
    """A metric name that a report or config does not have; the message lists the names there
    are (a ``KeyError``, so ``except KeyError`` still catches it, but readable: a bare
    ``KeyError('tmp')`` says nothing about what would have worked)."""

    def __init__(self, name: str, known: list[str], where: str) -> None:
        super().__init__(name)
        self.name = name
        self.known = known
        self.where = where

    def __str__(self) -> str:
        return f"no metric {self.name!r} in {self.where}; its metrics are {self.known}"


class ConflictError(JudgeError):
    """Changed since it was read: another writer (a concurrent poll, a config update) saved
    first."""


class StoreUnavailableError(JudgeError):
    """The service's own database did not answer: locked by another process past the busy
    timeout, unreachable, or refusing the connection. The message names the database (never its
    password) and the cause."""


# -- metric sources ------------------------------------------------------------------------------
class FailureKind(StrEnum):
    """Why a metric's data could not be had, in a word (reasons and doors use these)."""

    CONNECT = "connect"
    """No connection to the source, or it broke (refused, reset, DNS, TLS)."""
    TIMEOUT = "timeout"
    """The source did not answer in time (its own timeout, or the analysis' deadline)."""
    HTTP = "http"
    """The source answered an HTTP error status (5xx, 429, 404 ...), with its message."""
    REJECTED = "rejected"
    """The source refused the query (bad PromQL, HTTP 400/422, a column a file lacks)."""
    AUTH = "auth"
    """The source refused the credentials (HTTP 401/403, keys missing)."""
    MALFORMED = "malformed"
    """The source answered, but not in its documented format."""
    NO_SERIES = "no_series"
    """The source returned no series at all for a scope (see ``judge.analysis``)."""
    SOURCE = "source"
    """Anything else the source (or a bug in its adapter) raised."""
    CONFIG = "config"
    """The query could not be built or routed (no I/O happened): a config or request problem."""
    BAD_DATA = "bad_data"
    """Data arrived but cannot be judged (values that are not numbers)."""


OUTAGE_KINDS: frozenset[str] = frozenset({
    FailureKind.CONNECT, FailureKind.TIMEOUT, FailureKind.HTTP, FailureKind.REJECTED,
    FailureKind.AUTH, FailureKind.MALFORMED, FailureKind.NO_SERIES, FailureKind.SOURCE,
})
"""Failures of the source itself: a scored metric that failed this way makes the report an
error outcome (no verdict). ``config`` and ``bad_data`` are not among them: the metric is
``error`` and scored as a failure, as before (a broken config never promotes a canary)."""


class SourceError(JudgeError):
    """Anything a metric source reports. Messages never contain credentials.

    ``status``: the HTTP status the source answered, if any. ``kind``: a :class:`FailureKind`
    (the class's own unless given; an error with a ``status`` is ``http`` unless its class
    says more, e.g. ``auth`` or ``rejected``).
    """

    default_kind: ClassVar[FailureKind] = FailureKind.SOURCE

    def __init__(
        self, message: str, *, status: int | None = None, kind: FailureKind | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self._kind = kind

    @property
    def kind(self) -> FailureKind:
        if self._kind is not None:
            return self._kind
        if self.status is not None and self.default_kind in (
            FailureKind.SOURCE, FailureKind.CONNECT
        ):
            return FailureKind.HTTP
        return self.default_kind


class RetryableSourceError(SourceError):
    """A failure another attempt may fix (HTTP 5xx, 408, 429, connection refused, timeouts).

    ``retry_after`` is the delay the source asked for (HTTP ``Retry-After``), in seconds.
    """

    default_kind = FailureKind.CONNECT

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        kind: FailureKind | None = None,
    ) -> None:
        super().__init__(message, status=status, kind=kind)
        self.retry_after = retry_after


class SourceConnectionError(RetryableSourceError):
    """No connection to the source, or the connection broke before an answer."""

    default_kind = FailureKind.CONNECT


class SourceTimeoutError(RetryableSourceError):
    """The source did not answer within its timeout."""

    default_kind = FailureKind.TIMEOUT


class RateLimitError(RetryableSourceError):
    """The source's rate limit is used up (HTTP 429, or its announced budget): ``retry_after``
    is when it comes back (Datadog's ``X-RateLimit-Reset``)."""

    default_kind = FailureKind.HTTP


class FatalSourceError(SourceError):
    """A failure retrying cannot fix."""


class SourceAuthError(FatalSourceError):
    """The source refused the credentials (HTTP 401 or 403)."""

    default_kind = FailureKind.AUTH


class QueryError(FatalSourceError):
    """The source rejected the query itself (bad syntax, unknown function, HTTP 400/422)."""

    default_kind = FailureKind.REJECTED


class ScopeValueError(FatalSourceError):
    """A scope value (or extended scope parameter) cannot be placed in the query safely."""

    default_kind = FailureKind.CONFIG


class MalformedResponseError(FatalSourceError):
    """The source answered, but not in its documented format."""

    default_kind = FailureKind.MALFORMED


class BadDataError(MalformedResponseError):
    """The source answered with values that cannot be judged (e.g. text in a number column):
    the data is bad, the source did not fail."""

    default_kind = FailureKind.BAD_DATA


class UnsupportedSourceError(FatalSourceError):
    """The metric's query is for a kind of source nothing here serves."""

    default_kind = FailureKind.CONFIG


def failure_kind(exc: BaseException) -> FailureKind:
    """The :class:`FailureKind` of anything a fetch raised (a timeout of the analysis' own
    ``asyncio`` clock is ``timeout``; an exception that is no :class:`SourceError` is a bug in
    an adapter: ``source``)."""
    if isinstance(exc, SourceError):
        return exc.kind
    if isinstance(exc, TimeoutError):
        return FailureKind.TIMEOUT
    return FailureKind.SOURCE
