"""Secrets never leave: one helper that hides them in text, JSON-like values and log records.

Two kinds of secret are hidden:

- **known values**: whatever the service was configured with (API tokens, Datadog keys,
  bearer tokens, passwords in source and database URLs), given to :class:`Redactor`; also in
  their percent-encoded and JSON-escaped spellings;
- **shapes** that carry a secret wherever they come from: the user info of a URL
  (``https://user:password@host`` becomes ``https://***@host``) and an ``Authorization``
  credential (``Bearer abc...`` becomes ``Bearer ***``).

The service applies one :class:`Redactor` at its edges (``judge.api.app``): every log record
(:class:`RedactingFilter`), every response body (:class:`RedactResponses`) and every value
written to the database (``Store.add_write_filter``). The sources also keep credentials out
of the URLs they show (:func:`split_userinfo`), so their error messages are clean to begin with;
the edges are the guarantee.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"

MIN_SECRET_LENGTH = 6
"""Known values shorter than this are not searched for (they would mask ordinary words); the
shapes above still hide them where they appear as URL user info or a credential."""

# Patterns that start with a literal ("://") let the regex engine skip ahead fast; the
# credential pattern runs only when a cheap substring test finds its keyword.
_USERINFO = re.compile(r"://[^/?#@\s\"'<>\\]+@")
_USERINFO_BYTES = re.compile(rb"://[^/?#@\s\"'<>\\]+@")
# "Bearer"/"Basic" and a credential: 8+ token characters with an upper-case letter, a digit
# or a symbol after the first (so "basic statistics" or "Basic Usage" stay as they are).
_CREDENTIAL = re.compile(
    r"\b(?P<kind>[Bb]earer|BEARER|[Bb]asic|BASIC)(?P<gap>\s+)"
    r"[A-Za-z0-9._~+/=-](?=[A-Za-z0-9._~+/=-]*[A-Z0-9._~+/=-])[A-Za-z0-9._~+/=-]{7,}"
)
_CREDENTIAL_HINTS = ("earer", "EARER", "asic", "ASIC")
_CREDENTIAL_HINTS_BYTES = tuple(hint.encode() for hint in _CREDENTIAL_HINTS)


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its user info, and the ``(user, password)`` it carried (decoded).

    ``http://user:pa%40ss@host:9090/x`` gives ``("http://host:9090/x", ("user", "pa@ss"))``;
    a URL without user info comes back unchanged with ``None``.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, (unquote(user), unquote(password))


def redact_url(url: str) -> str:
    """``url`` with any user info replaced by ``***`` (for showing a URL)."""
    clean, credentials = split_userinfo(url)
    if credentials is None:
        return url
    parts = urlsplit(clean)
    return urlunsplit((parts.scheme, f"{MASK}@{parts.netloc}", parts.path, parts.query,
                       parts.fragment))


def url_secrets(url: str | None) -> list[str]:
    """The password in a URL's user info (a user name alone is not searched for as a value:
    it may be an ordinary word; the URL shape still hides it wherever the URL appears)."""
    if not url:
        return []
    _clean, credentials = split_userinfo(url)
    return [credentials[1]] if credentials and credentials[1] else []


class Redactor:
    """Hides known secret values and secret-carrying shapes (see the module doc)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        spellings: set[str] = set()
        for secret in secrets:
            if not secret or len(secret) < MIN_SECRET_LENGTH:
                continue
            spellings.update({secret, quote(secret, safe=""), json.dumps(secret)[1:-1]})
        # Longest first, so a secret containing another is hidden whole.
        ordered = sorted(spellings, key=len, reverse=True)
        self._spellings = tuple(ordered)
        self._spellings_bytes = tuple(s.encode() for s in ordered)
        self._known = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._known_bytes = (
            re.compile(b"|".join(re.escape(s.encode()) for s in ordered)) if ordered else None
        )

    def text(self, text: str) -> str:
        """``text`` with every secret hidden."""
        # Substring tests first (fast); the regular expressions only where something is there.
        if self._known is not None and any(s in text for s in self._spellings):
            text = self._known.sub(MASK, text)
        if "://" in text:
            text = _USERINFO.sub(f"://{MASK}@", text)
        if any(hint in text for hint in _CREDENTIAL_HINTS):
            text = _CREDENTIAL.sub(lambda m: f"{m['kind']}{m['gap']}{MASK}", text)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-like value (dicts, lists, strings, numbers) with every string redacted.
        Returns the same object when there was nothing to hide."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            cleaned = {self.value(k): self.value(v) for k, v in value.items()}
            same = all(
                a is b or a == b for a, b in zip(cleaned.items(), value.items(), strict=True)
            )
            return value if same else cleaned
        if isinstance(value, list | tuple):
            items = [self.value(v) for v in value]
            if all(a is b or a == b for a, b in zip(items, value, strict=True)):
                return value
            return type(value)(items)
        return value

    def data(self, data: bytes) -> bytes:
        """A response body (UTF-8 text or JSON) with every secret hidden."""
        if self._known_bytes is not None and any(s in data for s in self._spellings_bytes):
            data = self._known_bytes.sub(MASK.encode(), data)
        if b"://" in data:
            data = _USERINFO_BYTES.sub(b"://" + MASK.encode() + b"@", data)
        if any(hint in data for hint in _CREDENTIAL_HINTS_BYTES):
            text = data.decode("utf-8", errors="surrogateescape")
            data = _CREDENTIAL.sub(lambda m: f"{m['kind']}{m['gap']}{MASK}", text).encode(
                "utf-8", errors="surrogateescape"
            )
        return data


class RedactingFilter(logging.Filter):
    """Rewrites each log record with its secrets hidden: message, arguments, extras and the
    exception text. Attach it to a handler (every record it writes) or a logger."""

    _STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        clean = self.redactor
        # Arguments stay arguments (uvicorn's access formatter unpacks them), each redacted.
        if isinstance(record.msg, str):
            record.msg = clean.text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted_arg(clean, arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redacted_arg(clean, v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = clean.text(record.exc_text)
        if record.stack_info:
            record.stack_info = clean.text(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in self._STANDARD and not key.startswith("_"):
                setattr(record, key, clean.value(value if _jsonish(value) else str(value)))
        return True


def _redacted_arg(clean: Redactor, arg: Any) -> Any:
    if arg is None or isinstance(arg, bool | int | float):
        return arg
    return clean.text(arg if isinstance(arg, str) else str(arg))


def _jsonish(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | dict | list | tuple)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RedactResponses:
    """ASGI middleware: every HTTP response body leaves with its secrets hidden.

    Holds the response start until the body is complete (the service sends whole JSON
    bodies), then corrects ``content-length`` if redaction changed the body's size.
    """

    def __init__(self, app: ASGIApp, redactor: Redactor) -> None:
        self.app = app
        self.redactor = redactor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def redacting_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = self.redactor.data(b"".join(chunks))
            headers = [
                (name, str(len(body)).encode() if name.lower() == b"content-length" else value)
                for name, value in start.get("headers", [])
            ]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, redacting_send)
