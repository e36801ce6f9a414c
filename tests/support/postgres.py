"""A real PostgreSQL server for tests, on a free loopback port, in a temporary data directory.

API
---
``postgres_bin_dir() -> Path | None``
    Debian's server binaries (``/usr/lib/postgresql/<version>/bin``, newest version), which the
    ``postgresql`` package keeps off PATH; ``None`` when it is not installed.

``require_postgres() -> Path``
    The same, or skip (locally) / fail (``CI=true``), as
    :func:`tests.support.requires.require_binary` does.

``PostgresServer()`` / ``.start()`` / ``.stop()`` / ``.create_database(name) -> url``
    ``initdb`` (trust authentication for a superuser ``pgtest``) into a fresh directory under
    the system's temp folder, then ``pg_ctl start`` listening on ``127.0.0.1:PORT`` only (its
    socket in the data directory). PostgreSQL refuses to run as root: when the tests run as
    root, every server command runs as the ``postgres`` user the Debian package creates (through
    ``runuser``), and the data directory belongs to it. ``stop()`` is ``pg_ctl stop -m
    immediate`` and removes the directory. ``create_database`` makes an empty database and
    returns its SQLAlchemy URL (``postgresql+psycopg://pgtest@127.0.0.1:PORT/NAME``).

``PostgresServer(network=net)``
    The same server inside a :class:`tests.support.netns.PrivateNetwork` (every server command
    runs through ``net.command``), for a process in that network: it listens on that network's
    loopback. ``create_database`` and ``query`` (``psql``, its rows as text) then run there too.

One server per test session (``tests/conftest.py``: the ``postgres_server`` fixture), one fresh
database per test that asks for one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.prometheus import free_port

if TYPE_CHECKING:
    from tests.support.netns import PrivateNetwork

SUPERUSER = "pgtest"
"""Its name is masked in the service's logs as a URL's user info: one no log line contains."""
RUN_AS = "postgres"
"""The unprivileged user the server runs as when the tests run as root (Debian's package's)."""
START_TIMEOUT = 60


def postgres_bin_dir() -> Path | None:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


def require_postgres() -> Path:
    found = postgres_bin_dir()
    if found is None:
        message = "PostgreSQL is not installed (scripts/setup installs Debian's postgresql)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


class PostgresServer:
    """One PostgreSQL server (see module doc)."""

    def __init__(self, bin_dir: Path | None = None,
                 network: PrivateNetwork | None = None) -> None:
        self.bin_dir = bin_dir or require_postgres()
        self.port = 0
        self.data_dir: Path | None = None
        self._as_root = os.geteuid() == 0
        self._network = network

    def _command(self, *args: str) -> list[str]:
        argv = ["runuser", "-u", RUN_AS, "--", *args] if self._as_root else list(args)
        return self._network.command(argv) if self._network is not None else argv

    def _run(self, *args: str) -> str:
        result = subprocess.run(
            self._command(*args), capture_output=True, text=True, timeout=START_TIMEOUT,
            cwd="/",  # runuser keeps the working directory, which the server user may not read
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def query(self, database: str, sql: str) -> list[list[str]]:
        """``sql``'s rows in ``database`` (``psql``, each value as text)."""
        out = self._run(str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", SUPERUSER, "-d", database, "-At", "-F", "\t", "-c", sql)
        return [line.split("\t") for line in out.splitlines()]

    def start(self) -> PostgresServer:
        root = Path(tempfile.mkdtemp(prefix="canary-judge-pg-"))
        self.data_dir = root / "data"
        self.data_dir.mkdir()
        if self._as_root:
            shutil.chown(root, RUN_AS)
            shutil.chown(self.data_dir, RUN_AS)
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                  "--auth=trust", "--encoding=UTF8", "--no-instructions")
        self.port = free_port()
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} "
                   "-c fsync=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                  str(self.data_dir / "server.log"), "-o", options, "-w", "-t",
                  str(START_TIMEOUT), "start")
        return self

    def stop(self) -> None:
        if self.data_dir is None:
            return
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m",
                      "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)
            self.data_dir = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        if self._network is not None:  # unreachable from here: psql in its network
            self.query("postgres", f'CREATE DATABASE "{name}"')
            return self.url(name)
        import psycopg

        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
