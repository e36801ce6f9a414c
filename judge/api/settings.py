"""Service settings: environment variables prefixed ``CANARY_JUDGE_`` and an optional file.

Precedence, highest first: values passed to ``Settings(...)``, environment variables, the
settings file named by ``CANARY_JUDGE_SETTINGS_FILE`` (YAML or JSON, same field names without
the prefix), then the defaults below. With nothing configured the service runs on an embedded
default: a SQLite file ``./canary-judge.db`` and the synthetic demo metric source.

Every field is documented in ``docs/service.md``; ``Settings.model_fields`` is the source of
truth and a unit test checks that the document names each of them.
"""

from __future__ import annotations

import difflib
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "CANARY_JUDGE_"
SETTINGS_FILE_ENV = "CANARY_JUDGE_SETTINGS_FILE"
OTHER_VARIABLES = frozenset(
    (SETTINGS_FILE_ENV, "CANARY_JUDGE_REAL_SERIES", "CANARY_JUDGE_SAMPLE_EVERY", "CANARY_JUDGE_OUT")
)
"""Variables with the prefix that are not settings: the settings file, and the lab's (the
real-noise benchmark's data folder, the tuning notebook's sampling and output folder)."""
DATADOG_KEY_ENV = ("DD_API_KEY", "DD_APP_KEY", "DD_APPLICATION_KEY")
DEMO_SOURCE_NAME = "demo"


class SourceSettings(BaseModel):
    """One named metric source (Kayenta calls these *metrics accounts*)."""

    # Errors never echo the input: it may hold a key or a URL with a password.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    type: Literal["prometheus", "datadog", "demo", "files"]
    url: str | None = None
    """Base URL (Prometheus: ``http://prometheus:9090``). Datadog: a site name as Datadog
    writes it (``datadoghq.eu``, ``us5.datadoghq.com`` ...) or a URL (a proxy); unset, the
    ``DD_SITE`` environment variable, else ``datadoghq.com``."""
    api_key: SecretStr | None = None
    """Datadog ``DD-API-KEY``."""
    app_key: SecretStr | None = None
    """Datadog ``DD-APPLICATION-KEY``."""
    bearer_token: SecretStr | None = None
    """Sent as ``Authorization: Bearer`` to Prometheus (e.g. behind an auth proxy)."""
    timeout_seconds: float = Field(default=10.0, gt=0)
    """Per-query HTTP timeout."""
    scope_label: str = "instance"
    """Prometheus: the label a Kayenta-style query (``metricName``) selects the scope with."""
    path: str | None = None
    """``files`` sources: a CSV / Parquet / JSON file with a ``side`` column."""
    delay_seconds: float = Field(default=0.0, ge=0)
    """Demo source only: wait this long per query (to see progress and test restarts)."""
    max_concurrency: int = Field(default=8, gt=0)
    """Datadog: requests in flight at most, over every analysis of the process."""

    @model_validator(mode="after")
    def _needs_url(self) -> SourceSettings:
        if self.type == "prometheus" and not self.url:
            raise ValueError(f"a {self.type} source needs 'url'")
        if self.type == "datadog":
            # A bad site is refused here, at start, rather than retried as a connection error.
            from judge.redaction import split_userinfo
            from metricsources.datadog_sites import datadog_base_url, site_from_environment

            datadog_base_url(split_userinfo(self.url or site_from_environment(os.environ))[0])
        if self.type == "files" and not self.path:
            raise ValueError("a files source needs 'path'")
        return self


class _SettingsFileSource(PydanticBaseSettingsSource):
    """Reads the YAML/JSON file named by ``CANARY_JUDGE_SETTINGS_FILE`` (if set)."""

    def __init__(self, settings_cls: type[BaseSettings], path: str | None) -> None:
        super().__init__(settings_cls)
        self._values: dict[str, Any] = {}
        if path:
            try:
                raw = yaml.safe_load(Path(path).read_text()) or {}
            except OSError as exc:
                raise ValueError(f"settings file {path}: {exc.strerror or exc}") from exc
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
                raise ValueError(f"settings file {path} is not valid YAML or JSON{where}") from exc
            if not isinstance(raw, dict):
                raise ValueError(f"settings file {path} must hold a mapping at its top level")
            self._values = raw

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


class _UnknownVariables(PydanticBaseSettingsSource):
    """Every ``CANARY_JUDGE_*`` environment variable that names no setting, under its own
    (upper-case) name: :meth:`Settings._known_names` refuses it, naming it. pydantic-settings
    would ignore it, and a typo (``CANARY_JUDGE_PROMETEUS_URL``) would silently judge the
    demo source's numbers."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        known = {ENV_PREFIX + name.upper() for name in self.settings_cls.model_fields}
        known |= OTHER_VARIABLES
        return {
            name.upper(): None
            for name in os.environ
            if name.upper().startswith(ENV_PREFIX) and name.upper() not in known
        }


def _unknown_setting(name: str, fields: list[str]) -> str:
    """A sentence naming an unknown setting and the nearest known one."""
    if name.startswith(ENV_PREFIX):
        # Compared without the prefix, which every candidate shares.
        close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX).lower(), fields, n=1)
        hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""
        return f"environment variable {name} is not a setting{hint}"
    close = difflib.get_close_matches(name, fields, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{name!r} is not a setting{hint}"


class Settings(BaseSettings):
    """Everything the service can be told. Field ``x`` is env var ``CANARY_JUDGE_X``."""

    model_config = SettingsConfigDict(
        env_prefix="CANARY_JUDGE_", extra="forbid", frozen=True, hide_input_in_errors=True
    )

    # -- storage ---------------------------------------------------------------------------
    database_url: str = "sqlite:///./canary-judge.db"
    """Any SQLAlchemy URL. SQLite by default; PostgreSQL etc. for a shared store."""
    database_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long the database may keep the service waiting: SQLite's busy timeout (a write lock
    another process holds), a database server's connect timeout. A database still locked or
    unreachable after it fails startup with one log line (and a request with 503)."""
    database_pool_size: int = Field(default=5, ge=1)
    """Database servers: connections each process keeps open. Several replicas share the
    server's ``max_connections``: replicas x (pool size + overflow) must stay under it."""
    database_max_overflow: int = Field(default=10, ge=0)
    """Database servers: connections opened beyond the pool under load, closed after."""
    seed_demo_configs: bool = True
    """Store the demo configs (``demo``, ``demo-kayenta``) at startup when they are missing."""

    # -- metric sources --------------------------------------------------------------------
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    """Named metric sources (JSON in the environment, a mapping in the settings file)."""
    prometheus_url: str | None = None
    """Shortcut: adds a Prometheus source named ``prometheus``."""
    datadog_url: str | None = None
    """Shortcut: adds a Datadog source named ``datadog`` (with the two keys below)."""
    datadog_api_key: SecretStr | None = None
    datadog_app_key: SecretStr | None = None
    default_source: str | None = None
    """Source used when a request names none. Unset: the only configured source, else demo."""
    demo_source: bool = True
    """Offer the synthetic demo source under the name ``demo``."""
    demo_delay_seconds: float = Field(default=0.0, ge=0)
    """Delay per demo query (slow analyses for demos and restart tests)."""

    # -- analysis --------------------------------------------------------------------------
    default_step_seconds: int = Field(default=60, gt=0)
    """Resolution of fetched series when a request gives no step."""
    default_lookback: str = "1h"
    """Window judged by the Argo web and Flagger endpoints when the request gives none. An hour
    at the default step is 61 points a side: per-minute metrics are autocorrelated, and the
    default judge counts them as the fewer independent points they are worth."""
    pinned_now: AwareDatetime | None = None
    """Lookback windows end at this moment (ISO 8601 with a zone, e.g.
    ``2026-01-05T12:00:00Z``) instead of the wall clock's now: to replay an incident's window,
    and for reproducible tests. Unset: the wall clock."""
    max_points_per_series: int = Field(default=11_000, gt=0)
    """Reject windows that would fetch more points than this per side (Prometheus' limit)."""
    judge_workers: int | None = Field(default=None, ge=0)
    """Processes that judge ``POST /v1/judge`` requests off the event loop
    (:mod:`judge.api.workers`). Unset: one per core this process may use; 0: judge in the
    service's own process (one core)."""
    max_concurrent_analyses: int = Field(default=4, gt=0)
    """Background analyses running at once; more wait queued."""
    analysis_timeout_seconds: float = Field(default=600.0, gt=0)
    """A background analysis still running after this long is marked failed."""
    sync_timeout_seconds: float = Field(default=8.0, gt=0)
    """Budget of synchronous analyses (Argo web, Flagger): under the callers' 10 s timeouts."""
    source_check_interval_seconds: float = Field(default=30.0, ge=0)
    """Seconds between health checks of each metric source (shown by ``/readyz`` and in
    ``/metrics``; an outage never takes the pod out of service). 0: no periodic checks (fetches
    still update the health)."""
    resume_interrupted: bool = True
    """At startup, re-run analyses a stopped process left queued/running (else mark failed)."""
    max_resume_attempts: int = Field(default=3, ge=1)
    """An analysis interrupted this many times is marked failed instead of re-run."""
    replica_id: str | None = Field(default=None, min_length=1, max_length=200)
    """This process' name in the leases it holds on shared work (each replica's must differ).
    Unset: the host name and process id (``replica_name()``)."""
    lease_seconds: float = Field(default=30.0, ge=1)
    """How long a replica's claim on an analysis (or a sequential run's poll) holds without
    renewal. A running replica renews its leases every third of it; a replica that died loses
    them after at most this long, and another replica resumes the work."""

    # -- HTTP ------------------------------------------------------------------------------
    api_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    """API tokens (comma-separated), each ``judge:TOKEN``, ``admin:TOKEN`` or a bare ``TOKEN``
    (= admin); see :mod:`judge.api.auth`. Empty: no authentication."""
    open_kayenta_paths: bool = False
    """Let callers without a token read and judge on Kayenta's paths (never change configs).
    Off: Argo's kayenta provider puts the token in its address (``/t/TOKEN``)."""
    open_flagger_paths: bool = False
    """Let callers without a token use ``/flagger/v1/check``. Off: Flagger sends the token in
    the webhook's ``metadata.token`` or its URL (``/t/TOKEN``)."""
    open_argo_paths: bool = False
    """Let callers without a token use ``/argo/v1/judge`` (the web provider sends headers)."""
    external_url: str | None = Field(default=None, pattern=r"^https?://[^\s?#]+$")
    """The service's address as people's browsers reach it (``https://canary-judge.example``,
    a path prefix allowed): every answer's ``report_url`` starts with it. Unset: the address
    each request was sent to."""
    max_request_bytes: int = Field(default=5_000_000, gt=0)
    """Larger request bodies are refused with 413."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    """One JSON object per log line (carrying the analysis id); false: plain text."""

    @model_validator(mode="before")
    @classmethod
    def _known_names(cls, values: Any) -> Any:
        """Unknown names (a settings file's keys, ``CANARY_JUDGE_*`` variables) are errors
        naming each, with the nearest setting: a typo must not leave a default in place."""
        if not isinstance(values, dict):
            return values
        fields = list(cls.model_fields)
        unknown = [str(name) for name in values if name not in cls.model_fields]
        if unknown:
            detail = "; ".join(_unknown_setting(name, fields) for name in sorted(unknown))
            raise PydanticCustomError(
                "unknown_setting", "{detail} (every setting: docs/service.md)", {"detail": detail}
            )
        return values

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(token.strip() for token in value.split(",") if token.strip())
        return value

    @field_validator("api_tokens", mode="after")
    @classmethod
    def _known_scopes(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        from judge.api.auth import parse_tokens

        parse_tokens(token.get_secret_value() for token in value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_source_exists(self) -> Settings:
        try:
            # The URL shortcuts become sources here: check them now (a bad Datadog site).
            self.source_settings()
        except ValidationError as exc:
            raise ValueError("; ".join(
                str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()
            )) from None
        if self.default_source is not None and self.default_source not in self.source_settings():
            raise ValueError(
                f"default_source {self.default_source!r} is not a configured source "
                f"({sorted(self.source_settings())})"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_source = _SettingsFileSource(settings_cls, os.environ.get(SETTINGS_FILE_ENV))
        return (init_settings, env_settings, file_source, _UnknownVariables(settings_cls))

    def secret_values(self) -> list[str]:
        """Every secret value these settings hold, for :class:`judge.redaction.Redactor`: the
        API tokens, source keys and bearer tokens, and the user info of every URL."""
        from judge.api.auth import SCOPES
        from judge.redaction import url_secrets

        values: list[str] = []
        for entry in self.api_tokens:
            raw = entry.get_secret_value()
            scope, colon, token = raw.partition(":")
            values.append(token if colon and scope in SCOPES else raw)
        for source in self.source_settings().values():
            for secret in (source.api_key, source.app_key, source.bearer_token):
                if secret is not None:
                    values.append(secret.get_secret_value())
            values.extend(url_secrets(source.url))
            if source.type == "datadog":
                # Keys not configured here come from the environment, as Datadog's clients
                # read them: they are secrets all the same.
                values.extend(os.environ.get(name, "") for name in DATADOG_KEY_ENV)
        for key in (self.datadog_api_key, self.datadog_app_key):
            if key is not None:
                values.append(key.get_secret_value())
        for url in (self.prometheus_url, self.datadog_url, self.database_url):
            values.extend(url_secrets(url))
        return [value for value in values if value]

    def replica_name(self) -> str:
        """``replica_id``, else ``<host name>-<process id>`` (a pod's name is its host name)."""
        if self.replica_id:
            return self.replica_id
        import socket

        return f"{socket.gethostname()}-{os.getpid()}"

    def source_settings(self) -> dict[str, SourceSettings]:
        """Every named source: explicit ``sources``, the URL shortcuts, and demo."""
        named = dict(self.sources)
        if self.prometheus_url and "prometheus" not in named:
            named["prometheus"] = SourceSettings(type="prometheus", url=self.prometheus_url)
        if self.datadog_url and "datadog" not in named:
            named["datadog"] = SourceSettings(
                type="datadog",
                url=self.datadog_url,
                api_key=self.datadog_api_key,
                app_key=self.datadog_app_key,
            )
        if self.demo_source and DEMO_SOURCE_NAME not in named:
            named[DEMO_SOURCE_NAME] = SourceSettings(
                type="demo", delay_seconds=self.demo_delay_seconds
            )
        return named

    def default_source_name(self) -> str | None:
        """The source used when a request names none (``None``: the request must name one).

        The explicit ``default_source``; else the only source besides demo; else demo.
        """
        if self.default_source is not None:
            return self.default_source
        named = self.source_settings()
        real = [name for name, source in named.items() if source.type != "demo"]
        if len(real) == 1:
            return real[0]
        if not real and DEMO_SOURCE_NAME in named:
            return DEMO_SOURCE_NAME
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process' settings, read once (tests override the dependency instead)."""
    return Settings()
