"""A static embedding model distilled here from multilingual-e5-small: the screen's cheap first reading.

`build(folder)` (done on first use, or `python -m enrichment.static build`; from local weights only) runs
each word piece of e5's vocabulary whose letters are Latin or Cyrillic (144,717 of 250,002: the scripts of
the languages Flankwatch follows) alone through the int8 ONNX model (`enrichment.onnx_backend`: <s> piece
</s>, mean-pooled), removes the pieces' mean, and stores the table (float16, 106 MiB) with each piece's
weight, `SIF / (SIF + p)` where p is the piece's unigram probability (its SentencePiece score): the
model2vec recipe (Tulkens & van Dongen 2024) with e5's own tokenizer, and no download.

A text's static vector is the weighted mean of its pieces' rows (`StaticEmbedder`, name `STATIC_MODEL`):
no transformer, about 5,000 texts a second on 2 cores. It shares e5's tokenizer but not e5's vector space: stored
vectors record it as their model, and it is compared only with vectors it made itself.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from enrichment.embeddings import STATIC_MODEL, Conventions, Embedder

SIF = 1e-4
FILE = "e5-static.npz"
BUILD_BATCH = 2048
_build_lock = threading.Lock()

# Its centred cosines are mapped onto the scale of the relevance constants like e5's are
# (`Conventions.cosine_scale`): the line through the 90th, 99th and 99.9th percentiles of its closeness to the
# configured topic's seeds against e5's (int8 ONNX, scaled) over the 13,577 English items of the replay streams.
STATIC_CONVENTIONS = Conventions(multilingual=True, centred=True, cosine_scale=(3.128, -1.394),
                                 search_scale=(2.663, -1.318))


def kept_piece(piece: str) -> bool:
    """Whether a word piece is of a script Flankwatch follows (Latin, Cyrillic; digits and punctuation)."""
    for char in piece.replace("\u2581", ""):
        if char.isascii():
            continue
        name = unicodedata.name(char, "")
        if not (name.startswith("LATIN") or name.startswith("CYRILLIC")):
            return False
    return True


def model_file(folder: Path | None = None) -> Path:
    from enrichment.onnx_backend import model_cache_dir

    return Path(folder or model_cache_dir()) / FILE


def build(folder: Path | None = None, *, force: bool = False, limit: int | None = None) -> Path:
    """Distil the static model (see the module docstring) into `folder` if it is not there. `limit`: only
    the first N kept pieces (a quick build for tests; the others read as unknown)."""
    path = model_file(folder)
    if path.is_file() and not force:
        return path
    from filelock import FileLock  # (torch's own dependency)

    path.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock, FileLock(str(path.with_name(path.name + ".lock"))):  # one builder across processes too
        if path.is_file() and not force:
            return path
        from enrichment.e5_weights import packaged_vocabulary
        from enrichment.onnx_backend import ONNX_INT8, export, session

        weights = packaged_vocabulary()
        runner = session(export(path.parent)[ONNX_INT8])
        kept = [i for i, piece in enumerate(weights.pieces)
                if i not in (weights.bos, weights.eos, weights.pad, weights.unk) and kept_piece(piece)]
        if limit:
            kept = kept[:limit]
        vectors = np.zeros((len(kept), weights.hidden), dtype=np.float32)
        started = time.perf_counter()
        for start in range(0, len(kept), BUILD_BATCH):
            ids = np.asarray(kept[start : start + BUILD_BATCH], dtype=np.int64)
            tokens = np.stack([np.full(len(ids), weights.bos), ids, np.full(len(ids), weights.eos)], axis=1)
            vectors[start : start + len(ids)] = runner.run(
                None, {"input_ids": tokens, "attention_mask": np.ones_like(tokens)})[0]
        vectors -= vectors.mean(axis=0, keepdims=True)
        probability = np.exp(weights.scores[kept].astype(np.float64))
        weight = (SIF / (SIF + probability)).astype(np.float32)
        rows = np.full(len(weights.pieces), -1, dtype=np.int32)
        rows[kept] = np.arange(len(kept), dtype=np.int32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        meta = {"pieces": len(kept), "seconds": round(time.perf_counter() - started, 1), "sif": SIF}
        np.savez(tmp, vectors=vectors.astype(np.float16), weight=weight, rows=rows, meta=json.dumps(meta))
        os.replace(tmp, path)
        return path


class StaticEmbedder(Embedder):
    """The distilled static model (see the module docstring). Queries and passages are read alike."""

    conventions = STATIC_CONVENTIONS

    def __init__(self, folder: Path | None = None) -> None:
        super().__init__()
        from enrichment.e5_weights import packaged_tokenizer

        data = np.load(build(folder))
        self.name = STATIC_MODEL
        self._vectors_table = data["vectors"]
        self._weight = data["weight"]
        self._rows = data["rows"]
        self.meta = json.loads(str(data["meta"]))
        self.dim = int(self._vectors_table.shape[1])
        self._tokenizer = packaged_tokenizer()

    def _vectors(self, texts: list[str], query: bool, batch_size: int) -> Any:
        ids = self._tokenizer.content_ids(texts)
        lengths = np.fromiter((len(seq) for seq in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((i for seq in ids for i in seq), dtype=np.int64, count=int(lengths.sum()))
        rows = self._rows[flat]
        known = rows >= 0
        owner = np.repeat(np.arange(len(ids)), lengths)[known]
        rows = rows[known]
        if not len(rows):
            return np.zeros((len(ids), self.dim), dtype=np.float32)
        from scipy.sparse import csr_matrix

        # a sparse (texts x distinct pieces) matrix of weights times those pieces' rows, in float32
        used, column = np.unique(rows, return_inverse=True)
        weights = csr_matrix((self._weight[rows], (owner, column)), shape=(len(ids), len(used)))
        return np.asarray(weights @ self._vectors_table[used].astype(np.float32))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Distil the static model from multilingual-e5-small.")
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    path = build(args.folder, force=args.force)
    print(f"{path} ({path.stat().st_size / 2**20:.0f} MiB): {json.loads(str(np.load(path)['meta']))}")


if __name__ == "__main__":
    main()
