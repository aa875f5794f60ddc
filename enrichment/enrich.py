"""The enrichment stage: language, embedding, topic relevance and story of every new article.

Pending articles (`enriched_at IS NULL`) are processed in publication order, in batches that each commit
on their own: a crash loses at most the unfinished batch, which the next run redoes from scratch (its
story updates were rolled back with it, so no article is ever counted twice in a story).

Embeddings are computed ahead of the batches, for `EMBED_CHUNK` pending articles in one call: the model
sorts the texts of a call by length and pads each of its mini-batches to the longest, so one call per
64-article batch made it read 35% more tokens than one call for all (UCI headlines: 69,177 against 51,287
word pieces; 1,024 per call: 52,696). The next chunk is embedded on a thread of its own while the batches of
this one are enriched: the model's sessions run without the GIL, and the batches' work (language, relevance,
stories, the database: a tenth of the stage at 1,000,000 articles) no longer leaves the cores the model
would use idle. A vector computed ahead is used only if the article's text is still the
text that was embedded (the collector may have updated the article meanwhile). What text each article is
embedded from (title and lead, or the headline alone) is `enrichment.screen`'s choice; the model is loaded,
and the topics compiled, once per run and passed down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import defer

from core.db import session_scope
from core.models import Article
from core.settings import Settings
from core.vectors import from_bytes, to_bytes
from enrichment.batches import pending_only, stored_ahead
from enrichment.clustering import StoryClusterer
from enrichment.embeddings import Embedder, article_text, get_embedder
from enrichment.language import detect_language
from enrichment.reembed import reembed
from enrichment.relevance import Relevance, TopicProfile, best_relevance, compile_topics
from enrichment.screen import Embedded, Screen, embedded_text, promoted

log = logging.getLogger(__name__)

# Articles per committed batch. Each batch loads its articles, writes their rows and the stories they changed,
# and commits: 256 instead of 64 took the UCI dev file's database step from 0.78 to 0.56 s of CPU (medians of 7
# runs; a story that takes several articles of a batch is written once), and a crash still loses one batch.
BATCH_SIZE = 256
EMBED_CHUNK = 1024  # pending articles embedded in one call (a multiple of the batch size)
LANGUAGE_TEXT_CHARS = 600  # of title + summary: enough for py3langid, cheap


@dataclass
class EnrichSummary:
    enriched: int = 0
    relevant: int = 0
    stories_created: int = 0
    stories_updated: int = 0  # existing stories that took new articles in this run
    # what the model read (enrichment.screen): the headline alone or only the static model (headline_only),
    # or title and lead after the headline meant a topic; the others were embedded with title and lead at once
    headline_only: int = 0
    promoted: int = 0
    # members of active stories whose vectors another model made, re-embedded before clustering
    reembedded: int = 0
    story_ids: list[str] = field(default_factory=list)  # stories created or updated, in order
    # seconds per step (language, embedding, relevance, clustering, database: loading, flushing and
    # committing the batches): where a slow run spends its time. "embedding" is what the batches waited for
    # vectors: a chunk embedded ahead while the batches before it ran costs only what was left of it
    step_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _BatchResult:
    enriched: int = 0
    relevant: int = 0
    headline_only: int = 0
    promoted: int = 0
    created: list[str] = field(default_factory=list)
    joined: list[str] = field(default_factory=list)


# article id -> its vector, the model that made it and from what (enrichment.screen)
Prefetched = dict[str, Embedded]


class _Clock:
    """Seconds per step, summed over a run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


def _stored_vector(blob: bytes | None, model: str | None, embedder: Embedder) -> np.ndarray | None:
    """An article's stored embedding (`blob`, made by `model`) when the configured model made it."""
    if blob and model == embedder.name:
        vector = from_bytes(blob)
        if vector.shape == (embedder.dim,):
            return vector
    return None


def _embed_ahead(settings: Settings, embedder: Embedder, screen: Screen, ids: list[str]) -> Prefetched:
    """Embeddings of the pending articles of `ids` that have none of the configured model, in one call per
    model: by the model and from the text `enrichment.screen` gives each article."""
    with session_scope(settings) as session:
        rows = session.execute(
            select(Article.id, Article.title, Article.summary, Article.language, Article.embedding,
                   Article.embedding_model, Article.enriched_at)
            .where(Article.id.in_(ids))  # pending ones below (see `pending_only`)
        ).all()
    rows = [row for row in pending_only(rows)
            if _stored_vector(row.embedding, row.embedding_model, embedder) is None]
    models = {embedder.name} | ({screen.static.name} if screen.static is not None else set())
    ahead = {row.id: stored_ahead(row.title, row.summary, row.embedding, row.embedding_model, models) for row in rows}
    rows = [row for row in rows if ahead[row.id] is None]  # the others a batch embedded (enrichment.batches)
    embedded = screen.embed([(row.title, row.summary, row.language) for row in rows], settings.embedding_batch_size)
    return {**{key: item for key, item in ahead.items() if item is not None},
            **{row.id: item for row, item in zip(rows, embedded)}}


def _embeddings(
    articles: list[Article], settings: Settings, embedder: Embedder, screen: Screen, prefetched: Prefetched,
) -> tuple[list[np.ndarray], list[bool]]:
    """Each article's embedding, and whether it is of its title and lead (else of its headline alone, see
    `enrichment.screen`): the stored one when it was made by the configured model (taken as final), else
    the one computed ahead if it is of the text the article needs now, else computed now (the batch's
    remaining ones in one call)."""
    vectors: list[np.ndarray | None] = []
    leads: list[bool] = []
    missing: list[int] = []  # by position: still to embed
    for index, article in enumerate(articles):
        vector = _stored_vector(article.embedding, article.embedding_model, embedder)
        lead = True
        if vector is None:
            ahead = prefetched.get(article.id)
            if ahead is not None and ahead.source == article_text(article.title, article.summary):
                vector, lead = _store(article, ahead.vector, ahead.model), ahead.lead
            else:  # none computed ahead, or the article was edited since
                missing.append(index)
        vectors.append(vector)
        leads.append(lead)
    if missing:
        fresh = screen.embed([(articles[i].title, articles[i].summary, articles[i].language) for i in missing],
                             settings.embedding_batch_size)
        for index, item in zip(missing, fresh):
            vectors[index], leads[index] = _store(articles[index], item.vector, item.model), item.lead
    return [vector for vector in vectors if vector is not None], leads


def _store(article: Article, vector: np.ndarray, model: str) -> np.ndarray:
    article.embedding, article.embedding_model = to_bytes(vector), model
    return vector


def _relevance(article: Article, vector: np.ndarray, profiles: list[TopicProfile]) -> list[Relevance]:
    return [profile.score(article.title, article.summary, vector, article.language) for profile in profiles]


def _enrich_batch(
    settings: Settings,
    embedder: Embedder,
    ids: list[str],
    profiles: list[TopicProfile],
    clusterer: StoryClusterer,
    now: datetime,
    prefetched: Prefetched,
    clock: _Clock,
    screen: Screen,
) -> _BatchResult:
    result = _BatchResult()
    with session_scope(settings) as session:
        with clock.step("database"):
            articles = pending_only(
                session.scalars(
                    select(Article)
                    .options(defer(Article.content, raiseload=True))  # the full body: enrichment reads the lead
                    .where(Article.id.in_(ids))
                    .order_by(Article.published_at, Article.id)
                )
            )
        if not articles:
            return result
        with clock.step("language"):
            for article in articles:
                text = f"{article.title or ''} {article.summary or ''}"[:LANGUAGE_TEXT_CHARS]
                article.language = detect_language(text, hint=article.language)
        with clock.step("embedding"):
            vectors, leads = _embeddings(articles, settings, embedder, screen, prefetched)
        with clock.step("relevance"):  # a static vector against the topics compiled for the static model
            scores = [_relevance(article, vector, screen.profiles_for(article.embedding_model))
                      for article, vector in zip(articles, vectors)]
        promote = [i for i, lead in enumerate(leads) if not lead and promoted(scores[i], profiles)]
        for index in promote:  # an article whose headline is all there is keeps its vector
            title, summary = articles[index].title, articles[index].summary
            leads[index] = (articles[index].embedding_model == embedder.name
                            and embedded_text(title, summary, True) == embedded_text(title, summary, False))
        promote = [i for i in promote if not leads[i]]
        if promote:  # headlines that mean the topic: their lead is read too, and they are scored again
            with clock.step("embedding"):
                texts = [article_text(articles[i].title, articles[i].summary) for i in promote]
                fresh = embedder.passages(texts, batch_size=settings.embedding_batch_size)
                for index, vector in zip(promote, fresh):
                    vectors[index] = _store(articles[index], vector, embedder.name)
                    leads[index] = True
            with clock.step("relevance"):
                for index in promote:
                    scores[index] = _relevance(articles[index], vectors[index], profiles)
        result.promoted += len(promote)
        result.headline_only += leads.count(False)
        with clock.step("relevance"):
            for article, article_scores in zip(articles, scores):
                best = best_relevance(article_scores)
                if best is None:
                    article.topic, article.relevance, article.relevant = None, None, False
                    article.relevance_reason = "no topics configured"
                else:
                    article.topic, article.relevance = best.topic, best.score
                    article.relevance_reason, article.relevant = best.reason, best.relevant
                article.enriched_at = now
                article.updated_at = now
                result.enriched += 1
        with clock.step("clustering"):
            for article, vector in zip(articles, vectors):
                if article.relevant:
                    result.relevant += 1
                    assignment = clusterer.assign(session, article, vector, now)
                    (result.created if assignment.created else result.joined).append(assignment.story_id)
        with clock.step("database"):
            session.flush()  # the articles' rows: language, relevance and story in one UPDATE each
        with clock.step("clustering"):
            clusterer.persist(session)  # the stories' rows, events and merges
        committing = time.perf_counter()
    clock.add("database", time.perf_counter() - committing)
    return result


def enrich(
    settings: Settings,
    *,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> EnrichSummary:
    """Enrich every pending article; see the module docstring. Safe to re-run: a second run finds
    nothing pending and changes nothing."""
    now = now or datetime.now(UTC)
    with session_scope(settings) as session:
        pending = list(
            session.scalars(
                select(Article.id).where(Article.enriched_at.is_(None)).order_by(Article.published_at, Article.id)
            )
        )
    summary = EnrichSummary()
    total = len(pending)
    if progress:
        progress(0, total)
    if not pending:
        return summary

    embedder = get_embedder(settings.embedding_model)
    profiles = compile_topics(settings, embedder)
    screen = Screen(settings, embedder, profiles)
    summary.reembedded = reembed(settings, embedder, profiles, scope="active", now=now).articles
    with session_scope(settings) as session:
        priors = {profile.name: profile.prior for profile in profiles if profile.prior is not None}
        clusterer = StoryClusterer.load(session, settings, embedder, priors)
    created: set[str] = set()
    updated: set[str] = set()
    done = 0
    clock = _Clock()
    chunk_size = batch_size * max(1, EMBED_CHUNK // batch_size)
    chunks = [pending[start : start + chunk_size] for start in range(0, total, chunk_size)]
    # The next chunk is embedded on a thread of its own while this one's batches are enriched (see the
    # module docstring): the model's sessions and the batches' Python work share the cores.
    with ThreadPoolExecutor(1, thread_name_prefix="embed-ahead") as ahead:
        coming = ahead.submit(_embed_ahead, settings, embedder, screen, chunks[0])
        for number, chunk in enumerate(chunks):
            with clock.step("embedding"):  # what the batches wait for (a failure to embed surfaces here)
                prefetched = coming.result()
            if number + 1 < len(chunks):
                coming = ahead.submit(_embed_ahead, settings, embedder, screen, chunks[number + 1])
            for start in range(0, len(chunk), batch_size):
                batch = chunk[start : start + batch_size]
                # committed when it returns
                result = _enrich_batch(settings, embedder, batch, profiles, clusterer, now, prefetched, clock,
                                       screen)
                _count(summary, result, created, updated)
                done += len(batch)
                if progress:
                    progress(done, total)
                log.info("enriched %d/%d articles (%d relevant so far)", done, total, summary.relevant)
    summary.stories_created = len(created)
    summary.stories_updated = len(updated)
    summary.step_seconds = {name: round(seconds, 3) for name, seconds in clock.seconds.items()}
    return summary


def _count(summary: EnrichSummary, result: _BatchResult, created: set[str], updated: set[str]) -> None:
    """Add a committed batch to the run's summary."""
    summary.enriched += result.enriched
    summary.relevant += result.relevant
    summary.headline_only += result.headline_only
    summary.promoted += result.promoted
    for story_id in result.created:
        created.add(story_id)
        summary.story_ids.append(story_id)
    for story_id in result.joined:
        if story_id not in created and story_id not in updated:
            updated.add(story_id)
            summary.story_ids.append(story_id)
