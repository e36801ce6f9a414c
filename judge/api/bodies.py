"""Request bodies as users send them: JSON under the content type ``curl -d`` gives.

``curl -d '{...}'`` (as Flagger's and this project's docs show, and as people type) sends
``Content-Type: application/x-www-form-urlencoded``; FastAPI parses a body as JSON only under a
JSON content type (or none), so such a request was refused with a 422 that did not say why.
No route of this service takes a form, so :class:`FormAsJson` relabels that content type as
JSON before routing: a JSON body is read as JSON, anything else fails as JSON does (a 422
naming the decoding error).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FORM_CONTENT_TYPE = b"application/x-www-form-urlencoded"


class FormAsJson:
    """ASGI middleware: ``application/x-www-form-urlencoded`` requests become
    ``application/json`` ones (see the module doc). Other content types pass unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            if any(name == b"content-type" and value.split(b";")[0].strip().lower()
                   == FORM_CONTENT_TYPE for name, value in headers):
                scope = dict(scope)
                scope["headers"] = [
                    (name, b"application/json" if name == b"content-type" else value)
                    for name, value in headers
                ]
        await self.app(scope, receive, send)
