"""HTTP details the sources share: ``Retry-After``, and short reasons for transport failures.

Reasons never carry credentials: they name an errno ("connection refused") or an exception
type, never a URL with its user info or a header.
"""

from __future__ import annotations

import errno
import socket
import time


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from an HTTP ``Retry-After`` header: delta-seconds or an HTTP date
    (RFC 9110, section 10.2.3); ``None`` when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EPIPE: "broken pipe",
}


def transport_reason(exc: BaseException) -> str:
    """A short, credential-free reason for a transport failure ("connection refused",
    "name not resolved", or the innermost exception's type), found by walking the causes."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    innermost = type(exc).__name__
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[current.errno]
        name = type(current).__name__
        if "NameResolution" in name or isinstance(current, socket.gaierror):
            return "name not resolved"
        if "RemoteDisconnected" in name or "ProtocolError" in name:
            innermost = "connection closed without an answer"
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException):
                stack.append(arg)
        for linked in (current.__cause__, current.__context__,
                       getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                stack.append(linked)
    return innermost


def is_read_timeout(exc: BaseException) -> bool:
    """``requests`` reports a read timeout while reading the body as a ``ConnectionError``
    wrapping urllib3's ``ReadTimeoutError``: it is a timeout, not a failed connection."""
    from urllib3.exceptions import ReadTimeoutError

    stack: list[BaseException] = [exc]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ReadTimeoutError | TimeoutError):
            return True
        stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        stack.extend(x for x in (current.__cause__, current.__context__)
                     if isinstance(x, BaseException))
    return False
