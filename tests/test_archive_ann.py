"""The SQLite archive's ANN (`archive.ann`): what `nearest` finds through the usearch segments is what exact
brute force finds (recall), follows every write, forgets what a rebuild dropped, survives a lost or stale
index file, keeps the filters and never mixes two models' vectors.

The thresholds are lowered (`ANN_MIN`, segment sizes, `EXACT_MAX`) so that a few thousand vectors take the ANN
path, in several segments; performance at scale is `bench/archive_bench.py`'s business.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import archive.sqlite as sqlite_archive
from archive import ann, vector_cache
from archive.base import ArticleDoc, SearchQuery
from archive.sqlite import SQLiteArchive

DIM = 48
MODEL, OTHER = "model-a", "model-b"
START = datetime(2024, 5, 1, tzinfo=timezone.utc)
LANGUAGES = ("en", "de", "lt", "ru")


@pytest.fixture(autouse=True)
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ann, "ANN_MIN", 500)
    monkeypatch.setattr(ann, "DELTAS_MAX", 3)
    monkeypatch.setattr(ann, "PERSIST_SHARE", 0.0)  # saved at every DELTAS_MAX deltas (see the test of the share)
    monkeypatch.setattr(ann, "SEGMENT_MAX", 1000)
    monkeypatch.setattr(sqlite_archive, "EXACT_MAX", 300)


def vectors(n: int, seed: int) -> np.ndarray:
    """Unit vectors around 60 centres (neighbourhoods, as real embeddings have)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((60, DIM))
    out = centres[rng.integers(0, 60, n)] + 0.6 * rng.standard_normal((n, DIM))
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def doc(n: int, vector: np.ndarray, model: str = MODEL, prefix: str = "d") -> ArticleDoc:
    return ArticleDoc(
        id=f"{prefix}{n:05d}", url=f"https://example.org/{prefix}/{n}", title=f"Article {n}", summary=f"group{n % 3}",
        content="", source=f"outlet-{n % 7}", language=LANGUAGES[n % 4],
        published_at=START + timedelta(hours=n), embedding=vector, embedding_model=model,
    )


def put(archive: SQLiteArchive, docs: list[ArticleDoc], batch: int = 250) -> None:
    for start in range(0, len(docs), batch):
        assert archive.index_articles(docs[start : start + batch]).failed == {}


def exact(matrix: np.ndarray, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[int]:
    scores = matrix @ (query / np.linalg.norm(query))
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    return [int(i) for i in np.argsort(-scores)[:k] if np.isfinite(scores[i])]


def ids(hits: list) -> list[int]:  # type: ignore[type-arg]
    return [int(hit.id[1:]) for hit in hits]


def segment_files(path: Path) -> set[str]:
    return {p.name for p in path.parent.glob(f"{path.name}.ann.*.usearch")}


def listed(archive: SQLiteArchive) -> set[str]:
    return {row[0] for row in archive.db.execute("SELECT file FROM ann_segments")}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "archive.db"


@pytest.fixture
def archive(path: Path) -> Iterator[SQLiteArchive]:
    opened = SQLiteArchive(path)
    opened.ensure_ready()
    yield opened
    opened.close()


MATRIX = vectors(3000, seed=1)
QUERIES = vectors(40, seed=2)


@pytest.fixture
def filled(archive: SQLiteArchive) -> SQLiteArchive:
    put(archive, [doc(n, MATRIX[n]) for n in range(len(MATRIX))])
    return archive


def test_recall_at_10_against_exact(filled: SQLiteArchive, path: Path) -> None:
    described = ann.describe(filled.db, str(path))
    assert described["vectors"] == len(MATRIX)  # the ANN holds them, in several segments
    assert described["models"][MODEL]["segments"] >= 3
    assert segment_files(path) == listed(filled)
    found = total = 0
    for query in QUERIES:
        hits = filled.nearest(query, k=10, model=MODEL)
        truth = exact(MATRIX, query, 10)
        found += len(set(ids(hits)) & set(truth))
        total += len(truth)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        best = hits[0]
        assert best.score == pytest.approx(float(MATRIX[int(best.id[1:])] @ query / np.linalg.norm(query)), abs=1e-5)
    assert found / total >= 0.95
    # the small-archive path (exact, from memory) was not used: nothing of this model was cached
    assert (str(path), MODEL) not in vector_cache._CACHE


def test_new_and_changed_vectors_are_found_at_once(filled: SQLiteArchive, path: Path) -> None:
    held = ann.describe(filled.db, str(path))["vectors"]
    put(filled, [doc(n, MATRIX[n]) for n in range(0, 3000, 2)])  # re-indexed unchanged: not added again
    assert ann.describe(filled.db, str(path))["vectors"] == held
    probe = QUERIES[0]
    filled.index_articles([doc(5000, probe)])
    assert ids(filled.nearest(probe, k=1, model=MODEL)) == [5000]
    moved = -MATRIX[7]  # d00007 now points elsewhere: found there, and scored as it is now
    filled.index_articles([doc(7, moved)])
    hit = filled.nearest(moved, k=1, model=MODEL)[0]
    assert ids([hit]) == [7] and hit.score == pytest.approx(1.0, abs=1e-5)
    assert 7 not in ids(filled.nearest(MATRIX[7], k=5, model=MODEL))


def test_a_finished_rebuild_drops_what_was_not_reindexed(filled: SQLiteArchive, path: Path) -> None:
    before = listed(filled)
    filled.begin_rebuild()
    kept = list(range(0, 3000, 3))
    put(filled, [doc(n, MATRIX[n]) for n in kept])
    filled.finish_rebuild()
    assert not before & listed(filled)  # the segments made before the rebuild are gone, files too
    assert segment_files(path) == listed(filled)
    allowed = np.zeros(len(MATRIX), dtype=bool)
    allowed[kept] = True
    found = total = 0
    for query in QUERIES[:20]:
        got = ids(filled.nearest(query, k=10, model=MODEL))
        assert all(n % 3 == 0 for n in got)
        truth = exact(MATRIX, query, 10, allowed)
        found, total = found + len(set(got) & set(truth)), total + len(truth)
    assert found / total >= 0.95


@pytest.mark.parametrize("damage", ["missing", "truncated", "stale"])
def test_a_lost_or_stale_index_is_rebuilt(filled: SQLiteArchive, path: Path, damage: str) -> None:
    files = sorted(listed(filled))
    if damage == "missing":
        (path.parent / files[0]).unlink()
    elif damage == "truncated":
        victim = path.parent / files[-1]
        victim.write_bytes(victim.read_bytes()[:100])
    else:  # another program changed the articles without keeping the index (no stamp moved)
        with sqlite3.connect(path) as other:
            other.execute("UPDATE articles SET embedding_model = 'gone' WHERE id = 'd00011'")
            vector_cache.bump(other)
    ann._VIEWS.clear()  # a fresh process
    with SQLiteArchive(path) as reopened:
        reopened.ensure_ready()
        got = ids(reopened.nearest(MATRIX[11], k=3, model=MODEL))
        assert (got[0] == 11) == (damage != "stale")
        state = ann.state(reopened.db, MODEL)
        assert state is not None and state[1] == vector_cache.current_version(reopened.db)
        assert segment_files(path) == listed(reopened) and not set(files) & listed(reopened)
        # and the next write adds to the rebuilt index (its open segment, no second rebuild)
        rebuilt = listed(reopened)
        reopened.index_articles([doc(6000, QUERIES[1])])
        assert len(rebuilt - listed(reopened)) <= 1 and len(listed(reopened)) <= len(rebuilt) + 1
        assert segment_files(path) == listed(reopened)
        assert ids(reopened.nearest(QUERIES[1], k=1, model=MODEL)) == [6000]


def test_a_write_that_fails_leaves_no_segment_behind(
    filled: SQLiteArchive, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = listed(filled)

    def broken(db: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(vector_cache, "bump", broken)  # fails after the segment was written
    with pytest.raises(sqlite3.OperationalError):
        filled.index_articles([doc(7000, QUERIES[2])])
    monkeypatch.undo()
    assert listed(filled) == before and segment_files(path) == before
    assert filled.get_article("d07000") is None
    assert 7000 not in ids(filled.nearest(QUERIES[2], k=3, model=MODEL))


def test_filters_are_respected_on_both_paths(filled: SQLiteArchive) -> None:
    languages = np.array([LANGUAGES[n % 4] for n in range(len(MATRIX))])
    hours = np.arange(len(MATRIX))
    cases = [  # (query, allowed): broad filters take the ANN path, a narrow one the exact path
        (SearchQuery(languages=["de"]), languages == "de"),
        (SearchQuery(languages=["en", "lt"], date_from=START + timedelta(hours=1000)),
         np.isin(languages, ["en", "lt"]) & (hours >= 1000)),
        (SearchQuery(date_from=START + timedelta(hours=2900)), hours >= 2900),  # 100 rows: exact
        (SearchQuery(sources=["outlet-3"], languages=["ru"]),
         (np.arange(len(MATRIX)) % 7 == 3) & (languages == "ru")),
        (SearchQuery(text="group1"), np.arange(len(MATRIX)) % 3 == 1),  # words too: the ANN path with FTS5
        (SearchQuery(text="group2", languages=["de", "en"]),
         (np.arange(len(MATRIX)) % 3 == 2) & np.isin(languages, ["de", "en"])),
    ]
    for query, allowed in cases:
        found = total = 0
        for vector in QUERIES[:15]:
            hits = filled.nearest(vector, k=10, query=query, model=MODEL)
            got = ids(hits)
            assert all(allowed[n] for n in got), query
            truth = exact(MATRIX, vector, 10, allowed)
            assert len(got) == len(truth)
            found, total = found + len(set(got) & set(truth)), total + len(truth)
        assert found / total >= 0.95, query
    hybrid = filled.hybrid(SearchQuery(text="Article", languages=["lt"]), QUERIES[3], k=20, model=MODEL)
    assert hybrid and all(hit.doc.language == "lt" for hit in hybrid)


def test_another_models_vectors_are_never_returned(filled: SQLiteArchive, path: Path) -> None:
    twins = vectors(600, seed=1)  # the same vectors as d00000..d00599, made by another model
    put(filled, [doc(n, twins[n], model=OTHER, prefix="o") for n in range(len(twins))])
    assert set(ann.describe(filled.db, str(path))["models"]) == {MODEL, OTHER}
    for query in QUERIES[:10]:
        assert all(hit.id.startswith("d") for hit in filled.nearest(query, k=20, model=MODEL))
        assert all(hit.id.startswith("o") for hit in filled.nearest(query, k=20, model=OTHER))
    # an article re-embedded by the other model leaves the first model's results
    filled.index_articles([doc(0, MATRIX[0], model=OTHER)])
    assert 0 not in ids(filled.nearest(MATRIX[0], k=10, model=MODEL))
    assert filled.nearest(MATRIX[0], k=1, model=OTHER)[0].id == "d00000"
    assert filled.nearest(MATRIX[0], k=5, model="model-c") == []


def test_small_and_in_memory_archives_stay_exact(path: Path) -> None:
    few = vectors(400, seed=3)  # below ANN_MIN: no index, exact from memory
    with SQLiteArchive(path) as small:
        small.ensure_ready()
        put(small, [doc(n, few[n]) for n in range(len(few))])
        assert ann.state(small.db, MODEL) is None and not segment_files(path)
        assert ids(small.nearest(few[5], k=1, model=MODEL)) == [5]
    with SQLiteArchive(":memory:") as memory:
        memory.ensure_ready()
        put(memory, [doc(n, MATRIX[n]) for n in range(1000)])
        assert ann.state(memory.db, MODEL) is None
        got = ids(memory.nearest(QUERIES[0], k=10, model=MODEL))
        assert got == exact(MATRIX[:1000], QUERIES[0], 10)


def test_the_index_is_built_when_a_model_reaches_the_threshold(archive: SQLiteArchive, path: Path) -> None:
    put(archive, [doc(n, MATRIX[n]) for n in range(450)])
    assert ann.state(archive.db, MODEL) is None
    put(archive, [doc(n, MATRIX[n]) for n in range(450, 600)])
    assert ann.state(archive.db, MODEL) is not None
    assert ann.describe(archive.db, str(path))["vectors"] == 600
    assert ids(archive.nearest(MATRIX[599], k=1, model=MODEL)) == [599]


def test_closing_saves_the_open_segment_and_the_next_writer_takes_over_deltas(path: Path) -> None:
    def kinds(archive: SQLiteArchive) -> list[str]:
        return [row[0] for row in archive.db.execute("SELECT kind FROM ann_segments ORDER BY id")]

    with SQLiteArchive(path) as first:
        first.ensure_ready()
        put(first, [doc(n, MATRIX[n]) for n in range(600)])  # the index is built at 500, then a delta
        first.index_articles([doc(600, MATRIX[600])])
        assert kinds(first).count("delta") == 2
    with SQLiteArchive(path) as second:  # closing saved the open segments (one per language): no delta waits
        assert kinds(second) == ["open"] * len(LANGUAGES)
        second.index_articles([doc(601, MATRIX[601])])
        second.index_articles([doc(602, MATRIX[602])])
        ann._OPEN.clear()  # as if this process died without closing: two deltas stay listed
    ann._OPEN.clear()
    with SQLiteArchive(path) as third:
        assert kinds(third).count("delta") == 2
        put(third, [doc(n, MATRIX[n]) for n in range(603, 700)])  # a third delta: the open segments are saved
        assert kinds(third) == ["open"] * len(LANGUAGES)
        assert ann.describe(third.db, str(path))["vectors"] == 700
        for n in (600, 601, 602, 650):
            assert ids(third.nearest(MATRIX[n], k=1, model=MODEL)) == [n]
        assert segment_files(path) == listed(third)


def test_a_large_open_segment_waits_for_a_share_of_new_vectors_or_the_cap(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ann, "PERSIST_SHARE", 0.5)
    monkeypatch.setattr(ann, "DELTAS_CAP", 5)

    def deltas(archive: SQLiteArchive) -> int:
        return archive.db.execute("SELECT count(*) FROM ann_segments WHERE kind = 'delta'").fetchone()[0]

    with SQLiteArchive(path) as archive:
        archive.ensure_ready()
        put(archive, [doc(n, MATRIX[n]) for n in range(500)])  # the index is built: 500 vectors saved
        for n in range(500, 503):  # DELTAS_MAX deltas of one vector each: too few to write 500 again
            archive.index_articles([doc(n, MATRIX[n])])
        assert deltas(archive) == 3
        for n in range(503, 505):  # the cap
            archive.index_articles([doc(n, MATRIX[n])])
        assert deltas(archive) == 0
        put(archive, [doc(n, MATRIX[n]) for n in range(505, 805)], batch=100)  # 300 vectors: half of 505
        assert deltas(archive) == 0
        for n in (0, 501, 504, 700, 804):
            assert ids(archive.nearest(MATRIX[n], k=1, model=MODEL)) == [n]
        assert segment_files(path) == listed(archive)


def test_open_segments_take_vectors_on_a_background_thread_and_a_failed_add_loses_nothing(
    archive: SQLiteArchive, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(archive, [doc(n, MATRIX[n]) for n in range(500)])  # the index is built at 500
    names: list[str] = []
    failing = False
    real_add = ann._add

    def watched(index: object, keys: np.ndarray, matrix: np.ndarray, threads: int | None = None) -> None:
        names.append(threading.current_thread().name)
        if failing:
            raise RuntimeError("usearch: out of memory")
        real_add(index, keys, matrix, threads)

    monkeypatch.setattr(ann, "_add", watched)
    archive.index_articles([doc(n, MATRIX[n]) for n in range(500, 600)])  # a delta; its vectors go to a thread
    archive.index_articles([doc(n, MATRIX[n]) for n in range(600, 700)])
    ann._adder().submit(lambda: None).result()  # the thread has done what it was given
    assert len(names) == 8 and all(name.startswith("ann-add") for name in names)  # 2 writes x 4 languages
    before = listed(archive)
    failing = True
    with pytest.raises(RuntimeError, match="out of memory"):  # the third delta saves: the failure surfaces
        archive.index_articles([doc(n, MATRIX[n]) for n in range(800, 900)])
    assert listed(archive) == before and archive.get_article("d00800") is None  # rolled back, nothing half-kept
    monkeypatch.undo()
    put(archive, [doc(n, MATRIX[n]) for n in range(800, 900)], batch=50)  # the writer reloads from its files
    assert ann.describe(archive.db, str(path))["vectors"] >= 800
    for n in (510, 650, 820, 899):
        assert ids(archive.nearest(MATRIX[n], k=1, model=MODEL)) == [n]
    assert segment_files(path) == listed(archive)


def test_the_sqlite_hybrid_is_the_contracts_hybrid(filled: SQLiteArchive) -> None:
    """`SQLiteArchive.hybrid` skips the text ranking's count and most highlights; what it returns is what the
    interface's client-side fusion returns."""
    from archive.base import ArchiveBackend

    extra = [doc(8000 + n, QUERIES[n]) for n in range(6)]
    for n, article in enumerate(extra):
        article.title = ["Brigade in Rūdninkai", "Rūdninkai range", "Drone over Vilnius", "Vilnius airport",
                         "A brigade moves", "Nothing"][n]
    filled.index_articles(extra)
    cases = [SearchQuery(text="Rūdninkai OR Vilnius"), SearchQuery(text="brigade", languages=["en", "de"]),
             SearchQuery(text="Article", sort="newest"), SearchQuery(text="!!!"), SearchQuery(text="none-such"),
             SearchQuery(text="Vilnius", highlight=False)]
    for query in cases:
        for vector in (QUERIES[0], QUERIES[2]):
            mine = filled.hybrid(query, vector, k=20, model=MODEL)
            theirs = ArchiveBackend.hybrid(filled, query, vector, k=20, model=MODEL)
            assert [(h.id, h.score, h.highlights) for h in mine] == [(h.id, h.score, h.highlights) for h in theirs]
    assert any(h.highlights for h in filled.hybrid(cases[0], QUERIES[0], k=20, model=MODEL))


def test_a_writer_finding_a_damaged_segment_rebuilds(filled: SQLiteArchive, path: Path) -> None:
    filled.index_articles([doc(8999, QUERIES[5])])  # a delta the next write reads back (in a new process)
    (name,) = filled.db.execute(
        "SELECT file FROM ann_segments WHERE kind IN ('open', 'delta') ORDER BY id DESC LIMIT 1").fetchone()
    victim = path.parent / name
    victim.write_bytes(b"\0" * victim.stat().st_size)  # same size: only reading it tells
    ann._OPEN.clear()
    ann._VIEWS.clear()
    filled.index_articles([doc(9000, QUERIES[4])])  # no error: the index is rebuilt from the table
    assert name not in listed(filled) and segment_files(path) == listed(filled)
    assert ids(filled.nearest(QUERIES[4], k=1, model=MODEL)) == [9000]
    assert ids(filled.nearest(MATRIX[42], k=1, model=MODEL)) == [42]


def test_the_archive_benchmark_runs_at_a_small_size(shared_data: Path, tmp_path: Path) -> None:
    """bench/archive_bench.py end to end at 3,000 articles (random vectors: no model), the ANN from 1,000."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(root / "bench" / "archive_bench.py"), "--sizes", "3000", "--queries", "5",
         "--random-vectors", "--embed-sample", "50", "--ann-min", "1000", "--data", str(shared_data),
         "--work-dir", str(tmp_path / "work")],
        check=True, capture_output=True, text=True, timeout=300, cwd=root,
    )  # fmt: skip
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    at = figures["sizes"]["3000"]
    assert at["articles"] == 3000 and at["index_articles_per_s"] > 0 and at["index_no_ann_articles_per_s"] > 0
    assert at["ann"]["vectors"] == 3000 and figures["met"]["nearest_uses_ann"] is True
    for kind in ("words", "nearest", "nearest_filtered", "hybrid"):
        assert at[f"{kind}_p95_ms"] > 0
    assert 0.9 <= at["recall_at_10"] <= 1.0 and at["recall_at_10_filtered"] >= 0.9
    assert "random unit vectors" in figures["vectors"]
    assert figures["goals"] == {"words_p95_ms": 50.0, "hybrid_p95_ms": 150.0, "index_articles_per_s": 2000.0}


def test_a_language_filter_is_not_a_post_filter(archive: SQLiteArchive, monkeypatch: pytest.MonkeyPatch) -> None:
    """Language dominates a multilingual embedding space: German articles far from an English query's
    neighbourhood. The index is split by language, so asking for German near it finds the nearest German ones,
    without the exact fallback (turned off here) and without taking only what passed among English
    candidates."""
    monkeypatch.setattr(sqlite_archive, "FALLBACK_MAX", 0)
    monkeypatch.setattr(sqlite_archive, "MAX_CANDIDATES", 600)  # of 2,400: the neighbourhood is English
    rng = np.random.default_rng(5)
    english, german = rng.standard_normal(DIM), rng.standard_normal(DIM)
    n = 2400
    lang = np.array(["en" if i % 6 else "de" for i in range(n)])  # 400 German among 2,000 English
    base = np.where((lang == "en")[:, None], english, german)
    matrix = base + 0.9 * rng.standard_normal((n, DIM))
    matrix = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)
    docs = []
    for i in range(n):
        article = doc(i, matrix[i])
        article.language = str(lang[i])
        docs.append(article)
    put(archive, docs)
    found = total = 0
    for j in range(10):
        query = english + 0.5 * rng.standard_normal(DIM)
        hits = archive.nearest(query, k=10, query=SearchQuery(languages=["de"]), model=MODEL)
        truth = exact(matrix, query, 10, lang == "de")
        assert len(hits) == 10 and all(hit.doc.language == "de" for hit in hits)
        found, total = found + len(set(ids(hits)) & set(truth)), total + len(truth)
    assert found / total >= 0.95


def test_a_forked_child_writes_with_its_own_adding_thread(archive: SQLiteArchive, path: Path) -> None:
    """A child forked while the parent holds open segments (and their adding thread) writes, saves and exits:
    it does not wait for the parent's thread, which it does not have."""
    put(archive, [doc(n, MATRIX[n]) for n in range(600)])  # the index, then a delta: the thread exists
    assert ann._OPEN and ann._ADDER is not None
    child = os.fork()
    if child == 0:  # the child: three writes (a save of the open segments among them), then close
        code = 1
        try:
            with SQLiteArchive(path) as store:
                put(store, [doc(n, MATRIX[n]) for n in range(600, 900)], batch=100)
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while (done := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    if done[0] == 0:  # it waits for a thread it does not have
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        pytest.fail("the forked child hung on the parent's adding thread")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    for n in (650, 899):
        assert ids(archive.nearest(MATRIX[n], k=1, model=MODEL)) == [n]
