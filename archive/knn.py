"""Exact (brute-force) cosine top-k over embeddings streamed in chunks.

Fine for the embedded archive: one pass over the candidate vectors, memory bounded by the chunk size.
Elasticsearch does approximate search (HNSW) instead; both return the closest first.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def unit(vector: np.ndarray) -> np.ndarray:
    """`vector` as a float32 unit vector; ValueError if it is empty, zero or not finite."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v)) if v.size else 0.0
    if not v.size or not np.isfinite(norm) or norm == 0.0:
        raise ValueError("the query vector must be a non-zero, finite vector")
    return v / norm


def top_k(
    query: np.ndarray, chunks: Iterable[list[tuple[int, bytes]]], k: int
) -> list[tuple[int, float]]:
    """The `k` keys whose vectors (float32 blobs) are most cosine-similar to `query`, best first.

    `query` must be a unit vector (see `unit`). Vectors of another dimension (another embedding model)
    or with a zero or non-finite norm are skipped.
    """
    if k <= 0:
        return []
    dim = query.shape[0]
    best_keys = np.empty(0, dtype=np.int64)
    best_scores = np.empty(0, dtype=np.float32)
    for chunk in chunks:
        rows = [(key, blob) for key, blob in chunk if blob is not None and len(blob) == dim * 4]
        if not rows:
            continue
        keys = np.fromiter((key for key, _ in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(blob for _, blob in rows), dtype="<f4").reshape(len(rows), dim)
        norms = np.linalg.norm(matrix, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = (matrix @ query) / norms
        ok = np.isfinite(scores)
        keys = np.concatenate([best_keys, keys[ok]])
        scores = np.concatenate([best_scores, scores[ok].astype(np.float32)])
        if scores.shape[0] > k:
            keep = np.argpartition(-scores, k - 1)[:k]
            keys, scores = keys[keep], scores[keep]
        best_keys, best_scores = keys, scores
    order = sorted(range(best_keys.shape[0]), key=lambda i: (-float(best_scores[i]), int(best_keys[i])))
    return [(int(best_keys[i]), float(best_scores[i])) for i in order]
