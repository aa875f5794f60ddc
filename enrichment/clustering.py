"""Online clustering of relevant articles into stories (`core.models.Story`), with merges, syndication and
story events.

A `StoryClusterer` holds the active stories of each topic in memory (`enrichment.story_index`), rebuilt from
the state DB when a run starts (`StoryClusterer.load`): stories seen within `cluster_window_hours` of the
newest one, replayed from their member articles. Then, for each relevant article in publication order:

1. a near-copy of an earlier article of another outlet (MinHash, `enrichment.syndication`) joins that
   article's story and is marked `syndicated_from`: it counts as a copy, not as an independent source;
2. otherwise the best-scoring active story is joined when the combined similarity (embedding, TF-IDF,
   shared facts, time decay) reaches the threshold for the article's length, else a story is created;
3. a joined story is compared with the runner-up stories of the same article: two stories whose centroids
   reach `cluster_merge_threshold` are merged into the larger one (`merged_into`, a "merged" event, the
   articles moved);
4. events are recorded: born, growing, development (`enrichment.events`).

`assign` only sets the article's own columns; the stories it changed (kept as `StoryRecord`s in memory),
its events and merges are written by `persist(session)`, once per batch, in bulk statements, and committed
with the articles' `enriched_at` (`enrichment.enrich`). If a batch fails, the stage stops; the next run
rebuilds the index from what was committed, so the in-memory state never outlives a rollback. An article
already in a story is returned as it is (idempotent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import numpy as np
from sqlalchemy import ColumnElement, bindparam, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key

from core.ids import stable_id
from core.models import Article, Story, StoryEvent
from core.settings import Settings
from core.vectors import from_bytes, to_bytes
from enrichment import events
from enrichment.embeddings import Embedder
from enrichment.facts import fact_keys, known_keys_of, novel_facts, ordered_facts
from enrichment.lexical import DocumentFrequencies, lead_text, tokens
from enrichment.story_index import ActiveStories, Weights
from enrichment.syndication import Signature, SyndicationIndex, item_signature

MAX_NOVEL_TERMS = 10
MAX_STORY_TERMS = 300
MAX_ARTICLE_FACTS = 20  # facts of an article used as keys (the first ones: numbers, then names in order)
FACT_CHARS = 1000  # of the summary or body read for facts
UNKNOWN_LANGUAGE = "und"
# The article length (distinct lexical terms of title + lead) at which the threshold moves from
# `cluster_threshold` (headline) to `cluster_threshold_long` (headline and a full lead).
SHORT_TERMS = 8
LONG_TERMS = 30
MERGE_CANDIDATES = 3  # runner-up stories (above the join threshold too) checked for a merge
EXPIRE_EVERY_S = 3600.0  # how often (in stream time) stories past the window leave the index


@dataclass(frozen=True)
class Features:
    """What clustering reads of an article."""

    lexical: dict[str, float]
    keys: set[str]
    facts: list[str]
    terms: int  # distinct lexical terms
    signature: Signature | None


@dataclass(frozen=True)
class PairArticle:
    """An article of a "same story?" pair (`StoryClusterer.pair_decision`)."""

    title: str
    text: str
    language: str
    vector: np.ndarray


@dataclass(frozen=True)
class Assignment:
    story_id: str
    created: bool
    similarity: float  # combined similarity to the story joined (1.0 for a new story)
    novel_terms: list[str] = field(default_factory=list)
    syndicated_from: str | None = None
    merged: list[str] = field(default_factory=list)  # stories absorbed into `story_id` by this article
    events: list[str] = field(default_factory=list)  # kinds of the events it caused


def article_facts(title: str, summary: str | None) -> list[str]:
    """Facts of an article in order of appearance (numbers first)."""
    return ordered_facts(f"{title or ''}\n{summary or ''}")


def outlet(url: str) -> str:
    """The outlet of an article for syndication: its site ("www." dropped), so that one outlet's several
    feeds ("LRT English", "LRT Lietuvoje") re-posting one text are a re-post, not syndication."""
    host = (urlsplit(url or "").hostname or "").lower()
    return host.removeprefix("www.")


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass
class StoryRecord:
    """The columns of a `Story` that clustering maintains, in memory between two `persist` calls."""

    id: str
    topic: str
    headline: str
    representative_article_id: str | None
    first_seen: datetime
    last_seen: datetime
    article_count: int = 0
    source_count: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    copy_sources: dict[str, int] = field(default_factory=dict)
    syndicated_outlets: int = 0
    language_counts: dict[str, int] = field(default_factory=dict)
    terms: list[str] = field(default_factory=list)
    born_at: datetime | None = None
    merged_into: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    _keys: set[str] | None = field(default=None, init=False, repr=False, compare=False)

    COLUMNS = (
        "topic", "headline", "representative_article_id", "first_seen", "last_seen", "article_count",
        "source_count", "sources", "copy_sources", "syndicated_outlets", "language_counts", "terms", "born_at",
        "merged_into", "created_at", "updated_at",
    )

    @classmethod
    def of(cls, story: Story) -> StoryRecord:
        values = {name: getattr(story, name) for name in cls.COLUMNS}
        for name in ("sources", "copy_sources", "language_counts"):
            values[name] = dict(values[name] or {})
        values["terms"] = list(values["terms"] or [])
        values["article_count"] = values["article_count"] or 0
        values["source_count"] = values["source_count"] or 0
        values["syndicated_outlets"] = values["syndicated_outlets"] or 0
        return cls(id=story.id, **values)

    def row(self, centroid: bytes | None, model: str | None = None) -> dict[str, object]:
        values: dict[str, object] = {"id": self.id, **{name: getattr(self, name) for name in self.COLUMNS}}
        if centroid is not None:
            values["centroid"] = centroid
            values["centroid_model"] = model
        return values

    def count_sources(self) -> None:
        """Independent sources (outlets with an article that is not a copy) and outlets that ran copies."""
        self.source_count = independent_sources(self.sources, self.copy_sources)
        self.syndicated_outlets = len(self.copy_sources)

    def add_source(self, source: str, *, copy: bool) -> None:
        """Count one more article of `source` (a copy of wire text already in the story, or not)."""
        independent_before = self.sources.get(source, 0) > self.copy_sources.get(source, 0)
        self.sources[source] = self.sources.get(source, 0) + 1
        if copy:
            self.copy_sources[source] = self.copy_sources.get(source, 0) + 1
            self.syndicated_outlets = len(self.copy_sources)
        independent_after = self.sources[source] > self.copy_sources.get(source, 0)
        self.source_count += int(independent_after) - int(independent_before)

    def add_terms(self, facts: Sequence[str]) -> None:
        known = set(self.terms)
        added = [fact for fact in facts if fact not in known][: max(0, MAX_STORY_TERMS - len(self.terms))]
        self.terms = self.terms + added
        if self._keys is not None:
            self._keys |= known_keys_of(added)

    def known_keys(self) -> set[str]:
        """The fact keys of `terms` (cached until the terms change)."""
        if self._keys is None:
            self._keys = known_keys_of(self.terms)
        return self._keys


def independent_sources(sources: dict[str, int], copies: dict[str, int]) -> int:
    """Outlets with an article that is not a copy (`Story.source_count`): articles per outlet, copies per outlet."""
    return sum(1 for source, n in sources.items() if n > copies.get(source, 0))


def _add_counts(first: dict[str, int], second: dict[str, int]) -> dict[str, int]:
    total = dict(first)
    for key, count in second.items():
        total[key] = total.get(key, 0) + count
    return total


class StoryClusterer:
    """The clustering state of one run of the enrichment stage; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        dim: int,
        weights: Weights | None = None,
        center: np.ndarray | None = None,
        priors: dict[str, np.ndarray] | None = None,
        model: str | None = None,
        language_gap: float = 0.0,
    ) -> None:
        self.settings = settings
        self.language_gap = language_gap  # `Embedder.language_gap`
        self.model = model  # the embedding model of the vectors it is given (`Story.centroid_model`)
        self.dim = dim
        self.weights = weights or Weights()
        self.center = center  # the embedding model's common direction (`Embedder.center`)
        self.priors = priors or {}  # topic -> the mean passage vector of its seeds (`TopicProfile.prior`)
        self.frequencies = DocumentFrequencies()
        self.topics: dict[str, ActiveStories] = {}
        self.records: dict[str, StoryRecord] = {}
        self.syndication = SyndicationIndex(settings.syndication_threshold)
        self.story_of: dict[str, str] = {}  # article id -> story id, for the articles in `syndication`
        self.survivor: dict[str, str] = {}  # merged story id -> the story that absorbed it
        self._known_events: set[str] = set()
        # changes since the last `persist`
        self._dirty: set[str] = set()
        self._events: list[dict[str, object]] = []
        self._moves: list[tuple[str, str, datetime]] = []  # (absorbed, survivor, when), in order
        self._final_centroids: dict[str, bytes] = {}  # of stories absorbed since the last persist
        self._expired_at = -math.inf
        self._now: datetime | None = None  # the run's clock, for the rows written

    # --------------------------------------------------------------------------------------- loading

    @classmethod
    def for_embedder(
        cls, settings: Settings, embedder: Embedder, priors: dict[str, np.ndarray] | None = None
    ) -> StoryClusterer:
        """An empty clusterer for the vectors of `embedder` (`priors`: each topic's seeds, see `ActiveStories`)."""
        return cls(
            settings, embedder.dim, center=embedder.center, priors=priors, model=embedder.name,
            language_gap=embedder.language_gap,
        )

    @classmethod
    def load(
        cls, session: Session, settings: Settings, embedder: Embedder, priors: dict[str, np.ndarray] | None = None
    ) -> StoryClusterer:
        """A clusterer whose index holds the stories active at the newest story's last article, for the
        vectors of `embedder` (`priors`: each topic's seeds, see `ActiveStories`)."""
        clusterer = cls.for_embedder(settings, embedder, priors)
        dim = embedder.dim
        active = active_stories(session, settings)
        if active is None:
            return clusterer
        for story in session.scalars(select(Story).where(*active)):
            clusterer.records[story.id] = StoryRecord.of(story)
        clusterer._known_events = set(
            session.scalars(select(StoryEvent.id).join(Story, Story.id == StoryEvent.story_id).where(*active))
        )
        rows = session.execute(
            select(
                Article.id, Article.story_id, Article.topic, Article.title, Article.summary, Article.embedding,
                Article.published_at, Article.canonical_url, Article.minhash, Article.language,
                Article.embedding_model,
            )
            .join(Story, Story.id == Article.story_id)
            .where(*active)
            .order_by(Article.published_at, Article.id)
        ).all()
        for article_id, story_id, topic, title, summary, blob, published, url, minhash, language, model in rows:
            features = clusterer.features(title, summary, sign=False)
            vector = from_bytes(blob) if blob and model == embedder.name else None
            if vector is None or vector.shape != (dim,):
                # made by another model (the stage re-embeds active stories first, `enrichment.reembed`):
                # its words, names and numbers count, its vector does not
                vector = np.zeros(dim, dtype=np.float32)
            clusterer._index(topic or "").add(
                story_id, article_id=article_id, title=title, embedding=vector, lexical=features.lexical,
                keys=features.keys, at=_epoch(published), language=language or UNKNOWN_LANGUAGE,
            )
            if minhash:
                clusterer._remember(article_id, story_id, outlet(url), published, Signature.from_bytes(minhash))
        return clusterer

    def _index(self, topic: str) -> ActiveStories:
        index = self.topics.get(topic)
        if index is None:
            index = self.topics[topic] = ActiveStories(
                self.dim, self.weights, center=self.center, prior=self.priors.get(topic),
                language_gap=self.language_gap,
            )
        return index

    def _remember(self, article_id: str, story_id: str, source: str, at: datetime, sig: Signature) -> None:
        self.syndication.add(article_id, source, at, sig)
        self.story_of[article_id] = story_id

    def _expire(self, at: float) -> None:
        """Drop what left the window, at most once per `EXPIRE_EVERY_S` of stream time."""
        if at - self._expired_at < EXPIRE_EVERY_S:
            return
        self._expired_at = at
        before = at - self.settings.cluster_window_hours * 3600.0
        for index in self.topics.values():
            for story_id in index.expire(before):
                if story_id not in self._dirty:
                    self.records.pop(story_id, None)
        if self.syndication.expire(_utc(before)):
            self.story_of = {a: s for a, s in self.story_of.items() if a in self.syndication}

    # -------------------------------------------------------------------------------------- features

    def features(self, title: str, summary: str | None, *, sign: bool = True) -> Features:
        """Lexical vector (observing the document frequencies once), fact keys and syndication signature."""
        lexical, distinct = self.frequencies.observe_vector(tokens(lead_text(title, summary)))
        facts = article_facts(title, (summary or "")[:FACT_CHARS])
        keys: set[str] = set()
        for fact in facts[:MAX_ARTICLE_FACTS]:
            keys |= fact_keys(fact)
        return Features(
            lexical=lexical,
            keys=keys,
            facts=facts,
            terms=distinct,
            signature=item_signature(title, summary) if sign else None,
        )

    def threshold(self, terms: int) -> float:
        """The join threshold for an article with `terms` distinct terms (see `SHORT_TERMS`)."""
        share = min(1.0, max(0.0, (terms - SHORT_TERMS) / (LONG_TERMS - SHORT_TERMS)))
        low, high = self.settings.cluster_threshold, self.settings.cluster_threshold_long
        return low + (high - low) * share

    def pair_decision(
        self, first: PairArticle, second: PairArticle, topic_mean: np.ndarray | None = None
    ) -> tuple[float, float]:
        """The clusterer's decision on two articles, as if `first` had started a story and `second` arrived
        at the same time in a stream whose active articles have the mean vector `topic_mean` (what the topic's
        stories share, removed as `ActiveStories` removes it): (the combined similarity of `second` to that
        story, its join threshold). The story is joined when the similarity reaches the threshold; a story
        that candidate search never finds scores -1. For `bench/pair_eval.py`: the code of `assign`, without
        the database."""
        index = ActiveStories(
            self.dim, self.weights, center=self.center, prior=topic_mean, language_gap=self.language_gap
        )
        one = self.features(first.title, first.text, sign=False)
        index.add("first", article_id="first", title=first.title, embedding=first.vector, lexical=one.lexical,
                  keys=one.keys, at=0.0, language=first.language)
        two = self.features(second.title, second.text, sign=False)
        matches = index.candidates(second.vector, two.lexical, two.keys, 0.0, math.inf, second.language)
        return (matches[0].score if matches else -1.0), self.threshold(two.terms)

    def resolve(self, story_id: str) -> str:
        while story_id in self.survivor:
            story_id = self.survivor[story_id]
        return story_id

    # ----------------------------------------------------------------------------------------- assign

    def assign(self, session: Session, article: Article, embedding: np.ndarray, now: datetime) -> Assignment:
        """Put a relevant article (its `topic` set) into a story; see the module docstring. Sets the
        article's `story_id`, `novel_terms`, `minhash` and `syndicated_from`; `persist` writes the rest."""
        vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if article.story_id is not None:
            return Assignment(article.story_id, False, 1.0, list(article.novel_terms or []))
        if not article.topic:
            raise ValueError(f"article {article.id} has no topic: only relevant articles are clustered")
        if vector.shape != (self.dim,):
            raise ValueError(f"embedding of {article.id} has shape {vector.shape}, expected ({self.dim},)")
        self._now = now
        at = _epoch(article.published_at)
        self._expire(at)
        features = self.features(article.title, article.summary)
        index = self._index(article.topic)
        window_s = self.settings.cluster_window_hours * 3600.0

        target, similarity, copy_of = None, 1.0, None
        language = article.language or UNKNOWN_LANGUAGE
        matches = index.candidates(vector, features.lexical, features.keys, at, window_s, language)
        if features.signature is not None:
            original = self.syndication.find(features.signature, outlet(article.canonical_url), article.published_at)
            if original is not None:
                story_id = self.resolve(self.story_of.get(str(original.key), ""))
                if story_id in index:
                    target, similarity, copy_of = story_id, round(original.jaccard, 4), str(original.key)
        threshold = self.threshold(features.terms)
        if target is None and matches and matches[0].score >= threshold:
            target, similarity = matches[0].story_id, round(matches[0].score, 4)
        if target is None:
            existing = stable_id("story", article.topic, article.id)
            if existing not in self.records:
                # the article's own story may have survived a reset of the article: rejoin it (or the story
                # that absorbed it), never create it twice
                with session.no_autoflush:
                    story = _stored_story(session, existing)
                    while story is not None and story.merged_into is not None:
                        story = session.get(Story, story.merged_into)
                if story is not None:
                    self.records.setdefault(story.id, StoryRecord.of(story))
                    existing = story.id
            target = self.resolve(existing) if existing in self.records else None

        if target is None:
            record = self._create(session, article, vector, features, now)
            assignment = Assignment(record.id, True, 1.0, [], events=self._record_events(record, article, []))
        else:
            record = self._join(target, article, vector, features, now, copy_of)
            # the stories this article could have joined too are the ones it may bridge
            bridged = [m.story_id for m in matches if m.score >= threshold]
            merged = self._merges(record, bridged, now, article, self.merge_threshold(threshold))
            record = self.records[self.resolve(record.id)]
            novel = list(article.novel_terms or [])
            kinds = self._record_events(record, article, novel)
            assignment = Assignment(record.id, False, similarity, novel, copy_of, merged, kinds)
        if features.signature is not None:
            article.minhash = features.signature.to_bytes()
            self._remember(
                article.id, assignment.story_id, outlet(article.canonical_url), article.published_at, features.signature
            )
        return assignment

    def _create(
        self, session: Session, article: Article, vector: np.ndarray, features: Features, now: datetime
    ) -> StoryRecord:
        record = StoryRecord(
            id=stable_id("story", article.topic or "", article.id),
            topic=article.topic or "",
            headline=article.title,
            representative_article_id=article.id,
            first_seen=article.published_at,
            last_seen=article.published_at,
            article_count=1,
            source_count=1,
            sources={article.source: 1},
            language_counts={article.language or UNKNOWN_LANGUAGE: 1},
            terms=features.facts[:MAX_STORY_TERMS],
            created_at=now,
            updated_at=now,
        )
        self.records[record.id] = record
        # Inserted now, not at `persist`: the article row may be flushed before then and points at it.
        with session.no_autoflush:
            session.connection().execute(_STORIES.insert(), [record.row(to_bytes(vector), self.model)])
        self._index(record.topic).add(
            record.id, article_id=article.id, title=article.title, embedding=vector, lexical=features.lexical,
            keys=features.keys, at=_epoch(article.published_at), language=article.language or UNKNOWN_LANGUAGE,
        )
        article.story_id = record.id
        article.novel_terms = []
        return record

    def _join(
        self, story_id: str, article: Article, vector: np.ndarray, features: Features, now: datetime,
        copy_of: str | None,
    ) -> StoryRecord:
        record = self.records[story_id]
        state = self._index(record.topic).add(
            record.id, article_id=article.id, title=article.title, embedding=vector, lexical=features.lexical,
            keys=features.keys, at=_epoch(article.published_at), language=article.language or UNKNOWN_LANGUAGE,
        )
        record.article_count += 1
        record.add_source(article.source, copy=copy_of is not None)
        if copy_of is not None:
            article.syndicated_from = copy_of
        language = article.language or UNKNOWN_LANGUAGE
        record.language_counts[language] = record.language_counts.get(language, 0) + 1
        record.first_seen = min(record.first_seen, article.published_at)
        record.last_seen = max(record.last_seen, article.published_at)
        article.novel_terms = novel_facts(features.facts, limit=MAX_NOVEL_TERMS, known_keys=record.known_keys())
        record.add_terms(features.facts)
        if state.representative is not None:
            record.representative_article_id, record.headline = state.representative
        record.updated_at = now
        self._dirty.add(record.id)
        article.story_id = record.id
        return record

    def merge_threshold(self, join_threshold: float) -> float:
        """The centroid similarity at which stories bridged by an article merge: `cluster_merge_threshold`
        for a headline, raised by as much as the article's join threshold is above the headline's (full
        texts agree more, also when they tell two events apart)."""
        return self.settings.cluster_merge_threshold + max(0.0, join_threshold - self.settings.cluster_threshold)

    def _merges(
        self, record: StoryRecord, candidates: Sequence[str], now: datetime, article: Article, threshold: float
    ) -> list[str]:
        """Merge the joined story with runner-up candidates whose centroids converged with it (`threshold`)."""
        index = self._index(record.topic)
        merged: list[str] = []
        current = record.id
        for other in candidates[: MERGE_CANDIDATES + 1]:
            other = self.resolve(other)
            if other == current or other not in index or current not in index:
                continue
            similarity = index.story_similarity(current, other)
            if similarity < threshold:
                continue
            first, second = self.records[current], self.records[other]
            survivor, absorbed = (first, second) if _larger(first, second) else (second, first)
            self._merge(survivor, absorbed, similarity, now, article)
            merged.append(absorbed.id)
            current = survivor.id
        return merged

    def _merge(
        self, survivor: StoryRecord, absorbed: StoryRecord, similarity: float, now: datetime, article: Article
    ) -> None:
        index = self._index(survivor.topic)
        self._final_centroids[absorbed.id] = to_bytes(index.centroid(absorbed.id))
        state = index.absorb(survivor.id, absorbed.id)
        self.survivor[absorbed.id] = survivor.id
        self._moves.append((absorbed.id, survivor.id, now))
        survivor.article_count += absorbed.article_count
        survivor.sources = _add_counts(survivor.sources, absorbed.sources)
        survivor.copy_sources = _add_counts(survivor.copy_sources, absorbed.copy_sources)
        survivor.language_counts = _add_counts(survivor.language_counts, absorbed.language_counts)
        survivor.count_sources()
        survivor.add_terms(absorbed.terms)
        survivor.first_seen = min(survivor.first_seen, absorbed.first_seen)
        survivor.last_seen = max(survivor.last_seen, absorbed.last_seen)
        if absorbed.born_at is not None and (survivor.born_at is None or absorbed.born_at < survivor.born_at):
            survivor.born_at = absorbed.born_at
        if state.representative is not None:
            survivor.representative_article_id, survivor.headline = state.representative
        survivor.updated_at = absorbed.updated_at = now
        absorbed.merged_into = survivor.id
        self._dirty.update((survivor.id, absorbed.id))
        self._event(
            survivor.id, "merged", absorbed.id, article,
            detail={"absorbed": absorbed.id, "headline": absorbed.headline, "articles": absorbed.article_count,
                    "similarity": round(similarity, 4)},
        )

    # ----------------------------------------------------------------------------------------- events

    def _event(
        self, story_id: str, kind: str, key: str, article: Article, *, facts: Sequence[str] = (),
        detail: dict[str, object] | None = None,
    ) -> bool:
        identifier = events.event_id(story_id, kind, key)
        if identifier in self._known_events:
            return False
        self._known_events.add(identifier)
        self._events.append({
            "id": identifier, "story_id": story_id, "kind": kind, "at": article.published_at,
            "article_id": article.id, "facts": list(facts), "detail": dict(detail or {}),
            "created_at": self._now or datetime.now(UTC),
        })
        return True

    def _record_events(self, record: StoryRecord, article: Article, novel: list[str]) -> list[str]:
        kinds: list[str] = []
        settings = self.settings
        if record.born_at is None and events.is_born(record.article_count, record.source_count, settings):
            record.born_at = article.published_at
            self._dirty.add(record.id)
            detail = {"articles": record.article_count, "sources": record.source_count}
            if self._event(record.id, "born", "born", article, detail=detail):
                kinds.append("born")
        state = self._index(record.topic).get(record.id)
        if state is not None and record.born_at is not None:
            at = _epoch(article.published_at)
            figures = events.growth(state.arrivals, record.article_count, _epoch(record.first_seen), at, settings)
            if figures is not None:
                bucket = str(int(at // (settings.growth_window_hours * 3600.0)))
                if self._event(record.id, "growing", bucket, article, detail=figures):
                    kinds.append("growing")
        facts = events.development_facts(novel, article.title) if record.article_count > 1 else []
        if facts:
            novel_set = set(novel)
            replaced = events.replaced_numbers(facts, [t for t in record.terms if t not in novel_set])
            detail = {"replaces": replaced, "headline": article.title}
            if self._event(record.id, "development", article.id, article, facts=facts, detail=detail):
                kinds.append("development")
        return kinds

    # ------------------------------------------------------------------------------------------ persist

    def persist(self, session: Session) -> None:
        """Write the stories, events and merges changed since the last call, in bulk, in `session` (the
        caller commits, with the articles that `assign` changed)."""
        dirty = [self.records[i] for i in sorted(self._dirty)]
        session.flush()
        if dirty:
            _update_stories(session, [r.row(self._centroid(r), self.model) for r in dirty])
        for absorbed, survivor, now in self._moves:
            session.execute(  # updated_at: the archive re-indexes the moved articles
                update(Article).where(Article.story_id == absorbed).values(story_id=survivor, updated_at=now),
                execution_options={"synchronize_session": "fetch"},
            )
        if self._events:
            session.connection().execute(StoryEvent.__table__.insert(), self._events)
        for record in dirty:
            if record.merged_into is not None and record.id not in self._index(record.topic):
                self.records.pop(record.id, None)
        self._dirty, self._events, self._moves = set(), [], []
        self._final_centroids = {}

    def _centroid(self, record: StoryRecord) -> bytes | None:
        index = self._index(record.topic)
        if record.id in index:
            return to_bytes(index.centroid(record.id))
        return self._final_centroids.get(record.id)


# Story rows are written with Core statements (the same SQL and column types as the ORM's bulk statements,
# without their per-call ORM overhead): clustering never keeps `Story` objects in the session.
_STORIES = Story.__table__
_STORY_ID = _STORIES.c.id
_STORY_STORED = select(_STORY_ID).where(_STORY_ID == bindparam("story_id"))
_STORY_UPDATE = _STORIES.update().where(_STORY_ID == bindparam("_story_id"))


def _update_stories(session: Session, rows: list[dict[str, object]]) -> None:
    """UPDATE stories by id, one executemany per set of columns (rows with and without a centroid). A story
    loaded in the session (rare: one revived by `assign`) goes through the ORM, which refreshes the object."""
    groups: dict[tuple[str, ...], list[dict[str, object]]] = {}
    loaded: list[dict[str, object]] = []
    identity_map = session.identity_map
    for row in rows:
        if identity_key(Story, row["id"]) in identity_map:
            loaded.append(row)
            continue
        values = {name: value for name, value in row.items() if name != "id"}
        values["_story_id"] = row["id"]
        groups.setdefault(tuple(values), []).append(values)
    if loaded:
        session.execute(update(Story), loaded)
    connection = session.connection()
    for group in groups.values():
        result = connection.execute(_STORY_UPDATE, group)
        if connection.dialect.supports_sane_multi_rowcount and result.rowcount != len(group):
            raise StaleDataError(
                f"UPDATE statement on table 'stories' expected to update {len(group)} row(s); "
                f"{result.rowcount} were matched."
            )


def active_stories(session: Session, settings: Settings) -> tuple[ColumnElement[bool], ...] | None:
    """The filter of the active stories (not merged, last article within `cluster_window_hours` of the newest
    story's), or None when there is no story."""
    newest = session.scalar(select(func.max(Story.last_seen)).where(Story.merged_into.is_(None)))
    if newest is None:
        return None
    since = newest - timedelta(hours=settings.cluster_window_hours)
    return Story.merged_into.is_(None), Story.last_seen >= since


def _stored_story(session: Session, story_id: str) -> Story | None:
    """`session.get(Story, story_id)`, but a story never stored (the usual case: an article starting a story)
    costs one prepared Core query instead of an ORM load."""
    if (
        identity_key(Story, story_id) not in session.identity_map
        and session.connection().execute(_STORY_STORED, {"story_id": story_id}).first() is None
    ):
        return None
    return session.get(Story, story_id)


def _larger(first: StoryRecord, second: StoryRecord) -> bool:
    """Whether `first` should absorb `second`: more articles, then older."""
    return (first.article_count, -_epoch(first.first_seen)) >= (second.article_count, -_epoch(second.first_seen))
