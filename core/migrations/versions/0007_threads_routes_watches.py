"""alerts: threads, routes, held alerts, delivery in doubt, reactions; watches; spike episodes; feed flags

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("state_affiliated", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("key_outlet", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("coverage_state", sa.String(length=16), nullable=True))
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("route", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("severity", sa.String(length=8), nullable=False, server_default="normal"))
        batch.add_column(sa.Column("detail", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("held_reason", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("digest_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("thread_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("parent_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("broadcast", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("watch_id", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("in_doubt", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("remote_channel", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("thread_ts", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("reactions_up", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("reactions_down", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("reactions_checked_at", UTC, nullable=True))
        batch.create_index("ix_alerts_thread", ["thread_key", "channel"])
        batch.create_index("ix_alerts_route_created", ["route", "created_at"])
        batch.create_index("ix_alerts_digest_id", ["digest_id"])
        batch.create_index("ix_alerts_parent_id", ["parent_id"])
    # earlier alerts were each a top-level message about their story
    op.execute("UPDATE alerts SET thread_key = story_id")
    op.create_table(
        "watches",
        sa.Column("id", sa.String(length=200), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("vector_model", sa.String(length=200), nullable=True),
        sa.Column("min_similarity", sa.Float(), nullable=True),
        sa.Column("checked_until", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
    )
    op.create_table(
        "spike_episodes",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("started_hour", UTC, nullable=False),
        sa.Column("last_hour", UTC, nullable=False),
        sa.Column("peak_count", sa.Integer(), nullable=False),
        sa.Column("baseline_per_hour", sa.Float(), nullable=False),
        sa.Column("alert_id", sa.String(length=64), nullable=True),
    )
    op.create_index("ix_spike_episodes_key", "spike_episodes", ["key", "last_hour"])


def downgrade() -> None:
    op.drop_index("ix_spike_episodes_key", table_name="spike_episodes")
    op.drop_table("spike_episodes")
    op.drop_table("watches")
    with op.batch_alter_table("alerts") as batch:
        for index in ("ix_alerts_thread", "ix_alerts_route_created", "ix_alerts_digest_id", "ix_alerts_parent_id"):
            batch.drop_index(index)
        for column in (
            "route", "severity", "detail", "held_reason", "digest_id", "thread_key", "parent_id", "broadcast",
            "watch_id", "in_doubt", "remote_channel", "thread_ts", "stale", "reactions_up", "reactions_down",
            "reactions_checked_at",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("feeds") as batch:
        for column in ("state_affiliated", "key_outlet", "coverage_state"):
            batch.drop_column(column)
