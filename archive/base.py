"""The archive interface: documents, queries, results and the backend contract.

The embedded default is SQLite (`archive.sqlite`); `archive.elastic` implements the same contract on
Elasticsearch, and `tests/test_archive_conformance.py` holds both to it. The shapes follow what ES does natively, so that it needs no emulation:

- documents are upserted in bulk by `id` (ES `_bulk` with `_id`); re-indexing an id overwrites it;
- every filter of `SearchQuery` is an exact term/range filter (ES `bool.filter` of `terms` / `range`);
- highlights are lists of fragments per field (ES `highlight` with `pre_tags`/`post_tags` set to the
  markers below and no HTML encoder);
- facets are value -> count over the whole filtered match set (ES `terms` aggregations), or over the newest
  `SEARCH_WINDOW` matches when a backend bounds its work (`SearchResult.window`);
- `nearest` is kNN with the same filters (ES `knn` with `filter`), over the vectors of one model when asked.
"""

from __future__ import annotations

import html
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Literal

import numpy as np

# Highlight markers: Unicode private-use characters, never markup. Feed text is hostile and may itself
# contain `<em>` or `<script>`, so a fragment is plain text plus these two characters, and each renderer
# (terminal, Slack, HTML) escapes the text first and only then turns the markers into its own markup:
# see `render_highlight`. Backends remove these characters from document text before highlighting, so a
# feed cannot forge a highlight.
HL_START = "\ue000"
HL_END = "\ue001"

Sort = Literal["relevance", "newest", "oldest"]
StorySort = Literal["last_seen", "size"]
SORTS: tuple[str, ...] = ("relevance", "newest", "oldest")
STORY_SORTS: tuple[str, ...] = ("last_seen", "size")
# "day": articles per UTC day ("YYYY-MM-DD" -> count), the `facet_size` most recent days that have any, in
# date order (ES `date_histogram` with `min_doc_count: 1`); the others: most frequent values first.
FACET_FIELDS: tuple[str, ...] = ("source", "language", "topic", "story_id", "day")
MAX_PER_PAGE = 200
# Words search reaches at most this many results (page x per_page; a page beyond has no hits), as ES's
# `max_result_window` (10,000). A backend may also rank, count and facet only the newest this many matches
# (the SQLite archive: a common word in a million articles matches 100,000 or more, and reading them all
# costs seconds); it says so in the result.
SEARCH_WINDOW = 10_000


def _utc(value: datetime | None, name: str, required: bool = False) -> datetime | None:
    if value is None:
        if required:
            raise ValueError(f"{name} is required")
        return None
    if value.tzinfo is None:
        raise ValueError(f"{name}: naive datetime {value!r}; the archive takes UTC-aware timestamps only")
    return value.astimezone(timezone.utc)


@dataclass
class ArticleDoc:
    """An article as the archive stores it (one ES document in the articles index)."""

    id: str
    url: str
    title: str
    summary: str
    content: str
    source: str
    language: str | None
    published_at: datetime
    topics: list[str] = field(default_factory=list)
    relevance: float | None = None
    story_id: str | None = None
    embedding: np.ndarray | None = None  # float32, 1-D; not returned by `search`/`nearest` (like ES `_source` excludes)
    # the model that made `embedding`: two models may make vectors of one size (all-MiniLM-L6-v2 and
    # multilingual-e5-small: 384), and vectors of two models are never compared (`nearest(model=...)`)
    embedding_model: str | None = None

    def __post_init__(self) -> None:
        self.published_at = _utc(self.published_at, "published_at", required=True)  # type: ignore[assignment]
        self.summary = self.summary or ""
        self.content = self.content or ""
        self.topics = list(self.topics)
        if self.embedding is not None:
            self.embedding = np.asarray(self.embedding, dtype=np.float32).reshape(-1)


@dataclass
class StoryDoc:
    """A story (one real-world event) as the archive stores it."""

    id: str
    topic: str
    headline: str
    first_seen: datetime
    last_seen: datetime
    article_count: int = 0
    source_count: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    top_links: list[dict[str, str]] = field(default_factory=list)  # [{"title", "url", "source"}], newest first

    def __post_init__(self) -> None:
        self.first_seen = _utc(self.first_seen, "first_seen", required=True)  # type: ignore[assignment]
        self.last_seen = _utc(self.last_seen, "last_seen", required=True)  # type: ignore[assignment]


@dataclass(frozen=True)
class SearchQuery:
    """What an analyst asks for. Every field but `text` is an exact filter; empty means "no filter".

    `text` is user input, parsed by `archive.query.parse_query` (never passed to a backend as syntax):
    words are ANDed, "quoted phrases" stay phrases, `word*` is a prefix, `OR` between two words is an
    alternative; anything else is plain text. Empty text browses the filtered set, newest first.
    `date_from` and `date_to` are inclusive and must be UTC-aware.
    """

    text: str = ""
    date_from: datetime | None = None
    date_to: datetime | None = None
    sources: Sequence[str] = ()
    languages: Sequence[str] = ()
    topics: Sequence[str] = ()
    story_ids: Sequence[str] = ()
    sort: Sort = "relevance"
    page: int = 1
    per_page: int = 20
    highlight: bool = True
    facets: Sequence[str] = FACET_FIELDS
    facet_size: int = 50  # most frequent values returned per facet (ES `terms.size`)

    def __post_init__(self) -> None:
        for name in ("sources", "languages", "topics", "story_ids", "facets"):
            value = getattr(self, name)
            if isinstance(value, str):  # a lone string would otherwise be split into characters
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "text", self.text or "")
        object.__setattr__(self, "date_from", _utc(self.date_from, "date_from"))
        object.__setattr__(self, "date_to", _utc(self.date_to, "date_to"))
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {SORTS}, not {self.sort!r}")
        if self.page < 1:
            raise ValueError(f"page must be >= 1, not {self.page}")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be within 1..{MAX_PER_PAGE}, not {self.per_page}")
        unknown = set(self.facets) - set(FACET_FIELDS)
        if unknown:
            raise ValueError(f"unknown facets {sorted(unknown)}; known: {FACET_FIELDS}")
        if self.facet_size < 1:
            raise ValueError(f"facet_size must be >= 1, not {self.facet_size}")

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (dates as ISO strings): how a saved search is stored."""
        data = asdict(self)
        for key in ("date_from", "date_to"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        for key in ("sources", "languages", "topics", "story_ids", "facets"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchQuery:
        """The inverse of `to_dict`; unknown keys are an error, missing ones take their defaults."""
        values = dict(data)
        for key in ("date_from", "date_to"):
            if isinstance(values.get(key), str):
                values[key] = datetime.fromisoformat(values[key])
        return cls(**values)


@dataclass(frozen=True)
class SavedSearch:
    """An analyst's standing query: new articles that match it raise an alert (the ES percolator's job).

    What matches is `query.text` (same syntax and semantics as `search`) and every filter of `query`
    (sources, languages, topics, story_ids, date range); its sort, paging, highlight and facets are ignored.
    """

    id: str
    query: SearchQuery
    name: str = ""

    def __post_init__(self) -> None:
        if not self.id or len(self.id) > 200:
            raise ValueError("a saved search needs an id of 1..200 characters")


@dataclass
class Hit:
    """One result. `highlights` maps a field ("title", "summary", "content") to fragments with markers."""

    id: str
    score: float
    doc: ArticleDoc
    highlights: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class SearchResult:
    """A page of words-search results.

    `window`: None when the hits were ranked and the facets counted over every match (Elasticsearch). A
    number when more articles matched than the backend reads for one query: then ranking, facets and paging
    cover only the newest `window` matches (the SQLite archive, in the order articles were first archived),
    and `total` is exact only if `total_exact` (a lower bound otherwise, as ES's `hits.total.relation` "gte")."""

    total: int
    hits: list[Hit]
    facets: dict[str, dict[str, int]]  # field -> value -> count, over the whole filtered match set (or the window)
    page: int
    per_page: int
    total_exact: bool = True
    window: int | None = None

    @property
    def pages(self) -> int:
        """Pages that can be asked for: a search reaches at most SEARCH_WINDOW results (or its window)."""
        reachable = min(self.total, self.window or SEARCH_WINDOW)
        return (reachable + self.per_page - 1) // self.per_page


class ArchiveUnavailable(RuntimeError):
    """The backend cannot be reached or refuses every request (down, wrong URL or credentials). Raised by
    `open_archive` and by any call; nothing of the call was stored. The index stage lets it end the stage
    at once: what was not indexed stays pending in the state DB for the next run."""


@dataclass
class IndexReport:
    """What a bulk index call did: ids indexed, and the reason each failed id was not."""

    indexed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class ArchiveBackend(ABC):
    """The searchable archive of articles and stories. Usable as a context manager (closes on exit)."""

    @abstractmethod
    def ensure_ready(self) -> None:
        """Create what the backend needs (tables, indices, mappings); idempotent."""

    @abstractmethod
    def index_articles(self, docs: Iterable[ArticleDoc]) -> IndexReport:
        """Upsert articles by id. A document that cannot be stored is reported in `failed`, not raised;
        an unreachable backend raises."""

    @abstractmethod
    def index_stories(self, docs: Iterable[StoryDoc]) -> IndexReport:
        """Upsert stories by id (same failure rules as `index_articles`)."""

    def refresh(self) -> None:
        """Make everything indexed so far visible to search (ES `_refresh`). A no-op where writes are
        visible at once (SQLite). Tests call it; the pipeline does not need to."""

    @abstractmethod
    def begin_rebuild(self) -> None:
        """Start rebuilding the archive from scratch (`flankwatch archive reindex`): what is indexed from now
        on forms the new archive; searches keep answering until `finish_rebuild`."""

    @abstractmethod
    def finish_rebuild(self) -> None:
        """Make the rebuilt archive the archive and drop what was not re-indexed since `begin_rebuild`
        (ES: point the read alias at the new index and delete the old one). A no-op when no rebuild is
        under way."""

    @abstractmethod
    def delete_stories(self, story_ids: Iterable[str]) -> int:
        """Remove stories (merged into others) by id; returns how many were there. Idempotent."""

    @abstractmethod
    def delete_articles(self, article_ids: Iterable[str]) -> int:
        """Remove articles by id (expired: `flankwatch.retention`) with everything the backend derived from
        them (full-text rows, vectors, ANN entries); returns how many were there. Idempotent."""

    @abstractmethod
    def get_article(self, article_id: str) -> ArticleDoc | None:
        """The article with its embedding, or None."""

    @abstractmethod
    def get_story(self, story_id: str) -> StoryDoc | None: ...

    @abstractmethod
    def search(self, query: SearchQuery) -> SearchResult:
        """Full-text search with filters, sort, paging, highlights and facets. Never raises on user text."""

    @abstractmethod
    def list_stories(
        self, topic: str | None = None, limit: int = 20, sort: StorySort = "last_seen"
    ) -> list[StoryDoc]:
        """Stories, most recently active first (`last_seen`) or largest first (`size`)."""

    @abstractmethod
    def nearest(
        self, vector: np.ndarray, k: int = 10, query: SearchQuery | None = None, model: str | None = None
    ) -> list[Hit]:
        """The `k` articles whose embeddings are closest (cosine) to `vector`, closest first; `score` is the
        cosine similarity. `query` restricts the candidates: its filters, and its text if any; its sort,
        paging, highlight and facets are ignored. `model`: only embeddings that model made (`vector` is of
        it); None compares every stored embedding."""

    def hybrid(
        self, query: SearchQuery, vector: np.ndarray, k: int = 20, model: str | None = None,
        vector_hits: Sequence[Hit] | None = None,
    ) -> list[Hit]:
        """Text and vector ranking fused: the `k` best articles by reciprocal rank fusion (RRF) of the text
        ranking of `query` (its filters apply to both) and the kNN ranking of `vector` (over `model`'s
        embeddings, as `nearest`). `score` is the fused score; hits of the text ranking keep their
        highlights when `query.highlight`. `vector_hits`: a kNN ranking the caller made instead (the nearest
        over two models' vectors, flankwatch.search; `max(k, RRF_WINDOW)` of them), fused in place of
        `nearest(vector)`. This default fuses in the client; a backend may fuse server-side (ES retrievers)
        instead."""
        window = max(k, RRF_WINDOW)
        text_query = replace(query, page=1, per_page=min(window, MAX_PER_PAGE), facets=())
        text_hits = self.search(text_query).hits if query.text.strip() else []
        if vector_hits is None:
            vector_hits = self.nearest(vector, k=window, query=replace(query, text=""), model=model)
        return fuse_rrf([text_hits, vector_hits], k)

    @abstractmethod
    def save_search(self, saved: SavedSearch) -> None:
        """Register a saved search, or replace the one with the same id. Raises ValueError on a query that
        would match everything (no searchable text and no filter)."""

    @abstractmethod
    def delete_search(self, search_id: str) -> bool:
        """Remove a saved search; True if it was there."""

    @abstractmethod
    def list_searches(self) -> list[SavedSearch]:
        """All saved searches, by id."""

    @abstractmethod
    def percolate(self, docs: Sequence[ArticleDoc]) -> dict[str, list[str]]:
        """Which saved searches each document matches: doc id -> sorted saved-search ids. Documents that
        match none are left out. The documents need not be indexed (ES percolate query)."""

    @abstractmethod
    def count(self) -> dict[str, int]:
        """Documents held: {"articles": n, "stories": m}."""

    @abstractmethod
    def vector_models(self) -> dict[str, int]:
        """Articles with an embedding, by the model that made it (`UNKNOWN_MODEL` where none is recorded)."""

    @abstractmethod
    def has_vectors(self, model: str) -> bool:
        """Whether any article holds a vector that `model` made: one index lookup, where `vector_models`
        counts every article (for each search, not for a status page)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> ArchiveBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


UNKNOWN_MODEL = "unknown"  # `vector_models` key of embeddings stored without their model
RRF_RANK_CONSTANT = 60  # the usual RRF constant (Cormack et al. 2009; ES's default rank_constant)
RRF_WINDOW = 100  # candidates taken from each ranking before fusion (ES's rank_window_size default)


def fuse_rrf(rankings: Sequence[Sequence[Hit]], k: int, rank_constant: int = RRF_RANK_CONSTANT) -> list[Hit]:
    """Reciprocal rank fusion: each hit scores the sum of 1 / (rank_constant + rank) over the rankings that
    hold it (rank from 1); the `k` best, ties broken by id. A hit keeps the highlights it had."""
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (rank_constant + rank)
            first.setdefault(hit.id, hit)
    best = sorted(scores, key=lambda doc_id: (-scores[doc_id], doc_id))[:k]
    return [Hit(id=i, score=scores[i], doc=first[i].doc, highlights=first[i].highlights) for i in best]


def render_highlight(
    fragment: str, start: str, end: str, escape: Callable[[str], str] = html.escape
) -> str:
    """A fragment for one medium: the text escaped with `escape`, then the markers replaced by `start`/`end`.

    The text is escaped piece by piece between the markers, so `escape` never sees (or mangles) a marker,
    and nothing in the text can become markup: `render_highlight("<b>\\ue000x\\ue001", "<mark>", "</mark>")`
    gives `"&lt;b&gt;<mark>x</mark>"`.
    """
    out: list[str] = []
    piece: list[str] = []
    for char in fragment:
        if char in (HL_START, HL_END):
            out.append(escape("".join(piece)))
            piece = []
            out.append(start if char == HL_START else end)
        else:
            piece.append(char)
    out.append(escape("".join(piece)))
    return "".join(out)


def strip_highlight(fragment: str) -> str:
    """The fragment's plain text, markers removed."""
    return fragment.replace(HL_START, "").replace(HL_END, "")


def as_dict(doc: Any) -> dict[str, Any]:
    """A JSON-able view of a document (datetimes as ISO strings, embedding left out)."""
    data = asdict(doc)
    data.pop("embedding", None)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    return data
