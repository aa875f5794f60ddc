"""articles: dedup keys (GUID hash per feed, title hash per source) and where the text came from (full text)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

"""
from typing import Sequence, Union
import hashlib
import re
import unicodedata

from alembic import op
import sqlalchemy as sa


revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_CHUNK = 1000
# Frozen copies of collectors.normalise.title_hash / guid_hash as of this revision (a migration does not import
# the application: it must give the same rows whatever the code becomes later).
_TITLE_WORD = re.compile(r"\w+")
_TITLE_HASH_MIN_WORDS = 5


def _title_hash(title: str | None) -> str | None:
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", title or "").casefold())
    key = " ".join(_TITLE_WORD.findall("".join(c for c in decomposed if not unicodedata.combining(c))))
    if key.count(" ") + 1 < _TITLE_HASH_MIN_WORDS:
        return None
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _guid_hash(guid: str | None) -> str | None:
    return hashlib.sha256(guid.encode("utf-8")).hexdigest()[:32] if guid else None


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("guid_hash", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("title_hash", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("text_source", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("text_length", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("paywall_suspected", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("fulltext_error", sa.String(length=32), nullable=True))
        batch.create_index("ix_articles_guid", ["guid_hash", "feed_id"])
        batch.create_index("ix_articles_title", ["title_hash", "source", "published_at"])

    # articles stored before: their text came from the feed; their keys are computed so that an entry seen
    # again after the upgrade under a new link (same GUID) or a new URL (same title) is recognised
    op.execute(
        "UPDATE articles SET text_source = CASE WHEN content IS NULL THEN 'summary' ELSE 'feed' END, "
        "text_length = length(coalesce(content, summary, ''))"
    )
    connection = op.get_bind()
    articles = sa.table(
        "articles", sa.column("id", sa.String), sa.column("guid", sa.String), sa.column("title", sa.Text),
        sa.column("guid_hash", sa.String), sa.column("title_hash", sa.String),
    )
    statement = (
        articles.update()
        .where(articles.c.id == sa.bindparam("b_id"))
        .values(guid_hash=sa.bindparam("b_guid"), title_hash=sa.bindparam("b_title"))
    )
    last = ""
    while True:  # keyset pages: bounded memory on a large table
        rows = connection.execute(
            sa.select(articles.c.id, articles.c.guid, articles.c.title)
            .where(articles.c.id > last)
            .order_by(articles.c.id)
            .limit(_CHUNK)
        ).all()
        if not rows:
            break
        connection.execute(
            statement,
            [{"b_id": id_, "b_guid": _guid_hash(guid), "b_title": _title_hash(title)} for id_, guid, title in rows],
        )
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.drop_index("ix_articles_title")
        batch.drop_index("ix_articles_guid")
        batch.drop_column("fulltext_error")
        batch.drop_column("paywall_suspected")
        batch.drop_column("text_length")
        batch.drop_column("text_source")
        batch.drop_column("title_hash")
        batch.drop_column("guid_hash")
