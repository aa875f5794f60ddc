"""The embedded archive: a SQLite file of its own (`settings.archive_path`), FTS5 for text, numpy for kNN.

Separate from the state DB on purpose: it can be rebuilt from the state DB at any time (clear the
`indexed_at` columns and run `index`), and it is what the Elasticsearch backend replaces.

- `articles` holds the documents (embedding as a float32 blob), `article_topics` their topics (an article
  may have several), `articles_fts` an FTS5 index over title, summary and content with
  `unicode61 remove_diacritics 2`, kept in sync on every upsert. The FTS table holds `folding.fold(text)`
  (same length as the text, see `archive.folding`), which is why it is not an external-content table.
- Ranking is BM25 with title above summary above content (`BM25_WEIGHTS`). A words search reads at most the
  newest `SEARCH_WINDOW` matches (by seq: the order articles were first archived), ranks, counts and facets
  those, and says so in the result (`SearchResult.window`); `article_facets` holds, narrow, what that pass
  reads of each match: the publication time in microseconds and, for the source, language, story and list
  of topics, the id of the value in `facet_values`: 27 bytes a row, where the text values took 70 (26 against
  67 MiB at 1,000,000 articles), so that the pass reads fewer pages and makes fewer Python objects. Facets
  count the ids; only the values that can be shown are read by name.
- kNN: once a model has `ann.ANN_MIN` vectors, an HNSW index of them (usearch, int8, in segment files beside
  the archive, kept up to date by every write: see `archive.ann`) proposes candidates that are rescored
  exactly from their stored vectors; a selective filter (at most `EXACT_MAX` matching articles) is scored
  exactly instead. Smaller models are scored exactly from an in-memory matrix (`archive.vector_cache`); an
  archive in memory, and a search over every model's vectors, by exact brute force (`archive.knn`).
- `saved_searches` holds the analysts' standing queries (`SearchQuery.to_dict()` as JSON). `percolate` loads
  a batch of documents into an in-memory database with the same article schema and runs each saved query
  there through the very code `search` uses (`_matching`), so a saved search matches a document exactly
  when `search` would find it once indexed.
- A rebuild is a mark in `meta` (it survives a restart): `finish_rebuild` drops what was not (re-)indexed
  since, by the `indexed_at` column.
- WAL mode and a busy timeout, so that the CLI can search while a pipeline run indexes.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from archive.base import (
    HL_END,
    HL_START,
    MAX_PER_PAGE,
    RRF_WINDOW,
    SEARCH_WINDOW,
    STORY_SORTS,
    ArchiveBackend,
    ArticleDoc,
    Hit,
    IndexReport,
    SavedSearch,
    SearchQuery,
    SearchResult,
    StoryDoc,
    StorySort,
    UNKNOWN_MODEL,
    fuse_rrf,
)
from archive.folding import fold, restore
from archive.fragments import fragments
from archive import ann, vector_cache
from archive.knn import top_k, unit
from archive.query import parse_query, to_fts5

# 2: saved_searches and meta; 3: articles.embedding_model; 4: article_facets; 5: article_facets of ids and
# facet_values (each added in place to an older archive)
SCHEMA_VERSION = 5
BM25_WEIGHTS = (10.0, 3.0, 1.0)  # title, summary, content
# Fragment size and count per highlighted field (a title is short: one fragment, the whole title).
FRAGMENTS: dict[str, tuple[int, int]] = {"title": (400, 1), "summary": (240, 2), "content": (160, 3)}
KNN_CHUNK = 4096
EXACT_MAX = 2_000  # filtered candidates up to which `nearest` scores exactly instead of asking the ANN
OVERSAMPLE = 4  # ANN candidates per wanted hit (they are rescored exactly and filtered)
MIN_CANDIDATES = 512
DENSE_GAP = 0.015  # approximate cosine distance between the k-th and the last candidate under which ...
DENSE_MAX = 2048  # ... candidates are doubled, up to this many
MAX_CANDIDATES = 20_000  # ANN candidates asked for at most before a filtered search scores the filter exactly ...
FALLBACK_MAX = 50_000  # ... if it matches at most this many articles

CACHE_KIB = 65_536  # the page cache of each archive connection (64 MiB), at most: grown as pages are read

# The full-text table, also created in the scratch database that `_highlights` marks a page up in.
_FTS_DDL = """CREATE VIRTUAL TABLE IF NOT EXISTS articles_fts USING fts5(
    title, summary, content, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
)"""
# The article tables, also created in the in-memory database that `percolate` matches documents in.
_ARTICLE_DDL = _FTS_DDL + """;
CREATE TABLE IF NOT EXISTS articles (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    content TEXT NOT NULL,
    source TEXT NOT NULL,
    language TEXT,
    published_at TEXT NOT NULL,
    topics TEXT NOT NULL,
    relevance REAL,
    story_id TEXT,
    embedding BLOB,
    embedding_model TEXT,
    indexed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_published ON articles(published_at);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source, published_at);
CREATE INDEX IF NOT EXISTS articles_language ON articles(language, published_at);
CREATE INDEX IF NOT EXISTS articles_story ON articles(story_id, published_at);
CREATE INDEX IF NOT EXISTS articles_embedding_model ON articles(embedding_model);
CREATE TABLE IF NOT EXISTS article_topics (
    topic TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES articles(seq) ON DELETE CASCADE,
    PRIMARY KEY (topic, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS article_topics_seq ON article_topics(seq);
CREATE TABLE IF NOT EXISTS facet_values (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    UNIQUE (kind, value)
);
CREATE TABLE IF NOT EXISTS article_facets (
    seq INTEGER PRIMARY KEY REFERENCES articles(seq) ON DELETE CASCADE,
    published INTEGER NOT NULL,
    source INTEGER NOT NULL,
    language INTEGER,
    story INTEGER,
    topics INTEGER NOT NULL
);
"""
_DDL = _ARTICLE_DDL + ann.DDL + """
CREATE TABLE IF NOT EXISTS stories (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    headline TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    article_count INTEGER NOT NULL,
    source_count INTEGER NOT NULL,
    sources TEXT NOT NULL,
    languages TEXT NOT NULL,
    top_links TEXT NOT NULL,
    indexed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stories_last_seen ON stories(last_seen);
CREATE INDEX IF NOT EXISTS stories_topic ON stories(topic, last_seen);
CREATE TABLE IF NOT EXISTS saved_searches (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    saved_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
_REBUILD_MARK = "rebuild_since"  # meta key: when the rebuild in progress began

_ARTICLE_COLUMNS = (
    "id, url, title, summary, content, source, language, published_at, topics, relevance, story_id, "
    "embedding_model"
)
_STORY_COLUMNS = (
    "id, topic, headline, first_seen, last_seen, article_count, source_count, sources, languages, top_links"
)
# The kind of value in `facet_values` of each facet column (a story's value is its id, the topics' the stored
# JSON list), and the column of `articles` it comes from.
_FACET_KINDS = {"source": "source", "language": "language", "story": "story_id", "topics": "topics"}
# What a words search reads of each match in its window (`_window`): seq, score, then these columns of its
# `article_facets` row (published: microseconds since the epoch; the others: `facet_values` ids, null where
# the article has no language or story). Facets count them ("topic": the id of the stored JSON list, "day":
# the UTC day of `published`); the ordering is score, published, then id (read for the page's rows only).
_FACET_FIELDS = ("published", *_FACET_KINDS)
_FACET_COLUMNS = ", ".join(_FACET_FIELDS)
_SEQ, _SCORE, _PUBLISHED = 0, 1, 2
_FACET_AT = {"source": 3, "language": 4, "story_id": 5, "topic": 6, "day": _PUBLISHED}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DAY_US = 86_400_000_000
_STORY_ORDER = {"last_seen": "last_seen DESC, id", "size": "article_count DESC, last_seen DESC, id"}
# Errors that concern one document; anything else (locked, disk full, corrupt) aborts the batch.
_DOC_ERRORS = (ValueError, TypeError, sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError)


def _ts(value: datetime) -> str:
    """A UTC-aware datetime as fixed-width ISO text, so that text order is time order."""
    return value.isoformat(timespec="microseconds")


def _now() -> str:
    return _ts(datetime.now(timezone.utc))


def _micros(value: datetime) -> int:
    """A UTC-aware datetime as whole microseconds since the epoch (exact: no float in between)."""
    return (value - _EPOCH) // timedelta(microseconds=1)


class SQLiteArchive(ArchiveBackend):
    """The archive in one SQLite file. One instance per thread (sqlite3 connections are not shared)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE for writes).
        self._db: sqlite3.Connection | None = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # SQLite's default page cache is 2 MiB; a words search at 1,000,000 articles touches about 10,000 rows of
        # `article_facets` and of the full-text docsize table, which then came from the OS cache each time
        # (bench/archive_bench.py at 1,000,000, one connection for all its searches, runs alternated: words p95
        # 54-66 -> 51-57 ms; without facets and highlights 46-49 -> 36-39 ms). The cache lives as long as the
        # connection: the web app and the CLI open an archive per request, so a search there starts cold.
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        # (seq, model, vector, language) of a write's new or changed vectors, for the ANN
        self._written: list[tuple[int, str, np.ndarray, str | None]] = []
        self._full_text: list[tuple[int, tuple[str, str, str]]] = []  # (seq, folded texts) of a write, for the FTS
        self._facet_rows: list[tuple[int, tuple[Any, ...]]] = []  # (seq, `_facet_row`) of a write
        self._rebuilding = False

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the archive is closed")
        return self._db

    # --- lifecycle -------------------------------------------------------------------------------

    def ensure_ready(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path}: archive schema {version} is newer than this code ({SCHEMA_VERSION})"
            )
        with self._transaction():
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(articles)")}
            if columns and "embedding_model" not in columns:  # an archive of schema 2 or older
                self.db.execute("ALTER TABLE articles ADD COLUMN embedding_model TEXT")
            if version < 5:  # schema 4's facet rows held the text values
                self.db.execute("DROP TABLE IF EXISTS article_facets")
            _create(self.db, _DDL)
            if version < 5:  # an archive of schema 4 or older: its articles' facets (a new one has none yet)
                _fill_facets(self.db)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction (BEGIN IMMEDIATE): committed at the end, rolled back on any exception."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._db is not None:
            if self.path != ":memory:":
                try:  # what this process wrote into the ANN's open segments goes to their files
                    ann.persist(self._db, self.path, self._transaction, self._stamp_now)
                except (sqlite3.Error, OSError, RuntimeError):
                    pass  # the deltas stay listed: the next writer takes them over
            self._db.close()
            self._db = None

    # --- writing ---------------------------------------------------------------------------------

    def index_articles(self, docs: Iterable[ArticleDoc]) -> IndexReport:
        return self._bulk(docs, self._upsert_article, articles=True)

    def index_stories(self, docs: Iterable[StoryDoc]) -> IndexReport:
        return self._bulk(docs, self._upsert_story)

    def _bulk(self, docs: Iterable[Any], upsert: Callable[[Any, str], None], articles: bool = False) -> IndexReport:
        """One transaction for the batch, a savepoint per document: a bad document is rolled back and
        reported, the others are kept."""
        report = IndexReport()
        self._written, self._full_text, self._facet_rows = [], [], []
        changes = ann.Changes()
        try:
            self._bulk_in_transaction(docs, upsert, articles, report, changes)
        except BaseException:
            changes.rolled_back()
            raise
        changes.committed()
        return report

    def _bulk_in_transaction(self, docs: Iterable[Any], upsert: Callable[[Any, str], None], articles: bool,
                             report: IndexReport, changes: ann.Changes) -> None:
        with self._transaction():
            # Never stamp a document before the rebuild mark (a clock set back), or finish_rebuild drops it.
            mark = self._meta(_REBUILD_MARK)
            now = max(_now(), mark or "")
            # in a rebuild every vector goes into the ANN again: finish_rebuild drops the segments before the mark
            self._rebuilding = mark is not None
            for doc in docs:
                doc_id = str(getattr(doc, "id", "") or "")
                written, texts, facets = len(self._written), len(self._full_text), len(self._facet_rows)
                self.db.execute("SAVEPOINT doc")
                try:
                    if not doc_id:
                        raise ValueError("document has no id")
                    upsert(doc, now)
                except _DOC_ERRORS as exc:
                    self.db.execute("ROLLBACK TO doc")
                    del self._written[written:], self._full_text[texts:], self._facet_rows[facets:]
                    report.failed[doc_id] = f"{type(exc).__name__}: {exc}"
                else:
                    report.indexed.append(doc_id)
                finally:
                    self.db.execute("RELEASE doc")
            _write_facets(self.db, dict(self._facet_rows))  # before the FTS (see `_write_full_text`)
            _write_full_text(self.db, dict(self._full_text))  # an article written twice: its last text
            if articles and report.indexed:
                if self.path != ":memory:":
                    ann.on_write(self.db, self.path, self._written, now, changes)  # in this transaction
                self._articles_changed()  # searching processes reload their vectors

    def _articles_changed(self) -> None:
        """Inside a write transaction that changed articles: bump `meta.vectors_version`, and move the stamp
        of each ANN index that was up to date along with it."""
        before = vector_cache.current_version(self.db)
        vector_cache.bump(self.db)
        ann.stamp(self.db, before)

    def _upsert_article(self, doc: ArticleDoc, now: str) -> None:
        before = None
        if doc.embedding is not None and doc.embedding_model is not None and not self._rebuilding:
            before = self.db.execute("SELECT embedding, embedding_model FROM articles WHERE id = ?",
                                     (doc.id,)).fetchone()
        seq = _write_article(self.db, doc, now)
        self._full_text.append((seq, _full_text(doc)))  # written after the batch's loop (`_write_full_text`)
        self._facet_rows.append((seq, _facet_row(doc)))  # likewise (`_write_facets`)
        if doc.embedding is not None and doc.embedding_model is not None:
            vector = np.asarray(doc.embedding, dtype="<f4")
            changed = before is None or before[1] != doc.embedding_model or before[0] != vector.tobytes()
            if self._rebuilding or changed:
                self._written.append((seq, doc.embedding_model, vector, doc.language))  # new or changed: the ANN

    def _upsert_story(self, doc: StoryDoc, now: str) -> None:
        links = [
            {"title": str(link.get("title", "")), "url": str(link.get("url", "")),
             "source": str(link.get("source", ""))}
            for link in doc.top_links
        ]
        self.db.execute(
            f"""INSERT OR REPLACE INTO stories ({_STORY_COLUMNS}, indexed_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                doc.id, doc.topic, doc.headline, _ts(doc.first_seen), _ts(doc.last_seen),
                int(doc.article_count), int(doc.source_count),
                json.dumps({str(k): int(v) for k, v in doc.sources.items()}, ensure_ascii=False),
                json.dumps({str(k): int(v) for k, v in doc.languages.items()}, ensure_ascii=False),
                json.dumps(links, ensure_ascii=False), now,
            ),
        )

    def delete_stories(self, story_ids: Iterable[str]) -> int:
        ids = [(story_id,) for story_id in story_ids]
        with self.db:
            cursor = self.db.executemany("DELETE FROM stories WHERE id = ?", ids)
        return max(cursor.rowcount, 0)

    def delete_articles(self, article_ids: Iterable[str]) -> int:
        """Delete the articles with their FTS rows and topics, in one transaction; their vectors leave the ANN
        segments as garbage (candidates are rescored from the table, so a deleted seq is never a hit) until
        `ann.on_delete` finds enough of it to rebuild, or drops the index below ANN_MIN vectors."""
        ids = list(dict.fromkeys(str(article_id) for article_id in article_ids if article_id))
        if not ids:
            return 0
        deleted = 0
        changes = ann.Changes()
        try:
            with self._transaction():
                models: set[str] = set()
                for start in range(0, len(ids), KNN_CHUNK // 8):
                    chunk = ids[start : start + KNN_CHUNK // 8]
                    rows = self.db.execute(
                        f"SELECT seq, embedding_model FROM articles WHERE id IN ({_placeholders(chunk)})", chunk
                    ).fetchall()
                    seqs = [row[0] for row in rows]
                    models |= {row[1] for row in rows if row[1]}
                    if not seqs:
                        continue
                    marks = _placeholders(seqs)
                    self.db.execute(f"DELETE FROM articles_fts WHERE rowid IN ({marks})", seqs)
                    self.db.execute(f"DELETE FROM article_topics WHERE seq IN ({marks})", seqs)
                    self.db.execute(f"DELETE FROM articles WHERE seq IN ({marks})", seqs)
                    deleted += len(seqs)
                if deleted:
                    self._articles_changed()  # searching processes reload their vectors
                    if self.path != ":memory:":
                        ann.on_delete(self.db, self.path, sorted(models), self._stamp_now(), changes)
        except BaseException:
            changes.rolled_back()
            raise
        changes.committed()
        return deleted

    def begin_rebuild(self) -> None:
        """Mark the start of a rebuild (kept in `meta`, so a restart in between does not lose it). Begun
        again (a rebuild that failed and is retried), the new mark replaces the old one."""
        with self._transaction():
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (_REBUILD_MARK, _now()),
            )

    def finish_rebuild(self) -> None:
        """Drop the articles and stories not (re-)indexed since `begin_rebuild`, in one transaction. A no-op
        when no rebuild is under way (as on ES), so a finish repeated after a crash does no harm."""
        changes = ann.Changes()
        try:
            with self._transaction():
                mark = self._meta(_REBUILD_MARK)
                if mark is None:
                    return
                stale = "SELECT seq FROM articles WHERE indexed_at < ?"
                self.db.execute(f"DELETE FROM articles_fts WHERE rowid IN ({stale})", (mark,))
                self.db.execute("DELETE FROM articles WHERE indexed_at < ?", (mark,))  # topics: ON DELETE CASCADE
                self.db.execute("DELETE FROM stories WHERE indexed_at < ?", (mark,))
                self.db.execute("DELETE FROM meta WHERE key = ?", (_REBUILD_MARK,))
                if self.path != ":memory:":  # the ANN segments made before the mark: deleted or re-indexed since
                    ann.drop_before(self.db, self.path, mark, changes)
                self._articles_changed()
        except BaseException:
            changes.rolled_back()
            raise
        changes.committed()

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # --- saved searches --------------------------------------------------------------------------

    def save_search(self, saved: SavedSearch) -> None:
        if _matches_everything(saved.query):
            raise ValueError(f"saved search {saved.id!r}: a query needs search text or a filter")
        data = json.dumps(saved.query.to_dict(), ensure_ascii=False, sort_keys=True)
        with self._transaction():
            self.db.execute(
                """INSERT INTO saved_searches (id, name, query, saved_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET
                       name = excluded.name, query = excluded.query, saved_at = excluded.saved_at""",
                (saved.id, saved.name or "", data, _now()),
            )

    def delete_search(self, search_id: str) -> bool:
        with self._transaction():
            cursor = self.db.execute("DELETE FROM saved_searches WHERE id = ?", (search_id,))
        return cursor.rowcount > 0

    def list_searches(self) -> list[SavedSearch]:
        rows = self.db.execute("SELECT id, name, query FROM saved_searches ORDER BY id").fetchall()
        return [SavedSearch(id=i, query=SearchQuery.from_dict(json.loads(q)), name=name) for i, name, q in rows]

    def percolate(self, docs: Sequence[ArticleDoc]) -> dict[str, list[str]]:
        """The SQLite percolator: the documents go into a throwaway in-memory database with the archive's
        article schema (same tokenizer, same folding), and each saved search runs there as the query
        `search` would run (`_matching`): same text semantics, same filters, no emulation."""
        searches = self.list_searches()
        if not docs or not searches:
            return {}
        matched: dict[str, set[str]] = {}
        scratch = sqlite3.connect(":memory:", isolation_level=None)
        try:
            _create(scratch, _ARTICLE_DDL)
            scratch.execute("BEGIN")
            now = _now()
            texts = {}
            for doc in docs:
                if not doc.id:
                    raise ValueError("percolate: a document has no id")
                texts[_write_article(scratch, doc, now, embedding=False)] = _full_text(doc)
            _write_full_text(scratch, texts)
            scratch.execute("COMMIT")
            for saved in searches:
                source, where, params = _matching(saved.query, to_fts5(parse_query(saved.query.text)))
                for (doc_id,) in scratch.execute(f"SELECT a.id {source} {where}", params):
                    matched.setdefault(doc_id, set()).add(saved.id)
        finally:
            scratch.close()
        return {doc_id: sorted(ids) for doc_id, ids in matched.items()}

    # --- reading ---------------------------------------------------------------------------------

    def get_article(self, article_id: str) -> ArticleDoc | None:
        row = self.db.execute(
            f"SELECT {_ARTICLE_COLUMNS}, embedding FROM articles WHERE id = ?", (article_id,)
        ).fetchone()
        return _article(row[:-1], row[-1]) if row else None

    def get_story(self, story_id: str) -> StoryDoc | None:
        row = self.db.execute(f"SELECT {_STORY_COLUMNS} FROM stories WHERE id = ?", (story_id,)).fetchone()
        return _story(row) if row else None

    def list_stories(
        self, topic: str | None = None, limit: int = 20, sort: StorySort = "last_seen"
    ) -> list[StoryDoc]:
        if sort not in STORY_SORTS:
            raise ValueError(f"sort must be one of {STORY_SORTS}, not {sort!r}")
        where, params = ("WHERE topic = ?", [topic]) if topic is not None else ("", [])
        rows = self.db.execute(
            f"SELECT {_STORY_COLUMNS} FROM stories {where} ORDER BY {_STORY_ORDER[sort]} LIMIT ?",
            [*params, max(int(limit), 0)],
        ).fetchall()
        return [_story(row) for row in rows]

    def count(self) -> dict[str, int]:
        articles = self.db.execute("SELECT count(*) FROM articles").fetchone()[0]
        stories = self.db.execute("SELECT count(*) FROM stories").fetchone()[0]
        return {"articles": articles, "stories": stories}

    def has_vectors(self, model: str) -> bool:
        # an embedding_model is only stored with its vector (`_write_article`): the model's index answers
        found = self.db.execute("SELECT 1 FROM articles WHERE embedding_model = ? LIMIT 1", (model,)).fetchone()
        return found is not None

    def vector_models(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT coalesce(embedding_model, ?), count(*) FROM articles WHERE embedding IS NOT NULL "
            "GROUP BY 1 ORDER BY 2 DESC, 1",
            (UNKNOWN_MODEL,),
        ).fetchall()
        return {model: count for model, count in rows}

    # --- search ----------------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResult:
        """Words search over a bounded window: the newest SEARCH_WINDOW matches are read in one pass (score
        and facet columns: `_window`), ranked, counted and faceted; the page's articles are then read in
        full. A common word in a million articles matches 100,000 of them or more, and reading every match
        costs seconds (about 3 us each through the article rows); the window bounds that to milliseconds.
        `total` stays exact where counting is cheap: the window held every match, or the query has no filter
        (FTS5 counts a term's matches from its index alone)."""
        match = to_fts5(parse_query(query.text))
        rows, more = self._window(query, match)
        total, exact = len(rows), True
        if more:
            total, exact = self._total(query, match)
        page = self._ranked(query, match, rows)
        marks = self._highlights(match, [row[_SEQ] for row, _ in page]) if match and query.highlight else {}
        hits = [Hit(doc.id, float(row[_SCORE]), doc, _fragments(marks.get(row[_SEQ]), doc)) for row, doc in page]
        return SearchResult(total, hits, _facets(query, rows, self._facet_values), query.page, query.per_page,
                            total_exact=exact, window=SEARCH_WINDOW if more else None)

    def _window(self, query: SearchQuery, match: str) -> tuple[list[tuple[Any, ...]], bool]:
        """The newest SEARCH_WINDOW matches (the oldest, for `sort="oldest"`), each as seq, score and
        `_FACET_COLUMNS`, and whether more matched. With text, the full-text index drives, newest first by
        seq (the order articles were first archived), through the narrow `article_facets` rows (filtered
        there too); a browse walks the articles' published_at indexes (filtered there) and reads each
        article's facet row."""
        weights = ", ".join(str(weight) for weight in BM25_WEIGHTS)
        oldest = query.sort == "oldest"
        if match:
            source, where, params = _matching(query, match, table="article_facets")
            score, facets = f"-bm25(articles_fts, {weights})", "a"
            order = "articles_fts.rowid " + ("ASC" if oldest else "DESC")
        else:
            source, where, params = _matching(query, match)
            source += " JOIN article_facets f ON f.seq = a.seq"
            score, facets = "0.0", "f"
            order = "a.published_at ASC, a.id" if oldest else "a.published_at DESC, a.id"
        columns = ", ".join(f"{facets}.{column}" for column in _FACET_FIELDS)
        rows = self.db.execute(
            f"SELECT a.seq, {score}, {columns} {source} {where} ORDER BY {order} LIMIT ?",
            [*params, SEARCH_WINDOW + 1],
        ).fetchall()
        return rows[:SEARCH_WINDOW], len(rows) > SEARCH_WINDOW

    def _total(self, query: SearchQuery, match: str) -> tuple[int, bool]:
        """(total, exact) of a query that matched more than its window: counted when that is cheap (no filter:
        FTS5 counts from its index, a browse counts the table), else the window as a lower bound."""
        if _filtered(query):
            return SEARCH_WINDOW, False
        if match:
            sql, params = "SELECT count(*) FROM articles_fts WHERE articles_fts MATCH ?", [match]
        else:
            sql, params = "SELECT count(*) FROM article_facets", []
        return int(self.db.execute(sql, params).fetchone()[0]), True

    def _ranked(self, query: SearchQuery, match: str, rows: list[tuple[Any, ...]]
                ) -> list[tuple[tuple[Any, ...], ArticleDoc]]:
        """The page's window rows (`_page`) with their articles, read apart: a row a writer deleted in between
        is left out."""
        page = _page(query, match, rows, self._ids)
        docs = self._docs([row[_SEQ] for row in page])
        return [(row, docs[row[_SEQ]]) for row in page if row[_SEQ] in docs]

    def _ids(self, seqs: Sequence[int]) -> dict[int, str]:
        return dict(_rows_in(self.db, "SELECT seq, id FROM articles WHERE seq IN ({marks})", seqs))

    def _facet_values(self, ids: Iterable[int]) -> dict[int, str]:
        """`facet_values` id -> value, for `ids` only."""
        return dict(_rows_in(self.db, "SELECT id, value FROM facet_values WHERE id IN ({marks})", list(ids)))

    def _docs(self, seqs: Sequence[int]) -> dict[int, ArticleDoc]:
        if not seqs:
            return {}
        rows = self.db.execute(
            f"SELECT seq, {_ARTICLE_COLUMNS} FROM articles WHERE seq IN ({_placeholders(seqs)})", list(seqs)
        ).fetchall()
        return {row[0]: _article(row[1:]) for row in rows}

    def _highlights(self, match: str, seqs: list[int]) -> dict[int, tuple[str, str, str]]:
        """The page's articles marked up by FTS5's `highlight`, in a scratch full-text table of just those rows
        (same definition, same folded text): a MATCH in the archive's own table builds the expression's
        whole doclist first, and a prefix (`missile*` in a million articles) costs 20 ms that way."""
        if not seqs:
            return {}
        rows = self.db.execute(f"SELECT rowid, title, summary, content FROM articles_fts "
                               f"WHERE rowid IN ({_placeholders(seqs)})", seqs).fetchall()
        scratch = sqlite3.connect(":memory:", isolation_level=None)
        try:
            scratch.execute(_FTS_DDL)
            scratch.executemany("INSERT INTO articles_fts (rowid, title, summary, content) VALUES (?, ?, ?, ?)", rows)
            marks = ", ".join(f"highlight(articles_fts, {column}, ?, ?)" for column in range(3))
            found = scratch.execute(f"SELECT rowid, {marks} FROM articles_fts WHERE articles_fts MATCH ?",
                                    [HL_START, HL_END] * 3 + [match]).fetchall()
        finally:
            scratch.close()
        return {row[0]: (row[1], row[2], row[3]) for row in found}

    def nearest(
        self, vector: np.ndarray, k: int = 10, query: SearchQuery | None = None, model: str | None = None
    ) -> list[Hit]:
        target = unit(vector)
        match = to_fts5(parse_query(query.text)) if query else ""
        source, where, params = _matching(query or SearchQuery(), match)
        if model is not None and self.path != ":memory:":
            index = ann.open_index(self.db, self.path, model, target.shape[0], self._transaction, self._stamp_now)
            if index is not None:
                if index.dim != target.shape[0]:
                    return []
                languages = query.languages if query is not None else ()
                return self._hits(self._nearest_ann(index, target, k, source, where, params, model, languages))
        cached = vector_cache.vectors(self.db, self.path, model, target.shape[0]) if model is not None else None
        if cached is not None:
            candidates = None
            if where:  # the filters (and words) pick the candidates; the matrix in memory scores them
                seqs = [row[0] for row in self.db.execute(f"SELECT a.seq {source} {where}", params)]
                candidates = np.unique(np.asarray(seqs, dtype=np.int64))
            best = vector_cache.top_k(cached, target, k, candidates)
            return self._hits(best)
        where = f"{where} AND a.embedding IS NOT NULL" if where else "WHERE a.embedding IS NOT NULL"
        if model is not None:
            where, params = f"{where} AND a.embedding_model = ?", [*params, model]
        return self._hits(self._exact(target, k, source, where, params))

    def hybrid(
        self, query: SearchQuery, vector: np.ndarray, k: int = 20, model: str | None = None,
        vector_hits: Sequence[Hit] | None = None,
    ) -> list[Hit]:
        """As `ArchiveBackend.hybrid` (same rankings, same fusion, same highlights), but the text ranking is
        not a whole `search`: no total count (a second pass over every match) and highlights only for the
        fused hits that came from it, not for the whole window."""
        window = max(k, RRF_WINDOW)
        ranked: list[tuple[int, Hit]] = []
        match = ""
        if query.text.strip():
            match = to_fts5(parse_query(query.text))
            ranked = self._ranking(replace(query, page=1, per_page=min(window, MAX_PER_PAGE)), match)
        if vector_hits is None:
            vector_hits = self.nearest(vector, k=window, query=replace(query, text=""), model=model)
        fused = fuse_rrf([[hit for _, hit in ranked], vector_hits], k)
        if match and query.highlight:
            seqs = {hit.id: seq for seq, hit in ranked}
            wanted = [seqs[hit.id] for hit in fused if hit.id in seqs]
            marks = self._highlights(match, wanted)
            for hit in fused:
                if hit.id in seqs:
                    hit.highlights = _fragments(marks.get(seqs[hit.id]), hit.doc)
        return fused

    def _ranking(self, query: SearchQuery, match: str) -> list[tuple[int, Hit]]:
        """The page of `search(query)`'s hits, without highlights, each with its seq."""
        rows, _ = self._window(query, match)
        return [(row[_SEQ], Hit(doc.id, float(row[_SCORE]), doc)) for row, doc in self._ranked(query, match, rows)]

    def _stamp_now(self) -> str:
        """The time a write stamps (never before the rebuild mark, as in `_bulk`)."""
        return max(_now(), self._meta(_REBUILD_MARK) or "")

    def _nearest_ann(self, index: ann.Segments, target: np.ndarray, k: int, source: str, where: str,
                     params: list[Any], model: str, languages: Sequence[str] = ()) -> list[tuple[int, float]]:
        """kNN through the ANN: candidates from the index (from the segments of the filter's languages only:
        the index is split by language, which dominates the embedding space, so that a language filter is not
        a post-filter), filtered and rescored exactly in SQL. A selective
        filter (at most EXACT_MAX matches) is scored exactly over its matches instead; a filter that keeps too
        few of MAX_CANDIDATES candidates, too, if it matches at most FALLBACK_MAX."""
        if k <= 0:
            return []
        model_where = f"{where} AND a.embedding_model = ?" if where else "WHERE a.embedding_model = ?"
        exact_where = f"{where} AND +a.embedding_model = ?" if where else "WHERE a.embedding_model = ?"
        if where:
            # How many match the filters (of any model: an upper bound), by the filters' own indexes; a
            # condition on the model would let the planner walk the model's index instead (all of it).
            if self._at_most(EXACT_MAX, source, where, params):
                return self._exact(target, k, source, exact_where, [*params, model])
        # Drive the rescoring from the candidates (CROSS JOIN fixes the join order), whatever the filters.
        if source.startswith("FROM articles_fts"):
            candidates = ("FROM json_each(?) c CROSS JOIN articles a ON a.seq = c.value "
                          "CROSS JOIN articles_fts ON articles_fts.rowid = a.seq")
        else:
            candidates = "FROM json_each(?) c CROSS JOIN articles a ON a.seq = c.value"
        wanted = max(k * OVERSAMPLE, MIN_CANDIDATES)
        while True:
            keys, distances = index.search(target, wanted, languages)
            # Many near-copies (syndicated wires, updates): the candidates all lie within a hair of the k-th,
            # and int8 distances cannot order them; ask for more, so that rescoring can.
            while (keys.size == wanted < DENSE_MAX and keys.size > k
                   and distances[-1] - distances[min(k, keys.size) - 1] < DENSE_GAP):
                wanted *= 2
                keys, distances = index.search(target, wanted, languages)
            cursor = self.db.execute(f"SELECT a.seq, a.embedding {candidates} {model_where}",
                                     [ann.to_json(keys), *params, model])
            best = top_k(target, _chunks(cursor), k)
            if len(best) >= k or keys.size < wanted or wanted >= index.vectors:
                return best
            if wanted >= MAX_CANDIDATES:
                # The nearest articles mostly fail the filter (German articles asked for near a Russian query:
                # language dominates the embedding space). Score the filter exactly if that is affordable; a
                # broad filter keeps what passed among the candidates (fewer than k: a recall loss, the price
                # of post-filtering; a filtered HNSW traversal would avoid it).
                affordable = self._at_most(FALLBACK_MAX, source, where, params)
                return self._exact(target, k, source, exact_where, [*params, model]) if affordable else best
            wanted = min(MAX_CANDIDATES, wanted * 4)  # four times as many until k pass

    def _at_most(self, limit: int, source: str, where: str, params: list[Any]) -> bool:
        """Whether at most `limit` articles match (counted no further than one past it)."""
        return self.db.execute(
            f"SELECT count(*) FROM (SELECT 1 {source} {where} LIMIT ?)", [*params, limit + 1]
        ).fetchone()[0] <= limit

    def _exact(self, target: np.ndarray, k: int, source: str, where: str, params: list[Any]
               ) -> list[tuple[int, float]]:
        cursor = self.db.execute(f"SELECT a.seq, a.embedding {source} {where}", params)
        return top_k(target, _chunks(cursor), k)

    def _hits(self, best: list[tuple[int, float]]) -> list[Hit]:
        docs = self._docs([seq for seq, _ in best])
        return [Hit(docs[seq].id, score, docs[seq]) for seq, score in best if seq in docs]


# --- helpers ---------------------------------------------------------------------------------------


def _create(db: sqlite3.Connection, ddl: str) -> None:
    for statement in ddl.split(";"):
        if statement.strip():
            db.execute(statement)


def _write_article(db: sqlite3.Connection, doc: ArticleDoc, now: str, embedding: bool = True) -> int:
    """Upsert one article into `db`'s article tables (the archive's, or the percolator's scratch copy) but
    the full-text table and the facet rows (`_write_full_text` and `_write_facets`, once for a batch, with
    `_full_text(doc)` and `_facet_row(doc)`); its seq."""
    blob = None
    if embedding and doc.embedding is not None:
        vector = np.asarray(doc.embedding, dtype="<f4").reshape(-1)
        if not vector.size or not np.all(np.isfinite(vector)):
            raise ValueError("embedding is empty or not finite")
        blob = vector.tobytes()
    topics = _topics(doc)
    (seq,) = db.execute(
        f"""INSERT INTO articles ({_ARTICLE_COLUMNS}, embedding, indexed_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET
                url = excluded.url, title = excluded.title, summary = excluded.summary,
                content = excluded.content, source = excluded.source, language = excluded.language,
                published_at = excluded.published_at, topics = excluded.topics,
                relevance = excluded.relevance, story_id = excluded.story_id,
                embedding_model = excluded.embedding_model, embedding = excluded.embedding,
                indexed_at = excluded.indexed_at
            RETURNING seq""",
        (
            doc.id, doc.url, doc.title or "", doc.summary or "", doc.content or "", doc.source,
            doc.language, _ts(doc.published_at), json.dumps(topics, ensure_ascii=False),
            None if doc.relevance is None else float(doc.relevance), doc.story_id,
            doc.embedding_model if blob is not None else None, blob, now,
        ),
    ).fetchone()
    db.execute("DELETE FROM article_topics WHERE seq = ?", (seq,))
    db.executemany("INSERT INTO article_topics (topic, seq) VALUES (?, ?)", [(topic, seq) for topic in topics])
    return int(seq)


def _topics(doc: ArticleDoc) -> list[str]:
    return sorted({str(topic) for topic in doc.topics if topic})


def _facet_row(doc: ArticleDoc) -> tuple[Any, ...]:
    """What `article_facets` holds of an article, before the values become ids: its publication time in
    microseconds, then its value of each `_FACET_KINDS` (the topics as `articles.topics` holds them)."""
    return (_micros(doc.published_at), doc.source, doc.language, doc.story_id,
            json.dumps(_topics(doc), ensure_ascii=False))


def _write_facets(db: sqlite3.Connection, rows: dict[int, tuple[Any, ...]]) -> None:
    """Replace the facet rows of a batch of written articles (seq -> `_facet_row`): the batch's distinct
    values are added to `facet_values` and read back as ids once for the batch, not once per article."""
    if not rows:
        return
    ids: dict[tuple[str, str], int] = {}
    for at, kind in enumerate(_FACET_KINDS.values(), start=1):
        values = sorted({row[at] for row in rows.values() if row[at] is not None})
        db.executemany("INSERT OR IGNORE INTO facet_values (kind, value) VALUES (?, ?)",
                       [(kind, value) for value in values])
        ids.update(((kind, value), id_) for value, id_ in _rows_in(
            db, "SELECT value, id FROM facet_values WHERE kind = ? AND value IN ({marks})", values, kind))
    kinds = list(_FACET_KINDS.values())
    db.executemany(
        f"INSERT OR REPLACE INTO article_facets (seq, {_FACET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        [(seq, row[0], *(None if value is None else ids[kind, value] for kind, value in zip(kinds, row[1:])))
         for seq, row in rows.items()])


def _fill_facets(db: sqlite3.Connection) -> None:
    """The facet rows (and values) of every article, from the `articles` table, a chunk at a time through
    `_write_facets`: an older archive's upgrade."""
    cursor = db.execute(f"SELECT seq, published_at, {', '.join(_FACET_KINDS.values())} FROM articles")
    while rows := cursor.fetchmany(KNN_CHUNK):
        _write_facets(db, {seq: (_micros(datetime.fromisoformat(published)), *values)
                           for seq, published, *values in rows})


def _full_text(doc: ArticleDoc) -> tuple[str, str, str]:
    """What `articles_fts` holds of an article: its title, summary and content, folded."""
    return fold(doc.title or ""), fold(doc.summary or ""), fold(doc.content or "")


def _write_full_text(db: sqlite3.Connection, texts: dict[int, tuple[str, str, str]]) -> None:
    """Replace the full-text rows of a batch of written articles (seq -> `_full_text`), in two statements.

    Not one row per article beside its other rows: SQLite opens a statement savepoint for each statement
    that may have to undo itself (an `INSERT OR REPLACE`, a named savepoint), and FTS5 writes its pending
    terms to disk as a new segment at every savepoint. Per article that is one segment per document and
    merge work on every insert: written together, a batch is one segment (archive writes 3,300 -> 4,800
    documents/s here)."""
    if not texts:
        return
    db.executemany("DELETE FROM articles_fts WHERE rowid = ?", [(seq,) for seq in texts])
    db.executemany("INSERT INTO articles_fts (rowid, title, summary, content) VALUES (?, ?, ?, ?)",
                   [(seq, *folded) for seq, folded in texts.items()])


def _matches_everything(query: SearchQuery) -> bool:
    """True for a query with no searchable term (empty, blank or punctuation-only text, as `search` reads it)
    and no filter: as a saved search it would alert on every article, which is a mistake, not a standing
    query. `save_search` refuses it."""
    return parse_query(query.text).empty and not _filtered(query)


def _filtered(query: SearchQuery) -> bool:
    """Whether `query` has any filter (sources, languages, topics, stories, a date bound)."""
    filters = (query.sources, query.languages, query.topics, query.story_ids, query.date_from, query.date_to)
    return any(filters)


def _page(query: SearchQuery, match: str, rows: list[tuple[Any, ...]],
          ids: Callable[[list[int]], dict[int, str]]) -> list[tuple[Any, ...]]:
    """The window rows of the page asked for, in the order of `query.sort`: relevance (with text) by score,
    then newest; newest; oldest; ties by id (`ids`: seq -> id, asked for those rows only). Only the rows that
    can be on the page or before it are sorted: those at least as far up the first key as the last such row
    (ties included)."""
    relevance = query.sort == "relevance" and bool(match)
    first = itemgetter(_SCORE if relevance else _PUBLISHED)
    descending = query.sort != "oldest"
    wanted = query.offset + query.per_page
    if len(rows) > wanted:
        edge = first((heapq.nlargest if descending else heapq.nsmallest)(wanted, rows, key=first)[-1])
        rows = [row for row in rows if (first(row) >= edge if descending else first(row) <= edge)]
    known = ids([row[_SEQ] for row in rows])
    ordered = sorted(rows, key=lambda row: known.get(row[_SEQ], ""))  # stable sorts, the last key first
    if relevance:
        ordered.sort(key=itemgetter(_PUBLISHED), reverse=True)
    ordered.sort(key=first, reverse=descending)
    return ordered[query.offset : wanted]


def _facets(query: SearchQuery, rows: list[tuple[Any, ...]],
            values: Callable[[Iterable[int]], dict[int, str]]) -> dict[str, dict[str, int]]:
    """The facets asked for, counted over window rows: the most frequent values first (then by value), "day"
    the most recent UTC days in date order, "topic" from the stored lists of topics. The rows hold value ids
    (`values`: id -> value, asked once for the ids that can be shown: every topic list, and of the other
    facets the ids counted at least as often as the `facet_size`-th, so that ties are ordered by value)."""
    size = query.facet_size
    counted: dict[str, Counter[int]] = {}
    wanted: set[int] = set()
    facets: dict[str, dict[str, int]] = {}
    for name in query.facets:
        if name == "day":
            days = Counter(published // _DAY_US for published in map(itemgetter(_PUBLISHED), rows))
            facets[name] = {(_EPOCH + timedelta(days=day)).date().isoformat(): days[day]
                            for day in sorted(days)[-size:]}
            continue
        counts = Counter(map(itemgetter(_FACET_AT[name]), rows))
        counts.pop(None, None)
        counted[name] = counts
        if name == "topic" or len(counts) <= size:
            wanted.update(counts)
        else:
            edge = heapq.nlargest(size, counts.values())[-1]
            wanted.update(value for value, count in counts.items() if count >= edge)
    known = values(wanted) if wanted else {}
    for name, counts in counted.items():
        named: Counter[str] = Counter()
        for value, count in counts.items():
            if value not in known:
                continue
            if name == "topic":
                for topic in json.loads(known[value]):
                    named[topic] += count
            else:
                named[known[value]] += count
        facets[name] = dict(sorted(named.items(), key=lambda item: (-item[1], item[0]))[:size])
    # in the order asked for
    return {name: facets[name] for name in query.facets if name in facets}


def _matching(query: SearchQuery, match: str, table: str = "articles") -> tuple[str, str, list[Any]]:
    """FROM and WHERE clauses (and their parameters) of the articles matching `query`'s text and filters, as
    rows `a` of `table`: `articles`, or the narrow `article_facets` (the filtered columns only, as
    microseconds and `facet_values` ids: a value filter there is a lookup of the values' ids).

    Only placeholders carry values; the SQL text is built from constants."""
    conditions: list[str] = []
    params: list[Any] = []
    if match:
        source = f"FROM articles_fts JOIN {table} a ON a.seq = articles_fts.rowid"
        conditions.append("articles_fts MATCH ?")
        params.append(match)
    else:
        source = f"FROM {table} a"
    facets = table == "article_facets"
    stamp: Callable[[datetime], Any] = _micros if facets else _ts
    published = "a.published" if facets else "a.published_at"
    if query.date_from is not None:
        conditions.append(f"{published} >= ?")
        params.append(stamp(query.date_from))
    if query.date_to is not None:
        conditions.append(f"{published} <= ?")
        params.append(stamp(query.date_to))
    # With a text match, the full-text index must drive the query: a filter on an indexed column would let
    # SQLite's planner walk that index and run the MATCH once per row (`language=en` on 100,000 articles: 8 s
    # instead of 1 ms). The unary `+` keeps the filter but takes its index out of the plan.
    unindexed = "+" if match else ""
    for column, values in (("source", query.sources), ("language", query.languages),
                           ("story", query.story_ids)):
        if not values:
            continue
        if facets:
            kind = _FACET_KINDS[column]
            conditions.append(f"{unindexed}a.{column} IN (SELECT id FROM facet_values "
                              f"WHERE kind = '{kind}' AND value IN ({_placeholders(values)}))")
        else:
            conditions.append(f"{unindexed}a.{_FACET_KINDS[column]} IN ({_placeholders(values)})")
        params.extend(values)
    if query.topics:
        conditions.append(
            "EXISTS (SELECT 1 FROM article_topics t WHERE t.seq = a.seq "
            f"AND t.topic IN ({_placeholders(query.topics)}))"
        )
        params.extend(query.topics)
    where = "WHERE " + " AND ".join(conditions) if conditions else ""
    return source, where, params


def _placeholders(values: Any) -> str:
    return ", ".join("?" for _ in values)


def _rows_in(db: sqlite3.Connection, sql: str, values: Sequence[Any], *before: Any) -> Iterator[tuple[Any, ...]]:
    """The rows of `sql` for every one of `values`, which fill its `IN ({marks})` a chunk at a time (within
    SQLite's bound on parameters); `before` are the parameters ahead of that list."""
    for start in range(0, len(values), KNN_CHUNK // 8):
        chunk = list(values[start : start + KNN_CHUNK // 8])
        yield from db.execute(sql.format(marks=_placeholders(chunk)), [*before, *chunk])


def _chunks(cursor: sqlite3.Cursor) -> Iterator[list[tuple[int, bytes]]]:
    while rows := cursor.fetchmany(KNN_CHUNK):
        yield rows


def _fragments(marked: tuple[str, str, str] | None, doc: ArticleDoc) -> dict[str, list[str]]:
    """Highlights per field: FTS5 marked the folded text; carry the marks onto the original and cut."""
    if not marked:
        return {}
    out: dict[str, list[str]] = {}
    for name, highlighted in zip(("title", "summary", "content"), marked):
        if not highlighted or HL_START not in highlighted:
            continue
        size, limit = FRAGMENTS[name]
        pieces = fragments(restore(highlighted, getattr(doc, name)), size=size, limit=limit)
        if pieces:
            out[name] = pieces
    return out


def _article(row: tuple[Any, ...], embedding: bytes | None = None) -> ArticleDoc:
    (doc_id, url, title, summary, content, source, language, published_at, topics, relevance,
     story_id, embedding_model) = row
    return ArticleDoc(
        id=doc_id, url=url, title=title, summary=summary, content=content, source=source,
        language=language, published_at=datetime.fromisoformat(published_at), topics=json.loads(topics),
        relevance=relevance, story_id=story_id, embedding_model=embedding_model,
        embedding=None if embedding is None else np.frombuffer(embedding, dtype="<f4").copy(),
    )


def _story(row: tuple[Any, ...]) -> StoryDoc:
    (doc_id, topic, headline, first_seen, last_seen, article_count, source_count, sources, languages,
     top_links) = row
    return StoryDoc(
        id=doc_id, topic=topic, headline=headline, first_seen=datetime.fromisoformat(first_seen),
        last_seen=datetime.fromisoformat(last_seen), article_count=article_count,
        source_count=source_count, sources=json.loads(sources), languages=json.loads(languages),
        top_links=json.loads(top_links),
    )
