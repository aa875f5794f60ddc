"""Watches: saved searches that alert. An analyst's standing query, matched against every article indexed
after it was added, by words (the archive's percolator), by meaning (the query's vector against the
articles' stored embeddings) or both (hybrid: either one).

A watch lives in two places: its query in the archive (`ArchiveBackend.save_search`, where the ES
percolator or its SQLite equivalent evaluates it with exactly the semantics of `search`), and a `Watch`
row in the state DB (mode, route, vector and how far it has been checked). `watch_alerts` writes one
`watch_match` alert per (watch, story): the first match opens a Slack thread, or replies in the story's
existing thread of that channel; later matches of the same story reply to that thread, one per article.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from alerts.blocks import context, header, section, utc
from alerts.escape import clean_text, escape_mrkdwn, link, truncate
from alerts.outbox import add
from alerts.routing import place
from alerts.threads import thread_parent
from archive.base import ArchiveBackend, ArticleDoc, SavedSearch, SearchQuery
from archive.documents import article_doc
from core.ids import stable_id
from core.models import Alert, Article, Story, Watch
from core.settings import AlertRoute, Settings
from core.vectors import from_bytes, to_bytes

if TYPE_CHECKING:
    from enrichment.embeddings import Conventions, Embedder

log = logging.getLogger(__name__)

MODES = ("words", "meaning", "hybrid")
KIND = "watch_match"
BATCH_SIZE = 500  # articles read (and percolated) at a time: memory stays bounded whatever the backlog
SLUG_MAX = 40
TITLE_MAX = 300
SOURCE_MAX = 80
HEADLINE_MAX = 300

# --- the meaning threshold ------------------------------------------------------------------------------
# A meaning match is a raw cosine (the stored article vector . the query vector, both the model's own unit
# vectors) of at least `Watch.min_similarity`: the alert stage compares vectors without loading the model.
# The threshold is set where the relevance constants live, on all-MiniLM-L6-v2's scale (`Conventions.
# cosine_scale` maps a model's centred cosines onto it): 0.45, between the 99th percentile of unrelated
# headlines (0.42) and the median of relevant ones (0.49) in enrichment.relevance. A single query is as strict
# as a seed, so that is where an alert should start.
MEANING_THRESHOLD = 0.45
# A model without a common direction (all-MiniLM-L6-v2, scale (1, 0)) compares raw cosines on that scale, so
# its threshold is 0.45 itself. A centred model (e5: unrelated texts sit near 0.76 raw) needs the raw cosine
# that goes with it: least squares of the raw cosine on the model's own centred cosine, over every
# (query, article) pair of the dev files (UCI headlines as queries vs the other headlines, 2,400 pairs; WMT
# English titles, whole and cut to five words, vs the Russian articles, 5,800 pairs): raw = 0.719 + 0.267 x
# centred (corr. 0.81-0.87). 0.45 -> centred (0.45 + 0.303) / 1.841 = 0.409 -> raw 0.828. Measured there at
# 0.828: UCI recall 0.60 with 0.5% of other stories' headlines matching (all-MiniLM-L6-v2 at 0.45: 0.61 and
# 0.2%); English title vs its Russian translation 0.87 (5-word queries 0.46) with 0.1% false matches. Per-query
# baselines (the generic sentences' cosines to the query) did no better and lost the short cross-language
# queries (0.22-0.31 recall at the same false-match rate).
CENTRED_RAW_INTERCEPT = 0.719
CENTRED_RAW_SLOPE = 0.267


def raw_threshold(conventions: Conventions) -> float:
    """The raw cosine that a meaning match needs with a model of these conventions (see the comment above)."""
    scale, offset = conventions.cosine_scale
    own = (MEANING_THRESHOLD - offset) / scale  # the model's own (centred) cosine of MEANING_THRESHOLD
    if not conventions.centred:
        return round(own, 4)
    return round(CENTRED_RAW_INTERCEPT + CENTRED_RAW_SLOPE * own, 4)


# --- adding, removing, listing --------------------------------------------------------------------------


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")[:SLUG_MAX].rstrip("-")
    return slug or "watch"


def watch_id(query: SearchQuery, mode: str, name: str = "") -> str:
    """Stable id: a slug of the name (else the query) and a hash of what is matched (mode, text, filters), so
    adding the same search again finds the same watch."""
    digest = stable_id("watch", mode, json.dumps(query.to_dict(), sort_keys=True, ensure_ascii=False), length=8)
    return f"{_slug(name or query.text)}-{digest}"


def _route(settings: Settings, name: str) -> AlertRoute:
    try:
        return settings.route_named(name)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None


def add_watch(
    session: Session,
    archive: ArchiveBackend,
    settings: Settings,
    text: str,
    *,
    mode: str = "words",
    sources: Sequence[str] = (),
    languages: Sequence[str] = (),
    topics: Sequence[str] = (),
    route: str = "default",
    name: str = "",
    embedder: Embedder | None = None,
    now: datetime | None = None,
) -> Watch:
    """Save a watch in the archive and the state DB (flushed, not committed). Only articles indexed after
    `now` (default: the current time) alert. Raises ValueError on an unknown mode or route, and on a query that
    would match everything or, by meaning, has no text. Adding the same search again updates its name and
    route and keeps how far it was checked."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    _route(settings, route)
    text = (text or "").strip()
    if mode != "words" and not text:
        raise ValueError(f"a {mode} watch needs query text")
    now = now or datetime.now(timezone.utc)
    query = SearchQuery(text=text, sources=tuple(sources), languages=tuple(languages), topics=tuple(topics))
    saved = SavedSearch(id=watch_id(query, mode, name), query=query, name=name)

    vector = model = threshold = None
    if mode != "words":
        if embedder is None:
            from enrichment.embeddings import get_embedder

            embedder = get_embedder(settings.embedding_model)
        vector = to_bytes(embedder.queries([text])[0])
        model, threshold = embedder.name, raw_threshold(embedder.conventions)

    archive.save_search(saved)  # raises ValueError on a query that would match every article
    watch = session.get(Watch, saved.id)
    if watch is None:
        watch = Watch(id=saved.id, query=query.to_dict(), mode=mode, checked_until=now, created_at=now)
        session.add(watch)
    watch.name, watch.route = name, route
    watch.vector, watch.vector_model, watch.min_similarity = vector, model, threshold
    session.flush()
    return watch


def remove_watch(session: Session, archive: ArchiveBackend, watch_id: str) -> bool:
    """Remove a watch from the archive and the state DB (flushed); True if either held it. Its alerts stay."""
    in_archive = archive.delete_search(watch_id)
    watch = session.get(Watch, watch_id)
    if watch is not None:
        session.delete(watch)
        session.flush()
    return in_archive or watch is not None


def list_watches(session: Session) -> list[Watch]:
    return list(session.scalars(select(Watch).order_by(Watch.created_at, Watch.id)))


def watch_label(watch: Watch) -> str:
    """The watch's name, else its query text, else its filters: what the analyst called it."""
    return watch.name or watch.query.get("text") or filters_text(watch) or watch.id


def filters_text(watch: Watch) -> str:
    parts = []
    for key, label in (("sources", "source"), ("languages", "language"), ("topics", "topic")):
        values = watch.query.get(key) or []
        if values:
            parts.append(f"{label}: {', '.join(values)}")
    return "; ".join(parts)


# --- matching -------------------------------------------------------------------------------------------


@dataclass
class _Compiled:
    """A watch ready to match: its query, and its vector when it matches by meaning."""

    watch: Watch
    query: SearchQuery
    vector: np.ndarray | None
    since: datetime

    @property
    def by_words(self) -> bool:
        return self.watch.mode in ("words", "hybrid")

    @property
    def by_meaning(self) -> bool:
        return self.watch.mode in ("meaning", "hybrid") and self.vector is not None


def _compile(watch: Watch) -> _Compiled:
    vector = None
    if watch.vector and watch.mode != "words":
        vector = np.asarray(from_bytes(watch.vector), dtype=np.float32)
    return _Compiled(watch, SearchQuery.from_dict(watch.query), vector, watch.checked_until or watch.created_at)


def _passes_filters(query: SearchQuery, doc: ArticleDoc) -> bool:
    """The query's filters on one document, as the archive applies them (exact terms, inclusive dates): what
    a meaning match must also satisfy."""
    if query.sources and doc.source not in query.sources:
        return False
    if query.languages and doc.language not in query.languages:
        return False
    if query.story_ids and doc.story_id not in query.story_ids:
        return False
    if query.topics and not set(doc.topics) & set(query.topics):
        return False
    if query.date_from is not None and doc.published_at < query.date_from:
        return False
    return query.date_to is None or doc.published_at <= query.date_to


def _similarity(compiled: _Compiled, doc: ArticleDoc) -> float | None:
    """The raw cosine of the article's stored embedding with the watch's vector; None when the article has
    none of the watch's model (vectors of two models are never compared)."""
    if compiled.vector is None or doc.embedding is None or doc.embedding_model != compiled.watch.vector_model:
        return None
    if doc.embedding.shape != compiled.vector.shape:
        return None
    return float(doc.embedding @ compiled.vector)


def _indexed_batches(session: Session, after: datetime, now: datetime) -> Iterator[list[Article]]:
    """Articles with `after < indexed_at <= now`, oldest indexed first, `BATCH_SIZE` at a time (keyset)."""
    last: tuple[datetime, str] | None = None
    while True:
        statement = select(Article).where(Article.indexed_at.is_not(None), Article.indexed_at <= now)
        if last is None:
            statement = statement.where(Article.indexed_at > after)
        else:
            statement = statement.where(
                or_(Article.indexed_at > last[0], and_(Article.indexed_at == last[0], Article.id > last[1]))
            )
        batch = list(session.scalars(statement.order_by(Article.indexed_at, Article.id).limit(BATCH_SIZE)))
        if not batch:
            return
        yield batch
        if len(batch) < BATCH_SIZE:
            return
        last = (batch[-1].indexed_at, batch[-1].id)


def _docs(batch: Sequence[Article]) -> dict[str, ArticleDoc]:
    docs = {}
    for article in batch:
        try:
            docs[article.id] = article_doc(article)
        except (ValueError, TypeError) as exc:  # a corrupt embedding blob: the index stage refuses it too
            log.warning("watch: article %s skipped: %s", article.id, exc)
    return docs


def _ensure_registered(archive: ArchiveBackend, compiled: Sequence[_Compiled]) -> None:
    """Save again in the archive the word watches it lost (a new cluster, a deleted archive file): the state
    DB is the record of what an analyst asked for."""
    held = {saved.id for saved in archive.list_searches()}
    for item in compiled:
        if item.by_words and item.watch.id not in held:
            archive.save_search(SavedSearch(id=item.watch.id, query=item.query, name=item.watch.name))


def watch_alerts(session: Session, settings: Settings, now: datetime, archive: ArchiveBackend) -> list[Alert]:
    """The `watch_match` alerts of the articles indexed since each watch was last checked and up to `now`
    (written with `alerts.outbox.add`, flushed, not committed: the caller owns the transaction). Each watch's
    `checked_until` moves to the newest `indexed_at` it looked at. Safe to re-run: ids are deterministic, and
    an article never alerts twice for one watch."""
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: pass a UTC-aware clock")
    compiled = [_compile(watch) for watch in list_watches(session)]
    if not compiled:
        return []
    if any(item.by_words for item in compiled):
        _ensure_registered(archive, compiled)
    created: list[Alert] = []
    newest: dict[str, datetime] = {}
    for batch in _indexed_batches(session, min(item.since for item in compiled), now):
        docs = _docs(batch)
        fresh = {item.watch.id: [a for a in batch if a.indexed_at > item.since and a.id in docs] for item in compiled}
        wanted = [docs[a.id] for item in compiled if item.by_words for a in fresh[item.watch.id]]
        percolated = archive.percolate(list({doc.id: doc for doc in wanted}.values())) if wanted else {}
        for item in compiled:
            articles = fresh[item.watch.id]
            if not articles:
                continue
            newest[item.watch.id] = max(a.indexed_at for a in articles)
            matches = []
            for article in articles:
                doc = docs[article.id]
                by_words = item.by_words and item.watch.id in percolated.get(article.id, ())
                similarity = _similarity(item, doc) if item.by_meaning else None
                threshold = item.watch.min_similarity
                by_meaning = (
                    similarity is not None and threshold is not None and similarity >= threshold
                    and _passes_filters(item.query, doc)
                )
                if by_words or by_meaning:
                    matches.append((article, similarity, by_words, by_meaning))
            if matches:
                created += _alerts_for(session, settings, now, item.watch, matches)
    for item in compiled:
        if item.watch.id in newest and newest[item.watch.id] > item.since:
            item.watch.checked_until = newest[item.watch.id]
    session.flush()
    return created


# --- alerts ---------------------------------------------------------------------------------------------


def opener_id(watch_id: str, thread_key: str) -> str:
    return stable_id("alert", "watch", watch_id, thread_key)


def reply_id(watch_id: str, article_id: str) -> str:
    return stable_id("alert", "watch", watch_id, article_id)


def _alerted(session: Session, watch_id: str, article_ids: Sequence[str]) -> set[str]:
    """Which of these articles already alerted for the watch (as an opener or a reply): an article that
    changed and was re-indexed, or moved to another story, never alerts twice."""
    article = Alert.detail["article_id"].as_string()
    rows = session.scalars(
        select(article).where(Alert.watch_id == watch_id, Alert.kind == KIND, article.in_(list(article_ids)))
    )
    return {value for value in rows if value}


def _alerts_for(
    session: Session,
    settings: Settings,
    now: datetime,
    watch: Watch,
    matches: Sequence[tuple[Article, float | None, bool, bool]],
) -> list[Alert]:
    route = _watch_route(settings, watch.route)
    done = _alerted(session, watch.id, [article.id for article, *_ in matches])
    created = []
    for article, similarity, by_words, by_meaning in matches:
        if article.id in done:
            continue
        story = session.get(Story, article.story_id) if article.story_id else None
        thread_key = article.story_id or article.id
        first = session.get(Alert, opener_id(watch.id, thread_key)) is None
        matched_by = [kind for kind, hit in (("words", by_words), ("meaning", by_meaning)) if hit]
        alert = Alert(
            id=opener_id(watch.id, thread_key) if first else reply_id(watch.id, article.id),
            kind=KIND,
            story_id=article.story_id,
            topic=story.topic if story is not None else (article.topic if article.relevant else None),
            severity="normal",
            story_article_count=(story.article_count or 0) if story is not None else 0,
            payload=watch_message(watch, article, story, similarity=similarity, matched_by=matched_by),
            detail={
                "article_id": article.id,
                "watch_id": watch.id,
                "mode": watch.mode,
                "matched_by": matched_by,
                "similarity": round(similarity, 4) if similarity is not None else None,
                "min_similarity": watch.min_similarity,
            },
            status="pending",
            thread_key=thread_key,
            watch_id=watch.id,
            attempts=0,
            created_at=now,
        )
        place(session, settings, alert, now, route=route)
        parent = thread_parent(session, thread_key, alert.channel)  # after place(): the route's channel
        alert.parent_id = parent.id if parent is not None else None
        # A first hit in a story's existing thread is also shown in the channel: a new saved-search match is
        # news to the analyst even when the story is not.
        alert.broadcast = first and parent is not None
        if add(session, alert):
            created.append(alert)
            done.add(article.id)
    return created


def _watch_route(settings: Settings, name: str) -> AlertRoute:
    """The watch's route; a watch whose route was removed from the settings since alerts on the default
    route rather than not at all."""
    try:
        return settings.route_named(name)
    except KeyError:
        log.warning("watch route %r is no longer configured: its alerts go to the default route", name)
        return settings.default_route()


def watch_message(
    watch: Watch,
    article: Article,
    story: Story | None,
    *,
    similarity: float | None = None,
    matched_by: Sequence[str] = (),
) -> dict[str, Any]:
    """`{"text": fallback, "blocks": [...]}` of a watch match; all feed text cleaned and escaped here."""
    label = clean_text(watch_label(watch))
    title = clean_text(article.title) or "(untitled)"
    source = truncate(escape_mrkdwn(clean_text(article.source)), SOURCE_MAX)
    details = [part for part in (source, escape_mrkdwn(clean_text(article.language or "")) or "unknown language",
                                 f"published {utc(article.published_at)}") if part]
    lines = [f"*{link(article.url, title, max_label=TITLE_MAX)}*", " · ".join(details)]
    if story is not None:
        headline = truncate(escape_mrkdwn(clean_text(story.headline) or "(untitled story)"), HEADLINE_MAX)
        count, sources = story.article_count or 0, story.source_count or 0
        lines.append(f"Story: {headline} ({_plural(count, 'article')} from {_plural(sources, 'source')})")
    matched = " and ".join(matched_by) or watch.mode
    if similarity is not None and "meaning" in matched_by:
        matched += f" (similarity {similarity:.2f})"
    blocks = [
        header(f"Saved search: {label}"),
        section("\n".join(lines)),
        context(f"Flankwatch saved search `{escape_mrkdwn(watch.id)}` · mode {escape_mrkdwn(watch.mode)} · "
                f"matched by {escape_mrkdwn(matched)}"),
    ]
    fallback = truncate(escape_mrkdwn(f"Saved search {label}: {title}"), 3000)
    return {"text": fallback, "blocks": blocks}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
