"""Calibration of the relevance constants on the real streams in shared/data (a developer tool, not a stage).

    python -m enrichment.calibration relevance [--data ../shared/data]

Scores the replay streams with the configured topics and prints how many items come out relevant, with a
sample. Clustering is measured on labelled data by `bench/cluster_eval.py`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from core.settings import PROJECT_ROOT, Settings

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"


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
    parser.add_argument("what", choices=["relevance"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    relevance_report(args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
