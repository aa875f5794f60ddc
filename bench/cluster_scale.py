"""Does clustering cost grow with the number of open stories?
`python bench/cluster_scale.py [--stories 1000,100000] [--queries 1000]`.

For each size N: a fresh state DB gets N active one-article stories (all within the clustering window),
from real headlines of ../shared/data (Reddit news, WSJ, Russian-language media), each made distinct with
two words of the same vocabulary and given a random unit embedding; `StoryClusterer.load` builds its index
from them as the start of a run does. Then `--queries` real UCI dev headlines with their real embeddings
are assigned with the configured thresholds, in committed batches as the enrichment stage does (candidates
through the inverted index, scoring, joins, events, persist; storing the articles is not timed), three
times (the best pass counts). Prints the per-article time per size and the ratio largest/smallest; the goal is
at most 1.5. The last line is one JSON object.
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
from sqlalchemy import insert, select

from core.db import session_scope, upgrade
from core.ids import stable_id
from core.models import Article, Story
from core.settings import Settings
from core.vectors import normalise, to_bytes
from enrichment.clustering import StoryClusterer
from enrichment.embeddings import Embedder, article_text, get_embedder
from enrichment.enrich import BATCH_SIZE

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TOPIC = "scale"
REPEATS = 3  # passes of the queries per size
FILL_BATCH = 5000
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


def store(settings: Settings, articles: list[Article]) -> list[str]:
    """Store the articles as the collector would (before the clustering is timed); returns their ids."""
    with session_scope(settings) as session:
        session.add_all(articles)
    return [article.id for article in articles]


def background(settings: Settings, size: int, fill_titles: list[str], dim: int, model: str) -> None:
    """`size` one-article stories in the state DB, all active: distinct real-vocabulary headlines, random
    unit embeddings. Written in bulk; the clusterer then loads them as a run's start would."""
    rng = np.random.default_rng(size)
    vocabulary = sorted({w for t in fill_titles for w in t.split() if w.isalpha()})
    picks = rng.integers(0, len(vocabulary), size=(size, 2))
    step = timedelta(hours=24) / max(size, 1)
    for start in range(0, size, FILL_BATCH):
        stories, articles = [], []
        for i in range(start, min(size, start + FILL_BATCH)):
            title = f"{fill_titles[i % len(fill_titles)]} {vocabulary[picks[i][0]]} {vocabulary[picks[i][1]]}"
            vector = normalise(rng.standard_normal(dim)).astype(np.float32)
            published = T_QUERY - timedelta(hours=24) + i * step
            article = _article(i, title, published, vector, model)
            story_id = stable_id("story", TOPIC, article.id)
            stories.append({
                "id": story_id, "topic": TOPIC, "headline": title, "representative_article_id": article.id,
                "first_seen": published, "last_seen": published, "article_count": 1, "source_count": 1,
                "sources": {article.source: 1}, "copy_sources": {}, "syndicated_outlets": 0,
                "language_counts": {"en": 1}, "terms": [], "centroid": to_bytes(vector),
                "created_at": published, "updated_at": published,
            })
            article.story_id, article.enriched_at = story_id, published
            articles.append(article)
        with session_scope(settings) as session:
            session.execute(insert(Story), stories)
            session.add_all(articles)


def assign_in_batches(
    settings: Settings, clusterer: StoryClusterer, ids: list[str], vectors: np.ndarray, batch: int = BATCH_SIZE
) -> None:
    """Assign stored articles (`ids`, in arrival order, with their `vectors`) in committed batches, each
    article at its publication time, as `enrichment.enrich` does."""
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        with session_scope(settings) as session:
            articles = {a.id: a for a in session.scalars(select(Article).where(Article.id.in_(chunk)))}
            for index, article_id in enumerate(chunk, start):
                article = articles[article_id]
                clusterer.assign(session, article, vectors[index], article.published_at)
                article.enriched_at = article.published_at
            clusterer.persist(session)


def run(size: int, queries: list[str], query_vectors: np.ndarray, fill_titles: list[str], embedder: Embedder) -> dict:
    model = embedder.name
    with tempfile.TemporaryDirectory(prefix="cluster-scale-") as tmp:
        var = Path(tmp)
        settings = Settings(var_dir=var, database_url=f"sqlite:///{var / 'scale.db'}", feeds_file=var / "none.yaml")
        upgrade(settings)
        started = time.perf_counter()
        background(settings, size, fill_titles, query_vectors.shape[1], model)
        fill_s = time.perf_counter() - started
        started = time.perf_counter()
        with session_scope(settings) as session:
            clusterer = StoryClusterer.load(session, settings, embedder)
        load_s = time.perf_counter() - started
        active = sum(len(index) for index in clusterer.topics.values())

        passes = []
        for repeat in range(REPEATS):  # the same headlines again, later: the best pass is the least disturbed
            offset = size + repeat * len(queries)
            start = T_QUERY + timedelta(seconds=10 * repeat * len(queries))
            articles = [_article(offset + i, t, start + timedelta(seconds=10 * i), query_vectors[i], model)
                        for i, t in enumerate(queries)]
            ids = store(settings, articles)
            started = time.perf_counter()
            assign_in_batches(settings, clusterer, ids, query_vectors)
            passes.append(time.perf_counter() - started)
        seconds = min(passes)
    return {
        "active_stories": active, "fill_s": round(fill_s, 1), "load_s": round(load_s, 1),
        "queries": len(queries), "ms_per_article": round(1000 * seconds / len(queries), 3),
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
    query_vectors = embedder.passages([article_text(t, "") for t in queries], batch_size=64)
    fill_titles = real_headlines(args.data)
    results = {}
    for size in sizes:
        result = run(size, queries, query_vectors, fill_titles, embedder)
        results[size] = result
        print(f"{result['active_stories']:>8} active stories: {result['ms_per_article']:.3f} ms/article "
              f"({result['articles_per_s']} articles/s; writing them took {result['fill_s']} s, "
              f"loading the index {result['load_s']} s)", flush=True)
    smallest, largest = results[min(sizes)], results[max(sizes)]
    ratio = round(largest["ms_per_article"] / smallest["ms_per_article"], 3)
    peak_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(f"ratio {max(sizes)} / {min(sizes)} stories: {ratio} (goal <= 1.5); peak RSS {peak_mib} MiB")
    summary = {"sizes": {str(k): v for k, v in results.items()}, "ratio": ratio, "peak_rss_mib": peak_mib}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
