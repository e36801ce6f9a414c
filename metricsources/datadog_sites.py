"""Datadog sites: the names Datadog documents, and the API base URL of each.

Datadog runs separate sites (regions); an organisation lives on one and its keys work only
there. The official API clients take the site's name (``DD_SITE``, default ``datadoghq.com``)
and call ``https://api.<site>`` (datadog-api-client-python ``Configuration``: server
``https://{subdomain}.{site}``, ``subdomain`` ``api``, the names below as its ``site`` enum,
``DD_SITE`` / ``DD_API_KEY`` / ``DD_APP_KEY`` read from the environment).

:func:`datadog_base_url` accepts, and refuses anything else with one line naming them:

- a site name (``datadoghq.eu``, ``us5.datadoghq.com``, ``ddog-gov.com`` ...);
- the web address of a site as the docs' tables write it (``app.datadoghq.eu``), or its API
  host (``api.us3.datadoghq.com``);
- a URL with a scheme (``https://api.datadoghq.eu``, a proxy such as
  ``https://dd-proxy.internal:8443``, a local stand-in ``http://127.0.0.1:PORT``).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from judge.errors import ConfigError
from judge.redaction import redact_url

DATADOG_SITES: tuple[str, ...] = (
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "datadoghq.eu",
    "ddog-gov.com",
    "us2.ddog-gov.com",
)
"""The site names of Datadog's official clients (datadog-api-client-python, 2026)."""

DEFAULT_SITE = "datadoghq.com"
SITE_ENV = "DD_SITE"


def datadog_base_url(site: str) -> str:
    """The API base URL for a site name, a site's host, or a URL (see module doc).

    >>> datadog_base_url("datadoghq.eu")
    'https://api.datadoghq.eu'
    >>> datadog_base_url("app.us5.datadoghq.com")
    'https://api.us5.datadoghq.com'
    """
    text = site.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"Datadog site {redact_url(text)!r} is not an http(s) URL with a host", field="site"
            )
        return text.rstrip("/")
    name = text.lower().rstrip("/")
    for prefix in ("app.", "api."):
        if name.startswith(prefix) and name[len(prefix):] in DATADOG_SITES:
            name = name[len(prefix):]
    if name not in DATADOG_SITES:
        raise ConfigError(
            f"unknown Datadog site {text!r}: use one of {', '.join(DATADOG_SITES)} "
            "(DD_SITE takes the same names), or a URL such as https://dd-proxy:8443",
            field="site",
        )
    return f"https://api.{name}"


def site_from_environment(environ: Mapping[str, str]) -> str:
    """``DD_SITE`` as the official clients read it, ``datadoghq.com`` when unset or empty."""
    return environ.get(SITE_ENV) or DEFAULT_SITE

