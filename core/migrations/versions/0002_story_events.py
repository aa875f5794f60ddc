"""story events, merges and syndication

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("minhash", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("syndicated_from", sa.String(length=32), nullable=True))
    with op.batch_alter_table("stories") as batch:
        batch.add_column(sa.Column("copy_sources", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("syndicated_outlets", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("born_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("merged_into", sa.String(length=32), nullable=True))
        batch.create_index("ix_stories_merged_into", ["merged_into"])
    op.create_table(
        "story_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("story_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("article_id", sa.String(length=32), nullable=True),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["story_id"], ["stories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_story_events_story_at", "story_events", ["story_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_story_events_story_at", table_name="story_events")
    op.drop_table("story_events")
    with op.batch_alter_table("stories") as batch:
        batch.drop_index("ix_stories_merged_into")
        batch.drop_column("merged_into")
        batch.drop_column("born_at")
        batch.drop_column("syndicated_outlets")
        batch.drop_column("copy_sources")
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("syndicated_from")
        batch.drop_column("minhash")
