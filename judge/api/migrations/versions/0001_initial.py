"""The schema of the release before migrations (547e03e), which made its tables with
``create_all``.

A database that release made has no ``alembic_version`` table: this revision adopts it by
creating only the tables it lacks (a database from before the report pages has no
``analysis_series``, which ``create_all`` used to add at startup), so an existing database and
an empty one both end at revision 0001 with the same tables, and the data stays as it was.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)


def _tables() -> list[tuple[str, list[sa.schema.SchemaItem], list[tuple[str, list[str]]]]]:
    """Each table: its name, columns and constraints, and its indexes (name, columns)."""
    return [
        ("configs", [
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("name", sa.String(255), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("applications", sa.JSON, nullable=False),
            sa.Column("native", sa.JSON, nullable=False),
            sa.Column("original", sa.JSON, nullable=True),
            sa.Column("original_format", sa.String(16), nullable=False),
            sa.Column("created_at", _WHEN, nullable=False),
            sa.Column("updated_at", _WHEN, nullable=False),
        ], [("ix_configs_name", ["name"])]),
        ("config_versions", [
            sa.Column("config_id", sa.String(64),
                      sa.ForeignKey("configs.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("version", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(255), nullable=False),
            sa.Column("native", sa.JSON, nullable=False),
            sa.Column("original", sa.JSON, nullable=True),
            sa.Column("original_format", sa.String(16), nullable=False),
            sa.Column("created_at", _WHEN, nullable=False),
        ], []),
        ("analyses", [
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("progress", sa.Float, nullable=False),
            sa.Column("progress_detail", sa.JSON, nullable=False),
            sa.Column("config_id", sa.String(64), nullable=True),
            sa.Column("config_version", sa.Integer, nullable=True),
            sa.Column("config", sa.JSON, nullable=False),
            sa.Column("request", sa.JSON, nullable=False),
            sa.Column("report", sa.JSON, nullable=True),
            sa.Column("error", sa.Text, nullable=True),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("created_at", _WHEN, nullable=False),
            sa.Column("started_at", _WHEN, nullable=True),
            sa.Column("finished_at", _WHEN, nullable=True),
        ], [("ix_analyses_config_id", ["config_id"]), ("ix_analyses_created_at", ["created_at"]),
            ("ix_analyses_kind", ["kind"]), ("ix_analyses_status", ["status"])]),
        ("analysis_series", [
            sa.Column("analysis_id", sa.String(64),
                      sa.ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("metric", sa.String(512), primary_key=True),
            sa.Column("series", sa.JSON, nullable=False),
        ], []),
        ("sequential_runs", [
            sa.Column("run_id", sa.String(255), primary_key=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("config_id", sa.String(64), nullable=True),
            sa.Column("config_version", sa.Integer, nullable=True),
            sa.Column("config", sa.JSON, nullable=False),
            sa.Column("request", sa.JSON, nullable=False),
            sa.Column("state", sa.Text, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("calls", sa.Integer, nullable=False),
            sa.Column("window_start", _WHEN, nullable=False),
            sa.Column("last_end", _WHEN, nullable=True),
            sa.Column("report", sa.JSON, nullable=True),
            sa.Column("created_at", _WHEN, nullable=False),
            sa.Column("updated_at", _WHEN, nullable=False),
        ], [("ix_sequential_runs_status", ["status"])]),
        ("sequential_run_polls", [
            sa.Column("run_id", sa.String(255), primary_key=True),
            sa.Column("call", sa.Integer, primary_key=True),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("last_end", _WHEN, nullable=True),
            sa.Column("metrics", sa.JSON, nullable=False),
            sa.Column("created_at", _WHEN, nullable=False),
        ], []),
    ]


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, columns, indexes in _tables():
        if name in existing:
            continue
        op.create_table(name, *columns)
        for index, indexed in indexes:
            op.create_index(index, name, indexed)


def downgrade() -> None:
    for name, _columns, _indexes in reversed(_tables()):
        op.drop_table(name)
