"""Writing normalised articles: dedup at the door, new ones inserted, edited ones updated in place.

An entry is not a new article when, checked in this order (the first rule that matches names the reason):

1. `url`: its id (the hash of its canonical URL) is stored, or came earlier in the batch;
2. `guid`: its feed stored an entry with the same GUID (the outlet changed the link of the entry);
3. `title`: its source (`Article.source`, the outlet's feed name) stored an article whose normalised title
   is the same (`collectors.normalise.title_hash`, titles of 5 words or more) and published less than
   `DEDUP_WINDOW` (7 days) before or after it (the same story re-published under a new URL).

A `url` or `guid` match whose `content_hash` differs (the outlet edited title or summary) updates the stored
article (title, summary, text, hash, `updated_at`) instead of being dropped, and is counted as updated; see
`_UPDATE` for what that does to enrichment and the archive. A `title` match never updates: it is another
entry, and the first one stays the article. Within one batch the first occurrence wins (feeds list their
newest version first), and an article is updated at most once per batch.

A GUID that one batch gives to entries with different URLs is not trusted (a broken feed that gives every
item the same GUID must not collapse them into one article): those entries are matched by URL and title only.

Cost per batch, whatever its size up to `_CHUNK` entries: one SELECT (ids, GUID hashes and title hashes
together, each served by an index), one multi-row INSERT, at most two executemany UPDATEs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, insert, or_, select, tuple_
from sqlalchemy.orm import Session

from collectors.normalise import TEXT_FULLTEXT, NormalisedArticle
from core.models import Article

DEDUP_WINDOW = timedelta(days=7)
URL = "url"
GUID = "guid"
TITLE = "title"
REASONS = (URL, GUID, TITLE)

_CHUNK = 300  # entries per lookup query (3 IN lists: well under SQLite's 32,766 parameters) and per INSERT


@dataclass
class StoreReport:
    """What `store_articles_report` did: ids inserted and ids updated (both in input order), and the entries
    dropped as duplicates, counted by reason (`url`, `guid`, `title`; unchanged re-listings are `url`)."""

    new_ids: list[str] = field(default_factory=list)
    updated_ids: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))

    def to_dict(self) -> dict[str, object]:
        return {"new_ids": list(self.new_ids), "updated_ids": list(self.updated_ids), "duplicates": dict(self.duplicates)}


@dataclass
class _Stored:
    """A stored article as the lookup sees it."""

    id: str
    content_hash: str
    text_source: str | None


@dataclass
class _Plan:
    fresh: list[NormalisedArticle] = field(default_factory=list)
    # stored id -> (the entry that updates it, the stored article's text_source)
    updates: dict[str, tuple[NormalisedArticle, str | None]] = field(default_factory=dict)
    duplicates: Counter[str] = field(default_factory=Counter)


def _insert_statement(session: Session):  # type: ignore[no-untyped-def]
    """INSERT that skips a row another writer stored meanwhile (SQLite and PostgreSQL), plain INSERT else. On
    the table, not the ORM class: ORM bulk inserts split a batch by which values are None (one INSERT per
    pattern); a Core executemany sends one multi-row INSERT."""
    table = Article.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        return insert(table)
    return dialect_insert(table).on_conflict_do_nothing()


def _row(article: NormalisedArticle, now: datetime) -> dict[str, object]:
    return {
        "id": article.id,
        "feed_id": article.feed_id,
        "source": article.source,
        "url": article.url,
        "canonical_url": article.canonical_url,
        "guid": article.guid,
        "guid_hash": article.guid_hash,
        "title": article.title,
        "title_hash": article.title_hash,
        "summary": article.summary,
        "content": article.content,
        "text_source": article.text_source,
        "text_length": article.text_length,
        "paywall_suspected": article.paywall_suspected,
        "fulltext_error": article.fulltext_error,
        "language": article.language,
        "published_at": article.published_at,
        "fetched_at": article.fetched_at,
        "updated_at": now,
        "content_hash": article.content_hash,
        "relevant": False,
    }


def _guid_key(article: NormalisedArticle) -> tuple[int, str] | None:
    guid = article.guid_hash
    return (article.feed_id, guid) if guid and article.feed_id is not None else None


def _ambiguous_guids(articles: Sequence[NormalisedArticle]) -> set[tuple[int, str]]:
    """GUIDs that this batch gives to entries with different URLs: not identifiers, whatever the feed says."""
    urls: dict[tuple[int, str], str] = {}
    ambiguous: set[tuple[int, str]] = set()
    for article in articles:
        key = _guid_key(article)
        if key is not None and urls.setdefault(key, article.id) != article.id:
            ambiguous.add(key)
    return ambiguous


def _lookup(
    session: Session, articles: Sequence[NormalisedArticle], ambiguous: set[tuple[int, str]]
) -> tuple[dict[str, _Stored], dict[tuple[int, str], str], dict[tuple[str, str], list[datetime]]]:
    """Stored articles that the batch may repeat: by id, by GUID hash of the same feed, by title hash of the
    same source (in the window around the batch's dates). One query per `_CHUNK`."""
    by_id: dict[str, _Stored] = {}
    by_guid: dict[tuple[int, str], str] = {}
    by_title: dict[tuple[str, str], list[datetime]] = {}
    for start in range(0, len(articles), _CHUNK):
        chunk = articles[start : start + _CHUNK]
        conditions = [Article.id.in_({a.id for a in chunk})]
        # row values in the order of the indexes (guid_hash, feed_id) and (title_hash, source, published_at):
        # a wire copy's GUID or title stored by a hundred other feeds is not even read
        # (the single-column IN beside each is what lets SQLite's OR optimisation search the index at all)
        guids = {(key[1], key[0]) for a in chunk if (key := _guid_key(a)) is not None and key not in ambiguous}
        if guids:
            conditions.append(and_(Article.guid_hash.in_({guid for guid, _ in guids}),
                                   tuple_(Article.guid_hash, Article.feed_id).in_(guids)))
        titled = [a for a in chunk if a.title_hash]
        if titled:
            earliest = min(a.published_at for a in titled) - DEDUP_WINDOW
            latest = max(a.published_at for a in titled) + DEDUP_WINDOW
            conditions.append(
                and_(
                    Article.title_hash.in_({a.title_hash for a in titled}),
                    tuple_(Article.title_hash, Article.source).in_({(a.title_hash, a.source) for a in titled}),
                    Article.published_at > earliest,
                    Article.published_at < latest,
                )
            )
        rows = session.execute(
            select(
                Article.id, Article.content_hash, Article.text_source, Article.feed_id, Article.guid_hash,
                Article.source, Article.title_hash, Article.published_at,
            ).where(or_(*conditions))
        )
        for id_, hash_, text_source, feed_id, guid, source, title, published in rows:
            if id_ in by_id:
                continue
            by_id[id_] = _Stored(id_, hash_, text_source)
            if guid and feed_id is not None:
                by_guid.setdefault((feed_id, guid), id_)
            if title:
                by_title.setdefault((source, title), []).append(published)
    return by_id, by_guid, by_title


def _plan(session: Session, articles: Iterable[NormalisedArticle]) -> _Plan:
    """Decide, without writing, what becomes of each entry (see the module docstring)."""
    batch = list(articles)
    plan = _Plan()
    if not batch:
        return plan
    ambiguous = _ambiguous_guids(batch)
    stored, by_guid, by_title = _lookup(session, batch, ambiguous)
    seen: set[str] = set()

    def known(target: str, article: NormalisedArticle, reason: str) -> None:
        existing = stored.get(target)
        if existing is None or target in plan.updates or existing.content_hash == article.content_hash:
            plan.duplicates[reason] += 1
        else:
            plan.updates[target] = (article, existing.text_source)

    for article in batch:
        if article.id in seen:
            plan.duplicates[URL] += 1
            continue
        seen.add(article.id)
        if article.id in stored:
            known(article.id, article, URL)
            continue
        guid = _guid_key(article)
        if guid in ambiguous:
            guid = None
        if guid is not None and guid in by_guid:
            known(by_guid[guid], article, GUID)
            continue
        title = (article.source, article.title_hash) if article.title_hash else None
        if title is not None and any(
            abs(article.published_at - published) < DEDUP_WINDOW for published in by_title.get(title, ())
        ):
            plan.duplicates[TITLE] += 1
            continue
        plan.fresh.append(article)
        if guid is not None:
            by_guid[guid] = article.id
        if title is not None:
            by_title.setdefault(title, []).append(article.published_at)
    return plan


def new_or_changed(session: Session, articles: Iterable[NormalisedArticle]) -> list[NormalisedArticle]:
    """The entries that `store_articles` would insert or update, in input order, nothing written: those
    worth fetching the article page for (`collectors.fulltext`). Duplicates are left out."""
    batch = list(articles)
    plan = _plan(session, batch)
    chosen = {id(article) for article in plan.fresh} | {id(article) for article, _ in plan.updates.values()}
    return [article for article in batch if id(article) in chosen]


# What an edited entry changes. `updated_at` moves, so the archive re-indexes the article once it is enriched
# again. `enriched_at` is cleared so that enrichment recomputes language, relevance and (as `embedding_model` is
# cleared) the embedding from the new text. Story membership is kept: `StoryClusterer.assign` returns an article
# that already has a `story_id` as it is, so a re-enriched article is never counted twice in its story (the
# stale vector stays in `embedding` until then, for the story index that is rebuilt from member articles).
_UPDATE_FIELDS = ("title", "title_hash", "summary", "content_hash", "updated_at", "enriched_at", "embedding_model")
# ... and its text, unless the stored text is a fetched page and the entry brings only the feed's text.
_TEXT_FIELDS = ("content", "text_source", "text_length", "paywall_suspected", "fulltext_error")


def _update_statement(fields: Sequence[str]):  # type: ignore[no-untyped-def]
    table = Article.__table__
    return (
        table.update()
        .where(table.c.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in fields})
    )


def _update_values(article_id: str, article: NormalisedArticle, now: datetime, text: bool) -> dict[str, object]:
    values: dict[str, object] = {
        "b_id": article_id,
        "b_title": article.title,
        "b_title_hash": article.title_hash,
        "b_summary": article.summary,
        "b_content_hash": article.content_hash,
        "b_updated_at": now,
        "b_enriched_at": None,
        "b_embedding_model": None,
    }
    if text:
        values.update(
            b_content=article.content,
            b_text_source=article.text_source,
            b_text_length=article.text_length,
            b_paywall_suspected=article.paywall_suspected,
            b_fulltext_error=article.fulltext_error,
        )
    return values


def store_articles_report(session: Session, articles: Iterable[NormalisedArticle], now: datetime) -> StoreReport:
    """Store a batch (see the module docstring); the report says what was new, updated and dropped."""
    plan = _plan(session, articles)
    report = StoreReport()
    report.duplicates.update(plan.duplicates)

    statement = _insert_statement(session)
    for start in range(0, len(plan.fresh), _CHUNK):
        rows = [_row(article, now) for article in plan.fresh[start : start + _CHUNK]]
        inserted = set(session.scalars(statement.returning(Article.__table__.c.id), rows))
        report.new_ids.extend(row["id"] for row in rows if row["id"] in inserted)  # type: ignore[misc]
        report.duplicates[URL] += len(rows) - len(inserted)  # stored by another writer meanwhile

    with_text: list[dict[str, object]] = []
    without_text: list[dict[str, object]] = []
    for article_id, (article, stored_source) in plan.updates.items():
        keep_page = stored_source == TEXT_FULLTEXT and article.text_source != TEXT_FULLTEXT
        (without_text if keep_page else with_text).append(_update_values(article_id, article, now, not keep_page))
        report.updated_ids.append(article_id)
    if with_text:
        session.execute(_update_statement(_UPDATE_FIELDS + _TEXT_FIELDS), with_text)
    if without_text:
        session.execute(_update_statement(_UPDATE_FIELDS), without_text)
    return report


def store_articles(session: Session, articles: Iterable[NormalisedArticle], now: datetime) -> list[str]:
    """Store a batch; returns the ids of the new articles, in input order (see `store_articles_report`)."""
    return store_articles_report(session, articles, now).new_ids
