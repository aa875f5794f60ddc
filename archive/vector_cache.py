"""One model's article vectors of a small SQLite archive, held in memory by the process that searches it.

The brute-force kNN of `archive.knn` reads every candidate's blob from the file. A process that searches often
(the desk, the CLI in a loop) keeps a model's vectors as one float32 matrix instead, about 1.5 kB per article,
and answers a query with one matrix product. This is the exact path of models with fewer than `ann.ANN_MIN`
vectors (20,000: 30 MB at 384 dimensions); larger ones are searched through their ANN index (`archive.ann`),
which holds no table in memory, and `MAX_CACHED` bounds what this module ever loads. The archive bumps
`meta.vectors_version` in the transaction of every write to its articles, so a cached matrix is used only while
it is what the file holds; the next query after an index run reloads it. Beyond `MAX_CACHED` vectors (an
archive whose ANN tables are missing) the archive streams, as before.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass

import numpy as np

VERSION_KEY = "vectors_version"
MAX_CACHED = 50_000  # vectors per (archive, model) kept in memory at most (75 MB at 384 dimensions)


@dataclass(frozen=True)
class Vectors:
    version: str
    seqs: np.ndarray  # int64, ascending
    matrix: np.ndarray  # float32 unit rows, aligned with seqs


_CACHE: dict[tuple[str, str], Vectors] = {}
_LOCK = threading.Lock()


def current_version(db: sqlite3.Connection) -> str:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone()
    return row[0] if row else "0"


def bump(db: sqlite3.Connection) -> None:
    """Inside the writer's transaction: the articles changed."""
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, '1') "
        "ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
        (VERSION_KEY,),
    )


def vectors(db: sqlite3.Connection, path: str, model: str, dim: int) -> Vectors | None:
    """The unit vectors of `model` (of dimension `dim`) in the archive at `path`, or None when the archive
    is in memory or too big to cache."""
    if path == ":memory:":
        return None
    version = current_version(db)
    key = (path, model)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached.version == version and cached.matrix.shape[1] == dim:
            return cached
        count = db.execute(
            "SELECT count(*) FROM articles WHERE embedding_model = ? AND embedding IS NOT NULL", (model,)
        ).fetchone()[0]
        if count > MAX_CACHED:
            _CACHE.pop(key, None)
            return None
        seqs = np.empty(count, dtype=np.int64)
        matrix = np.empty((count, dim), dtype=np.float32)
        n = 0
        cursor = db.execute(
            "SELECT seq, embedding FROM articles WHERE embedding_model = ? AND embedding IS NOT NULL ORDER BY seq",
            (model,),
        )
        for seq, blob in cursor:
            if blob is None or len(blob) != dim * 4 or n >= count:
                continue
            row = np.frombuffer(blob, dtype="<f4")
            norm = float(np.linalg.norm(row))
            if not np.isfinite(norm) or norm == 0.0:
                continue
            seqs[n], matrix[n] = seq, row / norm
            n += 1
        loaded = Vectors(version, seqs[:n].copy(), np.ascontiguousarray(matrix[:n]))
        _CACHE[key] = loaded
        return loaded


def top_k(found: Vectors, query: np.ndarray, k: int, candidates: np.ndarray | None = None) -> list[tuple[int, float]]:
    """The `k` closest (seq, cosine) to the unit `query`, best first (ties by seq), among `candidates`
    (seqs allowed by the filters; None: all)."""
    if k <= 0 or found.seqs.size == 0:
        return []
    if candidates is None:
        index = None
        scores = found.matrix @ query
    else:
        positions = np.searchsorted(found.seqs, candidates)
        inside = positions < found.seqs.size
        positions = positions[inside]
        index = np.unique(positions[found.seqs[positions] == candidates[inside]])
        if index.size == 0:
            return []
        scores = found.matrix[index] @ query
    keep = np.argpartition(-scores, min(k, scores.size) - 1)[:k] if scores.size > k else np.arange(scores.size)
    seqs = found.seqs[keep] if index is None else found.seqs[index[keep]]
    chosen = scores[keep]
    order = sorted(range(keep.size), key=lambda i: (-float(chosen[i]), int(seqs[i])))
    return [(int(seqs[i]), float(chosen[i])) for i in order]
