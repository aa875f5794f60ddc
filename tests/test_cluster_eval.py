"""bench/cluster_eval.py: metrics on hand-made labelings, arrival order, loaders, and a small real run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import cluster_eval
from cluster_eval import (
    SCORE_KEYS,
    bcubed,
    births,
    embedding_single_pass,
    scores,
    tfidf_single_pass,
)
from clustering_data import arrival_order, detect_format, load, sample

GOLD = ["a", "a", "b", "b", "b", "c"]


def test_perfect_clustering_scores_one_everywhere():
    predicted = [7, 7, 3, 3, 3, 9]
    block = scores(GOLD, predicted, seconds=1.0)
    for key in ("pairwise_p", "pairwise_r", "pairwise_f1", "bcubed_p", "bcubed_r", "bcubed_f1",
                "birth_p", "birth_r", "birth_f1"):
        assert block[key] == pytest.approx(1.0), key
    assert block["clusters"] == block["gold_clusters"] == 3
    assert block["articles_per_s"] == pytest.approx(6.0)


def test_all_in_one_cluster():
    block = scores(GOLD, [0] * len(GOLD), seconds=1.0)
    # pairs: gold 1 + 3 + 0 = 4 of 15 predicted
    assert block["pairwise_r"] == pytest.approx(1.0)
    assert block["pairwise_p"] == pytest.approx(4 / 15, abs=1e-4)
    assert block["bcubed_r"] == pytest.approx(1.0)
    # per item: 2/6, 2/6, 3/6, 3/6, 3/6, 1/6
    assert block["bcubed_p"] == pytest.approx((2 + 2 + 3 + 3 + 3 + 1) / 36, abs=1e-4)
    # one predicted birth, and it is correct (first arrival of "a"); 3 gold stories
    assert block["birth_p"] == pytest.approx(1.0)
    assert block["birth_r"] == pytest.approx(1 / 3, abs=1e-4)
    assert block["clusters"] == 1


def test_all_singletons():
    block = scores(GOLD, list(range(len(GOLD))), seconds=1.0)
    assert block["pairwise_p"] == pytest.approx(1.0)  # no predicted pair is wrong
    assert block["pairwise_r"] == pytest.approx(0.0)
    assert block["pairwise_f1"] == pytest.approx(0.0)
    assert block["bcubed_p"] == pytest.approx(1.0)
    assert block["bcubed_r"] == pytest.approx((1 / 2 + 1 / 2 + 1 / 3 + 1 / 3 + 1 / 3 + 1) / 6, abs=1e-4)
    assert block["birth_r"] == pytest.approx(1.0)
    assert block["birth_p"] == pytest.approx(3 / 6)
    assert block["clusters"] == 6


def test_known_bcubed_value():
    # items: precision 2/3, 2/3, 1/3, 1, 1 -> 11/15; recall 1, 1, 1/3, 2/3, 2/3 -> 11/15
    p, r, f1 = bcubed(["a", "a", "b", "b", "b"], [1, 1, 1, 2, 2])
    assert p == pytest.approx(11 / 15)
    assert r == pytest.approx(11 / 15)
    assert f1 == pytest.approx(11 / 15)


def test_births_count_only_first_arrivals_of_gold_stories():
    # cluster 2 starts at the second "a" (a story already open): a wrong birth; "b" joins cluster 1: missed
    p, r, f1 = births(["a", "a", "b", "c"], [1, 2, 1, 3])
    assert p == pytest.approx(2 / 3)
    assert r == pytest.approx(2 / 3)
    assert f1 == pytest.approx(2 / 3)


def test_baselines_group_obvious_duplicates():
    import numpy as np

    texts = ["Volcano erupts in Iceland, flights grounded", "Iceland volcano eruption grounds flights",
             "Central bank raises interest rates", "Interest rates raised by central bank"]
    assert tfidf_single_pass(texts) == [0, 0, 1, 1]
    vectors = np.array([[1, 0], [0.96, 0.28], [0, 1], [0.28, 0.96]], dtype=np.float32)
    assert embedding_single_pass(vectors, threshold=0.9) == [0, 0, 1, 1]


def _records(tmp_path: Path):
    path = tmp_path / "tiny.jsonl"
    rows = [
        {"id": f"r{i}", "title": f"t{i}", "text": "body", "source": "s", "language": "en",
         "published": 1_600_000_000 + i * 60, "story": f"s{i % 3}"}
        for i in range(20)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return load(path)


def test_interleaving_is_seeded_and_deterministic(tmp_path):
    records = _records(tmp_path)
    first = [(r.id, t) for r, t in arrival_order(records, "interleaved", seed=5)]
    again = [(r.id, t) for r, t in arrival_order(records, "interleaved", seed=5)]
    other = [(r.id, t) for r, t in arrival_order(records, "interleaved", seed=6)]
    assert first == again
    assert first != other
    times = [t for _, t in first]
    assert times == sorted(times)
    by_id = {r.id: r.published for r in records}
    assert all(0 <= t - by_id[i] < 24 * 3600 for i, t in first)
    in_time = arrival_order(records, "time", seed=5)
    assert [r.id for r, _ in in_time] == [f"r{i}" for i in range(20)]
    assert [t for _, t in in_time] == [r.published for r in records]
    assert sample(records, 5, seed=1) == sample(records, 5, seed=1)
    assert len(sample(records, 5, seed=1)) == 5


def test_both_formats_load(tmp_path):
    csv_path = tmp_path / "uci.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "TITLE", "URL", "PUBLISHER", "CATEGORY", "STORY", "HOSTNAME", "TIMESTAMP"])
        writer.writerow(["1", "ECB holds rates, says Draghi", "http://x/1", "Reuters", "b", "S1", "x", "1394470501265"])
        writer.writerow(["2", "Draghi: ECB keeps rates", "http://x/2", "AP", "b", "S1", "x", "1394470502000"])
    uci = load(csv_path)
    assert detect_format(csv_path) == "uci"
    assert [r.id for r in uci] == ["1", "2"]
    assert uci[0].story == "S1" and uci[0].title == "ECB holds rates, says Draghi" and uci[0].text == ""
    assert uci[0].published == pytest.approx(1394470501.265)
    assert uci[0].source == "Reuters"

    jsonl_path = tmp_path / "data.txt"  # no telling extension: detected by content
    jsonl_path.write_text(
        json.dumps({"id": "e1", "title": "Quake hits", "text": "A quake hit.", "source": "ecbplus",
                    "language": "en", "published": 1602269628, "story": "10ecb", "topic": "10"}) + "\n\n"
        + json.dumps({"id": "e2", "title": "Launch", "text": "", "source": "x", "language": "en",
                      "published": "2020-10-09T18:53:48Z", "story": 7}) + "\n",
        encoding="utf-8",
    )
    assert detect_format(jsonl_path) == "jsonl"
    generic = load(jsonl_path)
    assert [(r.id, r.story, r.text) for r in generic] == [("e1", "10ecb", "A quake hit."), ("e2", "7", "")]
    assert [r.topic for r in generic] == ["10", ""]  # optional
    assert generic[0].published == pytest.approx(1602269628)
    assert generic[1].published == pytest.approx(1602269628)


def test_end_to_end_on_uci_sample(shared_data, embedder, capsys):
    path = shared_data / "clustering" / "uci-news-aggregator-dev.csv"
    results = cluster_eval.main([str(path), "--limit", "60", "--seed", "3", "--timing-runs", "2"])
    assert len(results) == 1
    result = results[0]
    assert result["articles"] == 60 and result["order"] == "interleaved"
    blocks = [result["system"], result["baselines"]["tfidf"], result["baselines"]["embedding"]]
    for block in blocks:
        assert set(SCORE_KEYS) <= set(block)
        for key in SCORE_KEYS:
            if key in ("clusters", "gold_clusters", "articles_per_s"):
                continue
            assert 0.0 <= block[key] <= 1.0, key
        assert 1 <= block["clusters"] <= 60
        assert block["gold_clusters"] == result["system"]["gold_clusters"]
        assert block["articles_per_s"] > 0
    assert result["system"]["enrich_articles_per_s"] > 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["system"] == result["system"]
    assert 0.0 <= result["system"]["born_birth_f1"] <= 1.0
    # two timed runs (same stories, else it raises), each between two bare embeddings; the median reported
    assert len(result["system"]["enrich_over_embedding_runs"]) == 2
    assert len(result["system"]["bare_embedding_seconds"]) == 3
    assert result["system"]["enrich_over_embedding"] in result["system"]["enrich_over_embedding_runs"]
    assert set(result["system"]["enrich_step_seconds"]) == {"language", "embedding", "relevance", "clustering", "database"}


def test_births_can_count_only_born_stories():
    # stories 1 and 2 start at first arrivals of "a" and "b"; story 3 (a stray "a") is not born
    gold, predicted = ["a", "b", "a", "b"], [1, 2, 3, 2]
    assert births(gold, predicted)[0] == pytest.approx(2 / 3)
    assert births(gold, predicted, counted={1, 2}) == pytest.approx((1.0, 1.0, 1.0))


def test_scale_benchmark_runs_small(shared_data, embedder, capsys):
    import cluster_scale

    summary = cluster_scale.main(["--stories", "20,200", "--queries", "40", "--data", str(shared_data)])
    assert summary["sizes"]["200"]["active_stories"] == 200
    assert summary["sizes"]["20"]["ms_per_article"] > 0 and summary["ratio"] > 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == summary
