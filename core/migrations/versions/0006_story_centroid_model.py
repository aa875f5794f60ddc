"""stories: which embedding model made the centroid

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("stories") as batch:
        batch.add_column(sa.Column("centroid_model", sa.String(length=200), nullable=True))
    # a story's centroid was made of its members' vectors: the model of its representative article's
    op.execute(
        "UPDATE stories SET centroid_model = (SELECT articles.embedding_model FROM articles "
        "WHERE articles.id = stories.representative_article_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("stories") as batch:
        batch.drop_column("centroid_model")
