"""Running the migrations over a connection: upgrade to the newest revision, read the current
one. Alembic's own configuration is built here (no ``alembic.ini``): the scripts are this
package's files, the connection the caller's."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPTS = Path(__file__).resolve().parent


def _config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` on ``connection`` (inside its transaction)."""
    from alembic import command

    command.upgrade(_config(connection), revision)


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; ``None`` for one no migration has touched."""
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision this release knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(SCRIPTS)).get_current_head()
    assert head is not None  # versions/ is never empty
    return head
