"""Story clustering evaluation on labelled data:
`python bench/cluster_eval.py PATH... [--order interleaved|time] [--seed N] [--limit N] [--model DIR]
[--timing-runs N]`.

Streams the articles of each file (UCI News Aggregator CSV or generic JSONL, see bench/clustering_data.py)
through the enrichment stage itself, `enrichment.enrich.enrich`, on a temporary, migrated SQLite state DB: the
articles are stored pending, published at their arrival times, as the collector would store them; the stage
detects their language, embeds them (`embedding_model`), scores them against one topic that takes them all
(the first configured topic, threshold 0: relevance costs what it costs in production) and clusters them in
its committed batches (final labels after merges). Then the same, on a fresh DB, with the embeddings already
stored: that run times the clustering step without the model working beside it. And two simple baselines of
this benchmark's own:

- tfidf: TF-IDF (fit on the file's title + lead texts) single-pass: join the most similar cluster centroid
  when cosine >= TFIDF_THRESHOLD, else start a cluster. No time window.
- embedding: the same embeddings, cosine to running-mean centroids, join at >= EMBEDDING_THRESHOLD, else
  start a cluster. No time window, no database.

Scores: pairwise and B-cubed precision/recall/F1, cluster counts, story births (a predicted new story whose
first article is the first arrival of its gold story is a correct birth; recall = correct births / gold
stories), articles/s of the clustering step alone (for the system: `StoryClusterer.assign` and `persist` in the
stage, its "clustering" step seconds), and, for the system, articles/s of the whole stage with the ratio of its
time to bare batched embedding of the same texts (timed before and after the stage; their mean), and the
stage's seconds per step. `--timing-runs N` times the stage N times (bare embedding before the first and
after each) and reports the run with the median ratio, with every ratio.
Prints a table per file, then one JSON line per file; the last line is the last file's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))  # clustering_data, when imported from elsewhere

from clustering_data import ORDERS, Record, arrival_order, load, sample

from core.db import session_scope, upgrade
from core.ids import stable_id
from core.models import Article, Story
from core.settings import Settings, TopicConfig
from core.vectors import to_bytes
from enrichment.embeddings import article_text, get_embedder
from enrichment.enrich import enrich
from enrichment.language import detect_language

# Baseline thresholds: fixed, not tuned on any evaluation file.
TFIDF_THRESHOLD = 0.30  # cosine of TF-IDF vectors (English stop words removed, sublinear tf)
EMBEDDING_THRESHOLD = 0.50  # cosine of sentence embeddings: the best single threshold over both dev files

EVAL_TOPIC = "eval"
SCORE_KEYS = (
    "pairwise_p", "pairwise_r", "pairwise_f1", "bcubed_p", "bcubed_r", "bcubed_f1",
    "clusters", "gold_clusters", "birth_p", "birth_r", "birth_f1", "articles_per_s",
)


# ---------------------------------------------------------------------------------------------- metrics


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def pairwise(gold: Sequence[Hashable], predicted: Sequence[Hashable]) -> tuple[float, float, float]:
    """Pairwise precision, recall, F1: over all pairs of items, same story in both vs in either."""

    def pairs(counter: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    same_both = pairs(Counter(zip(gold, predicted)))
    same_predicted, same_gold = pairs(Counter(predicted)), pairs(Counter(gold))
    precision = same_both / same_predicted if same_predicted else 1.0
    recall = same_both / same_gold if same_gold else 1.0
    return precision, recall, _f1(precision, recall)


def bcubed(gold: Sequence[Hashable], predicted: Sequence[Hashable]) -> tuple[float, float, float]:
    """B-cubed precision, recall, F1 (Bagga & Baldwin 1998): per item, the share of its predicted cluster in
    its gold story (precision) and of its gold story in its predicted cluster (recall), averaged."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    if not gold:
        return 1.0, 1.0, 1.0
    both = Counter(zip(gold, predicted))
    gold_sizes, predicted_sizes = Counter(gold), Counter(predicted)
    precision = sum(n * n / predicted_sizes[p] for (_, p), n in both.items()) / len(gold)
    recall = sum(n * n / gold_sizes[g] for (g, _), n in both.items()) / len(gold)
    return precision, recall, _f1(precision, recall)


def births(
    gold: Sequence[Hashable], predicted: Sequence[Hashable], counted: set | None = None
) -> tuple[float, float, float]:
    """Story-birth precision, recall, F1 over a stream (items in arrival order). A predicted birth is the
    first item of a predicted cluster (of one in `counted`, when given); it is correct when that item is the
    first arrival of its gold story."""
    seen_gold: set = set()
    seen_predicted: set = set()
    predicted_births = correct = 0
    for g, p in zip(gold, predicted):
        if p not in seen_predicted and (counted is None or p in counted):
            seen_predicted.add(p)
            predicted_births += 1
            if g not in seen_gold:
                correct += 1
        seen_gold.add(g)
    gold_stories = len(set(gold))
    precision = correct / predicted_births if predicted_births else 1.0
    recall = correct / gold_stories if gold_stories else 1.0
    return precision, recall, _f1(precision, recall)


def scores(gold: Sequence[Hashable], predicted: Sequence[Hashable], seconds: float) -> dict[str, float]:
    """The score block of one clustering of a stream (gold and predicted in arrival order)."""
    pair_p, pair_r, pair_f1 = pairwise(gold, predicted)
    b_p, b_r, b_f1 = bcubed(gold, predicted)
    s_p, s_r, s_f1 = births(gold, predicted)
    return {
        "pairwise_p": round(pair_p, 4), "pairwise_r": round(pair_r, 4), "pairwise_f1": round(pair_f1, 4),
        "bcubed_p": round(b_p, 4), "bcubed_r": round(b_r, 4), "bcubed_f1": round(b_f1, 4),
        "clusters": len(set(predicted)), "gold_clusters": len(set(gold)),
        "birth_p": round(s_p, 4), "birth_r": round(s_r, 4), "birth_f1": round(s_f1, 4),
        "articles_per_s": round(len(gold) / seconds, 1) if seconds > 0 else None,
    }


# -------------------------------------------------------------------------------------------- baselines


def embedding_single_pass(vectors: np.ndarray, threshold: float = EMBEDDING_THRESHOLD) -> list[int]:
    """Cluster index per row (unit vectors, arrival order): join the most similar running-mean centroid at
    cosine >= threshold, else start a cluster. No time window."""
    n, dim = vectors.shape
    sums = np.zeros((max(n, 1), dim), dtype=np.float64)
    norms = np.zeros(max(n, 1), dtype=np.float64)
    count = 0
    labels: list[int] = []
    for vector in vectors.astype(np.float64):
        best = -1
        if count:
            sims = sums[:count] @ vector / np.maximum(norms[:count], 1e-12)
            best = int(np.argmax(sims))
            if sims[best] < threshold:
                best = -1
        if best < 0:
            best, count = count, count + 1
        sums[best] += vector
        norms[best] = float(np.linalg.norm(sums[best]))
        labels.append(best)
    return labels


def tfidf_single_pass(texts: list[str], threshold: float = TFIDF_THRESHOLD) -> list[int]:
    """Cluster index per text (arrival order): TF-IDF vectors (L2-normalised), join the most similar
    centroid (sum of members; cosine) at >= threshold, else start a cluster. No time window.
    Centroids are sparse dicts with an inverted index, so memory stays linear in the text."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not texts:
        return []
    try:
        matrix = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform(texts).tocsr()
    except ValueError:  # empty vocabulary (only stop words): every text alone
        return list(range(len(texts)))
    sums: list[dict[int, float]] = []
    norms_sq: list[float] = []
    postings: dict[int, set[int]] = defaultdict(set)
    labels: list[int] = []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        terms = matrix.indices[start:end].tolist()
        weights = matrix.data[start:end].tolist()
        dots: dict[int, float] = defaultdict(float)
        for term, weight in zip(terms, weights):
            for cluster in postings[term]:
                dots[cluster] += sums[cluster][term] * weight
        best, best_sim = -1, -1.0
        for cluster, dot in dots.items():
            sim = dot / max(norms_sq[cluster], 1e-24) ** 0.5  # the text's vector has norm 1
            if sim > best_sim:
                best, best_sim = cluster, sim
        if best < 0 or best_sim < threshold:
            best = len(sums)
            sums.append({})
            norms_sq.append(0.0)
        centroid = sums[best]
        norms_sq[best] += 2 * dots.get(best, 0.0) + sum(w * w for w in weights)
        for term, weight in zip(terms, weights):
            centroid[term] = centroid.get(term, 0.0) + weight
            postings[term].add(best)
        labels.append(best)
    return labels


# ------------------------------------------------------------------------------------------------ system


def _host(source: str) -> str:
    """A host name per source: syndication tells outlets apart by their site."""
    slug = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")[:60] or "unknown"
    return f"{slug}.eval.invalid"


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def keyed_stream(arrivals: list[tuple[Record, float]]) -> tuple[list[str], list[tuple[Record, float]]]:
    """Article ids for the arrivals, and the arrivals in the order the stage takes pending articles, by
    (published_at, id): the order of its stories' labels."""
    keyed = sorted(
        ((_utc(arrival), stable_id("eval-article", str(position), record.id)), record, arrival)
        for position, (record, arrival) in enumerate(arrivals)
    )
    return [key[1] for key, _, _ in keyed], [(record, arrival) for _, record, arrival in keyed]


def store_stream(settings: Settings, stream: list[tuple[Record, float]], ids: list[str],
                 vectors: np.ndarray | None = None, model_name: str = "") -> None:
    """Insert the stream's articles as the collector would: pending, their feed's language declared, each
    published at its arrival time; with `vectors`, their embeddings stored as if a former run had made them."""
    with session_scope(settings) as session:
        for index, (article_id, (record, arrival)) in enumerate(zip(ids, stream)):
            url = f"https://{_host(record.source)}/{article_id}"
            session.add(
                Article(
                    id=article_id, source=record.source[:200], url=url, canonical_url=url, title=record.title,
                    summary=record.text, language=record.language, published_at=_utc(arrival),
                    fetched_at=_utc(arrival), updated_at=_utc(arrival),
                    content_hash=stable_id("content", record.title, record.text),
                    embedding=to_bytes(vectors[index]) if vectors is not None else None,
                    embedding_model=model_name if vectors is not None else None,
                )
            )


def eval_database(var: Path) -> Path:
    """The state DB file of a run in `var`."""
    return var / "eval.db"


def eval_settings(var: Path, model: str | None) -> Settings:
    """Settings of a run on a temporary state DB: an explicit database_url (never the developer's
    FLANKWATCH_DATABASE_URL) and one topic that takes every article. That topic is the first configured one
    with its threshold at 0, so that relevance costs what it costs in production; each article is scored, and
    clustered, once."""
    overrides = {"embedding_model": model} if model else {}
    base = Settings(var_dir=var, database_url=f"sqlite:///{eval_database(var)}", feeds_file=var / "none.yaml",
                    **overrides)
    topic = base.topics[0] if base.topics else TopicConfig(name=EVAL_TOPIC)
    return base.model_copy(update={"topics": [topic.model_copy(update={"threshold": 0.0})]})


def run_stage(settings: Settings, stream: list[tuple[Record, float]], ids: list[str]) -> tuple[list[str], float, dict]:
    """`enrichment.enrich.enrich` over the stored stream: the story of each article (after merges, in stream
    order), the stage's seconds and its seconds per step."""
    started = time.perf_counter()
    summary = enrich(settings, now=_utc(stream[-1][1]) if stream else None)
    seconds = time.perf_counter() - started
    if summary.relevant != len(ids):
        raise RuntimeError(f"{summary.relevant} of {len(ids)} articles clustered: the eval topic must take all")
    with session_scope(settings) as session:
        story_of = {row.id: row.story_id for row in session.execute(select(Article.id, Article.story_id))}
    return [story_of[article_id] for article_id in ids], seconds, summary.step_seconds


def born_stories(settings: Settings) -> set[str]:
    """The stories of the state DB that were born (reached the alert thresholds: see enrichment.events)."""
    with session_scope(settings) as session:
        return set(session.scalars(select(Story.id).where(Story.born_at.is_not(None), Story.merged_into.is_(None))))


# -------------------------------------------------------------------------------------------------- runs


def evaluate(
    path: Path,
    order: str = "interleaved",
    seed: int = 13,
    limit: int | None = None,
    model: str | None = None,
    timing_runs: int = 1,
) -> dict:
    """All figures of one file (see the module docstring). `model`: an embedding model other than the
    configured one (`embedding_model` setting: the packaged name or a local sentence-transformers folder).
    `timing_runs`: how many times the whole stage is timed against bare embedding (the median is reported)."""
    records = sample(load(path), limit, seed)
    ids, stream = keyed_stream(arrival_order(records, order, seed))
    gold = [record.story for record, _ in stream]
    texts = [article_text(record.title, record.text) for record, _ in stream]

    with tempfile.TemporaryDirectory(prefix="cluster-eval-") as tmp:
        alone = Path(tmp) / "clustering"
        alone.mkdir()
        settings = eval_settings(alone, model)
        embedder = get_embedder(settings.embedding_model)
        embedder.passages(["warm-up"])  # first-call overhead is not throughput
        detect_language("warm-up")  # nor loading the language model (~1 s)

        def bare_embedding() -> tuple[np.ndarray, float]:
            started = time.perf_counter()
            vectors = embedder.passages(texts, batch_size=settings.embedding_batch_size)
            return vectors, time.perf_counter() - started

        # 1. the whole stage from raw articles, each run on a fresh DB between two timings of bare batched
        #    embedding of the same texts (its ratio: to their mean); the run with the median ratio is reported
        vectors, first = bare_embedding()
        bare_seconds = [first]
        runs: list[tuple[float, dict]] = []  # (stage seconds, its seconds per step)
        predicted: list[str] = []
        born: set[str] = set()
        for run in range(max(1, timing_runs)):
            whole = Path(tmp) / f"whole-{run}"
            whole.mkdir()
            run_settings = eval_settings(whole, model)
            upgrade(run_settings)
            store_stream(run_settings, stream, ids)
            labels, enrich_s, steps = run_stage(run_settings, stream, ids)
            if run == 0:
                predicted, born = labels, born_stories(run_settings)
            elif labels != predicted:
                raise RuntimeError("two runs of the stage on the same stream made different stories")
            runs.append((enrich_s, steps))
            bare_seconds.append(bare_embedding()[1])
        ratios = [seconds / ((bare_seconds[i] + bare_seconds[i + 1]) / 2) for i, (seconds, _) in enumerate(runs)]
        median = sorted(range(len(runs)), key=ratios.__getitem__)[(len(runs) - 1) // 2]
        enrich_s, steps = runs[median]
        embed_s = (bare_seconds[median] + bare_seconds[median + 1]) / 2
        # 2. the stage again on a fresh DB with the embeddings stored: the clustering step without the
        #    embedding model working beside it (embeddings excluded)
        upgrade(settings)
        store_stream(settings, stream, ids, vectors, embedder.name)
        _, _, steps_alone = run_stage(settings, stream, ids)

    system = scores(gold, predicted, steps_alone["clustering"])
    # What an analyst sees as a new story: only stories that were born (3 articles or 2 sources) announce
    # themselves, so also score births over those (`birth_*` above counts every predicted story).
    b_p, b_r, b_f1 = births(gold, predicted, counted=born)
    system.update({"born_birth_p": round(b_p, 4), "born_birth_r": round(b_r, 4), "born_birth_f1": round(b_f1, 4)})
    system["enrich_articles_per_s"] = round(len(gold) / enrich_s, 1) if enrich_s else None
    system["embedding_articles_per_s"] = round(len(gold) / embed_s, 1) if embed_s else None
    system["enrich_over_embedding"] = round(enrich_s / embed_s, 3) if embed_s else None
    system["enrich_over_embedding_runs"] = [round(ratio, 3) for ratio in ratios]
    system["enrich_step_seconds"] = steps
    system["bare_embedding_seconds"] = [round(seconds, 3) for seconds in bare_seconds]

    started = time.perf_counter()
    tfidf = tfidf_single_pass(texts)
    tfidf_block = scores(gold, tfidf, time.perf_counter() - started)
    started = time.perf_counter()
    bare = embedding_single_pass(vectors)
    embedding_block = scores(gold, bare, time.perf_counter() - started)
    return {
        "file": str(path),
        "order": order,
        "articles": len(gold),
        "system": system,
        "baselines": {"tfidf": tfidf_block, "embedding": embedding_block},
        "settings": {
            "embedding_model": settings.embedding_model,
            "topic": settings.topics[0].name,
            "cluster_threshold": settings.cluster_threshold,
            "cluster_threshold_long": settings.cluster_threshold_long,
            "cluster_merge_threshold": settings.cluster_merge_threshold,
            "cluster_window_hours": settings.cluster_window_hours,
            "tfidf_threshold": TFIDF_THRESHOLD,
            "embedding_threshold": EMBEDDING_THRESHOLD,
            "seed": seed,
        },
    }


def format_table(result: dict) -> str:
    columns = [
        ("pairwise P", "pairwise_p"), ("R", "pairwise_r"), ("F1", "pairwise_f1"),
        ("B3 P", "bcubed_p"), ("R", "bcubed_r"), ("F1", "bcubed_f1"),
        ("birth P", "birth_p"), ("R", "birth_r"), ("F1", "birth_f1"),
        ("clusters", "clusters"), ("art/s", "articles_per_s"),
    ]
    rows = [
        ("system", result["system"]),
        (f"tfidf @{TFIDF_THRESHOLD:.2f}", result["baselines"]["tfidf"]),
        (f"embedding @{EMBEDDING_THRESHOLD:.2f}", result["baselines"]["embedding"]),
    ]
    header = f"{'':<18}" + "".join(f"{name:>11}" for name, _ in columns)
    lines = [
        (
            f"== {result['file']}  order={result['order']}  articles={result['articles']}  "
            f"gold stories={result['system']['gold_clusters']}  "
            f"(system: thresholds {result['settings']['cluster_threshold']}-"
            f"{result['settings']['cluster_threshold_long']}, merge {result['settings']['cluster_merge_threshold']}, "
            f"window {result['settings']['cluster_window_hours']} h)"
        ),
        header,
    ]
    for name, block in rows:
        cells = "".join(
            f"{block[key]:>11}" if isinstance(block[key], int) or block[key] is None else f"{block[key]:>11.3f}"
            for _, key in columns
        )
        lines.append(f"{name:<18}{cells}")
    system = result["system"]
    lines.append(
        f"system births of born stories only (3 articles or 2 sources): P {system['born_birth_p']:.3f} "
        f"R {system['born_birth_r']:.3f} F1 {system['born_birth_f1']:.3f}"
    )
    lines.append(
        f"system enrichment stage (language, embedding, relevance, clustering, SQL): "
        f"{system['enrich_articles_per_s']} articles/s; bare batched embedding "
        f"{system['embedding_articles_per_s']} articles/s (bare runs {system['bare_embedding_seconds']} s); "
        f"ratio {system['enrich_over_embedding']} (median of {system['enrich_over_embedding_runs']}); "
        f"stage seconds per step {system['enrich_step_seconds']}"
    )
    return "\n".join(lines)


def report(results: Iterable[dict], table: Callable[[dict], str]) -> list[dict]:
    """Print each file's table as its result comes, then one JSON line per file (the last line is the last
    file's); return the results."""
    done = []
    for result in results:
        print(table(result), flush=True)
        print(flush=True)
        done.append(result)
    for result in done:
        print(json.dumps(result), flush=True)
    return done


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--order", choices=ORDERS, default="interleaved")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--limit", type=int, default=None, help="a seeded random sample of N articles per file")
    parser.add_argument(
        "--model", default=None,
        help="embedding model: a local sentence-transformers folder (default: the embedding_model setting)",
    )
    parser.add_argument(
        "--timing-runs", type=int, default=1, metavar="N",
        help="time the whole stage N times, each between two bare embeddings, and report the median ratio "
        "(on a shared machine one timing can be 20%% off)",
    )
    args = parser.parse_args(argv)
    if args.timing_runs < 1:
        parser.error("--timing-runs must be at least 1")
    return report(
        (evaluate(path, args.order, args.seed, args.limit, args.model, args.timing_runs) for path in args.paths),
        format_table,
    )


if __name__ == "__main__":
    main()
