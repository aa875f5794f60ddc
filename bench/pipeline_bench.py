"""Throughput of one pipeline cycle on real news: `python bench/pipeline_bench.py [--items N]`.

Serves N real items from ../shared/data (the demo's replay, all visible at once) on 127.0.0.1, runs each stage
once on a fresh embedded default in a temporary folder, and prints seconds and articles/s per stage, then a
second (304) cycle. In the same run it embeds the enriched articles' texts (`article_text`, what the stage
embeds) with bare all-MiniLM-L6-v2 in one call and prints the enrichment stage's time against it
(`enrich_over_bare_minilm`; goal: at most 1.5). The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from sqlalchemy import select as sql_select

from core.db import session_scope, upgrade
from core.models import Article
from core.settings import Settings
from enrichment.embeddings import PACKAGED_MODEL, article_text, get_embedder
from flankwatch.demo import DEFAULT_DATA, register_feeds, topical_filter
from flankwatch.pipeline import alert_stage, collect_stage, enrich_stage, index_stage
from flankwatch.replay import load_items, select
from flankwatch.replay_server import ReplayServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        # the replay server is on 127.0.0.1: no SSRF guard, no politeness toward our own server
        settings = Settings(var_dir=Path(tmp), feeds_file=Path(tmp) / "none.yaml", allow_private_addresses=True,
                            fetch_host_delay_seconds=0.0, fetch_per_host=8)
        upgrade(settings)
        started = time.perf_counter()
        get_embedder(settings.embedding_model).passages(["warm-up"])
        model_s = time.perf_counter() - started
        bare = get_embedder(PACKAGED_MODEL)
        bare.passages(["warm-up"])
        items = select(load_items(args.data), topical=topical_filter(settings), limit=args.items)
        figures: dict[str, object] = {"items": len(items), "model_load_s": round(model_s, 2)}
        with ReplayServer(items, window=10_000) as server:
            register_feeds(settings, server)
            figures["feeds"] = len(server.outlets)
            stages = {
                "collect": lambda: collect_stage(settings, run_id="bench-1", origin="demo"),
                "enrich": lambda: enrich_stage(settings),
                "index": lambda: index_stage(settings),
                "alert": lambda: alert_stage(settings),
            }
            for name, call in stages.items():
                t0 = time.perf_counter()
                result = call()
                seconds = time.perf_counter() - t0
                figures[f"{name}_s"] = round(seconds, 3)
                figures[f"{name}_articles_per_s"] = round(len(items) / seconds, 1) if seconds else None
                print(f"{name:<8} {seconds:8.2f} s  {len(items) / seconds:9.1f} articles/s  "
                      f"{ {k: v for k, v in result.items() if not isinstance(v, list)} }")
            with session_scope(settings) as session:
                texts = [article_text(title, summary) for title, summary in
                         session.execute(sql_select(Article.title, Article.summary).where(Article.enriched_at.is_not(None)))]
            t0 = time.perf_counter()
            bare.passages(texts, batch_size=settings.embedding_batch_size)
            bare_s = time.perf_counter() - t0
            figures["bare_minilm_s"] = round(bare_s, 3)
            figures["enrich_over_bare_minilm"] = round(figures["enrich_s"] / bare_s, 3)  # type: ignore[operator]
            print(f"bare all-MiniLM-L6-v2 on the {len(texts)} enriched texts: {bare_s:.2f} s; "
                  f"enrichment stage / bare embedding: {figures['enrich_over_bare_minilm']}")
            t0 = time.perf_counter()
            again = collect_stage(settings, run_id="bench-2", origin="demo")
            figures["second_collect_s"] = round(time.perf_counter() - t0, 3)
            figures["second_collect_not_modified"] = again["not_modified"]
            print(f"second collect (conditional GET): {figures['second_collect_s']} s, "
                  f"{again['not_modified']}/{again['feeds']} feeds answered 304")
        total = sum(figures[f"{n}_s"] for n in stages)  # type: ignore[misc]
        figures["cycle_s"] = round(total, 2)
        figures["cycle_articles_per_s"] = round(len(items) / total, 1)
        figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
