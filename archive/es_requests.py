"""Every Elasticsearch request body and response conversion of the ES archive backend, as pure functions.

No client and no network here: `archive.elastic` sends what these functions build and hands the answers
back to them, so that everything that decides *what* is asked (and how an answer is read) is unit-tested
without a cluster (`tests/test_archive_es_requests.py`). The shapes follow the Elasticsearch 9 REST API.

Names (`IndexNames`): for each kind (`articles`, `stories`) a composable index template `{prefix}-{kind}`
matching `{prefix}-{kind}-*`, concrete generations `{prefix}-{kind}-000001`, `-000002`, ..., a read alias
`{prefix}-{kind}` and a write alias `{prefix}-{kind}-write` (`is_write_index`). Saved searches live in
`{prefix}-searches-000001` behind one alias `{prefix}-searches` (read and write). Code only ever names
aliases, so a rebuild (new generation) or a rollover needs no code change.

User text is parsed by `archive.query.parse_query` (the same grammar as the SQLite backend) and each term
becomes a `multi_match` (phrase / bool_prefix / phrase_prefix) whose text is analysed by the field's
analyser: nothing the user types is ever query syntax (no `query_string`, no `simple_query_string`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np

from archive.base import (
    HL_END,
    HL_START,
    RRF_RANK_CONSTANT,
    RRF_WINDOW,
    SEARCH_WINDOW,
    STORY_SORTS,
    UNKNOWN_MODEL,
    ArticleDoc,
    Hit,
    SavedSearch,
    SearchQuery,
    SearchResult,
    StoryDoc,
)
from archive.folding import sanitize
from archive.query import ParsedQuery, Term, parse_query

KINDS: tuple[str, ...] = ("articles", "stories")  # rebuilt from the state DB; saved searches are not
SEARCHES = "searches"
DEFAULT_DIMS = 384  # all-MiniLM-L6-v2, the offline embedding model; the template file holds this value

# Text fields and their weights: the same order of importance as the SQLite backend's BM25_WEIGHTS.
TEXT_FIELDS: tuple[tuple[str, float], ...] = (("title", 10.0), ("summary", 3.0), ("content", 1.0))
# Language subfields of every text field (ES built-in analysers). No Polish: the `polish` analyser is not
# built into Elasticsearch (it needs the analysis-stempel plugin); Polish text is matched by the folded
# main field only.
LANGUAGE_SUBFIELDS: dict[str, str] = {
    "en": "english", "de": "german", "ru": "russian", "lt": "lithuanian", "lv": "latvian", "et": "estonian",
}
LANGUAGE_BOOST = 0.5  # weight of the (optional) stemmed-language clause relative to the exact match
# Characters of text in that clause. Each of its tokens becomes 18 term queries (6 languages x 3 fields) and a
# Lucene query holds at most 1024 leaf clauses (ES 9: more on a large heap); 40 characters are at most 40
# tokens (CJK: one per character), 720 clauses, plus 192 for 64 terms x 3 fields: always below the limit.
LANGUAGE_BOOST_CHARS = 40
# Highlight fragments per field: (fragment_size, number_of_fragments), as archive/sqlite.py FRAGMENTS. The
# title is returned whole (number_of_fragments 0), which is what FRAGMENTS' (400, 1) gives for a title.
HIGHLIGHT_FRAGMENTS: dict[str, tuple[int, int]] = {"title": (400, 0), "summary": (240, 2), "content": (160, 3)}
HIGHLIGHT_MAX_ANALYZED_OFFSET = 1_000_000  # the index default: longer text is cut, not an error
MAX_RESULT_WINDOW = SEARCH_WINDOW  # index.max_result_window (10,000): from + size beyond it is an error in ES
MAX_KNN = 10_000  # ES limit of k and num_candidates
KNN_OVERSAMPLE = 2.0  # rescore_vector: re-rank oversample * k int8 candidates with the float vectors
PHRASE_PREFIX_EXPANSIONS = 200  # words a multi-word prefix ("Panzerbrigade 4"*) may expand to
FACET_AGG_FIELDS: dict[str, str] = {
    "source": "source", "language": "language", "topic": "topics", "story_id": "story_id",
}
STORY_SORT_CLAUSES: dict[str, list[dict[str, Any]]] = {
    "last_seen": [{"last_seen": {"order": "desc"}}, {"id": {"order": "asc"}}],
    "size": [{"article_count": {"order": "desc"}}, {"last_seen": {"order": "desc"}}, {"id": {"order": "asc"}}],
}
# Licence types whose holders may use the `rrf` retriever: RRFRankPlugin declares the feature with
# License.OperationMode.ENTERPRISE, and a trial licence allows every feature.
RRF_LICENCES = frozenset({"enterprise", "trial"})
_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,150}$")
_WORD_RE = re.compile(r"\w+")


# --- names and templates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexNames:
    """Index, alias and template names under one prefix."""

    prefix: str

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix):
            raise ValueError(
                f"index prefix {self.prefix!r}: use lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )

    def read(self, kind: str) -> str:
        return f"{self.prefix}-{kind}"

    def write(self, kind: str) -> str:
        return self.read(kind) if kind == SEARCHES else f"{self.prefix}-{kind}-write"

    def template(self, kind: str) -> str:
        return f"{self.prefix}-{kind}"

    def pattern(self, kind: str) -> str:
        return f"{self.prefix}-{kind}-*"

    def index(self, kind: str, generation: int) -> str:
        return f"{self.prefix}-{kind}-{generation:06d}"

    def generation(self, kind: str, index: str) -> int | None:
        """The generation number of a concrete index of `kind`, or None if `index` is not one."""
        match = re.fullmatch(re.escape(f"{self.prefix}-{kind}-") + r"(\d{6,})", index)
        return int(match.group(1)) if match else None

    def owned(self, index: str) -> bool:
        """Whether `index` is a concrete index of this prefix (what `drop_all` may delete)."""
        return any(self.generation(kind, index) is not None for kind in (*KINDS, SEARCHES))


@cache
def _template_file(kind: str) -> str:
    return resources.files("archive").joinpath("es", f"{kind}.json").read_text(encoding="utf-8")


def load_template_file(kind: str) -> dict[str, Any]:
    """The JSON file `archive/es/{kind}.json` (a fresh copy each call)."""
    if kind not in (*KINDS, SEARCHES):
        raise ValueError(f"unknown index kind {kind!r}")
    return json.loads(_template_file(kind))


def index_template(kind: str, names: IndexNames, dims: int = DEFAULT_DIMS) -> dict[str, Any]:
    """The body of `PUT _index_template/{names.template(kind)}`.

    `searches` is built from `articles`: the same analysis settings and article fields (less the embedding,
    never part of a percolated document), plus the percolator fields of `searches.json`, so that a saved
    query is parsed exactly as it would be against the articles index."""
    if dims < 1 or dims > 4096:
        raise ValueError(f"vector dims must be within 1..4096, not {dims}")
    body = load_template_file(kind)
    if kind == SEARCHES:
        articles = load_template_file("articles")["template"]
        properties = dict(articles["mappings"]["properties"])
        properties.pop("embedding", None)
        own = body["template"]["mappings"]["properties"]
        clash = set(own) & set(properties)
        if clash:
            raise ValueError(f"searches.json redefines article fields {sorted(clash)}")
        properties.update(own)
        body["template"]["settings"] = articles["settings"]
        body["template"]["mappings"]["properties"] = properties
    elif kind == "articles":
        body["template"]["mappings"]["properties"]["embedding"]["dims"] = int(dims)
    body["index_patterns"] = [names.pattern(kind)]
    return body


def first_index_aliases(kind: str, names: IndexNames) -> dict[str, Any]:
    """The aliases of the first generation: read alias plus write alias (`is_write_index`)."""
    if kind == SEARCHES:
        return {names.read(kind): {"is_write_index": True}}
    return {names.read(kind): {}, names.write(kind): {"is_write_index": True}}


# --- aliases, generations, rebuild -----------------------------------------------------------------


@dataclass(frozen=True)
class AliasState:
    """Where the aliases of one kind point: the indices behind the read alias (oldest first) and the
    write index (None if there is no write alias)."""

    read_indices: tuple[str, ...]
    write_index: str | None

    @property
    def missing(self) -> bool:
        return not self.read_indices and self.write_index is None

    @property
    def rebuilding(self) -> bool:
        """A rebuild is under way: the write index is not (yet) behind the read alias."""
        return self.write_index is not None and self.write_index not in self.read_indices


def alias_state(get_alias_body: Mapping[str, Any], read: str, write: str) -> AliasState:
    """Read `GET _alias/{read},{write}` (sent with 404 ignored: its body then also holds "error" and
    "status" keys, and the indices that do have one of the aliases)."""
    read_indices: list[str] = []
    write_index: str | None = None
    for index, entry in get_alias_body.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("aliases"), Mapping):
            continue
        aliases = entry["aliases"]
        if read in aliases:
            read_indices.append(index)
        if write in aliases:
            options = aliases[write] or {}
            # A write alias on one index only is that index's write alias even without the flag.
            if options.get("is_write_index", True) is not False:
                write_index = index
    if read == write and write_index is None and len(read_indices) == 1:
        write_index = read_indices[0]
    return AliasState(tuple(sorted(read_indices)), write_index)


def next_index(kind: str, names: IndexNames, existing: Iterable[str]) -> str:
    """The name of the next generation after every existing concrete index of `kind`."""
    generations = [g for g in (names.generation(kind, name) for name in existing) if g is not None]
    return names.index(kind, max(generations, default=0) + 1)


def begin_rebuild_actions(
    kind: str, names: IndexNames, state: AliasState, new_index: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """`POST _aliases` actions that move only the write alias to `new_index` (reads stay on the old
    generation), and the indices to delete afterwards: a rebuild begun earlier and never finished is
    abandoned, its generation dropped."""
    write = names.write(kind)
    actions: list[dict[str, Any]] = []
    if state.write_index is not None:
        actions.append({"remove": {"index": state.write_index, "alias": write}})
    actions.append({"add": {"index": new_index, "alias": write, "is_write_index": True}})
    abandoned = [state.write_index] if state.rebuilding and state.write_index else []
    return actions, abandoned


def finish_rebuild_actions(
    kind: str, names: IndexNames, state: AliasState
) -> tuple[list[dict[str, Any]], list[str]]:
    """`POST _aliases` actions that point the read alias at the write index alone, and the old indices to
    delete afterwards. Nothing to do (two empty lists) when no rebuild is under way, so a stray
    `finish_rebuild` never drops the generations of a rolled-over alias."""
    if not state.rebuilding or state.write_index is None:
        return [], []
    read = names.read(kind)
    actions: list[dict[str, Any]] = [{"remove": {"index": old, "alias": read}} for old in state.read_indices]
    actions.append({"add": {"index": state.write_index, "alias": read}})
    return actions, list(state.read_indices)


# --- documents ---------------------------------------------------------------------------------------


def _iso(value: datetime) -> str:
    return value.isoformat()


def _embedding(vector: np.ndarray, dims: int | None) -> list[float]:
    values = np.asarray(vector, dtype=np.float32).reshape(-1)
    if not values.size or not np.all(np.isfinite(values)):
        raise ValueError("embedding is empty or not finite")
    if not np.any(values):
        raise ValueError("embedding is a zero vector (cosine similarity needs a magnitude)")
    if dims is not None and values.size != dims:
        raise ValueError(f"embedding has {values.size} dimensions, the index {dims}")
    return [float(x) for x in values]


def article_source(doc: ArticleDoc, *, dims: int | None = None, embedding: bool = True) -> dict[str, Any]:
    """The `_source` of an article. Text is sanitised (highlight markers and NUL blanked) so that a feed
    cannot forge a highlight; the embedding is a list of floats (left out when absent or not wanted).
    Raises ValueError for a document that cannot be stored (reported per document by the caller)."""
    if not doc.id:
        raise ValueError("document has no id")
    source: dict[str, Any] = {
        "id": doc.id,
        "url": doc.url,
        "title": sanitize(doc.title or ""),
        "summary": sanitize(doc.summary or ""),
        "content": sanitize(doc.content or ""),
        "source": doc.source,
        "language": doc.language,
        "published_at": _iso(doc.published_at),
        "topics": sorted({str(topic) for topic in doc.topics if topic}),
        "relevance": None if doc.relevance is None else float(doc.relevance),
        "story_id": doc.story_id,
    }
    if embedding and doc.embedding is not None:
        source["embedding"] = _embedding(doc.embedding, dims)
        source["embedding_model"] = doc.embedding_model
    return source


def story_source(doc: StoryDoc) -> dict[str, Any]:
    """The `_source` of a story."""
    if not doc.id:
        raise ValueError("document has no id")
    return {
        "id": doc.id,
        "topic": doc.topic,
        "headline": sanitize(doc.headline or ""),
        "first_seen": _iso(doc.first_seen),
        "last_seen": _iso(doc.last_seen),
        "article_count": int(doc.article_count),
        "source_count": int(doc.source_count),
        "sources": {str(k): int(v) for k, v in doc.sources.items()},
        "languages": {str(k): int(v) for k, v in doc.languages.items()},
        "top_links": [
            {"title": str(link.get("title", "")), "url": str(link.get("url", "")),
             "source": str(link.get("source", ""))}
            for link in doc.top_links
        ],
    }


def index_action(index: str, doc_id: str, source: dict[str, Any]) -> dict[str, Any]:
    """One `helpers.streaming_bulk` action: index (upsert) `source` under `_id` = the document id."""
    return {"_op_type": "index", "_index": index, "_id": doc_id, "_source": source}


def article_from_source(source: Mapping[str, Any]) -> ArticleDoc:
    embedding = source.get("embedding")
    return ArticleDoc(
        id=source["id"],
        url=source.get("url") or "",
        title=source.get("title") or "",
        summary=source.get("summary") or "",
        content=source.get("content") or "",
        source=source.get("source") or "",
        language=source.get("language"),
        published_at=datetime.fromisoformat(source["published_at"]),
        topics=list(source.get("topics") or []),
        relevance=source.get("relevance"),
        story_id=source.get("story_id"),
        embedding=None if embedding is None else np.asarray(embedding, dtype=np.float32),
        embedding_model=source.get("embedding_model"),
    )


def story_from_source(source: Mapping[str, Any]) -> StoryDoc:
    return StoryDoc(
        id=source["id"],
        topic=source.get("topic") or "",
        headline=source.get("headline") or "",
        first_seen=datetime.fromisoformat(source["first_seen"]),
        last_seen=datetime.fromisoformat(source["last_seen"]),
        article_count=int(source.get("article_count") or 0),
        source_count=int(source.get("source_count") or 0),
        sources=dict(source.get("sources") or {}),
        languages=dict(source.get("languages") or {}),
        top_links=list(source.get("top_links") or []),
    )


# --- queries -----------------------------------------------------------------------------------------


def _weighted_fields() -> list[str]:
    return [f"{name}^{weight:g}" for name, weight in TEXT_FIELDS]


def term_query(term: Term) -> dict[str, Any]:
    """One parsed term as a `multi_match` over the folded text fields.

    The text goes in `query`, analysed like the indexed text (standard tokenizer, lowercase, asciifolding),
    never parsed as syntax. A term is a phrase (its words in order, as in FTS5); a prefix term of one word
    is `bool_prefix` (its word is a prefix, no expansion limit); a prefix phrase is `phrase_prefix`."""
    text = sanitize(term.text)
    if not term.prefix:
        kind: dict[str, Any] = {"type": "phrase"}
    elif len(_WORD_RE.findall(text)) <= 1:
        kind = {"type": "bool_prefix", "operator": "and"}
    else:
        kind = {"type": "phrase_prefix", "max_expansions": PHRASE_PREFIX_EXPANSIONS}
    return {"multi_match": {"query": text, "fields": _weighted_fields(), **kind}}


def text_clauses(parsed: ParsedQuery) -> list[dict[str, Any]]:
    """The AND of clauses, each an OR of terms (empty for an empty query)."""
    clauses = []
    for clause in parsed.clauses:
        terms = [term_query(term) for term in clause]
        if len(terms) == 1:
            clauses.append(terms[0])
        else:
            clauses.append({"bool": {"should": terms, "minimum_should_match": 1}})
    return clauses


def language_boost(parsed: ParsedQuery) -> dict[str, Any] | None:
    """An optional (`should`) clause that ranks higher what the language analysers match (stemmed:
    `brigades` ~ `brigade`). It never changes what matches, only the order by relevance."""
    words: list[str] = []  # unique words in order, within the clause budget
    for clause in parsed.clauses:
        for term in clause:
            for word in [] if term.prefix else _WORD_RE.findall(term.text.lower()):
                if word not in words and len(" ".join([*words, word])) <= LANGUAGE_BOOST_CHARS:
                    words.append(word)
    if not words:
        return None
    text = " ".join(words)
    fields = [
        f"{name}.{lang}^{weight:g}" for name, weight in TEXT_FIELDS for lang in LANGUAGE_SUBFIELDS
    ]
    return {"multi_match": {"query": text, "fields": fields, "type": "most_fields", "boost": LANGUAGE_BOOST}}


def filter_clauses(query: SearchQuery) -> list[dict[str, Any]]:
    """Every filter of `query` as exact `bool.filter` clauses; both dates inclusive."""
    filters: list[dict[str, Any]] = []
    for field, values in (("source", query.sources), ("language", query.languages),
                          ("topics", query.topics), ("story_id", query.story_ids)):
        if values:
            filters.append({"terms": {field: list(values)}})
    if query.date_from is not None or query.date_to is not None:
        bounds: dict[str, Any] = {}
        if query.date_from is not None:
            bounds["gte"] = _iso(query.date_from)
        if query.date_to is not None:
            bounds["lte"] = _iso(query.date_to)
        filters.append({"range": {"published_at": bounds}})
    return filters


def has_filter(query: SearchQuery) -> bool:
    return bool(filter_clauses(query))


def article_query(query: SearchQuery, *, rank: bool = True) -> dict[str, Any]:
    """The `query` of a search for `query`'s text and filters. `rank`: add the language boost (pointless in
    a filter or a percolator, where nothing is scored)."""
    parsed = parse_query(query.text)
    must = text_clauses(parsed)
    filters = filter_clauses(query)
    if not must and not filters:
        return {"match_all": {}}
    body: dict[str, Any] = {}
    if must:
        body["must"] = must
        boost = language_boost(parsed) if rank else None
        if boost is not None:
            body["should"] = [boost]
    if filters:
        body["filter"] = filters
    return {"bool": body}


def sort_clause(query: SearchQuery) -> list[Any]:
    """Relevance: score, then newest, then id; newest/oldest (and a browse without text): date, then id."""
    by_id = {"id": {"order": "asc"}}
    if query.sort == "oldest":
        return [{"published_at": {"order": "asc"}}, by_id]
    if query.sort == "relevance" and not parse_query(query.text).empty:
        return [{"_score": {"order": "desc"}}, {"published_at": {"order": "desc"}}, by_id]
    return [{"published_at": {"order": "desc"}}, by_id]


def highlight_body() -> dict[str, Any]:
    """Highlight with the archive's markers as tags and no HTML encoder: fragments are plain text."""
    return {
        "type": "unified",
        "encoder": "default",
        "pre_tags": [HL_START],
        "post_tags": [HL_END],
        "require_field_match": True,
        "max_analyzed_offset": HIGHLIGHT_MAX_ANALYZED_OFFSET,
        "fields": {
            name: {"fragment_size": size, "number_of_fragments": count}
            for name, (size, count) in HIGHLIGHT_FRAGMENTS.items()
        },
    }


def aggregations(facets: Sequence[str], size: int) -> dict[str, Any]:
    """One aggregation per facet, named like the facet. "day": a UTC day histogram (days with articles
    only), newest first, cut to `size` days by `bucket_sort`; the parser puts them back in date order."""
    aggs: dict[str, Any] = {}
    for name in facets:
        if name == "day":
            aggs[name] = {
                "date_histogram": {
                    "field": "published_at", "calendar_interval": "day", "min_doc_count": 1,
                    "time_zone": "UTC", "format": "yyyy-MM-dd", "order": {"_key": "desc"},
                },
                "aggs": {"recent": {"bucket_sort": {"size": size}}},
            }
        else:
            aggs[name] = {"terms": {"field": FACET_AGG_FIELDS[name], "size": size}}
    return aggs


def page_window(query: SearchQuery) -> tuple[int, int]:
    """`from` and `size` of a page, kept within ES's result window (pages past it come back empty)."""
    if query.offset >= MAX_RESULT_WINDOW:
        return 0, 0
    return query.offset, min(query.per_page, MAX_RESULT_WINDOW - query.offset)


def search_body(query: SearchQuery) -> dict[str, Any]:
    """The body of `POST {read alias}/_search` for `query`."""
    offset, size = page_window(query)
    has_text = not parse_query(query.text).empty
    body: dict[str, Any] = {
        "query": article_query(query),
        "from": offset,
        "size": size,
        "sort": sort_clause(query),
        "track_total_hits": True,
        "_source": {"excludes": ["embedding"]},
    }
    if has_text:
        body["track_scores"] = True  # a date sort still reports the text score
        if query.highlight:
            body["highlight"] = highlight_body()
    if query.facets:
        body["aggs"] = aggregations(query.facets, query.facet_size)
    return body


def knn_clause(vector: np.ndarray, k: int, query: SearchQuery | None, model: str | None = None) -> dict[str, Any]:
    """A kNN search on `embedding`: the `k` nearest among the articles that pass `query`'s filters and
    text (as a non-scoring pre-filter) and whose embedding `model` made (when given), the int8 candidates
    re-scored with the float vectors."""
    k = max(1, min(int(k), MAX_KNN))
    clause: dict[str, Any] = {
        "field": "embedding",
        "query_vector": unit_list(vector),
        "k": k,
        "num_candidates": min(max(2 * k, 100), MAX_KNN),
        "rescore_vector": {"oversample": KNN_OVERSAMPLE},
    }
    filters = []
    if query is not None:
        restrict = article_query(query, rank=False)
        if restrict != {"match_all": {}}:
            filters.append(restrict)
    if model is not None:
        filters.append({"term": {"embedding_model": model}})
    if filters:
        clause["filter"] = filters
    return clause


def unit_list(vector: np.ndarray) -> list[float]:
    """`vector` normalised to unit length, as floats; ValueError if empty, zero or not finite."""
    values = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(values)) if values.size else 0.0
    if not values.size or not np.isfinite(norm) or norm == 0.0:
        raise ValueError("the query vector must be a non-zero, finite vector")
    return [float(x) for x in values / norm]


def nearest_body(
    vector: np.ndarray, k: int, query: SearchQuery | None = None, model: str | None = None
) -> dict[str, Any]:
    """The body of a top-level kNN search for `ArchiveBackend.nearest`."""
    knn = knn_clause(vector, k, query, model)
    return {"knn": knn, "size": knn["k"], "_source": {"excludes": ["embedding"]}}


def hybrid_body(query: SearchQuery, vector: np.ndarray, k: int, model: str | None = None) -> dict[str, Any]:
    """Server-side RRF (ES `rrf` retriever): the text ranking of `query` and the kNN ranking of `vector`
    (over `model`'s embeddings when given), both restricted by `query`'s filters, the same window and rank
    constant as `archive.base.hybrid`."""
    k = max(1, min(int(k), MAX_KNN))
    window = min(max(k, RRF_WINDOW), MAX_KNN)
    knn = knn_clause(vector, window, SearchQuery(
        date_from=query.date_from, date_to=query.date_to, sources=query.sources,
        languages=query.languages, topics=query.topics, story_ids=query.story_ids,
    ), model)
    return {
        "retriever": {
            "rrf": {
                "retrievers": [{"standard": {"query": article_query(query)}}, {"knn": knn}],
                "rank_window_size": window,
                "rank_constant": RRF_RANK_CONSTANT,
            }
        },
        "size": k,
        "_source": {"excludes": ["embedding"]},
    }


def rrf_allowed(license_body: Mapping[str, Any] | None) -> bool:
    """Whether `GET _license` allows the `rrf` retriever: an active enterprise or trial licence."""
    licence = (license_body or {}).get("license") or {}
    kind = str(licence.get("type", "")).lower()
    return str(licence.get("status", "")).lower() == "active" and kind in RRF_LICENCES


# --- responses -----------------------------------------------------------------------------------------


def _total(hits: Mapping[str, Any]) -> int:
    total = hits.get("total", 0)
    return int(total.get("value", 0) if isinstance(total, Mapping) else total)


def hits_of(response: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((response.get("hits") or {}).get("hits") or [])


def _highlights(hit: Mapping[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, fragments in (hit.get("highlight") or {}).items():
        if name in HIGHLIGHT_FRAGMENTS and fragments:
            out[name] = [str(fragment) for fragment in fragments]
    return out


def parse_hit(hit: Mapping[str, Any]) -> Hit:
    doc = article_from_source(hit["_source"])
    score = hit.get("_score")
    return Hit(doc.id, 0.0 if score is None else float(score), doc, _highlights(hit))


def parse_facets(aggregations_body: Mapping[str, Any] | None, facets: Sequence[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name in facets:
        buckets = ((aggregations_body or {}).get(name) or {}).get("buckets") or []
        if name == "day":
            ordered = sorted(buckets, key=lambda bucket: bucket["key"])
            out[name] = {str(b.get("key_as_string", b["key"])): int(b["doc_count"]) for b in ordered}
        else:
            out[name] = {str(b["key"]): int(b["doc_count"]) for b in buckets}
    return out


def parse_search_response(response: Mapping[str, Any], query: SearchQuery) -> SearchResult:
    """A `_search` answer to `search_body(query)` as the archive's SearchResult."""
    hits = [parse_hit(hit) for hit in hits_of(response)]
    total = _total(response.get("hits") or {})
    facets = parse_facets(response.get("aggregations"), query.facets)
    return SearchResult(total, hits, facets, query.page, query.per_page)


def knn_score_to_cosine(score: float) -> float:
    """ES scores a cosine kNN hit (1 + cosine) / 2 (to keep scores positive); this is the cosine back."""
    return max(-1.0, min(1.0, 2.0 * float(score) - 1.0))


def added_article_fields() -> dict[str, Any]:
    """Article fields newer than the first schema, put on existing indices by `ensure_ready` (a mapping can
    gain a field in place; `dynamic: false` would otherwise leave it unindexed until a rebuild)."""
    properties = load_template_file("articles")["template"]["mappings"]["properties"]
    return {name: properties[name] for name in ("embedding_model",)}


def vector_models_body() -> dict[str, Any]:
    """Articles with an embedding, counted by `embedding_model` (and those without one recorded)."""
    return {
        "size": 0,
        "track_total_hits": True,
        "query": {"exists": {"field": "embedding"}},
        "aggs": {
            "models": {"terms": {"field": "embedding_model", "size": 100}},
            "unrecorded": {"missing": {"field": "embedding_model"}},
        },
    }


def has_vectors_body(model: str) -> dict[str, Any]:
    """Whether any article holds a vector of `model`: its first match ends the search (`terminate_after`)."""
    return {
        "size": 0,
        "terminate_after": 1,
        "track_total_hits": True,
        "query": {"bool": {"filter": [{"term": {"embedding_model": model}}, {"exists": {"field": "embedding"}}]}},
    }


def parse_has_vectors(response: Mapping[str, Any]) -> bool:
    total = (response.get("hits") or {}).get("total") or {}
    return int(total.get("value", 0) if isinstance(total, Mapping) else total) > 0


def parse_vector_models(response: Mapping[str, Any]) -> dict[str, int]:
    aggs = response.get("aggregations") or {}
    counts = {str(b["key"]): int(b["doc_count"]) for b in (aggs.get("models") or {}).get("buckets", [])}
    unrecorded = int((aggs.get("unrecorded") or {}).get("doc_count") or 0)
    if unrecorded:
        counts[UNKNOWN_MODEL] = counts.get(UNKNOWN_MODEL, 0) + unrecorded
    return counts


def parse_nearest_response(response: Mapping[str, Any]) -> list[Hit]:
    out = []
    for raw in hits_of(response):
        hit = parse_hit(raw)
        hit.score = knn_score_to_cosine(raw.get("_score") or 0.0)
        hit.highlights = {}
        out.append(hit)
    return out


def parse_hybrid_response(response: Mapping[str, Any]) -> list[Hit]:
    return [parse_hit(hit) for hit in hits_of(response)]


# --- stories -------------------------------------------------------------------------------------------


def list_stories_body(topic: str | None, limit: int, sort: str) -> dict[str, Any]:
    if sort not in STORY_SORTS:
        raise ValueError(f"sort must be one of {STORY_SORTS}, not {sort!r}")
    query: dict[str, Any] = {"match_all": {}} if topic is None else {"bool": {"filter": [{"term": {"topic": topic}}]}}
    return {"query": query, "size": max(0, min(int(limit), MAX_RESULT_WINDOW)),
            "sort": STORY_SORT_CLAUSES[sort], "track_total_hits": False}


# --- saved searches and the percolator -------------------------------------------------------------------


def saved_search_source(saved: SavedSearch) -> dict[str, Any]:
    """The document of a saved search: its percolator query (text and filters; sort, paging, highlight and
    facets do not matter to a match) and the SearchQuery itself (`to_dict`) so it can be listed back.
    ValueError for a query that can never match anything narrower than everything: no text, no filter."""
    query = saved.query
    if parse_query(query.text).empty and not has_filter(query):
        raise ValueError("a saved search needs text or at least one filter")
    return {
        "search_id": saved.id,
        "name": saved.name,
        "search": query.to_dict(),
        "query": article_query(query, rank=False),
    }


def saved_search_from_source(source: Mapping[str, Any]) -> SavedSearch:
    return SavedSearch(
        id=source["search_id"], query=SearchQuery.from_dict(dict(source["search"])), name=source.get("name") or ""
    )


def list_searches_body(size: int, after: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": {"match_all": {}}, "size": size, "sort": [{"search_id": {"order": "asc"}}],
        "_source": ["search_id", "name", "search"], "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = [after]
    return body


def percolate_body(docs: Sequence[ArticleDoc], size: int, after: str | None = None) -> dict[str, Any]:
    """One page (by saved-search id) of the saved searches that match any of `docs`. Each hit names the
    documents it matched in `fields._percolator_document_slot` (positions in `docs`)."""
    documents = [article_source(doc, embedding=False) for doc in docs]
    body: dict[str, Any] = {
        "query": {"percolate": {"field": "query", "documents": documents}},
        "size": size,
        "sort": [{"search_id": {"order": "asc"}}],
        "_source": ["search_id"],
        "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = [after]
    return body


def parse_percolate_response(
    response: Mapping[str, Any], doc_ids: Sequence[str], into: dict[str, set[str]]
) -> str | None:
    """Add (doc id -> saved-search ids) of one percolate page to `into`; returns the last saved-search id
    of the page (the `search_after` of the next), None when the page was empty."""
    last = None
    for hit in hits_of(response):
        search_id = (hit.get("_source") or {}).get("search_id") or hit["_id"]
        last = search_id
        for slot in (hit.get("fields") or {}).get("_percolator_document_slot") or []:
            into.setdefault(doc_ids[int(slot)], set()).add(search_id)
    return last


# --- errors and connection ---------------------------------------------------------------------------


def is_outage(status: int | None) -> bool:
    """HTTP statuses that mean the cluster refuses service (not one bad request): unauthenticated,
    forbidden, overloaded, server errors. These end a call with ArchiveUnavailable."""
    if status is None:
        return True
    return status in (401, 403, 408, 429) or status >= 500


def bulk_error_reason(info: Mapping[str, Any]) -> str:
    """A short reason for one failed bulk item (`{"error": {"type", "reason"}, "status"}`) or for a
    whole-request failure as `streaming_bulk(raise_on_exception=False)` reports it (`error` a string)."""
    error = info.get("error")
    status = info.get("status")
    if isinstance(error, Mapping):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
        caused = error.get("caused_by")
        if isinstance(caused, Mapping) and caused.get("reason"):
            text += f" ({caused.get('type', '')}: {caused['reason']})"
    else:
        text = str(error or "failed")
    return f"{text} [status {status}]" if status is not None else text


def split_url(url: str) -> tuple[str, str, str | None]:
    """`url` without its user info, and the user name and password it held (percent-decoded), so that
    credentials embedded in `ELASTICSEARCH_URL` work and never show up in a message."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        raise ValueError("the Elasticsearch URL needs a scheme and a host, like http://localhost:9200")
    host = parts.hostname
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    clean = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    username = unquote(parts.username) if parts.username else ""
    password = unquote(parts.password) if parts.password is not None else None
    return clean, username, password


def parse_version(number: str) -> tuple[int, ...]:
    """"9.2.1" (or "9.3.0-SNAPSHOT") -> (9, 2, 1)."""
    return tuple(int(part) for part in re.findall(r"\d+", number.split("-")[0])[:3])
