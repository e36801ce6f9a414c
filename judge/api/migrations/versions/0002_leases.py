"""Leases for work shared by several replicas, and idempotent polls of sequential runs.

- ``analyses.lease_owner`` / ``lease_expires_at``: the replica running an analysis and until
  when its claim holds (renewed while it runs; another replica takes over an expired one);
- ``analysis_attempts``: one row per claim (which replica, when, how it ended), the record that
  shows an analysis was judged once;
- ``sequential_runs.lease_owner`` / ``lease_expires_at``: the replica polling a run (polls of
  one run from several replicas take turns); ``poll_end`` / ``poll_final``: the window end (and
  finality) the stored answer covers, so a repeated poll gets that answer back instead of
  fetching again; the same two on ``sequential_run_polls`` for the record.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("analyses") as analyses:
        analyses.add_column(sa.Column("lease_owner", sa.String(255), nullable=True))
        analyses.add_column(sa.Column("lease_expires_at", _WHEN, nullable=True))
        analyses.create_index("ix_analyses_lease_expires_at", ["lease_expires_at"])
    op.create_table(
        "analysis_attempts",
        sa.Column("analysis_id", sa.String(64),
                  sa.ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("replica_id", sa.String(255), nullable=False),
        sa.Column("claimed_at", _WHEN, nullable=False),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
    )
    with op.batch_alter_table("sequential_runs") as runs:
        runs.add_column(sa.Column("lease_owner", sa.String(255), nullable=True))
        runs.add_column(sa.Column("lease_expires_at", _WHEN, nullable=True))
        runs.add_column(sa.Column("poll_end", _WHEN, nullable=True))
        runs.add_column(sa.Column("poll_final", sa.Boolean, nullable=False,
                                  server_default=sa.false()))
    with op.batch_alter_table("sequential_run_polls") as polls:
        polls.add_column(sa.Column("poll_end", _WHEN, nullable=True))
        polls.add_column(sa.Column("poll_final", sa.Boolean, nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("sequential_run_polls") as polls:
        polls.drop_column("poll_final")
        polls.drop_column("poll_end")
    with op.batch_alter_table("sequential_runs") as runs:
        runs.drop_column("poll_final")
        runs.drop_column("poll_end")
        runs.drop_column("lease_expires_at")
        runs.drop_column("lease_owner")
    op.drop_table("analysis_attempts")
    with op.batch_alter_table("analyses") as analyses:
        analyses.drop_index("ix_analyses_lease_expires_at")
        analyses.drop_column("lease_expires_at")
        analyses.drop_column("lease_owner")
