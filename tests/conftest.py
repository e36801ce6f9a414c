"""Suite-wide settings: nothing depends on luck.

Hypothesis draws its examples from a fixed seed (``derandomize``) with no per-example deadline:
a property test gives the same verdict on every run, and a loaded shared machine cannot turn a
slow example into a failure. (The service's clock is pinned by ``tests.support.clock``.)

Store tests take ``database_url`` and run twice: on a SQLite file and on a real PostgreSQL
server (one per session, ``tests/support/postgres.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.postgres import PostgresServer

settings.register_profile("pinned", derandomize=True, deadline=None, database=None)
settings.load_profile("pinned")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (``tests/support/postgres.py``)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, then a database of the session's PostgreSQL
    server (the tests that take it run on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'judge.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"test_{uuid.uuid4().hex[:16]}")
