"""What only the SQLite archive does: its schema upgrade, its folding limits, fragment sizes, the rebuild mark
in its file, its percolator's scratch database.

The contract every backend keeps (search, filters, facets, highlights, kNN, saved searches, rebuild) is tested
once, for all backends, in `tests/test_archive_conformance.py`; this file borrows its corpus.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from test_archive_conformance import (
    CORPUS,
    DIM,
    IDS,
    NEW,
    PERCOLATED,
    SAVED,
    article,
    at,
)

import archive.sqlite as sqlite_archive
from archive.base import HL_END, HL_START, SavedSearch, SearchQuery, strip_highlight
from archive.sqlite import SCHEMA_VERSION, SQLiteArchive


def _open(path: Path) -> SQLiteArchive:
    archive = SQLiteArchive(path)
    archive.ensure_ready()
    return archive


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[SQLiteArchive]:
    archive = _open(tmp_path / "archive.db")
    assert archive.index_articles(CORPUS).failed == {}
    yield archive
    archive.close()


def ids(archive: SQLiteArchive, text: str = "", **filters: object) -> list[str]:
    return [hit.id for hit in archive.search(SearchQuery(text=text, per_page=100, **filters)).hits]  # type: ignore[arg-type]


def test_each_connection_gets_a_page_cache_sized_for_a_words_window(tmp_path: Path) -> None:
    # SQLite's default (2 MiB) made a words search at 1,000,000 articles read its window's rows from the OS cache
    archive = SQLiteArchive(tmp_path / "archive.db")
    try:
        assert archive.db.execute("PRAGMA cache_size").fetchone()[0] == -sqlite_archive.CACHE_KIB
        assert sqlite_archive.CACHE_KIB >= 32_768
    finally:
        archive.close()


def test_naive_dates_are_rejected() -> None:
    with pytest.raises(ValueError):
        SearchQuery(date_from=datetime(2024, 5, 1))


def test_eszett_is_not_expanded(archive: SQLiteArchive) -> None:
    # Documented limit of archive.folding: ß is not folded to ss (one-to-many), but it matches itself and prefixes.
    extra = article(20, "2024-05-07 10:00", "Straße nach Rūdninkai gesperrt", "Kolonne unterwegs.",
                    source="BR", language="de")
    archive.index_articles([extra])
    assert ids(archive, "Straße") == ["a20"]
    assert ids(archive, "STRAßE") == ["a20"]
    assert ids(archive, "Stra*") == ["a20"]
    assert ids(archive, "strasse") == []


def test_highlight_fragments_of_long_content(archive: SQLiteArchive) -> None:
    filler = "Nothing to see here today. " * 40
    long = article(21, "2024-05-07 11:00", "Long read", "Summary.", filler + "The Rūdninkai range opened. "
                   + filler + "Later Rūdninkai again. " + filler, source="FT", language="en")
    archive.index_articles([long])
    hit = archive.search(SearchQuery(text="Rūdninkai", sources=["FT"])).hits[0]
    fragments = hit.highlights["content"]
    assert 1 <= len(fragments) <= 3
    for fragment in fragments:
        assert len(fragment) < 300
        assert fragment.count(HL_START) == fragment.count(HL_END) >= 1
        assert strip_highlight(fragment) in long.content


def test_bad_document_is_reported_not_raised(archive: SQLiteArchive) -> None:
    bad = article(30, "2024-05-07 12:00", "Broken vector", "x", source="X", language="en")
    bad.embedding = np.full(DIM, np.nan, dtype=np.float32)
    good = article(31, "2024-05-07 13:00", "Fine article about Rūdninkai", "x", source="X", language="en")
    report = archive.index_articles([bad, good])
    assert report.indexed == ["a31"]
    assert list(report.failed) == ["a30"]
    assert archive.get_article("a30") is None
    assert archive.count()["articles"] == len(CORPUS) + 1


# --- schema ----------------------------------------------------------------------------------------


def test_a_batch_gives_each_article_one_full_text_row_its_last(archive: SQLiteArchive) -> None:
    """The full-text rows are written once per batch (`_write_full_text`): an article twice in a batch keeps
    its last text only, and a document rolled back leaves the text it had before."""
    first = article(40, "2024-05-07 12:00", "Convoy reaches Rukla", "Tanks on the road.", source="X", language="en")
    second = replace(first, title="Convoy reaches Jonava")
    existing = next(doc for doc in CORPUS if doc.id == "a01")
    broken = replace(existing, title="Overwritten headline",
                     embedding=np.full(DIM, np.nan, dtype=np.float32))
    report = archive.index_articles([first, broken, second])
    assert report.indexed == ["a40", "a40"] and list(report.failed) == ["a01"]
    assert ids(archive, "Rukla") == [] and ids(archive, "Jonava") == ["a40"]
    assert ids(archive, "Overwritten") == [] and "a01" in ids(archive, "Panzerbrigade")
    (rows,) = archive.db.execute("SELECT count(*) FROM articles_fts").fetchone()
    assert rows == archive.count()["articles"] == len(CORPUS) + 1


def test_a_version_1_archive_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    with _open(path) as old:
        old.index_articles(CORPUS)
    with sqlite3.connect(path) as db:  # what version 1 had: no saved searches, no meta
        db.execute("DROP TABLE saved_searches")
        db.execute("DROP TABLE meta")
        db.execute("PRAGMA user_version=1")
    with _open(path) as upgraded:
        assert upgraded.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert upgraded.count()["articles"] == len(CORPUS)
        upgraded.save_search(SAVED[0])
        upgraded.begin_rebuild()
        assert upgraded.search(SearchQuery(facets=("day",), facet_size=1)).facets == {"day": {"2024-05-06": 2}}
    with _open(path) as reopened:
        assert reopened.list_searches() == [SAVED[0]]


def test_a_version_2_archive_gets_the_embedding_model_column(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    with _open(path) as old:
        old.index_articles(CORPUS)
    with sqlite3.connect(path) as db:  # what version 2 had: vectors without their model
        db.execute("DROP INDEX articles_embedding_model")
        db.execute("ALTER TABLE articles DROP COLUMN embedding_model")
        db.execute("PRAGMA user_version=2")
    with _open(path) as upgraded:
        assert upgraded.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert upgraded.count()["articles"] == len(CORPUS)
        with_vectors = sum(1 for doc in CORPUS if doc.embedding is not None)
        assert upgraded.vector_models() == {"unknown": with_vectors}  # kept, but of no known model
        assert upgraded.nearest(CORPUS[0].embedding, k=3, model="m")  == []
        assert len(upgraded.nearest(CORPUS[0].embedding, k=3)) == 3
        plan = " ".join(str(row) for row in upgraded.db.execute(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM articles WHERE embedding_model = 'm'"))
        assert "articles_embedding_model" in plan


def test_a_version_3_archive_gets_the_facet_rows_of_its_articles(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    with _open(path) as old:
        old.index_articles(CORPUS)
        before = old.search(SearchQuery(text="brigade"))
    with sqlite3.connect(path) as db:  # what version 3 had: no narrow facet rows
        db.execute("DROP TABLE article_facets")
        db.execute("PRAGMA user_version=3")
    with _open(path) as upgraded:
        assert upgraded.db.execute("SELECT count(*) FROM article_facets").fetchone()[0] == len(CORPUS)
        after = upgraded.search(SearchQuery(text="brigade"))
        assert [hit.id for hit in after.hits] == [hit.id for hit in before.hits] != []
        assert after.facets == before.facets and after.total == before.total
        upgraded.delete_articles([before.hits[0].id])  # the facet row goes with its article
        assert upgraded.db.execute("SELECT count(*) FROM article_facets").fetchone()[0] == len(CORPUS) - 1


def test_a_version_4_archive_gets_its_facet_rows_as_ids(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    query = SearchQuery(text="brigade", facets=("source", "language", "story_id", "topic", "day"))
    with _open(path) as old:
        old.index_articles(CORPUS)
        before = old.search(query)
    with sqlite3.connect(path) as db:  # what version 4 had: facet rows of text values, no facet_values
        db.execute("DROP TABLE article_facets")
        db.execute("DROP TABLE facet_values")
        db.execute("CREATE TABLE article_facets (seq INTEGER PRIMARY KEY, published_at TEXT NOT NULL, "
                   "source TEXT NOT NULL, language TEXT, story_id TEXT, topics TEXT NOT NULL)")
        db.execute("INSERT INTO article_facets SELECT seq, published_at, source, language, story_id, topics "
                   "FROM articles")
        db.execute("PRAGMA user_version=4")
    with _open(path) as upgraded:
        columns = [row[1] for row in upgraded.db.execute("PRAGMA table_info(article_facets)")]
        assert columns == ["seq", "published", "source", "language", "story", "topics"]
        after = upgraded.search(query)
        assert [hit.id for hit in after.hits] == [hit.id for hit in before.hits] != []
        assert after.facets == before.facets and after.facets["source"] and after.total == before.total
        assert upgraded.index_articles(NEW).failed == {}  # and it takes new articles as a new archive does
        assert NEW[0].id in ids(upgraded, sources=[NEW[0].source])


def test_words_search_reads_a_bounded_window_of_the_newest_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most SEARCH_WINDOW matches are ranked, counted and faceted (the newest by archive order; the oldest
    for sort=oldest), and the result says so; the total stays exact where counting is cheap."""
    monkeypatch.setattr(sqlite_archive, "SEARCH_WINDOW", 4)
    docs = [article(40 + n, f"2024-06-{1 + n:02d} 08:00", f"Convoy {n} near Rukla", "Drill.",
                    source="LRT" if n % 2 else "BNS", language="lt" if n < 3 else "en") for n in range(7)]
    with _open(tmp_path / "archive.db") as store:
        store.index_articles(docs)
        result = store.search(SearchQuery(text="Rukla", sort="newest"))
        assert [hit.id for hit in result.hits] == ["a46", "a45", "a44", "a43"]
        assert (result.total, result.total_exact, result.window) == (7, True, 4)  # FTS5 counts it alone
        assert sum(result.facets["source"].values()) == 4 and result.facets["language"] == {"en": 4}
        assert result.pages == 1  # what can be reached, not what matched
        oldest = store.search(SearchQuery(text="Rukla", sort="oldest"))
        assert [hit.id for hit in oldest.hits] == ["a40", "a41", "a42", "a43"]
        relevance = store.search(SearchQuery(text="Rukla"))
        assert {hit.id for hit in relevance.hits} == {"a43", "a44", "a45", "a46"}
        filtered = store.search(SearchQuery(text="convoy", sources=["LRT", "BNS"]))
        assert (filtered.total, filtered.total_exact, filtered.window) == (4, False, 4)  # a lower bound
        few = store.search(SearchQuery(text="Rukla", languages=["lt"]))
        assert (few.total, few.total_exact, few.window) == (3, True, None)  # all matches fit: exact
        past = store.search(SearchQuery(text="Rukla", page=3, per_page=2))
        assert past.hits == []  # past the window
        browse = store.search(SearchQuery(sources=["LRT", "BNS"]))
        assert ([hit.id for hit in browse.hits], browse.total_exact) == (["a46", "a45", "a44", "a43"], False)
        everything = store.search(SearchQuery())
        assert (everything.total, everything.total_exact) == (7, True)


def test_words_search_reads_narrow_rows_with_the_text_index_driving(archive: SQLiteArchive) -> None:
    query = SearchQuery(text="brigade", languages=["en"], sources=["LRT"], story_ids=["s1"], date_from=at("2024-05-01"))
    source, where, params = sqlite_archive._matching(query, "brigade", table="article_facets")
    plan = " ".join(str(row) for row in archive.db.execute(
        f"EXPLAIN QUERY PLAN SELECT a.seq {source} {where} ORDER BY articles_fts.rowid DESC LIMIT 5", params))
    assert "SCAN articles_fts VIRTUAL TABLE" in plan and "TEMP B-TREE" not in plan
    assert "SEARCH a USING INTEGER PRIMARY KEY" in plan


def test_facet_rows_hold_ids_and_microseconds(archive: SQLiteArchive) -> None:
    doc = CORPUS[0]
    seq, published, source, language, story, topics = archive.db.execute(
        "SELECT f.* FROM article_facets f JOIN articles a ON a.seq = f.seq WHERE a.id = ?", [doc.id]).fetchone()
    assert published == int(doc.published_at.timestamp()) * 1_000_000 + doc.published_at.microsecond
    named = dict(archive.db.execute("SELECT id, kind || ':' || value FROM facet_values").fetchall())
    assert named[source] == f"source:{doc.source}" and named[topics].startswith("topics:[")
    assert (named[language] if language else None) == (f"language:{doc.language}" if doc.language else None)
    assert (named[story] if story else None) == (f"story_id:{doc.story_id}" if doc.story_id else None)
    # a value is stored once, however many articles carry it
    (kinds,) = archive.db.execute("SELECT count(*) FROM facet_values WHERE kind = 'source'").fetchone()
    assert kinds == len({d.source for d in CORPUS})
    # a filter on a value no article has matches nothing (its id lookup is empty), with text and without
    assert archive.search(SearchQuery(text="brigade", sources=["No Such Outlet"])).hits == []
    assert archive.search(SearchQuery(sources=["No Such Outlet"])).hits == []


def test_facet_rows_follow_each_write_of_a_batch(tmp_path: Path) -> None:
    """Facet rows are written once per batch: a document rolled back has none, a document written twice in a
    batch keeps its last values, and an update moves its article to its new values."""
    first = article(70, "2024-07-01 08:00", "Convoy near Rukla", "Drill.", source="LRT", language="lt")
    broken = replace(article(71, "2024-07-01 09:00", "Convoy near Rukla again", "Drill.", source="BNS",
                             language="lt"), embedding=[float("nan")] * DIM)
    twice = replace(first, source="Delfi")
    with _open(tmp_path / "archive.db") as store:
        report = store.index_articles([first, broken, twice])
        assert list(report.failed) == [broken.id]
        rows = store.db.execute("SELECT count(*) FROM article_facets").fetchone()[0]
        assert rows == store.count()["articles"] == 1
        assert ids(store, "Rukla", sources=["Delfi"]) == [first.id] and ids(store, "Rukla", sources=["LRT"]) == []
        store.index_articles([replace(first, source="LRT", language="en", story_id="s9", topics=["t"])])
        assert ids(store, "Rukla", sources=["LRT"], languages=["en"], story_ids=["s9"], topics=["t"]) == [first.id]
        assert ids(store, "Rukla", sources=["Delfi"]) == [] and ids(store, sources=["Delfi"]) == []
        facets = store.search(SearchQuery(text="Rukla", facets=("source", "language", "story_id", "topic"))).facets
        assert facets == {"source": {"LRT": 1}, "language": {"en": 1}, "story_id": {"s9": 1}, "topic": {"t": 1}}


def test_facet_ties_at_the_cut_are_ordered_by_value(tmp_path: Path) -> None:
    """Facets count ids and read by name only the values that can be shown: those counted at least as often
    as the facet_size-th. A tie across the cut must still be broken by value, as it was on text rows."""
    sources = ["Zeta", "Zeta", "Zeta", "Mu", "Alpha", "Omega", "Beta"]  # Zeta 3, then four tied at 1
    docs = [article(60 + n, f"2024-07-0{1 + n} 23:30", f"Patrol {n} near Rukla", "Drill.", source=name,
                    language="en") for n, name in enumerate(sources)]
    with _open(tmp_path / "archive.db") as store:
        store.index_articles(docs)
        for text in ("Rukla", ""):
            facets = store.search(SearchQuery(text=text, facets=("source", "day"), facet_size=3)).facets
            assert list(facets) == ["source", "day"]
            assert facets["source"] == {"Zeta": 3, "Alpha": 1, "Beta": 1}
            assert facets["day"] == {"2024-07-05": 1, "2024-07-06": 1, "2024-07-07": 1}  # UTC days, date order


def test_a_newer_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    _open(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        _open(path)


# --- rebuild ---------------------------------------------------------------------------------------


def test_the_rebuild_mark_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    with _open(path) as first:
        first.index_articles(CORPUS)
        first.begin_rebuild()
        first.index_articles(CORPUS[:2])
    with _open(path) as second:
        second.index_articles([CORPUS[4]])
        second.finish_rebuild()
        assert set(ids(second)) == {"a01", "a02", "a05"}
        assert second.db.execute("SELECT count(*) FROM articles_fts").fetchone()[0] == 3
        assert second.db.execute("SELECT count(*) FROM article_topics").fetchone()[0] == 4  # a05 has two
        assert second.db.execute("SELECT key FROM meta").fetchall() == [("vectors_version",)]  # the mark is gone


def test_a_rebuild_begun_again_starts_over(archive: SQLiteArchive) -> None:
    archive.begin_rebuild()
    archive.index_articles(CORPUS[:3])
    archive.begin_rebuild()  # the first attempt failed; the retry indexes only a09 before finishing
    archive.index_articles([CORPUS[8]])
    archive.finish_rebuild()
    assert ids(archive) == ["a09"]


def test_a_clock_set_back_cannot_drop_what_the_rebuild_indexed(
    archive: SQLiteArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive.begin_rebuild()
    monkeypatch.setattr(sqlite_archive, "_now", lambda: "2000-01-01T00:00:00.000000+00:00")
    archive.index_articles([CORPUS[0]])
    monkeypatch.undo()
    archive.finish_rebuild()
    assert ids(archive) == ["a01"]


# --- saved searches and the percolator -------------------------------------------------------------


def test_percolate_ignores_embeddings_and_leaves_the_archive_alone(archive: SQLiteArchive) -> None:
    for saved in SAVED:
        archive.save_search(saved)
    broken = [replace(doc, embedding=np.full(DIM, np.nan, dtype=np.float32)) for doc in NEW]
    assert archive.percolate(broken) == PERCOLATED
    assert archive.count()["articles"] == len(CORPUS) and set(ids(archive)) == IDS
    assert archive.percolate(NEW + NEW) == PERCOLATED  # a doc twice in a batch counts once


def test_percolate_a_realistic_batch_quickly(archive: SQLiteArchive) -> None:
    """300 new articles against 200 saved searches: one scratch database, one query per search."""
    rng = random.Random(3)
    words = sorted({w.strip(".,:;") for doc in CORPUS for w in doc.title.split() if len(w) > 4})
    for n in range(200):
        first, second = rng.choice(words), rng.choice(words)
        text = [first, f"{first} OR {second}", f"{first[:4]}*", f'"{first}"'][n % 4]
        archive.save_search(SavedSearch(f"s{n:03d}", SearchQuery(text=text, languages=["en"] if n % 5 == 0 else ())))
    docs = [
        replace(CORPUS[n % 9], id=f"p{n:03d}", published_at=at("2024-05-01 00:00") + timedelta(minutes=n))
        for n in range(300)
    ]
    started = time.perf_counter()
    matched = archive.percolate(docs)
    elapsed = time.perf_counter() - started
    assert elapsed < 10  # about 0.1 s on a laptop; this bound only catches a blow-up
    # no search has a date filter: each doc matches exactly what the CORPUS article it copies matches
    reference = archive.percolate(CORPUS)
    assert reference and len(matched) == sum(1 for n in range(300) if CORPUS[n % 9].id in reference)
    for n, doc in enumerate(docs):
        assert matched.get(doc.id) == reference.get(CORPUS[n % 9].id)


def test_nearest_from_memory_follows_every_write(tmp_path: Path) -> None:
    """A process that searches keeps a model's vectors in memory; each write to the articles makes the next
    query reload them, so what it finds is always what the file holds, filters included."""
    import numpy as np

    from archive import vector_cache

    path = tmp_path / "archive.db"
    rng = np.random.default_rng(3)
    docs = [replace(doc, embedding=rng.normal(size=8).astype(np.float32), embedding_model="m") for doc in CORPUS]
    with _open(path) as archive:
        archive.index_articles(docs)
        probe = np.asarray(docs[3].embedding)
        assert archive.nearest(probe, k=1, model="m")[0].id == docs[3].id
        version = vector_cache.current_version(archive.db)
        assert vector_cache._CACHE[(str(path), "m")].version == version  # served from memory
        moved = replace(docs[5], embedding=probe * 2.0)  # another article now points the same way
        archive.index_articles([moved])
        assert vector_cache.current_version(archive.db) != version
        top = [hit.id for hit in archive.nearest(probe, k=2, model="m")]
        assert set(top) == {docs[3].id, docs[5].id}
        only = archive.nearest(probe, k=3, model="m", query=SearchQuery(languages=(docs[0].language,)))
        assert all(hit.doc.language == docs[0].language for hit in only)
        assert archive.nearest(probe, k=3, model="other") == []
