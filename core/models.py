"""Domain models: the state every stage reads and writes (SQLAlchemy 2, SQLite or PostgreSQL).

Schema changes go through Alembic migrations in `core/migrations/versions/`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


# The archive's pending queue (archive.index: not indexed, or changed since), and the indexes that find it
# without reading every row (migration 0008).
UNINDEXED = "indexed_at IS NULL OR indexed_at <> updated_at"


def unindexed_indexes(name: str) -> tuple[Index, Index]:
    """SQLite: `name`, a partial index of the pending rows. PostgreSQL: `name`_expr, an index on the condition
    itself. Its planner prices a partial index's scan by its guess for the condition over the whole table (most
    rows, for a comparison of two columns), so at a million rows it read the whole table instead; an index on
    the expression gets statistics from ANALYZE and is used (0.2 ms instead of 240 ms at 1M rows, 200 pending)."""
    return (
        Index(name, "id", sqlite_where=text(UNINDEXED)).ddl_if(dialect="sqlite"),
        Index(f"{name}_expr", text(f"({UNINDEXED})")).ddl_if(dialect="postgresql"),
    )


def on_dialect(dialect: str) -> Callable[..., bool]:
    """Alembic's `include_object` for comparing the models with a `dialect` database (autogenerate): the indexes
    made only on another dialect (`Index.ddl_if`, which Alembic does not read) are left out."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        only = getattr(obj, "_ddl_if", None)
        return only is None or only.dialect in (None, dialect)

    return include


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Flankwatch stores UTC-aware timestamps only")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class Feed(Base):
    """An outlet's feed and its polling state."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(8))
    country: Mapped[str | None] = mapped_column(String(8))
    fulltext: Mapped[bool] = mapped_column(Boolean, default=False)
    state_affiliated: Mapped[bool] = mapped_column(Boolean, default=False)  # feeds.yaml `state_affiliated`
    key_outlet: Mapped[bool] = mapped_column(Boolean, default=False)  # feeds.yaml `key`: coverage health watches it
    coverage_state: Mapped[str | None] = mapped_column(String(16))  # last state alerted: ok | silent | failing | paywalled
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    origin: Mapped[str] = mapped_column(String(16), default="config")  # config | opml | demo
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(128))
    last_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[str | None] = mapped_column(String(16))  # ok | not_modified | error
    last_error_class: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    items_total: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # schedule (collectors.schedule): a feed is polled when next_fetch_at is due (NULL: at once)
    next_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    interval_seconds: Mapped[int | None] = mapped_column(Integer)  # adaptive interval; NULL until the first success
    schedule_reason: Mapped[str | None] = mapped_column(String(16))  # interval | max_age | ttl | backoff | retry_after | unhealthy
    health: Mapped[str] = mapped_column(String(16), default="ok")  # ok | failing | unhealthy
    last_new_item_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last poll that stored a new article
    items_per_day: Mapped[float | None] = mapped_column(Float)  # the feed's rhythm, from its entries' dates
    # a collection shard's lease on the feed (core.claims): who polls it now, and until when at the latest
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FetchRecord(Base):
    """One poll of one feed in one run."""

    __tablename__ = "fetches"
    __table_args__ = (UniqueConstraint("run_id", "feed_id", name="uq_fetches_run_feed"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))  # ok | not_modified | error
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_class: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    items_seen: Mapped[int] = mapped_column(Integer, default=0)
    items_new: Mapped[int] = mapped_column(Integer, default=0)


class Article(Base):
    """A news item. `id` is a hash of the canonical URL, so a re-run never duplicates it."""

    __tablename__ = "articles"
    __table_args__ = (
        Index("ix_articles_pending_enrich", "enriched_at"),
        Index("ix_articles_pending_index", "indexed_at"),
        Index("ix_articles_published", "published_at"),
        # dedup at the door (collectors.store): an entry's GUID within its feed, a title within its source
        Index("ix_articles_guid", "guid_hash", "feed_id"),
        Index("ix_articles_title", "title_hash", "source", "published_at"),
        # state indexes (migration 0008): the archive's pending queue, spike windows, coverage windows
        *unindexed_indexes("ix_articles_unindexed"),
        Index("ix_articles_topic_relevant", "topic", "relevant", "published_at"),
        Index("ix_articles_feed_fetched", "feed_id", "fetched_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="SET NULL"), index=True)
    source: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2048))
    canonical_url: Mapped[str] = mapped_column(String(2048), unique=True)
    guid: Mapped[str | None] = mapped_column(String(2048))
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    content_hash: Mapped[str] = mapped_column(String(64))
    guid_hash: Mapped[str | None] = mapped_column(String(32))  # hash of `guid` (collectors.normalise.guid_hash)
    title_hash: Mapped[str | None] = mapped_column(String(32))  # hash of the normalised title; NULL: too short
    # where `content` comes from: feed (the entry's full text) | summary (none: only the summary) | fulltext
    # (the article page, extracted); text_length: characters of content, else of the summary
    text_source: Mapped[str | None] = mapped_column(String(16))
    text_length: Mapped[int | None] = mapped_column(Integer)
    paywall_suspected: Mapped[bool] = mapped_column(Boolean, default=False)  # the page gave only a teaser
    fulltext_error: Mapped[str | None] = mapped_column(String(32))  # error class of the failed page fetch

    # enrichment
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32, L2-normalised
    embedding_model: Mapped[str | None] = mapped_column(String(200))  # `Embedder.name` of what made it
    enriched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    topic: Mapped[str | None] = mapped_column(String(100), index=True)  # best-scoring topic
    relevance: Mapped[float | None] = mapped_column(Float)
    relevance_reason: Mapped[str | None] = mapped_column(Text)
    relevant: Mapped[bool] = mapped_column(Boolean, default=False)
    story_id: Mapped[str | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"), index=True)
    novel_terms: Mapped[list[str] | None] = mapped_column(JSON)  # facts this article added to its story
    minhash: Mapped[bytes | None] = mapped_column(LargeBinary)  # syndication signature of title + summary
    syndicated_from: Mapped[str | None] = mapped_column(String(32))  # the earlier article it copies (wire text)

    # an embedding batch's lease on the pending article (core.claims, enrichment.batches)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # archive
    indexed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Story(Base):
    """One real-world event: many articles, sources and languages."""

    __tablename__ = "stories"
    __table_args__ = (
        *unindexed_indexes("ix_stories_unindexed"),
        Index("ix_stories_active", "merged_into", "last_seen"),  # the active stories, the newest (0008)
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    topic: Mapped[str] = mapped_column(String(100), index=True)
    headline: Mapped[str] = mapped_column(Text)
    representative_article_id: Mapped[str | None] = mapped_column(String(32))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    article_count: Mapped[int] = mapped_column(Integer, default=0)
    source_count: Mapped[int] = mapped_column(Integer, default=0)
    # articles per outlet; `source_count` counts independent sources only: an outlet whose articles in the
    # story are all copies of wire text already there (`copy_sources`) adds no independent voice
    sources: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    copy_sources: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    syndicated_outlets: Mapped[int] = mapped_column(Integer, default=0)  # outlets that ran a copy
    language_counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    terms: Mapped[list[str]] = mapped_column(JSON, default=list)  # known facts: entities and numbers
    centroid: Mapped[bytes] = mapped_column(LargeBinary)  # float32, L2-normalised
    centroid_model: Mapped[str | None] = mapped_column(String(200))  # the embedding model of its members' vectors
    born_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # reached the size/source thresholds
    merged_into: Mapped[str | None] = mapped_column(String(32), index=True)  # absorbed by that story
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    indexed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StoryEvent(Base):
    """Something new in a story that alerts can use: born, growing, development (new facts), merged.
    `id` is deterministic (story, kind and what happened), so recording an event twice keeps one row."""

    __tablename__ = "story_events"
    __table_args__ = (
        Index("ix_story_events_story_at", "story_id", "at"),
        Index("ix_story_events_at", "at", "kind"),  # recent merges (migration 0008)
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    story_id: Mapped[str] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # born | growing | development | merged
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # publication time of the article that caused it
    article_id: Mapped[str | None] = mapped_column(String(32))
    facts: Mapped[list[str]] = mapped_column(JSON, default=list)  # development: the new facts, numbers first
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IndexFailure(Base):
    """Why a document is still pending in the archive. The pending queue itself is `indexed_at <> updated_at`
    on articles and stories (see archive.index); this row says what went wrong last, and how often, for
    `flankwatch archive status`. It is deleted once the document is indexed."""

    __tablename__ = "index_failures"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # article | story
    doc_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alert(Base):
    """The outbox: written before it is sent, marked sent after. `id` is deterministic, so a rule that
    fires twice for the same thing produces the same row, never a second message.

    Threads: the alerts of one story (`thread_key`) in one channel form a Slack thread. The first one
    (`parent_id` NULL) opens it; the others name it in `parent_id` and are sent as replies once it is sent.
    Held alerts (quiet hours, over budget) are never sent alone: a digest of their route carries them.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_status", "status"),
        Index("ix_alerts_thread", "thread_key", "channel"),
        Index("ix_alerts_route_created", "route", "created_at"),
        Index("ix_alerts_stale", "stale", "status"),  # parents to update (migration 0008)
        Index("ix_alerts_status_sent", "status", "sent_at"),  # reactions to read back (migration 0008)
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # new_story | story_update | story_merged | watch_match | spike | coverage | digest
    kind: Mapped[str] = mapped_column(String(32))
    story_id: Mapped[str | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"), index=True)
    topic: Mapped[str | None] = mapped_column(String(100))
    route: Mapped[str | None] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(8), default="normal")  # low | normal | high
    channel: Mapped[str] = mapped_column(String(200), default="")
    story_article_count: Mapped[int] = mapped_column(Integer, default=0)  # story size when it fired
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"text": ..., "blocks": [...]}
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what the rule saw (spike counts, ...)
    # pending | held (quiet hours or budget: waits for a digest) | digested | sent | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    held_reason: Mapped[str | None] = mapped_column(String(16))  # quiet_hours | budget
    digest_id: Mapped[str | None] = mapped_column(String(64), index=True)  # the digest that carried it
    thread_key: Mapped[str | None] = mapped_column(String(64))  # a story id (or an article's, for a watch match)
    parent_id: Mapped[str | None] = mapped_column(String(64), index=True)  # the alert that opened the thread
    broadcast: Mapped[bool] = mapped_column(Boolean, default=False)  # a reply also shown in the channel
    watch_id: Mapped[str | None] = mapped_column(String(200))  # the saved search that matched
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # A send whose outcome is unknown (the request went out, no answer: timeout, reset, crash): before
    # posting again, the sender looks for the alert id in the channel's messages.
    in_doubt: Mapped[bool] = mapped_column(Boolean, default=False)
    delivery: Mapped[str | None] = mapped_column(String(16))  # slack | console
    remote_id: Mapped[str | None] = mapped_column(String(64))  # Slack message ts
    remote_channel: Mapped[str | None] = mapped_column(String(64))  # the channel id Slack answered with
    thread_ts: Mapped[str | None] = mapped_column(String(64))  # the parent's ts, for a reply
    stale: Mapped[bool] = mapped_column(Boolean, default=False)  # a parent whose counts need chat.update
    reactions_up: Mapped[int] = mapped_column(Integer, default=0)  # 👍 read back from Slack
    reactions_down: Mapped[int] = mapped_column(Integer, default=0)  # 👎
    reactions_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Watch(Base):
    """A saved search that alerts (`flankwatch watch add`). Its query lives in the archive too, where the
    percolator (ES) or its SQLite equivalent matches new articles against it."""

    __tablename__ = "watches"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(Text, default="")
    query: Mapped[dict[str, Any]] = mapped_column(JSON)  # archive.base.SearchQuery.to_dict()
    mode: Mapped[str] = mapped_column(String(16), default="words")  # words | meaning | hybrid
    route: Mapped[str] = mapped_column(String(200), default="default")
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)  # the query's embedding (meaning, hybrid)
    vector_model: Mapped[str | None] = mapped_column(String(200))
    min_similarity: Mapped[float | None] = mapped_column(Float)  # meaning: raw cosine a match needs
    checked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # articles indexed up to here were matched
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SpikeEpisode(Base):
    """A run of hours in which a topic's or a place's volume stood far above its own baseline."""

    __tablename__ = "spike_episodes"
    __table_args__ = (Index("ix_spike_episodes_key", "key", "last_hour"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200))  # topic:<name> | place:<topic>:<keyword>
    started_hour: Mapped[datetime] = mapped_column(UTCDateTime)
    last_hour: Mapped[datetime] = mapped_column(UTCDateTime)  # the latest hour that spiked
    peak_count: Mapped[int] = mapped_column(Integer, default=0)
    baseline_per_hour: Mapped[float] = mapped_column(Float, default=0.0)
    alert_id: Mapped[str | None] = mapped_column(String(64))


class PipelineRun(Base):
    """One cycle of the pipeline (CLI `run --once`, a DAG run, a demo cycle)."""

    __tablename__ = "pipeline_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="running")
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
