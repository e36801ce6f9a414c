"""Persistent store of canary configs (with versions) and analyses (with status and report).

SQLAlchemy 2.0 on any database URL; SQLite by default, PostgreSQL for several replicas. The
schema is Alembic's (``judge.api.migrations``), applied by :meth:`Store.create_schema`.
Everything an analysis needs to be re-run (the config snapshot and the request) is stored when
it is created, so a process that dies mid-analysis loses nothing.

Several processes may share one database: a replica *claims* an analysis before running it
(:meth:`Store.claim_analysis`), which gives it a lease (its replica id and an expiry) that it
renews while it runs (:meth:`Store.renew_leases`). A claim is a read of the row under a lock
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write lock, taken before the read) and a
write in the same transaction, so two replicas never both hold one analysis. A replica that
dies stops renewing; once its leases expire, another replica's scan takes the work over
(:meth:`Store.claim_abandoned`, ``FOR UPDATE SKIP LOCKED``: scanners never wait on each other).
Each claim is recorded in ``analysis_attempts``; a result is only written by the lease's holder
(else :class:`LeaseLostError`). Sequential runs are polled under a lease too
(:meth:`Store.claim_run`).

Rows never leave this module: methods return frozen dataclasses, so callers cannot touch a
session or trigger lazy loads.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    and_,
    create_engine,
    delete,
    event,
    false,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from judge.errors import ConfigError, ConflictError, NotFoundError, StoreUnavailableError
from judge.report import json_bytes


class AnalysisStatus(StrEnum):
    """``succeeded``: judged, the report has a verdict. ``error``: ran, but a metric source
    failed, so there is no verdict (the report says which source, query and failure; ``error``
    the cause). ``failed``: could not run to the end (timeout, interrupted, a bug)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ERROR = "error"

    @property
    def done(self) -> bool:
        return self in (AnalysisStatus.SUCCEEDED, AnalysisStatus.FAILED, AnalysisStatus.ERROR)


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns; they were stored as UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class _Base(DeclarativeBase):
    pass


class _ConfigRow(_Base):
    __tablename__ = "configs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer)
    applications: Mapped[list[str]] = mapped_column(JSON)
    native: Mapped[dict[str, Any]] = mapped_column(JSON)
    original: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    original_format: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _ConfigVersionRow(_Base):
    __tablename__ = "config_versions"

    config_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("configs.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    native: Mapped[dict[str, Any]] = mapped_column(JSON)
    original: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    original_format: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _AnalysisRow(_Base):
    """An analysis. ``lease_owner``/``lease_expires_at``: the replica that has it claimed and
    until when (``None``: nobody, e.g. queued)."""

    __tablename__ = "analyses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    config_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )


class _AnalysisAttemptRow(_Base):
    """One claim of an analysis by a replica, and how it ended (``outcome`` is the status it
    left; ``None`` while running, or when the replica died or lost the lease)."""

    __tablename__ = "analysis_attempts"

    analysis_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    replica_id: Mapped[str] = mapped_column(String(255))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)


class _AnalysisSeriesRow(_Base):
    """The series of one metric an analysis judged, for its report page's plots: a table of
    its own (listing or reading analyses never loads them, an existing database gains it at
    startup), a row per metric (a plot reads its metric's points only)."""

    __tablename__ = "analysis_series"

    analysis_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True
    )
    metric: Mapped[str] = mapped_column(String(512), primary_key=True)
    series: Mapped[dict[str, Any]] = mapped_column(JSON)


class _RunPollRow(_Base):
    """One poll of a sequential run as it was answered: the evidence over the polls."""

    __tablename__ = "sequential_run_polls"

    run_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    call: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    last_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    poll_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    poll_final: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)


class _RunRow(_Base):
    """One sequential (polled) run: its state between polls, so a restart loses nothing."""

    __tablename__ = "sequential_runs"

    run_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    config_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    config_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    calls: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    poll_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    poll_final: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)


@dataclass(frozen=True)
class StoredRun:
    """A sequential run as stored. ``state`` is ``SequentialState.to_json()``; ``config`` the
    config snapshot taken at the first poll (a config updated mid-run does not change the
    test); ``window_start`` where the run's data begins; ``last_end`` the newest point already
    judged (``None`` before any), so the next poll judges only later points; ``calls`` counts
    stored polls (and guards against two polls of one run saving over each other);
    ``poll_end``/``poll_final`` the window end (and finality) of the poll whose answer is
    ``report``: a poll that asks for no later window gets that answer again."""

    run_id: str
    kind: str
    config_id: str | None
    config_version: int | None
    config: dict[str, Any]
    request: dict[str, Any]
    state: str
    status: str
    calls: int
    window_start: datetime
    last_end: datetime | None
    report: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    poll_end: datetime | None = None
    poll_final: bool = False

    def answers(self, end: datetime, final: bool) -> bool:
        """Whether the stored answer covers a poll up to ``end`` (``final`` or not): its
        window reaches as far, and a final poll was already made when one is asked for."""
        poll_end = _utc(self.poll_end)
        return poll_end is not None and end <= poll_end and (self.poll_final or not final)


@dataclass(frozen=True)
class StoredConfig:
    """A stored config at one version. ``native`` is ``CanaryConfig.to_dict()``; ``original``
    is the document as it was sent (Kayenta JSON is given back as sent)."""

    id: str
    name: str
    version: int
    applications: tuple[str, ...]
    native: dict[str, Any]
    original: dict[str, Any] | None
    original_format: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoredAnalysis:
    id: str
    kind: str
    status: AnalysisStatus
    progress: float
    progress_detail: dict[str, Any]
    config_id: str | None
    config_version: int | None
    config: dict[str, Any]
    request: dict[str, Any]
    report: dict[str, Any] | None
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_owner: str | None = None
    """The replica that has it claimed (``None``: nobody)."""
    lease_expires_at: datetime | None = None


@dataclass(frozen=True)
class AnalysisAttempt:
    """One claim of an analysis by a replica (see :class:`_AnalysisAttemptRow`)."""

    analysis_id: str
    attempt: int
    replica_id: str
    claimed_at: datetime
    finished_at: datetime | None
    outcome: str | None


class LeaseLostError(ConflictError):
    """The replica no longer holds the analysis' lease (it expired and another replica took
    the analysis over): its result is not stored."""


@dataclass(frozen=True)
class AnalysisSummary:
    """One line of a list of analyses: what the list shows, without the report or config."""

    id: str
    kind: str
    status: AnalysisStatus
    config_name: str | None
    verdict: str | None
    score: float | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class RunSummary:
    """One line of a list of sequential runs."""

    run_id: str
    kind: str
    status: str
    calls: int
    config_name: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RunPoll:
    """One poll of a sequential run: its status and, per metric, what the poll showed
    (``name``, ``classification``, ``estimate``, ``low``, ``high``, ``points``)."""

    run_id: str
    call: int
    status: str
    last_end: datetime | None
    metrics: list[dict[str, Any]]
    created_at: datetime
    poll_end: datetime | None = None
    poll_final: bool = False


_Frozen = TypeVar("_Frozen", StoredConfig, StoredAnalysis, StoredRun, RunPoll, AnalysisAttempt)


def _frozen(cls: type[_Frozen], row: object, **overrides: Any) -> _Frozen:
    """``cls`` filled from the row's attributes of the same names (``overrides`` win), with
    datetimes marked UTC (SQLite hands them back naive)."""
    values = {
        f.name: getattr(row, f.name) for f in dataclass_fields(cls) if f.name not in overrides
    }
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = _utc(value)
    return cls(**values, **overrides)


def _config(row: _ConfigRow) -> StoredConfig:
    return _frozen(StoredConfig, row, applications=tuple(row.applications))


def _analysis(row: _AnalysisRow) -> StoredAnalysis:
    return _frozen(StoredAnalysis, row, status=AnalysisStatus(row.status))


_RUN_FIELDS = ("kind", "config_id", "config_version", "config", "request", "state", "status",
               "calls", "window_start", "last_end", "report", "poll_end", "poll_final")
_UNFINISHED = (AnalysisStatus.QUEUED.value, AnalysisStatus.RUNNING.value)


def _run(row: _RunRow) -> StoredRun:
    return _frozen(StoredRun, row)


def _in_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:")


DEFAULT_TIMEOUT_SECONDS = 10.0
"""How long a statement waits for a lock another connection holds (SQLite's busy timeout), or a
connection for a database server to answer, before the store gives up."""

_MIGRATION_LOCK_KEY = 0x63616E617279  # "canary": any constant the replicas agree on
"""PostgreSQL advisory lock held while migrating."""

_BEGIN_MODE = "canary_judge_begin"
"""Execution option: how a SQLite transaction begins (``IMMEDIATE`` for a session that writes)."""

_READ = "DEFERRED"
"""How a session that only reads begins (no lock until its first read)."""

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
"""Statements that take SQLite's write lock (refused in a session that reads)."""


DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 10


class _SeriesDocument(dict[str, Any]):
    """A stored metric's series (:meth:`Store.save_series`), written by :func:`_json_dumps`
    with orjson: a hundred metrics of a day at one-minute steps are 576,000 numbers, which
    the standard library turns into JSON in about a quarter of a second of CPU (orjson: a
    tenth of that), on a core the analysis' judgment needs at the same moment."""


def _json_dumps(value: Any) -> str:
    """The engine's JSON serialiser: the standard library's (SQLAlchemy's default) for every
    column but the series, whose documents hold only strings, finite floats and nulls
    (``judge.pages.series``), which orjson writes alike."""
    if isinstance(value, _SeriesDocument):
        return json_bytes(value).decode()
    return json.dumps(value)


def make_engine(
    url: str,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
) -> Engine:
    """An engine for ``url`` whose connections give up after ``timeout_seconds``.

    SQLite gets WAL mode (the request threads and the analysis runner read while one writes) and
    a busy timeout; transactions that write begin ``IMMEDIATE``, taking the write lock before
    they read: writers then queue on the busy timeout instead of two of them reading the same
    row and the later one failing (two PUTs of one config both reading version 3 and both
    writing version 4, or SQLite refusing to upgrade a read snapshot another writer made stale).
    The transaction control recipe is SQLAlchemy's for pysqlite (the driver's own begins late
    and cannot be told how).

    An in-memory SQLite database lives in one connection, so every thread shares it
    (``StaticPool``); :class:`Store` serialises its sessions on such an engine. Database
    servers get ``connect_timeout`` (PostgreSQL and MySQL drivers), a pool of ``pool_size``
    connections kept open plus ``max_overflow`` opened under load (each replica's share of the
    server's ``max_connections``), waiting ``timeout_seconds`` for a free one; rows a writer
    means to change are read ``FOR UPDATE``."""
    if not url.startswith("sqlite"):
        connect_args: dict[str, Any] = {}
        if url.startswith(("postgresql", "mysql", "mariadb")):
            connect_args["connect_timeout"] = max(1, round(timeout_seconds))
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args,
                             pool_size=pool_size, max_overflow=max_overflow,
                             pool_timeout=timeout_seconds, json_serializer=_json_dumps)
    in_memory = _in_memory(url)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": timeout_seconds},
        poolclass=StaticPool if in_memory else None,
        json_serializer=_json_dumps,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # No implicit BEGIN from the driver: _begin below starts every transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_BEGIN_MODE, "")
        connection.info[_BEGIN_MODE] = mode
        connection.exec_driver_sql(f"BEGIN {mode}".strip())

    @event.listens_for(engine, "before_cursor_execute")
    def _writes_hold_the_lock(
        connection: Any, _cursor: Any, statement: str, *_args: Any
    ) -> None:
        # A transaction begun DEFERRED that reads and then writes cannot wait for another
        # connection's write lock: SQLite answers "database is locked" at once, whatever the
        # busy timeout (and so when another writer committed since its read). A write in a
        # session that said it reads is a store method that forgot ``_session(write=True)``:
        # it fails on every call, not only when another writer happens to be busy.
        if (connection.info.get(_BEGIN_MODE) == _READ
                and statement.lstrip()[:7].upper().startswith(_WRITES)):
            raise RuntimeError(
                "a write in a session that reads (use Store._session(write=True)): "
                f"{statement.strip()[:60]}"
            )

    return engine


class Store:
    """Configs and analyses in one database. Thread-safe: one short session per call."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
    ) -> None:
        self.url = url
        self.timeout_seconds = timeout_seconds
        self.engine = make_engine(url, timeout_seconds, pool_size=pool_size,
                                  max_overflow=max_overflow)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # One shared sqlite3 connection (in-memory database, StaticPool) has one transaction:
        # a request thread committing while the background runner's session is mid-statement
        # on the same connection fails with "cannot commit - SQL statements in progress" (or
        # commits the other session's half-done work). Sessions on it take turns; file and
        # server databases give each session its own connection and need no lock.
        self._lock: AbstractContextManager[Any] = (
            threading.RLock() if _in_memory(url) else nullcontext()
        )

    def create_schema(self) -> None:
        """Bring the schema to this release's (Alembic's migrations, ``judge.api.migrations``):
        an empty database gets every table, one a release before migrations made is adopted
        (see revision 0001), an older revision is upgraded. One transaction, under a lock that
        makes replicas starting together migrate one after the other: SQLite's write lock
        (taken first, so a database another process holds locked fails here, after the
        timeout, with :class:`~judge.errors.StoreUnavailableError`), a PostgreSQL advisory
        lock."""
        from judge.api.migrations.run import upgrade

        with self._migration() as connection:
            upgrade(connection)

    def schema_revision(self) -> str | None:
        """The migration revision the database is at (``None``: none applied)."""
        from judge.api.migrations.run import current_revision

        with self._unavailable_as_error(), self._lock, self.engine.connect() as connection:
            return current_revision(connection)

    @contextmanager
    def _migration(self) -> Iterator[Any]:
        with self._unavailable_as_error(), self._lock, self.engine.connect() as connection:
            connection = connection.execution_options(**{_BEGIN_MODE: "IMMEDIATE"})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    # Held to the end of the transaction: the next replica migrates after.
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                       {"key": _MIGRATION_LOCK_KEY})
                yield connection

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """Raise if the database cannot be reached (used by ``/readyz``)."""
        with self._unavailable_as_error(), self._lock, self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction; ``write``: one that changes rows (on SQLite it takes the write lock
        before its first read, see :func:`make_engine`; a session that does not say so is
        refused any write)."""
        with self._unavailable_as_error(), self._lock, self._sessions.begin() as session:
            session.connection(execution_options={_BEGIN_MODE: "IMMEDIATE" if write else _READ})
            yield session

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        # The driver's "database is locked" (past the busy timeout), "unable to open database
        # file", a refused or timed-out connection: one error that names the database and says
        # how long it waited, never the URL's password.
        began = time.monotonic()
        try:
            yield
        except OperationalError as exc:
            cause = (str(exc.orig) if exc.orig is not None else str(exc)).strip()
            waited = time.monotonic() - began
            if "locked" in cause and waited < self.timeout_seconds:
                # SQLite gave up without waiting (a lock it cannot wait for): say so, not
                # that the lock was held for the whole timeout.
                cause += (f" (after {waited:.2f} s, without waiting the "
                          f"{self.timeout_seconds:g} s allowed)")
            elif "locked" in cause or "timeout" in cause:
                cause += f" (gave up after waiting {self.timeout_seconds:g} s)"
            raise StoreUnavailableError(
                f"database {safe_url(self.url)} is unavailable: {cause}"
            ) from exc

    def add_write_filter(self, clean: Callable[[str], str]) -> None:
        """Pass every text value written (INSERT and UPDATE parameters of every table, JSON
        columns as their text) through ``clean`` first, e.g.
        :meth:`judge.redaction.Redactor.text`: secrets never reach the database."""

        def cleaned(parameters: Any) -> Any:
            if isinstance(parameters, dict):
                return {k: clean(v) if isinstance(v, str) else v for k, v in parameters.items()}
            return type(parameters)(clean(v) if isinstance(v, str) else v for v in parameters)

        @event.listens_for(self.engine, "before_cursor_execute", retval=True)
        def _clean(
            _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
            executemany: bool,
        ) -> tuple[str, Any]:
            if not parameters or statement.lstrip()[:6].upper() not in ("INSERT", "UPDATE"):
                return statement, parameters
            if executemany:
                return statement, type(parameters)(cleaned(p) for p in parameters)
            return statement, cleaned(parameters)

    # -- configs ---------------------------------------------------------------------------
    def create_config(
        self,
        *,
        name: str,
        native: dict[str, Any],
        applications: Sequence[str] = (),
        original: dict[str, Any] | None = None,
        original_format: str = "native",
        config_id: str | None = None,
    ) -> StoredConfig:
        now = _now()
        row = _ConfigRow(
            id=config_id or str(uuid.uuid4()),
            name=name,
            version=1,
            applications=list(applications),
            native=native,
            original=original,
            original_format=original_format,
            created_at=now,
            updated_at=now,
        )
        with self._config_conflicts(row.id), self._session(write=True) as session:
            if session.get(_ConfigRow, row.id) is not None:
                raise ConfigError(f"a config with id {row.id!r} already exists")
            session.add(row)
            session.flush()
            session.add(_version_of(row))
            return _config(row)

    def update_config(
        self,
        config_id: str,
        *,
        name: str,
        native: dict[str, Any],
        applications: Sequence[str] = (),
        original: dict[str, Any] | None = None,
        original_format: str = "native",
    ) -> StoredConfig:
        """Store a new version of an existing config (older versions stay readable).

        Concurrent updates of one config each get their own version, one after the other: the
        row is read under the write lock (SQLite) or ``FOR UPDATE`` (database servers), so no
        two of them read the same version. Should a database still report a clash,
        :class:`ConflictError` (409): nothing was changed, try again."""
        with self._config_conflicts(config_id), self._session(write=True) as session:
            row = session.get(_ConfigRow, config_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no config with id {config_id!r}")
            row.version += 1
            row.name = name
            row.native = native
            row.applications = list(applications)
            row.original = original
            row.original_format = original_format
            row.updated_at = _now()
            session.add(_version_of(row))
            return _config(row)

    @staticmethod
    @contextmanager
    def _config_conflicts(config_id: str) -> Iterator[None]:
        try:
            yield
        except IntegrityError as exc:
            raise ConflictError(
                f"config {config_id!r} was changed concurrently (another writer saved first); "
                "nothing was stored, send it again"
            ) from exc

    def get_config(self, config_id: str, version: int | None = None) -> StoredConfig:
        with self._session() as session:
            row = session.get(_ConfigRow, config_id)
            if row is None:
                raise NotFoundError(f"no config with id {config_id!r}")
            if version is None or version == row.version:
                return _config(row)
            old = session.get(_ConfigVersionRow, (config_id, version))
            if old is None:
                raise NotFoundError(f"config {config_id!r} has no version {version}")
            return _frozen(
                StoredConfig, old, id=row.id, applications=tuple(row.applications),
                created_at=_utc(row.created_at), updated_at=_utc(old.created_at),
            )

    def find_config(self, id_or_name: str) -> StoredConfig:
        """By id, else by name (the most recently updated config of that name)."""
        with self._session() as session:
            row = session.get(_ConfigRow, id_or_name)
            if row is None:
                row = session.scalars(
                    select(_ConfigRow)
                    .where(_ConfigRow.name == id_or_name)
                    .order_by(_ConfigRow.updated_at.desc())
                    .limit(1)
                ).first()
            if row is None:
                raise NotFoundError(f"no config with id or name {id_or_name!r}")
            return _config(row)

    def list_configs(self, application: str | None = None) -> list[StoredConfig]:
        with self._session() as session:
            rows = session.scalars(select(_ConfigRow).order_by(_ConfigRow.name)).all()
            configs = [_config(row) for row in rows]
        if application:
            # Kayenta lists configs of an application; configs naming none belong to all.
            configs = [c for c in configs if not c.applications or application in c.applications]
        return configs

    def config_versions(self, config_id: str) -> list[int]:
        with self._session() as session:
            if session.get(_ConfigRow, config_id) is None:
                raise NotFoundError(f"no config with id {config_id!r}")
            return list(
                session.scalars(
                    select(_ConfigVersionRow.version)
                    .where(_ConfigVersionRow.config_id == config_id)
                    .order_by(_ConfigVersionRow.version)
                ).all()
            )

    def delete_config(self, config_id: str) -> None:
        with self._session(write=True) as session:
            row = session.get(_ConfigRow, config_id)
            if row is None:
                raise NotFoundError(f"no config with id {config_id!r}")
            # One statement for the versions, before the config: deleting version objects one
            # by one raced the database's ON DELETE CASCADE (SQLAlchemy warned that its
            # DELETEs matched 0 rows when the cascade had removed them first).
            session.execute(
                delete(_ConfigVersionRow).where(_ConfigVersionRow.config_id == config_id)
            )
            session.delete(row)

    # -- analyses --------------------------------------------------------------------------
    def create_analysis(
        self,
        *,
        kind: str,
        config: dict[str, Any],
        request: dict[str, Any],
        config_id: str | None = None,
        config_version: int | None = None,
    ) -> StoredAnalysis:
        row = _AnalysisRow(
            id=str(uuid.uuid4()),
            kind=kind,
            status=AnalysisStatus.QUEUED.value,
            progress=0.0,
            progress_detail={},
            config_id=config_id,
            config_version=config_version,
            config=config,
            request=request,
            report=None,
            error=None,
            attempts=0,
            created_at=_now(),
        )
        with self._session(write=True) as session:
            session.add(row)
            return _analysis(row)

    def get_analysis(self, analysis_id: str) -> StoredAnalysis:
        with self._session() as session:
            row = session.get(_AnalysisRow, analysis_id)
            if row is None:
                raise NotFoundError(f"no analysis with id {analysis_id!r}")
            return _analysis(row)

    def list_analyses(
        self, *, limit: int = 50, status: AnalysisStatus | None = None, kind: str | None = None
    ) -> list[StoredAnalysis]:
        """The newest analyses first, optionally of one status and one kind (the door that
        started them: ``kayenta``, ``argo``, ...)."""
        query = select(_AnalysisRow).order_by(_AnalysisRow.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(_AnalysisRow.status == status.value)
        if kind is not None:
            query = query.where(_AnalysisRow.kind == kind)
        with self._session() as session:
            return [_analysis(row) for row in session.scalars(query).all()]

    def find_analyses(
        self,
        *,
        config_name: str | None = None,
        verdict: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[AnalysisSummary]:
        """Analyses newest first, filtered by config name, verdict (the report's) and creation
        time (``since`` <= created < ``until``); only the columns a list shows are read (the
        JSON fields by path, in the database)."""
        name = _AnalysisRow.config["name"].as_string()
        found_verdict = _AnalysisRow.report["verdict"].as_string()
        query = select(
            _AnalysisRow.id, _AnalysisRow.kind, _AnalysisRow.status, name, found_verdict,
            _AnalysisRow.report["score"].as_float(), _AnalysisRow.created_at,
            _AnalysisRow.finished_at,
        )
        if config_name:
            query = query.where(name == config_name)
        if verdict:
            query = query.where(found_verdict == verdict)
        if since is not None:
            query = query.where(_AnalysisRow.created_at >= since)
        if until is not None:
            query = query.where(_AnalysisRow.created_at < until)
        query = query.order_by(_AnalysisRow.created_at.desc(), _AnalysisRow.id)
        with self._session() as session:
            rows = session.execute(query.offset(offset).limit(limit)).all()
        return [
            AnalysisSummary(
                id=row[0], kind=row[1], status=AnalysisStatus(row[2]), config_name=row[3],
                verdict=row[4], score=row[5], created_at=_utc(row[6]) or row[6],
                finished_at=_utc(row[7]),
            )
            for row in rows
        ]

    def save_series(self, analysis_id: str, series: dict[str, Any]) -> None:
        """Keep the series an analysis judged (``judge.pages.series`` form: ``{"version",
        "metrics": {name: ...}}``), replacing any from an earlier attempt."""
        with self._session(write=True) as session:
            session.execute(
                delete(_AnalysisSeriesRow).where(_AnalysisSeriesRow.analysis_id == analysis_id)
            )
            version = series.get("version")
            session.add_all(
                _AnalysisSeriesRow(analysis_id=analysis_id, metric=name,
                                   series=_SeriesDocument(version=version, series=entry))
                for name, entry in dict(series.get("metrics") or {}).items()
            )

    def get_series(self, analysis_id: str, metric: str | None = None) -> dict[str, Any] | None:
        """The series an analysis judged (of one ``metric``, or all), in the form they were
        saved in; ``None`` when none were kept (an analysis stored before the report pages,
        or one that failed before fetching)."""
        query = select(_AnalysisSeriesRow).where(_AnalysisSeriesRow.analysis_id == analysis_id)
        if metric is not None:
            query = query.where(_AnalysisSeriesRow.metric == metric)
        with self._session() as session:
            rows = session.scalars(query).all()
            if not rows:
                return None
            return {
                "version": rows[0].series.get("version"),
                "metrics": {row.metric: row.series.get("series") for row in rows},
            }

    def unfinished_analyses(self) -> list[StoredAnalysis]:
        """Analyses left queued or running, oldest first."""
        query = (
            select(_AnalysisRow)
            .where(_AnalysisRow.status.in_(_UNFINISHED))
            .order_by(_AnalysisRow.created_at)
        )
        with self._session() as session:
            return [_analysis(row) for row in session.scalars(query).all()]

    def mark_running(
        self, analysis_id: str, *, owner: str | None = None, lease_seconds: float = 0.0
    ) -> StoredAnalysis:
        """Running, one more attempt (recorded with the ``owner`` replica), progress reset (a
        re-run starts over); with an ``owner``, leased to it for ``lease_seconds`` whatever
        lease it had (a synchronous analysis, run by the request that created it)."""
        with self._session(write=True) as session:
            row = self._analysis_row(session, analysis_id)
            self._start_attempt(session, row, owner, lease_seconds)
            return _analysis(row)

    def claim_analysis(
        self, analysis_id: str, owner: str, lease_seconds: float
    ) -> StoredAnalysis | None:
        """Claim an unfinished analysis for replica ``owner`` and run it (as
        :meth:`mark_running`, with a lease of ``lease_seconds``), unless another replica's
        lease on it is still valid or it is done: then ``None`` (someone else runs or ran it).
        The row is read locked (``FOR UPDATE``; SQLite's write lock), so of two replicas
        claiming at once one gets it."""
        with self._session(write=True) as session:
            row = session.get(_AnalysisRow, analysis_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no analysis with id {analysis_id!r}")
            if AnalysisStatus(row.status).done or not self._claimable(row, owner, _now()):
                return None
            self._start_attempt(session, row, owner, lease_seconds)
            return _analysis(row)

    def claim_abandoned(
        self, owner: str, lease_seconds: float, *, limit: int
    ) -> list[StoredAnalysis]:
        """Take over at most ``limit`` unfinished analyses nobody is working on, oldest first:
        those whose lease expired (their replica died or hung) and those left queued without
        a lease for longer than a lease (their replica died before it ran them, or has more
        queued than it can run). They become leased to ``owner`` (status and attempts as they
        were: the caller re-runs them with :meth:`claim_analysis`, or fails them). Rows other
        replicas are claiming at the same moment are skipped (``SKIP LOCKED``), not waited
        for."""
        if limit <= 0:
            return []
        now = _now()
        abandoned = or_(
            _AnalysisRow.lease_expires_at < now,
            and_(_AnalysisRow.lease_owner.is_(None),
                 _AnalysisRow.created_at < now - timedelta(seconds=lease_seconds)),
        )
        query = (
            select(_AnalysisRow)
            .where(_AnalysisRow.status.in_(_UNFINISHED), abandoned)
            .order_by(_AnalysisRow.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._session(write=True) as session:
            rows = session.scalars(query).all()
            for row in rows:
                row.lease_owner = owner
                row.lease_expires_at = now + timedelta(seconds=lease_seconds)
            return [_analysis(row) for row in rows]

    def renew_leases(
        self, owner: str, analysis_ids: Sequence[str], lease_seconds: float
    ) -> set[str]:
        """Extend ``owner``'s leases on these analyses; the ids it still holds (a lease that
        expired and was taken over is not renewed: its runner should stop)."""
        if not analysis_ids:
            return set()
        held = (_AnalysisRow.id.in_(list(analysis_ids)), _AnalysisRow.lease_owner == owner,
                _AnalysisRow.status.in_(_UNFINISHED))
        with self._session(write=True) as session:
            session.execute(
                update(_AnalysisRow).where(*held)
                .values(lease_expires_at=_now() + timedelta(seconds=lease_seconds))
            )
            return set(session.scalars(select(_AnalysisRow.id).where(*held)).all())

    def release_leases(self, owner: str) -> int:
        """Let ``owner``'s unfinished analyses go at once (a graceful shutdown: another
        replica, or this one restarted, resumes them without waiting for the leases to
        expire). How many were released."""
        now = _now()
        with self._session(write=True) as session:
            released = session.execute(
                update(_AnalysisRow)
                .where(_AnalysisRow.lease_owner == owner, _AnalysisRow.status.in_(_UNFINISHED))
                .values(lease_expires_at=now - timedelta(seconds=1))
            )
            return int(getattr(released, "rowcount", 0) or 0)

    def analysis_attempts(self, analysis_id: str | None = None) -> list[AnalysisAttempt]:
        """The recorded claims (of one analysis, or all), in order."""
        query = select(_AnalysisAttemptRow).order_by(
            _AnalysisAttemptRow.analysis_id, _AnalysisAttemptRow.attempt
        )
        if analysis_id is not None:
            query = query.where(_AnalysisAttemptRow.analysis_id == analysis_id)
        with self._session() as session:
            return [_frozen(AnalysisAttempt, row) for row in session.scalars(query).all()]

    def set_progress(
        self, analysis_id: str, progress: float, detail: dict[str, Any], *,
        owner: str | None = None,
    ) -> None:
        """Store progress (ignored once the analysis is done, or, with an ``owner``, when that
        replica no longer holds it)."""
        with self._session(write=True) as session:
            row = self._analysis_row(session, analysis_id)
            if AnalysisStatus(row.status).done:
                return
            if owner is not None and row.lease_owner != owner:
                return
            row.progress = max(0.0, min(1.0, progress))
            row.progress_detail = detail
            # A re-queued analysis being resumed reports progress, so it is running again.
            row.status = AnalysisStatus.RUNNING.value

    def mark_succeeded(
        self, analysis_id: str, report: dict[str, Any], *, owner: str | None = None
    ) -> StoredAnalysis:
        """Judged. With an ``owner``: only if that replica still holds the lease, else
        :class:`LeaseLostError` and nothing is written (the same for the other ends)."""
        with self._session(write=True) as session:
            row = self._finishing(session, analysis_id, owner, AnalysisStatus.SUCCEEDED)
            row.progress = 1.0
            row.report = report
            row.error = None
            return _analysis(row)

    def mark_error(
        self, analysis_id: str, report: dict[str, Any], error: str, *, owner: str | None = None
    ) -> StoredAnalysis:
        """Ran to the end without a verdict (a metric source failed): the report, and why."""
        with self._session(write=True) as session:
            row = self._finishing(session, analysis_id, owner, AnalysisStatus.ERROR)
            row.progress = 1.0
            row.report = report
            row.error = error
            return _analysis(row)

    def mark_failed(
        self, analysis_id: str, error: str, *, owner: str | None = None
    ) -> StoredAnalysis:
        with self._session(write=True) as session:
            row = self._finishing(session, analysis_id, owner, AnalysisStatus.FAILED)
            row.error = error
            return _analysis(row)

    def requeue(self, analysis_id: str, note: str) -> StoredAnalysis:
        """Back to ``queued`` (to be resumed), keeping a note of why in the progress detail."""
        with self._session(write=True) as session:
            row = self._analysis_row(session, analysis_id)
            row.status = AnalysisStatus.QUEUED.value
            row.progress_detail = {"note": note}
            return _analysis(row)

    @staticmethod
    def _claimable(row: _AnalysisRow, owner: str, now: datetime) -> bool:
        expires = _utc(row.lease_expires_at)
        return row.lease_owner in (None, owner) or expires is None or expires < now

    @staticmethod
    def _start_attempt(
        session: Session, row: _AnalysisRow, owner: str | None, lease_seconds: float
    ) -> None:
        now = _now()
        row.status = AnalysisStatus.RUNNING.value
        row.attempts += 1
        row.progress = 0.0
        row.progress_detail = {}
        row.started_at = now
        row.lease_owner = owner
        row.lease_expires_at = now + timedelta(seconds=lease_seconds) if owner else None
        session.add(_AnalysisAttemptRow(
            analysis_id=row.id, attempt=row.attempts, replica_id=owner or "", claimed_at=now,
        ))

    def _finishing(
        self, session: Session, analysis_id: str, owner: str | None, status: AnalysisStatus
    ) -> _AnalysisRow:
        """The row, locked, set to ``status`` (lease released, attempt closed); see
        :meth:`mark_succeeded` for ``owner``."""
        row = session.get(_AnalysisRow, analysis_id, with_for_update=True)
        if row is None:
            raise NotFoundError(f"no analysis with id {analysis_id!r}")
        if owner is not None and (row.lease_owner != owner or AnalysisStatus(row.status).done):
            raise LeaseLostError(
                f"analysis {analysis_id!r} is no longer leased to replica {owner!r} "
                f"(now {row.lease_owner or 'nobody'}, {row.status}); its result was not stored"
            )
        now = _now()
        row.status = status.value
        row.progress_detail = {}  # finished: no step in progress to describe
        row.finished_at = now
        row.lease_owner = None
        row.lease_expires_at = None
        attempt = session.get(_AnalysisAttemptRow, (analysis_id, row.attempts))
        if attempt is not None and attempt.finished_at is None:
            attempt.finished_at = now
            attempt.outcome = status.value
        return row

    # -- sequential runs -------------------------------------------------------------------
    def get_run(self, run_id: str) -> StoredRun:
        with self._session() as session:
            row = session.get(_RunRow, run_id)
            if row is None:
                raise NotFoundError(f"no sequential run with id {run_id!r}")
            return _run(row)

    def list_runs(self, *, limit: int = 50) -> list[StoredRun]:
        query = select(_RunRow).order_by(_RunRow.updated_at.desc()).limit(limit)
        with self._session() as session:
            return [_run(row) for row in session.scalars(query).all()]

    def find_runs(
        self,
        *,
        config_name: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[RunSummary]:
        """Sequential runs, most recently polled first, filtered like :meth:`find_analyses`
        (by status and last poll time)."""
        name = _RunRow.config["name"].as_string()
        query = select(_RunRow.run_id, _RunRow.kind, _RunRow.status, _RunRow.calls, name,
                       _RunRow.created_at, _RunRow.updated_at)
        if config_name:
            query = query.where(name == config_name)
        if status:
            query = query.where(_RunRow.status == status)
        if since is not None:
            query = query.where(_RunRow.updated_at >= since)
        if until is not None:
            query = query.where(_RunRow.updated_at < until)
        query = query.order_by(_RunRow.updated_at.desc(), _RunRow.run_id)
        with self._session() as session:
            rows = session.execute(query.offset(offset).limit(limit)).all()
        return [
            RunSummary(run_id=row[0], kind=row[1], status=row[2], calls=row[3],
                       config_name=row[4], created_at=_utc(row[5]) or row[5],
                       updated_at=_utc(row[6]) or row[6])
            for row in rows
        ]

    def add_run_poll(self, poll: RunPoll) -> None:
        """Record one stored poll of a run (its call number is the run's ``calls``)."""
        with self._session(write=True) as session:
            session.merge(_RunPollRow(
                run_id=poll.run_id, call=poll.call, status=poll.status,
                last_end=poll.last_end, metrics=poll.metrics, created_at=poll.created_at,
                poll_end=poll.poll_end, poll_final=poll.poll_final,
            ))

    def run_polls(self, run_id: str) -> list[RunPoll]:
        """The recorded polls of a run, first to last."""
        query = (select(_RunPollRow).where(_RunPollRow.run_id == run_id)
                 .order_by(_RunPollRow.call))
        with self._session() as session:
            return [_frozen(RunPoll, row) for row in session.scalars(query).all()]

    def save_run(self, run: StoredRun, *, previous_calls: int) -> StoredRun:
        """Insert the run (``previous_calls == 0``) or update it, only if nobody saved it since
        it was read with ``previous_calls`` calls; else :class:`ConflictError` (two polls of
        one run at once must not both count their points)."""
        values = {name: getattr(run, name) for name in _RUN_FIELDS}
        conflict = ConflictError(
            f"run {run.run_id!r} was polled concurrently (another poll saved it first); "
            "poll again"
        )
        try:
            with self._session(write=True) as session:
                if previous_calls == 0:
                    session.add(_RunRow(run_id=run.run_id, created_at=_now(),
                                        updated_at=_now(), **values))
                else:
                    # A compare-and-set in one statement: safe across processes sharing a
                    # database too, where a read-then-write check would race.
                    changed = session.execute(
                        update(_RunRow)
                        .where(_RunRow.run_id == run.run_id, _RunRow.calls == previous_calls)
                        .values(updated_at=_now(), lease_owner=None, lease_expires_at=None,
                                **values)
                    )
                    if getattr(changed, "rowcount", 1) != 1:
                        raise conflict
        except IntegrityError as exc:  # the first poll of a run, twice at once
            raise conflict from exc
        return self.get_run(run.run_id)

    def claim_run(self, run_id: str, owner: str, lease_seconds: float) -> bool:
        """Lease a stored run to replica ``owner`` for one poll, unless another replica's
        lease on it is valid (a compare-and-set: one statement). ``True`` when ``owner`` holds
        it now, or the run is not stored yet (its first poll is guarded by the insert)."""
        now = _now()
        with self._session(write=True) as session:
            changed = session.execute(
                update(_RunRow)
                .where(_RunRow.run_id == run_id,
                       or_(_RunRow.lease_owner.is_(None), _RunRow.lease_owner == owner,
                           _RunRow.lease_expires_at < now))
                .values(lease_owner=owner,
                        lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
            if getattr(changed, "rowcount", 1) == 1:
                return True
            return session.get(_RunRow, run_id) is None

    def release_run(self, run_id: str, owner: str) -> None:
        """Give up ``owner``'s lease on a run (a poll that ended without saving)."""
        with self._session(write=True) as session:
            session.execute(
                update(_RunRow).where(_RunRow.run_id == run_id, _RunRow.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )

    def delete_run(self, run_id: str) -> None:
        with self._session(write=True) as session:
            row = session.get(_RunRow, run_id)
            if row is None:
                raise NotFoundError(f"no sequential run with id {run_id!r}")
            session.delete(row)
            session.execute(delete(_RunPollRow).where(_RunPollRow.run_id == run_id))

    @staticmethod
    def _analysis_row(session: Session, analysis_id: str) -> _AnalysisRow:
        row = session.get(_AnalysisRow, analysis_id)
        if row is None:
            raise NotFoundError(f"no analysis with id {analysis_id!r}")
        return row


def _version_of(row: _ConfigRow) -> _ConfigVersionRow:
    return _ConfigVersionRow(
        config_id=row.id,
        version=row.version,
        name=row.name,
        native=row.native,
        original=row.original,
        original_format=row.original_format,
        created_at=row.updated_at,
    )


def safe_url(url: str) -> str:
    """A database URL without its password, for logs and messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database url>"
