"""Alembic's entry point: migrate over the connection :mod:`judge.api.store` passes in
``config.attributes["connection"]`` (never a URL of its own: the store already holds the lock
and the open transaction)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection: Connection = context.config.attributes["connection"]
# SQLite alters tables by copying them ("batch" mode); the other databases alter in place.
context.configure(connection=connection, target_metadata=None,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
