"""bench/pipeline_bench.py at a tiny size (200 items) in a subprocess, and the replay it serves
(bench/replay_scale.py): new URLs, GUIDs and titles for every copy, the topical share kept, feeds of at most
`feed_items` items, topic terms never split by the varied wording."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pipeline_bench_runs_at_a_tiny_size(shared_data: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "pipeline_bench.py"), "--items", "200",
         "--data", str(shared_data)],
        check=True, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT,
    )  # fmt: skip
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["items"] == 200 and figures["feeds"] > 0
    assert figures["new_articles"] == 200  # dedup kept every replayed item
    assert figures["cycle_articles_per_s"] > 0 and figures["cycle_s"] > 0
    assert figures["speedup_vs_bare_embedding"] > 0 and figures["enrich_over_bare_minilm"] > 0
    assert figures["bare_minilm_texts"] == figures["enriched"] == 200
    for name in ("collect", "enrich", "index", "alert"):
        stage = figures["stages"][name]
        assert stage["s"] > 0 and stage["articles_per_s"] > 0, name
        assert stage["peak_rss_mib"] > 0 and stage["db_mib"] > 0, name
        assert stage["archive_mib"] >= 0 and stage["children_peak_rss_mib"] >= 0, name
    assert figures["stages"]["index"]["archive_mib"] > 0
    second = figures["second_cycle"]
    assert second["feeds"] == figures["feeds"] and second["not_modified"] > 0
    assert second["not_modified"] == figures["second_collect_not_modified"] == figures["feeds"]
    assert second["new_articles"] == 0
    assert 0 < figures["relevant"] < figures["enriched"]
    assert figures["server"]["peak_rss_mib"] > 0


def test_the_replay_copies_are_new_articles_with_the_real_share(shared_data: Path) -> None:
    from collectors.normalise import title_hash
    from collectors.urls import canonical_url
    from core.settings import Settings
    from replay_scale import FILLERS, KICKERS, Plan, Pool, topic_matchers, wording_check

    from enrichment.relevance import PLACE_AND_KEYWORD, keyword_evidence

    pool = Pool.load(shared_data, Settings())
    assert pool.topical and pool.noise
    n = 2 * Plan.build(pool, 1).round_size + 500  # two full rounds and part of a third
    plan = Plan.build(pool, n, feed_items=30)
    again = Plan.build(pool, n, feed_items=30)
    assert np.array_equal(plan.base, again.base) and np.array_equal(plan.published, again.published)
    topical = np.isin(plan.base, pool.topical).mean()
    assert 0.08 < topical < 0.12
    assert max(f.stop - f.start for f in plan.feeds) <= 30
    assert sum(f.stop - f.start for f in plan.feeds) == n
    assert len({f.name for f in plan.feeds}) == len(plan.feeds)

    sample = np.random.default_rng(5).choice(n, 3000, replace=False)
    items = [plan.item(int(i)) for i in sample]
    assert len({canonical_url(i.link) for i in items}) == len(items)
    assert len({(i.outlet, i.guid) for i in items}) == len(items)
    titled = [(i.outlet, title_hash(i.title)) for i in items if title_hash(i.title)]
    assert len(set(titled)) == len(titled)

    matchers = topic_matchers(Settings())
    for index, item in zip(sample, items):
        original = pool.items[int(plan.base[index])]
        if int(plan.base[index]) in pool.topical:  # the copy keeps its original's keyword evidence
            assert any(keyword_evidence(m.find(item.text)) >= PLACE_AND_KEYWORD for m in matchers), item.title
        assert item.language == original.language

    check = wording_check(plan, sample=500)
    assert check["same_title_key"] == 0 and check["at_or_over_threshold"] == 0
    for words in (*KICKERS.values(), *FILLERS.values()):  # no inserted word is evidence of a topic
        assert not [m for word in words for matcher in matchers for m in matcher.find(word)]


def test_copies_of_one_item_in_a_round_are_not_syndication_of_each_other(shared_data: Path) -> None:
    """Round 0 of a 10,000-item replay: the topical items' copies (reports of one event by other outlets
    within 12 hours) against each other, as the syndication detector compares them."""
    from collectors.text import html_to_text
    from core.settings import Settings
    from replay_scale import Plan, Pool

    from enrichment.syndication import THRESHOLD, item_signature

    pool = Pool.load(shared_data, Settings())
    plan = Plan.build(pool, 10_000)
    by_base: dict[int, list] = {}
    for index in np.flatnonzero(np.isin(plan.base, pool.topical)):
        item = plan.item(int(index))
        summary = html_to_text(item.description) if "<" in item.description else item.description
        signature = item_signature(item.title, summary)
        if signature is not None:
            by_base.setdefault(int(plan.base[index]), []).append(signature)
    pairs = [a.jaccard(b) for group in by_base.values() for k, a in enumerate(group) for b in group[k + 1:]]
    assert len(pairs) > 500
    assert max(pairs) < THRESHOLD
