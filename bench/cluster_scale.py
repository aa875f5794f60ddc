"""Does clustering cost grow with the number of open stories?
`python bench/cluster_scale.py [--stories 1000,100000] [--queries 1000]`.

For each size N: a fresh state DB gets N active stories (all within the clustering window), created through
`StoryClusterer.assign` itself with join thresholds that no article can reach, from real headlines of
../shared/data (Reddit news, WSJ, Russian-language media, UCI), each made distinct with two words of the
same vocabulary and given a random unit embedding. Then `--queries` real UCI dev headlines with their real
embeddings are assigned with the configured thresholds, in committed batches as the enrichment stage does
(candidates through the inverted index, scoring, joins, events, persist). Prints the per-article time per
size and the ratio largest/smallest; the goal is at most 1.5. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from core.db import session_scope, upgrade
from core.ids import stable_id
from core.models import Article
from core.settings import Settings
from core.vectors import normalise, to_bytes
from enrichment.clustering import StoryClusterer
from enrichment.embeddings import article_text, get_embedder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TOPIC = "scale"
BATCH = 64
FILL_BATCH = 2000
T_QUERY = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def real_headlines(data: Path) -> list[str]:
    replay = data / "replay"
    titles = [x["title"] for x in json.loads((replay / "reddit-news-headlines.json").read_text())]
    titles += [x["title"] for x in json.loads((replay / "wsj-world-items.json").read_text())]
    titles += [x["title"] for x in json.loads((replay / "ru-independent-media-items.json").read_text())]
    return [t for t in titles if t]


def uci_headlines(data: Path, count: int) -> list[str]:
    with (data / "clustering" / "uci-news-aggregator-dev.csv").open(encoding="utf-8", newline="") as handle:
        titles = [row["TITLE"] for row in csv.DictReader(handle)]
    random.Random(7).shuffle(titles)
    return titles[:count]


def _article(position: int, title: str, published: datetime, vector: np.ndarray, model: str) -> Article:
    article_id = stable_id("scale", str(position), title)
    return Article(
        id=article_id, source=f"outlet{position % 500}", url=f"https://scale.invalid/{article_id}",
        canonical_url=f"https://scale.invalid/{article_id}", title=title, summary="", language="en",
        published_at=published, fetched_at=published, updated_at=published,
        content_hash=article_id, embedding=to_bytes(vector), embedding_model=model,
        topic=TOPIC, relevance=1.0, relevance_reason="scale benchmark", relevant=True,
    )


def assign_all(settings: Settings, clusterer: StoryClusterer, articles: list[Article], vectors: np.ndarray,
               batch: int) -> None:
    """Insert and assign in committed batches, as the enrichment stage does."""
    for start in range(0, len(articles), batch):
        chunk = articles[start : start + batch]
        with session_scope(settings) as session:
            session.add_all(chunk)
            session.flush()
            for offset, article in enumerate(chunk):
                clusterer.assign(session, article, vectors[start + offset], article.published_at)
            clusterer.persist(session)


def run(size: int, queries: list[str], query_vectors: np.ndarray, fill_titles: list[str], model: str) -> dict:
    rng = np.random.default_rng(size)
    vocabulary = sorted({w for t in fill_titles for w in t.split() if w.isalpha()})
    with tempfile.TemporaryDirectory(prefix="cluster-scale-") as tmp:
        var = Path(tmp)
        settings = Settings(var_dir=var, database_url=f"sqlite:///{var / 'scale.db'}", feeds_file=var / "none.yaml")
        upgrade(settings)
        never = settings.model_copy(update={"cluster_threshold": 9.0, "cluster_threshold_long": 9.0,
                                            "cluster_merge_threshold": 9.0})
        clusterer = StoryClusterer(never, query_vectors.shape[1])
        picks = rng.integers(0, len(vocabulary), size=(size, 2))
        fill = [
            f"{fill_titles[i % len(fill_titles)]} {vocabulary[a]} {vocabulary[b]}" for i, (a, b) in enumerate(picks)
        ]
        fill_vectors = np.array([normalise(v) for v in rng.standard_normal((size, query_vectors.shape[1]))],
                                dtype=np.float32)
        step = timedelta(hours=24) / max(size, 1)  # all within the window before the queries
        started = time.perf_counter()
        articles = [_article(i, t, T_QUERY - timedelta(hours=24) + i * step, fill_vectors[i], model)
                    for i, t in enumerate(fill)]
        assign_all(never, clusterer, articles, fill_vectors, FILL_BATCH)
        fill_s = time.perf_counter() - started
        active = sum(len(index) for index in clusterer.topics.values())

        clusterer.settings = settings  # the configured thresholds for the real articles
        articles = [_article(size + i, t, T_QUERY + timedelta(seconds=10 * i), query_vectors[i], model)
                    for i, t in enumerate(queries)]
        started = time.perf_counter()
        assign_all(settings, clusterer, articles, query_vectors, BATCH)
        seconds = time.perf_counter() - started
    return {
        "active_stories": active, "fill_s": round(fill_s, 1), "queries": len(queries),
        "ms_per_article": round(1000 * seconds / len(queries), 3),
        "articles_per_s": round(len(queries) / seconds, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stories", default="1000,100000", help="comma-separated numbers of active stories")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.stories.split(",")]
    settings = Settings()
    embedder = get_embedder(settings.embedding_model)
    queries = uci_headlines(args.data, args.queries)
    query_vectors = embedder.encode([article_text(t, "") for t in queries], batch_size=64)
    fill_titles = real_headlines(args.data)
    results = {}
    for size in sizes:
        result = run(size, queries, query_vectors, fill_titles, embedder.name)
        results[size] = result
        print(f"{result['active_stories']:>8} active stories: {result['ms_per_article']:.3f} ms/article "
              f"({result['articles_per_s']} articles/s; filling took {result['fill_s']} s)", flush=True)
    smallest, largest = results[min(sizes)], results[max(sizes)]
    ratio = round(largest["ms_per_article"] / smallest["ms_per_article"], 3)
    peak_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(f"ratio {max(sizes)} / {min(sizes)} stories: {ratio} (goal <= 1.5); peak RSS {peak_mib} MiB")
    summary = {"sizes": {str(k): v for k, v in results.items()}, "ratio": ratio, "peak_rss_mib": peak_mib}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
