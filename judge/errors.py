"""The one exception tree of canary-judge. Every error the library, a source adapter or the
service raises on purpose is a :class:`JudgeError`; each door (HTTP routers, the CLI) maps this
tree to its own answers in one place, by class::

    JudgeError                        anything canary-judge reports on purpose
    ├── ConfigError                   a config or request that cannot be used (names the field)
    ├── DataError                     not a series of numbers, or a state that does not fit
    ├── NotFoundError                 no config, analysis or run with that id
    ├── ConflictError                 changed since it was read (another writer saved first)
    └── SourceError                   anything a metric source reports (see judge.ports)
        ├── RetryableSourceError      worth another attempt: 5xx, 408, 429
        │   ├── SourceUnavailableError    cannot connect, or the source answered 5xx
        │   └── SourceTimeoutError        the source did not answer in time
        └── FatalSourceError          retrying cannot help
            ├── SourceAuthError           401 / 403: missing or wrong credentials
            ├── QueryError                the source rejected the query (bad PromQL, 400, 422)
            ├── ScopeValueError           a scope value cannot be substituted safely
            ├── MalformedResponseError    the answer is not in the documented format
            └── UnsupportedSourceError    no source serves this kind of query

A metric whose data breaks (a :class:`DataError`, a :class:`SourceError` while fetching it) is
classified ``error`` with the reason and never aborts the other metrics; these exceptions reach
a caller only for what concerns the whole request. pydantic's ``ValidationError`` (a config's
fields) is not wrapped: it already names every offending field, and doors map it with
:class:`ConfigError`.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConflictError",
    "DataError",
    "FatalSourceError",
    "JudgeError",
    "MalformedResponseError",
    "NotFoundError",
    "QueryError",
    "RetryableSourceError",
    "ScopeValueError",
    "SourceAuthError",
    "SourceError",
    "SourceTimeoutError",
    "SourceUnavailableError",
    "UnsupportedSourceError",
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


class ConflictError(JudgeError):
    """Changed since it was read: another writer (a concurrent poll, a config update) saved
    first."""


class SourceError(JudgeError):
    """Anything a metric source reports."""


class RetryableSourceError(SourceError):
    """A failure another attempt may fix (HTTP 5xx, 408, 429, connection refused, timeouts).

    ``retry_after`` is the delay the source asked for (HTTP ``Retry-After``), in seconds.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceUnavailableError(RetryableSourceError):
    """The source could not be reached, or answered with a server error."""


class SourceTimeoutError(RetryableSourceError):
    """The source did not answer within its timeout."""


class FatalSourceError(SourceError):
    """A failure retrying cannot fix."""


class SourceAuthError(FatalSourceError):
    """The source refused the credentials (HTTP 401 or 403)."""


class QueryError(FatalSourceError):
    """The source rejected the query itself (bad syntax, unknown function, HTTP 400/422)."""


class ScopeValueError(FatalSourceError):
    """A scope value (or extended scope parameter) cannot be placed in the query safely."""


class MalformedResponseError(FatalSourceError):
    """The source answered, but not in its documented format."""


class UnsupportedSourceError(FatalSourceError):
    """The metric's query is for a kind of source nothing here serves."""
