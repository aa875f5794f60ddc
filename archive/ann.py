"""Approximate nearest neighbours over an SQLite archive's vectors: usearch HNSW segments beside the file.

The SQLite archive's `nearest` no longer scores every stored vector once a model has `ANN_MIN` of them: an
HNSW index (usearch, int8 cosine, like Elasticsearch's `int8_hnsw`) proposes candidates, and the archive scores
them exactly from their stored float32 blobs (so scores are true cosines, and a vector changed since it went
into the index is scored as it is now). What a searching process holds of the index is what the operating
system maps of its files (about 0.65 kB per vector), never a table. A writer holds, per language, the open
segment it appends to (at most `SEGMENT_MAX` vectors, about 170 MB).

Segments. A model's index is a list of usearch files, `<archive>.ann.<model-slug>.<token>.usearch`, listed in
the archive's `ann_segments` table (file, kind, part, vectors, bytes, `written_at`). It is split by language
(the part): a multilingual embedding space is dominated by language, so a search with a language filter near a
query in another language would otherwise find only candidates that the filter rejects; with the split it
searches the segments of the filter's languages only. Per language there are sealed segments of
`SEGMENT_MAX` vectors and one open segment; deltas hold any language. Every `index_articles` call, inside its
own write transaction, saves the vectors of its documents as a delta segment (a small graph of its own: cheap
to build and save) and hands them to the open segments of their languages, which the writing process keeps in
memory: a background thread adds them to those graphs while the writer goes on with its next batch (off the
write path); once `DELTAS_MAX` deltas wait for them, holding a quarter as many vectors as the segments
(`PERSIST_SHARE`; at `DELTAS_CAP` deltas in any case), or the writer closes the archive, the writer waits for
those adds, the open segments are saved as new files, and the deltas go; an open segment is sealed at
`SEGMENT_MAX`.
The rows and the files commit together: a replaced or dropped file is removed after the commit, a new one if
the transaction rolls back. So each vector is inserted into one large graph once, and a reader searches a
few large segments per language and at most `DELTAS_CAP` small ones. A document re-indexed with the vector it
already had is not added again (except during a rebuild). Readers map each file with
`Index.restore(view=True)` once per process.

Keys are the archive's `articles.seq`. An upsert keeps an article's seq, so a changed vector may leave an old
copy in an older segment: candidates are deduplicated and rescored from the table, so that copy is harmless,
and once the segments hold `1 + GARBAGE_MAX` times the model's live vectors the index is rebuilt.
`finish_rebuild` drops the segments last written before the rebuild mark (everything that survives a rebuild
was re-indexed after it, into newer segments), which removes the deleted articles' vectors.

Staleness. `ann_models` holds, per model, the vectors' dimension and the `meta.vectors_version` the segments
match; every write of this code moves both together. A version that differs (the file was written by code that
does not keep the index), a segment file missing or of the wrong size, or one that usearch cannot open, makes
the index stale: it is rebuilt from the table (one language at a time, in segments of `SEGMENT_MAX` vectors, so
memory stays bounded), under the write lock, by the first reader or writer that notices (about 140 s at
1,000,000 vectors here).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archive import vector_cache

ANN_MIN = 20_000  # a model's vectors from which `nearest` searches the ANN; below, exact brute force (from memory)
SEGMENT_MAX = 262_144  # vectors in one segment: the open one is sealed there, a rebuild cuts there
# The writer saves its open segments once DELTAS_MAX delta segments (one per write) wait for them, if those
# hold PERSIST_SHARE of the vectors the segments held when last saved, and at DELTAS_CAP deltas in any case:
# a save writes the whole segment (up to 170 MB), so a segment of 200,000 vectors is not written again for
# every 8,000 new ones (at 700,000 articles the saves were a fifth of the writer's time; 400,000 articles of
# bench/archive_bench.py: 2,438-2,544 -> 2,901-3,299 articles/s), and a reader searches at most DELTAS_CAP
# small graphs beside the large ones (each costs a search about 0.3 ms: 63 deltas added 18 ms at 400,000).
DELTAS_MAX = 16
PERSIST_SHARE = 0.25
DELTAS_CAP = 32
GARBAGE_MAX = 0.5  # stale copies (changed vectors) per live vector from which a model's index is rebuilt
# HNSW parameters (usearch): M, efConstruction, ef. int8 storage, as ES's int8_hnsw; candidates are rescored.
CONNECTIVITY = 32  # 16 loses whole clusters of near-duplicate vectors (syndicated copies, updates)
EXPANSION_ADD = 64
EXPANSION_SEARCH = 128
DTYPE = "i8"
ADD_CHUNK = 8192  # vectors read from the table and added at a time
SMALL_ADD = 4096  # adds of fewer vectors run on one thread (starting threads costs more than it saves)

DDL = """
CREATE TABLE IF NOT EXISTS ann_models (
    model TEXT PRIMARY KEY,
    dim INTEGER NOT NULL,
    version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ann_segments (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    file TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    part TEXT NOT NULL,
    vectors INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    written_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ann_segments_model ON ann_segments(model, id);
"""

Transaction = Callable[[], AbstractContextManager[None]]


@dataclass
class Changes:
    """Files a write transaction created and those it made obsolete: the latter are removed once it
    committed, the former if it rolled back (with what the writing process kept in memory of them)."""

    created: list[Path] = field(default_factory=list)
    dropped: list[Path] = field(default_factory=list)
    undo: list[Callable[[], None]] = field(default_factory=list)

    def committed(self) -> None:
        for path in self.dropped:
            _unlink(path)
        self.created, self.dropped, self.undo = [], [], []

    def rolled_back(self) -> None:
        for path in self.created:
            _unlink(path)
        for step in self.undo:
            step()
        self.created, self.dropped, self.undo = [], [], []


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def slug(model: str) -> str:
    """A file-name-safe, collision-free form of a model name (which may be a folder path)."""
    readable = re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-")[-40:] or "model"
    return f"{readable}-{hashlib.sha1(model.encode('utf-8')).hexdigest()[:8]}"


def _folder(path: str) -> Path:
    return Path(path).resolve().parent


def _prefix(path: str, model: str) -> str:
    return f"{Path(path).name}.ann.{slug(model)}."


def _file_name(path: str, model: str) -> str:
    return f"{_prefix(path, model)}{secrets.token_hex(6)}.usearch"


def _has_tables(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'ann_segments'").fetchone()
    return bool(row[0])


def to_json(values: Sequence[int] | np.ndarray) -> str:
    """Integers as a JSON array: one parameter for `IN (SELECT value FROM json_each(?))`."""
    return "[" + ",".join(map(str, np.asarray(values, dtype=np.int64).tolist())) + "]"


# --- building segments ----------------------------------------------------------------------------


def _usearch() -> Any:
    """usearch's Index class. usearch loads its NumKong kernels with RTLD_GLOBAL, and ONNX Runtime loaded after
    them in the same process (the embedding stage of the next cycle, a test session) crashes with SIGSEGV while
    it loads: so ONNX Runtime, when installed, is loaded first. The other order is safe."""
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime  # noqa: F401
    from usearch.index import Index

    return Index


def _new_index(dim: int) -> Any:
    Index = _usearch()
    return Index(ndim=dim, metric="cos", dtype=DTYPE, connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD,
                 expansion_search=EXPANSION_SEARCH)


def _rows_to_matrix(rows: Sequence[tuple[int, bytes | None]], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys and float32 vectors of the rows whose blob is a finite, non-zero vector of `dim` dimensions."""
    kept = [(seq, blob) for seq, blob in rows if blob is not None and len(blob) == dim * 4]
    if not kept:
        return np.empty(0, dtype=np.uint64), np.empty((0, dim), dtype=np.float32)
    keys = np.fromiter((seq for seq, _ in kept), dtype=np.uint64, count=len(kept))
    matrix = np.frombuffer(b"".join(blob for _, blob in kept), dtype="<f4").reshape(len(kept), dim)
    ok = _usable(matrix)
    return keys[ok], np.ascontiguousarray(matrix[ok])


def _usable(matrix: np.ndarray) -> np.ndarray:
    """Per row: a finite, non-zero vector (the archive refuses the others)."""
    norms = np.linalg.norm(matrix, axis=1)
    return np.isfinite(norms) & (norms > 0)


def _save(db: sqlite3.Connection, path: str, model: str, index: Any, kind: str, part: str, now: str,
          changes: Changes, replacing: tuple[int, str] | None = None) -> tuple[int, str]:
    """Save `index` as a new file of the model's segments (replacing the segment (id, file), if given);
    its (id, file)."""
    name = _file_name(path, model)
    target = _folder(path) / name
    changes.created.append(target)
    index.save(str(target))
    size = target.stat().st_size
    if replacing is None:
        cursor = db.execute(
            "INSERT INTO ann_segments (model, file, kind, part, vectors, bytes, written_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (model, name, kind, part, len(index), size, now),
        )
        return int(cursor.lastrowid or 0), name
    db.execute("UPDATE ann_segments SET file = ?, kind = ?, vectors = ?, bytes = ?, written_at = ? WHERE id = ?",
               (name, kind, len(index), size, now, replacing[0]))
    changes.dropped.append(_folder(path) / replacing[1])
    return replacing[0], name


def _drop_segments(db: sqlite3.Connection, path: str, model: str, changes: Changes, where: str = "",
                   params: Sequence[Any] = ()) -> None:
    rows = db.execute(f"SELECT id, file FROM ann_segments WHERE model = ? {where}", [model, *params]).fetchall()
    for segment_id, name in rows:
        db.execute("DELETE FROM ann_segments WHERE id = ?", (segment_id,))
        changes.dropped.append(_folder(path) / name)


def rebuild(db: sqlite3.Connection, path: str, model: str, dim: int, now: str, changes: Changes) -> None:
    """Inside a write transaction: the model's index anew from the table (its files dropped, orphans too),
    in segments of SEGMENT_MAX vectors."""
    _forget_open(path, model)
    _drop_segments(db, path, model, changes)
    listed = {row[0] for row in db.execute("SELECT file FROM ann_segments")}
    for orphan in _folder(path).glob(f"{_prefix(path, model)}*.usearch"):  # of a crash before a commit
        if orphan.name not in listed:
            changes.dropped.append(orphan)
    # one language at a time, by the language index (a covering scan for the list, then its rows)
    languages = [row[0] for row in db.execute("SELECT DISTINCT language FROM articles")]
    for language in languages:
        cursor = db.execute("SELECT seq, embedding FROM articles WHERE language IS ? AND +embedding_model = ?",
                            (language, model))
        index = _new_index(dim)
        while rows := cursor.fetchmany(ADD_CHUNK):
            keys, vectors = _rows_to_matrix(rows, dim)
            start = 0
            while start < keys.size:
                room = SEGMENT_MAX - len(index)
                index.add(keys[start : start + room], vectors[start : start + room],
                          threads=_threads(min(room, keys.size - start)))
                start += room
                if len(index) >= SEGMENT_MAX:
                    _save(db, path, model, index, "sealed", part_of(language), now, changes)
                    index = _new_index(dim)
        if len(index):  # the last one: the writers' open segment of this language
            _save(db, path, model, index, "open", part_of(language), now, changes)
    db.execute(
        "INSERT INTO ann_models (model, dim, version) VALUES (?, ?, ?) "
        "ON CONFLICT(model) DO UPDATE SET dim = excluded.dim, version = excluded.version",
        (model, dim, vector_cache.current_version(db)),
    )


# --- the write path -------------------------------------------------------------------------------


def part_of(language: str | None) -> str:
    """The part of a model's index an article's vector goes to: its language (`DELTA_PART` holds any)."""
    return language or ""


DELTA_PART = "*"


@dataclass
class _Part:
    """One language's open segment in a writer's memory: the file it was loaded from (None: not saved yet),
    its graph, and the vectors of the deltas written since. Each write hands its vectors to a background
    thread that adds them to the graph while the writer goes on with the next batch (usearch adds without
    the GIL), so the large graph's inserts are off the write path; `_persist` waits for them (and adds what
    no thread took: the vectors of deltas reloaded from their files) before it saves the segment."""

    file: str | None
    index: Any
    pending: dict[int, np.ndarray] = field(default_factory=dict)
    adds: list[Future[None]] = field(default_factory=list)  # the background adds of pending vectors
    added: set[int] = field(default_factory=set)  # pending vectors already in the graph
    saved: int = 0  # vectors in the graph when it was loaded or last saved

    def add_later(self, vectors: dict[int, np.ndarray]) -> None:
        keys = np.fromiter(vectors, dtype=np.uint64, count=len(vectors))
        matrix = np.stack(list(vectors.values())).astype(np.float32)

        def add() -> None:
            _add(self.index, keys, matrix, threads=1)
            self.added.update(vectors)

        self.adds.append(_adder().submit(add))

    def settle(self) -> None:
        """Wait for the background adds (their first error is raised), then add the pending vectors that no
        thread took, on all cores."""
        adds, self.adds = self.adds, []
        for done in adds:
            done.result()
        missing = {seq: vector for seq, vector in self.pending.items() if seq not in self.added}
        if missing:
            keys = np.fromiter(missing, dtype=np.uint64, count=len(missing))
            _add(self.index, keys, np.stack(list(missing.values())).astype(np.float32), threads=0)


_ADDER: ThreadPoolExecutor | None = None


def _adder() -> ThreadPoolExecutor:
    """The one background thread that adds vectors to open segments, in the order they were written (a
    vector changed twice is added twice, the later last)."""
    global _ADDER
    if _ADDER is None:
        _ADDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ann-add")
    return _ADDER


@dataclass
class _Group:
    """A writer's open segments of one model, and the delta segments (ids) they hold beyond their files."""

    deltas: set[int]
    parts: dict[str, _Part]


_OPEN: dict[tuple[str, str], _Group] = {}  # (archive, model) -> the writing process's open segments


def _forget_open(path: str, model: str) -> None:
    _OPEN.pop((path, model), None)


def _after_fork_in_child() -> None:
    """A forked child has neither the parent's thread nor its adds in flight (waiting for them would never
    end): it starts its own thread when it writes, and reloads the open segments from their files."""
    global _ADDER
    _ADDER = None
    _OPEN.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def state(db: sqlite3.Connection, model: str) -> tuple[int, str] | None:
    """(dim, version) of the model's index, or None when it has none."""
    if not _has_tables(db):
        return None
    row = db.execute("SELECT dim, version FROM ann_models WHERE model = ?", (model,)).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def model_vectors(db: sqlite3.Connection, model: str, limit: int | None = None) -> int:
    """The model's stored vectors, counted up to `limit` (an embedding_model is only stored with a vector)."""
    if limit is None:
        return db.execute("SELECT count(*) FROM articles WHERE embedding_model = ?", (model,)).fetchone()[0]
    return db.execute(
        "SELECT count(*) FROM (SELECT 1 FROM articles WHERE embedding_model = ? LIMIT ?)", (model, limit)
    ).fetchone()[0]


def _files_ok(db: sqlite3.Connection, path: str, model: str) -> bool:
    folder = _folder(path)
    for name, size in db.execute("SELECT file, bytes FROM ann_segments WHERE model = ?", (model,)):
        try:
            if (folder / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def on_write(db: sqlite3.Connection, path: str, written: Sequence[tuple[int, str, np.ndarray, str | None]],
             now: str, changes: Changes) -> None:
    """Inside `index_articles`'s transaction, before `meta.vectors_version` is bumped: the written vectors
    ((seq, model, vector, language), new or changed ones) go into their model's index; a model without an
    index gets one once it has ANN_MIN vectors; a stale index is rebuilt."""
    if not _has_tables(db):
        return
    version = vector_cache.current_version(db)
    by_model: dict[str, dict[int, tuple[np.ndarray, str]]] = {}
    for seq, model, vector, language in written:  # an id twice in one batch: its last version
        by_model.setdefault(model, {})[seq] = (vector, part_of(language))
    for model, latest in by_model.items():
        found = state(db, model)
        if found is None:
            if model_vectors(db, model, ANN_MIN) >= ANN_MIN:
                rebuild(db, path, model, max(v.shape[0] for v, _ in latest.values()), now, changes)
            continue
        dim, stamp_version = found
        if stamp_version != version or not _files_ok(db, path, model):
            rebuild(db, path, model, dim, now, changes)
            continue
        sized = {seq: entry for seq, entry in latest.items() if entry[0].shape[0] == dim}
        if not sized:
            continue
        matrix = np.stack([vector for vector, _ in sized.values()])
        ok = _usable(matrix)
        kept = {seq: (matrix[row], part) for row, ((seq, (_, part)), good) in enumerate(zip(sized.items(), ok))
                if good}
        if kept:
            _append(db, path, model, dim, kept, now, changes)


def _append(db: sqlite3.Connection, path: str, model: str, dim: int, vectors: dict[int, tuple[np.ndarray, str]],
            now: str, changes: Changes) -> None:
    """The written vectors as a delta segment (a small file of its own, cheap to build and save), and for the
    writer's open segments of their languages in memory, which take them and are saved once enough deltas
    wait for them (`_due`; their files then go); an open segment is sealed at SEGMENT_MAX vectors. Readers
    search all three kinds."""
    keys = np.fromiter(vectors, dtype=np.uint64, count=len(vectors))
    matrix = np.stack([vector for vector, _ in vectors.values()]).astype(np.float32)
    delta = _new_index(dim)
    delta.add(keys, matrix, threads=_threads(keys.size))
    delta_id, _ = _save(db, path, model, delta, "delta", DELTA_PART, now, changes)
    group = _open_group(db, path, model, dim, exclude=delta_id)
    if group is None:  # a file is unreadable: the index is stale
        rebuild(db, path, model, dim, now, changes)
        return
    by_part: dict[str, dict[int, np.ndarray]] = {}
    for seq, (vector, part) in vectors.items():
        by_part.setdefault(part, {})[seq] = vector
    for part, batch in by_part.items():
        held = _part(group, part, dim)
        held.pending.update(batch)
        held.add_later(batch)
    group.deltas.add(delta_id)
    changes.undo.append(lambda: _forget_open(path, model))  # rolled back: the memory is ahead of the files
    full = any(part.saved + len(part.pending) >= SEGMENT_MAX for part in group.parts.values())
    if full or _due(group):
        _persist(db, path, model, group, now, changes)


def _due(group: _Group) -> bool:
    """Whether the open segments are to be saved now (see DELTAS_MAX)."""
    if len(group.deltas) >= DELTAS_CAP:
        return True
    waiting = sum(len(part.pending) for part in group.parts.values())
    saved = sum(part.saved for part in group.parts.values())
    return len(group.deltas) >= DELTAS_MAX and waiting >= PERSIST_SHARE * saved


def _part(group: _Group, part: str, dim: int) -> _Part:
    if part not in group.parts:
        group.parts[part] = _Part(None, _new_index(dim))
    return group.parts[part]


def _add(index: Any, keys: np.ndarray, matrix: np.ndarray, threads: int | None = None) -> None:
    if len(index):
        present = np.asarray(index.contains(keys), dtype=bool).reshape(-1)
        if present.any():  # changed again while its vector is in this segment
            index.remove(keys[present])
    index.add(keys, matrix, threads=_threads(keys.size) if threads is None else threads)


def _threads(count: int) -> int:
    return 1 if count < SMALL_ADD else 0


def _listed_open(db: sqlite3.Connection, model: str) -> dict[str, tuple[int, str]]:
    return {part: (segment_id, name) for segment_id, name, part in db.execute(
        "SELECT id, file, part FROM ann_segments WHERE model = ? AND kind = 'open'", (model,))}


def _matches(group: _Group, opens: dict[str, tuple[int, str]], deltas: set[int]) -> bool:
    """Whether a writer's memory is what the files listed now hold (no other process wrote since)."""
    saved = {part: held.file for part, held in group.parts.items() if held.file is not None}
    return group.deltas == deltas and saved == {part: name for part, (_, name) in opens.items()}


def _open_group(db: sqlite3.Connection, path: str, model: str, dim: int, exclude: int) -> _Group | None:
    """The writer's open segments, as the files and the deltas listed now make them (reloaded if another
    process wrote since); None if a file cannot be read."""
    Index = _usearch()

    opens = _listed_open(db, model)
    deltas = {r[0]: r[1] for r in db.execute(
        "SELECT id, file FROM ann_segments WHERE model = ? AND kind = 'delta' AND id <> ?", (model, exclude))}
    key = (path, model)
    cached = _OPEN.get(key)
    if cached is not None and _matches(cached, opens, set(deltas)):
        return cached
    group = _Group(set(deltas), {})
    try:
        for part, (_, name) in opens.items():
            index = Index.restore(str(_folder(path) / name))
            if index is None or index.ndim != dim:
                return None
            group.parts[part] = _Part(name, index, saved=len(index))
        delta_keys = []
        for delta_id in sorted(deltas):  # the vectors written since the open segments were saved
            view = Index.restore(str(_folder(path) / deltas[delta_id]), view=True)  # (not kept: it will go)
            if view is None:
                return None
            delta_keys.append(np.asarray(view.keys, dtype=np.int64))
            del view
    except (OSError, RuntimeError, ValueError):  # a file missing or damaged
        return None
    for seqs in delta_keys:
        found = db.execute("SELECT seq, embedding, language FROM articles WHERE seq IN "
                           "(SELECT value FROM json_each(?)) AND embedding_model = ? ORDER BY seq",
                           (to_json(seqs), model)).fetchall()
        language = {seq: lang for seq, _, lang in found}
        keys, matrix = _rows_to_matrix([(seq, blob) for seq, blob, _ in found], dim)
        for seq, vector in zip(keys.tolist(), matrix):
            _part(group, part_of(language[seq]), dim).pending[seq] = vector
    _OPEN[key] = group
    return group


def _persist(db: sqlite3.Connection, path: str, model: str, group: _Group, now: str, changes: Changes) -> None:
    """Save the open segments that took vectors (sealing those at SEGMENT_MAX) and drop the deltas they now
    hold."""
    opens = _listed_open(db, model)
    sealed = False
    for name, held in list(group.parts.items()):
        if not held.pending:
            continue
        held.settle()
        held.pending, held.added, held.saved = {}, set(), len(held.index)
        full = len(held.index) >= SEGMENT_MAX
        _, file = _save(db, path, model, held.index, "sealed" if full else "open", name, now, changes,
                        replacing=opens.get(name))
        if full:
            group.parts[name] = _Part(None, _new_index(held.index.ndim))
            sealed = True
        else:
            held.file = file
    if group.deltas:
        marks = ", ".join("?" for _ in group.deltas)
        _drop_segments(db, path, model, changes, f"AND kind = 'delta' AND id IN ({marks})", sorted(group.deltas))
    group.deltas = set()
    if sealed:  # a segment is full: time to see whether stale copies pile up
        held_vectors = db.execute("SELECT sum(vectors) FROM ann_segments WHERE model = ?", (model,)).fetchone()[0]
        if (held_vectors or 0) > (1 + GARBAGE_MAX) * max(model_vectors(db, model), 1):
            found = state(db, model)
            rebuild(db, path, model, found[0] if found else next(iter(group.parts.values())).index.ndim, now,
                    changes)


def persist(db: sqlite3.Connection, path: str, transaction: Transaction, now: Callable[[], str]) -> None:
    """On closing a writer: save its open segments that deltas wait for (if no other process wrote since), so
    that the next process finds few deltas."""
    for (archive, model), group in list(_OPEN.items()):
        if archive != path or not group.deltas:
            continue
        changes = Changes()
        try:
            with transaction():
                deltas = {r[0] for r in db.execute(
                    "SELECT id FROM ann_segments WHERE model = ? AND kind = 'delta'", (model,))}
                found = state(db, model)
                if (found is None or found[1] != vector_cache.current_version(db)
                        or not _matches(group, _listed_open(db, model), deltas)):
                    _forget_open(path, model)
                    continue
                _persist(db, path, model, group, now(), changes)
        except BaseException:
            changes.rolled_back()
            _forget_open(path, model)
            raise
        changes.committed()


def on_delete(db: sqlite3.Connection, path: str, models: Sequence[str], now: str, changes: Changes) -> None:
    """Inside `delete_articles`'s transaction, after the rows went and the version moved: the deleted vectors
    stay in the segments as garbage (a candidate without its row is no hit). A model left with fewer than
    ANN_MIN vectors loses its index (exact search takes over); one whose segments hold more than
    1 + GARBAGE_MAX times its live vectors is rebuilt."""
    if not _has_tables(db):
        return
    for model in models:
        found = state(db, model)
        if found is None:
            continue
        live = model_vectors(db, model)
        if live < ANN_MIN:
            _forget_open(path, model)
            changes.undo.append(lambda model=model: _forget_open(path, model))
            _drop_segments(db, path, model, changes)
            db.execute("DELETE FROM ann_models WHERE model = ?", (model,))
            continue
        held = db.execute("SELECT sum(vectors) FROM ann_segments WHERE model = ?", (model,)).fetchone()[0]
        if (held or 0) > (1 + GARBAGE_MAX) * live:
            rebuild(db, path, model, found[0], now, changes)


def stamp(db: sqlite3.Connection, before: str) -> None:
    """After `vector_cache.bump` in a write transaction: the indexes that matched the archive before it
    match it after (a stale one stays stale)."""
    if _has_tables(db):
        db.execute("UPDATE ann_models SET version = ? WHERE version = ?", (vector_cache.current_version(db), before))


def drop_before(db: sqlite3.Connection, path: str, mark: str, changes: Changes) -> None:
    """Inside `finish_rebuild`'s transaction: every segment last written before the rebuild began."""
    if not _has_tables(db):
        return
    for (model,) in db.execute("SELECT model FROM ann_models").fetchall():
        _drop_segments(db, path, model, changes, "AND written_at < ?", (mark,))
        changes.undo.append(lambda model=model: _forget_open(path, model))
        _forget_open(path, model)


# --- the read path --------------------------------------------------------------------------------

_VIEWS: dict[str, Any] = {}  # absolute file path -> usearch Index (a read-only memory map of the file)
_COUNTS: dict[tuple[str, str], tuple[str, int]] = {}  # (archive, model) -> (version, vectors counted)
_LOCK = threading.Lock()


def _open_view(file: Path) -> Any:
    key = str(file)
    with _LOCK:
        view = _VIEWS.get(key)
        if view is None:
            view = _usearch().restore(key, view=True)
            if view is None:
                raise FileNotFoundError(key)
            view.expansion_search = EXPANSION_SEARCH
            _VIEWS[key] = view
        return view


def _forget(file: Path) -> None:
    with _LOCK:
        _VIEWS.pop(str(file), None)


@dataclass
class Segments:
    """The open index of one model: the views of its segment files, with the part (language) of each."""

    dim: int
    views: list[Any]
    vectors: int
    parts: list[str] = field(default_factory=list)

    def search(self, query: np.ndarray, count: int, languages: Sequence[str | None] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """About the `count` nearest keys (seqs) over all segments (those of `languages` and the deltas, if
        given), nearest first, without duplicates, and their approximate cosine distances."""
        wanted = None if not languages else {part_of(language) for language in languages} | {DELTA_PART}
        keys, distances = [], []
        for view, part in zip(self.views, self.parts or [DELTA_PART] * len(self.views)):
            if wanted is not None and part not in wanted:
                continue
            found = view.search(query, min(count, len(view)))
            keys.append(np.asarray(found.keys, dtype=np.int64))
            distances.append(np.asarray(found.distances, dtype=np.float32))
        if not keys:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        all_keys, all_distances = np.concatenate(keys), np.concatenate(distances)
        order = np.argsort(all_distances, kind="stable")
        all_keys, all_distances = all_keys[order], all_distances[order]
        _, first = np.unique(all_keys, return_index=True)
        first = np.sort(first)[:count]
        return all_keys[first], all_distances[first]


def _load(db: sqlite3.Connection, path: str, model: str, dim: int) -> Segments | None:
    """The views of the model's segments, or None if a file is missing, of the wrong size or unreadable."""
    folder = _folder(path)
    rows = db.execute("SELECT file, vectors, bytes, part FROM ann_segments WHERE model = ? ORDER BY id",
                      (model,)).fetchall()
    views, parts, total = [], [], 0
    for name, vectors, size, part in rows:
        file = folder / name
        try:
            if file.stat().st_size != size:
                _forget(file)
                return None
            view = _open_view(file)
        except (OSError, RuntimeError, ValueError):
            _forget(file)
            return None
        if view.ndim != dim or len(view) != vectors:
            _forget(file)
            return None
        views.append(view)
        parts.append(part)
        total += vectors
    listed = {str(folder / name) for name, _, _, _ in rows}
    prefix = str(folder / _prefix(path, model))
    with _LOCK:  # unmap the files of this model that are no longer listed (replaced or dropped)
        for key in [key for key in _VIEWS if key.startswith(prefix) and key not in listed]:
            del _VIEWS[key]
    return Segments(dim, views, total, parts)


def open_index(db: sqlite3.Connection, path: str, model: str, dim: int, transaction: Transaction,
               now: Callable[[], str]) -> Segments | None:
    """The model's index for a search, built or rebuilt first when it is missing or stale; None when the model
    has fewer than ANN_MIN vectors and no index (exact search is exact and fast there)."""
    if path == ":memory:" or not _has_tables(db):
        return None
    version = vector_cache.current_version(db)
    found = state(db, model)
    if found is None:
        key = (path, model)
        counted = _COUNTS.get(key)
        if counted is None or counted[0] != version:
            counted = (version, model_vectors(db, model, ANN_MIN))
            _COUNTS[key] = counted
        if counted[1] < ANN_MIN:
            return None
    elif found[1] == version:
        loaded = _load(db, path, model, found[0])
        if loaded is not None:
            return loaded
    # missing or stale: rebuild under the write lock (unless another process did meanwhile)
    changes = Changes()
    try:
        with transaction():
            found = state(db, model)
            fresh = found is not None and found[1] == vector_cache.current_version(db) and _files_ok(db, path, model)
            if not fresh:
                rebuild(db, path, model, found[0] if found else dim, now(), changes)
    except BaseException:
        changes.rolled_back()
        raise
    changes.committed()
    found = state(db, model)
    return _load(db, path, model, found[0]) if found else None


def describe(db: sqlite3.Connection, path: str) -> dict[str, Any]:
    """Per model: segments, vectors and MiB on disk (for benchmarks and status)."""
    if path == ":memory:" or not _has_tables(db):
        return {}
    out: dict[str, Any] = {}
    for model, segments, vectors, size in db.execute(
            "SELECT model, count(*), sum(vectors), sum(bytes) FROM ann_segments GROUP BY model ORDER BY model"):
        out[model] = {"segments": segments, "vectors": vectors, "mib": round(size / 2**20, 1)}
    return {"vectors": sum(m["vectors"] for m in out.values()), "models": out} if out else {}
