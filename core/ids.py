"""Deterministic ids: the same thing always gets the same id, so re-runs overwrite instead of duplicating."""

from __future__ import annotations

import hashlib


def stable_id(*parts: str, length: int = 32) -> str:
    """Hex digest of the parts, joined unambiguously."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


def article_id(canonical_url: str) -> str:
    """Article id: a hash of its canonical URL."""
    return stable_id("article", canonical_url)
