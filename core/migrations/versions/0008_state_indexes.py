"""state indexes: indexes so that every stage's per-article cost stays flat as the state DB grows (issue 19, item 4)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

Found by `bench/state_bench.py` (per-article cost of each stage at 10k to 1M articles) and checked by the query
plans of `tests/test_state_plans.py`. Mirrored by ``Index(...)`` in core/models.py.

- The archive's pending queue (`archive.index`, `indexed_at IS NULL OR indexed_at <> updated_at`) read every
  article and story: on SQLite a partial index holds only the pending rows (a handful after each run); on
  PostgreSQL an index on the condition itself, whose ANALYZE statistics let the planner use it (it priced a
  partial index by its guess for the condition over the whole table and read every row at 1M articles).
- Spikes (`alerts.spikes`) read a topic's relevant articles in a window, and the first one: with one topic
  every article has it, so the index on `topic` alone read the whole table; (topic, relevant, published_at)
  reads the window's relevant articles, and finds the first at once.
- Coverage health (`alerts.coverage`) reads a feed's last day of articles: (feed_id, fetched_at), not every
  article the feed ever gave.
- The update rule (`alerts.rules`) read every story and every alert ever made; it reads the active stories now
  (those that can still take articles), found by (merged_into, last_seen), as is the newest story
  (`max(last_seen)`, also at every enrichment run's start). The new-story rule still reads every unalerted
  story over its thresholds: one that became alert-worthy during a long alert outage still alerts.
- Merges (`alerts.rules.story_merged_alerts`) read the recent `merged` events: (at, kind), the last week's
  events (kind first would draw SQLite's lookup of one story's `development` events away from
  ix_story_events_story_at, onto every development event ever).
- Stale thread parents (`alerts.outbox`) are found by (stale, status), not among every sent alert; the reactions
  read back (`alerts.feedback`) by (status, sent_at).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The pending queue's definition (archive.index._stale): the planners use these indexes for a query whose WHERE
# contains this very condition.
UNINDEXED = "indexed_at IS NULL OR indexed_at <> updated_at"

# (name, table, columns, partial condition or None)
INDEXES = (
    ("ix_articles_unindexed", "articles", ["id"], UNINDEXED),
    ("ix_stories_unindexed", "stories", ["id"], UNINDEXED),
    ("ix_articles_topic_relevant", "articles", ["topic", "relevant", "published_at"], None),
    ("ix_articles_feed_fetched", "articles", ["feed_id", "fetched_at"], None),
    ("ix_stories_active", "stories", ["merged_into", "last_seen"], None),
    ("ix_story_events_at", "story_events", ["at", "kind"], None),
    ("ix_alerts_stale", "alerts", ["stale", "status"], None),
    ("ix_alerts_status_sent", "alerts", ["status", "sent_at"], None),
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, table, columns, where in INDEXES:
        if where and postgresql:  # an index on the condition (see the module doc, core.models.unindexed_indexes)
            op.create_index(f"{name}_expr", table, [sa.text(f"({where})")])
        elif where:
            op.create_index(name, table, columns, sqlite_where=sa.text(where))
        else:
            op.create_index(name, table, columns)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, table, _columns, where in reversed(INDEXES):
        op.drop_index(f"{name}_expr" if where and postgresql else name, table_name=table)
