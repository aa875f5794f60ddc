"""Searching the archive by words, by meaning or both: the query embedded where the archive's vectors are.

The archive cannot embed (it sits below enrichment); the application shell embeds the query with the
configured model, as a query ("query: " for e5), and asks the archive for the vectors of that model only.
A query in one language then finds articles in the others: "Kaliningrad transit ban" finds the Russian and
Lithuanian reports, which share no word with it.

With `embedding_screen=static` most articles keep the static model's vector (enrichment.screen): when the
archive holds such vectors (`ArchiveBackend.has_vectors`: it decides, not the setting, which a broad topic
overrides and which may have changed since), a search by meaning also embeds the query with the static
model, asks for its nearest articles among those, and ranks both lists together, each model's cosine
mapped onto one scale (`Conventions.search_scale`: all-MiniLM-L6-v2's cosine); a hybrid search fuses the
words ranking with that merged ranking, so that a screened-out article can come from both rankings as a
transformer-read one does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from archive.base import RRF_WINDOW, ArchiveBackend, Hit, SearchQuery, SearchResult
from core.settings import Settings

MODES = ("words", "meaning", "hybrid")


def default_mode(settings: Settings, backend: ArchiveBackend) -> str:
    """hybrid when the archive holds vectors of the configured model, else words."""
    return "hybrid" if backend.has_vectors(settings.embedding_model) else "words"


def run_search(
    settings: Settings, backend: ArchiveBackend, query: SearchQuery, mode: str | None = None
) -> tuple[str, SearchResult]:
    """(the mode used, the page of results). Words: BM25 with highlights and facets (`ArchiveBackend.search`).
    Meaning: the nearest articles to the query's vector within the filters. Hybrid: both rankings fused by
    reciprocal rank (`ArchiveBackend.hybrid`), the word matches highlighted. Meaning and hybrid rank the best
    `page x per_page` articles; their total and facets are of what they ranked. An empty query browses by
    words, newest first."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not query.text.strip():
        return "words", backend.search(query)
    mode = mode or default_mode(settings, backend)
    if mode == "words":
        return mode, backend.search(query)
    from enrichment.embeddings import get_embedder

    embedder = get_embedder(settings.embedding_model)
    wanted = query.page * query.per_page
    models = meaning_models(settings, backend)
    if mode == "meaning":
        hits = nearest_by_meaning(backend, query, wanted, models)
    else:
        vector = embedder.queries([query.text])[0]
        merged = (nearest_by_meaning(backend, query, max(wanted, RRF_WINDOW), models, {embedder.name: vector})
                  if len(models) > 1 else None)
        hits = backend.hybrid(query, vector, k=wanted, model=embedder.name, vector_hits=merged)
    shown = hits[query.offset : query.offset + query.per_page]
    facets = facets_of(hits, query.facets, query.facet_size)
    return mode, SearchResult(total=len(hits), hits=shown, facets=facets, page=query.page, per_page=query.per_page)


def meaning_models(settings: Settings, backend: ArchiveBackend) -> list[str]:
    """The models whose vectors a meaning search compares: the configured one, and the static model when the
    archive holds vectors of it (the screen left articles to it)."""
    from enrichment.embeddings import STATIC_MODEL

    if settings.embedding_model != STATIC_MODEL and backend.has_vectors(STATIC_MODEL):
        return [settings.embedding_model, STATIC_MODEL]
    return [settings.embedding_model]


def nearest_by_meaning(backend: ArchiveBackend, query: SearchQuery, k: int, models: Sequence[str],
                       embedded: dict[str, np.ndarray] | None = None) -> list[Hit]:
    """The `k` articles nearest to `query.text` within its filters, over the vectors of `models`
    (`meaning_models`: the configured model's and, where the archive holds them, the static model's; see the
    module docstring). `score`: the cosine mapped onto `Conventions.search_scale`'s common scale, whichever
    model made the vector. `embedded`: the query's vectors already made, by embedder name."""
    from enrichment.embeddings import get_embedder

    hits: list[Hit] = []
    for model in models:
        embedder = get_embedder(model)
        scale, offset = embedder.conventions.search_scale
        vector = (embedded or {}).get(embedder.name)
        if vector is None:
            vector = embedder.queries([query.text])[0]
        for hit in backend.nearest(vector, k=k, query=replace(query, text=""), model=embedder.name):
            hits.append(replace(hit, score=round(scale * hit.score + offset, 6)))
    return sorted(hits, key=lambda hit: (-hit.score, hit.id))[:k]


def facets_of(hits: Sequence[Hit], names: Sequence[str], size: int) -> dict[str, dict[str, int]]:
    """Facet counts over ranked hits (what `search` counts over its whole match set), in its shapes: most
    frequent values first; days in date order, the `size` most recent."""
    facets: dict[str, dict[str, int]] = {}
    for name in names:
        counts: Counter[str] = Counter()
        for hit in hits:
            doc = hit.doc
            if name == "topic":
                counts.update(doc.topics)
            elif name == "day":
                counts[doc.published_at.strftime("%Y-%m-%d")] += 1
            else:
                value = getattr(doc, name)
                if value:
                    counts[value] += 1
        if name == "day":
            facets[name] = dict(sorted(counts.items())[-size:])
        else:
            facets[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size])
    return facets
