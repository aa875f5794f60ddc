"""Calibration of the relevance constants on the real streams in shared/data (a developer tool, not a stage).

    python -m enrichment.calibration relevance [--data ../shared/data]
    python -m enrichment.calibration scale [--data ../shared/data]
    python -m enrichment.calibration search [--data ../shared/data]

`relevance` scores the replay streams with the configured topics and prints how many items come out
relevant, with a sample. `scale` fits the configured model's `Conventions.cosine_scale`: the line that maps
its closeness to the first topic's seeds onto all-MiniLM-L6-v2's (on which the relevance constants were
set), matching the two models' 90th, 99th and 99.9th percentiles over the English replay streams (no labels:
the same items, ranked by each model). `search` fits `Conventions.search_scale` of the configured and the
static model the same way, on raw cosines of short queries to the items (`search_report`). Clustering is
measured on labelled data by `bench/cluster_eval.py`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from core.settings import PROJECT_ROOT, Settings

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"


QUANTILES = (90.0, 99.0, 99.9)


def streams(data: Path) -> dict[str, list[tuple[str, str, str]]]:
    """(title, summary, declared language) of each replay stream of shared/data."""
    replay = data / "replay"
    found: dict[str, list[tuple[str, str, str]]] = {
        "wsj": [(x["title"] or "", x.get("description") or "", "en")
                for x in json.loads((replay / "wsj-world-items.json").read_text())],
        "reddit": [(x["title"] or "", "", "en")
                   for x in json.loads((replay / "reddit-news-headlines.json").read_text())],
        "ru": [(x["title"] or "", x.get("description") or "", "ru")
               for x in json.loads((replay / "ru-independent-media-items.json").read_text())],
        "delfi-lt": [],
        "reference article": [
            ("", path.read_text(encoding="utf-8"), "en") for path in sorted((data / "articles").glob("000_*.txt"))
        ],
    }
    for path in sorted((replay / "delfi-lt").glob("*.csv")):
        with path.open(encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        header = [name.lower() for name in rows[0]]
        column = next(i for i, name in enumerate(header) if name in ("title", "antraštė", "text"))
        found["delfi-lt"] += [(row[column], "", "lt") for row in rows[1:] if len(row) > column]
    return found


def relevance_report(data: Path, sample: int = 15) -> None:
    from enrichment.embeddings import article_text, get_embedder
    from enrichment.language import detect_language
    from enrichment.relevance import best_relevance, compile_topics

    settings = Settings()
    embedder = get_embedder(settings.embedding_model)
    profiles = compile_topics(settings, embedder)
    for name, items in streams(data).items():
        vectors = embedder.passages([article_text(t, s) for t, s, _ in items], batch_size=64)
        results = []
        for (title, summary, hint), vector in zip(items, vectors):
            language = detect_language(f"{title} {summary}", hint)
            best = best_relevance([p.score(title, summary, vector, language) for p in profiles])
            results.append((best, title or summary[:100]))
        relevant = [(r, t) for r, t in results if r is not None and r.relevant]
        print(f"== {name}: {len(items)} items, {len(relevant)} relevant")
        for result, title in sorted(relevant, key=lambda x: -x[0].score)[:sample]:
            print(f"  {result.score:.2f} {title[:90]!s} | {result.reason[:120]}")


def _english(data: Path) -> list[tuple[str, str, str]]:
    """The English replay items (title, summary, language hint) the fits read: WSJ and Reddit world news."""
    return [item for name in ("wsj", "reddit") for item in streams(data)[name]]


def scale_report(data: Path) -> tuple[float, float]:
    """Fit and print (scale, offset) of the configured model against all-MiniLM-L6-v2."""
    import numpy as np

    from enrichment.embeddings import PACKAGED_MODEL, article_text, get_embedder
    from enrichment.language import detect_language
    from enrichment.relevance import TopicProfile

    settings = Settings()
    topic = settings.topics[0]
    texts = [article_text(title, summary) for title, summary, _ in _english(data)]
    figures = {}
    english_seeds = [seed for seed in topic.seeds if detect_language(seed) == "en"]
    for model in (PACKAGED_MODEL, settings.embedding_model):
        embedder = get_embedder(model)
        # the reference: the English model with the English seeds, as the constants were set
        seeds = english_seeds if model == PACKAGED_MODEL else topic.seeds
        profile = TopicProfile(topic.model_copy(update={"negatives": [], "seeds": seeds}), embedder, 0.5)
        profile.unscaled()
        closeness = np.array([profile.similarities(v)[2] for v in embedder.passages(texts, batch_size=64)])
        figures[model] = np.percentile(closeness, QUANTILES)
        print(f"{model}: closeness at percentiles {QUANTILES}: {np.round(figures[model], 3).tolist()}")
    scale, offset = np.polyfit(figures[settings.embedding_model], figures[PACKAGED_MODEL], 1)
    print(f"cosine_scale of {settings.embedding_model}: ({scale:.3f}, {offset:.3f})")
    return float(scale), float(offset)


SEARCH_QUERIES = 200
SEARCH_QUERY_WORDS = 5


def search_report(data: Path) -> dict[str, tuple[float, float]]:
    """Fit and print `Conventions.search_scale` of the configured model and of the static model: the line
    mapping each one's raw query-passage cosines onto all-MiniLM-L6-v2's, through the same percentiles over
    every pair of queries (the first topic's English seeds and the first words of 200 headlines, as an
    analyst types them) and the English replay items."""
    import random

    import numpy as np

    from enrichment.embeddings import PACKAGED_MODEL, STATIC_MODEL, article_text, get_embedder
    from enrichment.language import detect_language

    settings = Settings()
    english = _english(data)
    texts = [article_text(title, summary) for title, summary, _ in english]
    queries = [seed for seed in settings.topics[0].seeds if detect_language(seed) == "en"]
    queries += [" ".join(title.split()[:SEARCH_QUERY_WORDS])
                for title, _, _ in random.Random(1).sample(english, SEARCH_QUERIES)]
    figures = {}
    for model in (PACKAGED_MODEL, settings.embedding_model, STATIC_MODEL):
        embedder = get_embedder(model)
        raw = embedder.queries(queries) @ embedder.passages(texts, batch_size=64).T
        figures[model] = np.percentile(raw.ravel(), QUANTILES)
        print(f"{model}: raw cosine at percentiles {QUANTILES}: {np.round(figures[model], 4).tolist()}")
    fitted = {}
    for model in (settings.embedding_model, STATIC_MODEL):
        scale, offset = np.polyfit(figures[model], figures[PACKAGED_MODEL], 1)
        fitted[model] = (float(scale), float(offset))
        print(f"search_scale of {model}: ({scale:.3f}, {offset:.3f})")
    return fitted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enrichment.calibration")
    parser.add_argument("what", choices=["relevance", "scale", "search"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    {"relevance": relevance_report, "scale": scale_report, "search": search_report}[args.what](args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
