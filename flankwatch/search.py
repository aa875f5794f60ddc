"""Searching the archive by words, by meaning or both: the query embedded where the archive's vectors are.

The archive cannot embed (it sits below enrichment); the application shell embeds the query with the
configured model, as a query ("query: " for e5), and asks the archive for the vectors of that model only.
A query in one language then finds articles in the others: "Kaliningrad transit ban" finds the Russian and
Lithuanian reports, which share no word with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from archive.base import ArchiveBackend, Hit, SearchQuery, SearchResult
from core.settings import Settings

MODES = ("words", "meaning", "hybrid")


def default_mode(settings: Settings, backend: ArchiveBackend) -> str:
    """hybrid when the archive holds vectors of the configured model, else words."""
    return "hybrid" if backend.vector_models().get(settings.embedding_model) else "words"


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
    vector = embedder.queries([query.text])[0]
    wanted = query.page * query.per_page
    if mode == "meaning":
        hits = backend.nearest(vector, k=wanted, query=replace(query, text=""), model=embedder.name)
    else:
        hits = backend.hybrid(query, vector, k=wanted, model=embedder.name)
    shown = hits[query.offset : query.offset + query.per_page]
    facets = facets_of(hits, query.facets, query.facet_size)
    return mode, SearchResult(total=len(hits), hits=shown, facets=facets, page=query.page, per_page=query.per_page)


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
