"""feed schedule and health: next fetch, adaptive interval, health, rhythm

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("next_fetch_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("interval_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("schedule_reason", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("health", sa.String(length=16), nullable=False, server_default="ok"))
        batch.add_column(sa.Column("last_new_item_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("items_per_day", sa.Float(), nullable=True))
        batch.create_index("ix_feeds_next_fetch_at", ["next_fetch_at"])
    # feeds that were failing before the upgrade keep their state
    op.execute("UPDATE feeds SET health = 'failing' WHERE consecutive_failures > 0")


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_index("ix_feeds_next_fetch_at")
        batch.drop_column("items_per_day")
        batch.drop_column("last_new_item_at")
        batch.drop_column("health")
        batch.drop_column("schedule_reason")
        batch.drop_column("interval_seconds")
        batch.drop_column("next_fetch_at")
