"""Calibration of the enrichment thresholds on the real data in shared/data (a developer tool, not a stage).

    python -m enrichment.calibration clustering [--limit N] [--data ../shared/data]
    python -m enrichment.calibration relevance [--data ../shared/data]

`clustering` replays the labelled development sets through the same similarity and centroid rules as
`enrichment.clustering.assign` (in memory, so a threshold sweep takes seconds) and prints pairwise
precision / recall / F1 per threshold. `relevance` scores the replay streams with the configured topics and
prints how many items come out relevant, with a sample.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.settings import PROJECT_ROOT, Settings
from core.vectors import normalise
from enrichment.clustering import FACT_BONUS, article_facts, fact_overlap, story_similarity, terms_keys

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Item:
    title: str
    summary: str
    gold: str  # gold story
    hours: float  # arrival time


@dataclass(frozen=True)
class PairScores:
    precision: float
    recall: float
    f1: float
    clusters: int


def cluster_stream(
    vectors: np.ndarray, facts: list[list[str]], hours: list[float], threshold: float,
    window_hours: float = 72.0, fact_bonus: float = FACT_BONUS,
) -> list[int]:
    """Story index of each item, arriving in order, by the rules of `clustering.assign`."""
    sums: list[np.ndarray] = []  # members' embeddings summed: the centroid is their normalised mean
    centroids: list[np.ndarray] = []
    terms: list[list[str]] = []
    keys: list[set[str]] = []
    last_seen: list[float] = []
    labels: list[int] = []
    for vector, item_facts, hour in zip(vectors, facts, hours):
        best, best_sim = -1, -1.0
        for index in range(len(centroids)):
            if last_seen[index] < hour - window_hours:
                continue
            overlap = fact_overlap(item_facts, keys[index]) if fact_bonus else 0.0
            sim = story_similarity(centroids[index], vector, overlap, fact_bonus)
            if sim > best_sim:
                best, best_sim = index, sim
        if best >= 0 and best_sim >= threshold:
            sums[best] = sums[best] + vector
            centroids[best] = normalise(sums[best]).astype(np.float32)
            known = set(terms[best])
            new = [fact for fact in item_facts if fact not in known]
            terms[best] += new
            keys[best] |= terms_keys(new)
            last_seen[best] = max(last_seen[best], hour)
            labels.append(best)
        else:
            sums.append(np.asarray(vector, dtype=np.float64))
            centroids.append(np.asarray(vector, dtype=np.float32))
            terms.append(list(item_facts))
            keys.append(terms_keys(item_facts))
            last_seen.append(hour)
            labels.append(len(centroids) - 1)
    return labels


def pairwise(gold: list[str], predicted: list[int]) -> PairScores:
    """Pairwise precision/recall/F1: over all pairs of items, same story in both vs in either."""

    def pairs(counter: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    same_both = pairs(Counter(zip(gold, predicted)))
    same_predicted = pairs(Counter(predicted))
    same_gold = pairs(Counter(gold))
    precision = same_both / same_predicted if same_predicted else 1.0
    recall = same_both / same_gold if same_gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairScores(precision, recall, f1, len(set(predicted)))


def load_uci(data: Path, limit: int | None, seed: int = 13) -> list[Item]:
    """UCI News Aggregator dev headlines. Each story was logged in one burst, so arrivals are shuffled
    (seeded) to interleave stories as a live stream would."""
    with (data / "clustering" / "uci-news-aggregator-dev.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    random.Random(seed).shuffle(rows)
    rows = rows[:limit] if limit else rows
    return [Item(row["TITLE"], "", row["STORY"], 0.0) for row in rows]


def load_ecbplus(data: Path) -> list[Item]:
    """ECB+ dev articles in order of their (synthetic) publication time; embedded as title + lead."""
    rows = [json.loads(line) for line in (data / "clustering" / "ecbplus-dev.jsonl").open(encoding="utf-8")]
    rows.sort(key=lambda row: (row["published"], row["id"]))
    start = rows[0]["published"]
    return [Item(row["title"], row["text"], str(row["story"]), (row["published"] - start) / 3600) for row in rows]


def sweep(items: list[Item], thresholds: list[float], bonuses: list[float]) -> None:
    from enrichment.embeddings import article_text, get_embedder

    embedder = get_embedder(Settings().embedding_model)
    vectors = embedder.encode([article_text(item.title, item.summary) for item in items], batch_size=64)
    facts = [article_facts(item.title, item.summary) for item in items]
    gold = [item.gold for item in items]
    hours = [item.hours for item in items]
    print(f"{len(items)} items, {len(set(gold))} gold stories")
    for bonus in bonuses:
        for threshold in thresholds:
            scores = pairwise(gold, cluster_stream(vectors, facts, hours, threshold, fact_bonus=bonus))
            print(
                f"  bonus {bonus:.2f} threshold {threshold:.2f}: precision {scores.precision:.3f} "
                f"recall {scores.recall:.3f} F1 {scores.f1:.3f} clusters {scores.clusters}"
            )


def relevance_report(data: Path, sample: int = 15) -> None:
    from enrichment.embeddings import article_text, get_embedder
    from enrichment.language import detect_language
    from enrichment.relevance import best_relevance, compile_topics

    settings = Settings()
    embedder = get_embedder(settings.embedding_model)
    profiles = compile_topics(settings, embedder)
    replay = data / "replay"
    streams: dict[str, list[tuple[str, str, str]]] = {
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
        streams["delfi-lt"] += [(row[column], "", "lt") for row in rows[1:] if len(row) > column]
    for name, items in streams.items():
        vectors = embedder.encode([article_text(t, s) for t, s, _ in items], batch_size=64)
        results = []
        for (title, summary, hint), vector in zip(items, vectors):
            language = detect_language(f"{title} {summary}", hint)
            best = best_relevance([p.score(title, summary, vector, language) for p in profiles])
            results.append((best, title or summary[:100]))
        relevant = [(r, t) for r, t in results if r is not None and r.relevant]
        print(f"== {name}: {len(items)} items, {len(relevant)} relevant")
        for result, title in sorted(relevant, key=lambda x: -x[0].score)[:sample]:
            print(f"  {result.score:.2f} {title[:90]!s} | {result.reason[:120]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enrichment.calibration")
    parser.add_argument("what", choices=["clustering", "relevance"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="UCI headlines used (default: all)")
    parser.add_argument("--thresholds", default="0.35,0.40,0.45,0.50,0.55,0.60,0.65,0.70")
    parser.add_argument("--bonuses", default=f"{FACT_BONUS},0.05")
    args = parser.parse_args(argv)
    if args.what == "relevance":
        relevance_report(args.data)
        return 0
    thresholds = [float(x) for x in args.thresholds.split(",")]
    bonuses = [float(x) for x in args.bonuses.split(",")]
    print("UCI News Aggregator (dev), headlines, shuffled arrivals")
    sweep(load_uci(args.data, args.limit), thresholds, bonuses)
    print("ECB+ (dev), title + lead, two similar events per topic")
    sweep(load_ecbplus(args.data), thresholds, bonuses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
