"""bench/cluster_sweep.py: settings variants, story halves, narrow-topic streams, and a small real sweep."""

from __future__ import annotations

import json

import cluster_sweep
import pytest
from cluster_sweep import NARROW_GAP_S, halves, narrow_streams, parse_sets, variants
from clustering_data import Record

from core.settings import Settings


def _record(n: int, story: str, topic: str = "") -> Record:
    return Record(id=f"r{n}", title=f"title {n}", text="", source="s", language="en", published=1000.0 + n,
                  story=story, topic=topic)


def test_sets_are_numeric_settings_and_combine():
    sets = parse_sets(["cluster_threshold=0.27,0.3", "cluster_window_hours=24", "embedding_batch_size=16,64"])
    assert sets == {"cluster_threshold": [0.27, 0.3], "cluster_window_hours": [24.0], "embedding_batch_size": [16, 64]}
    assert all(isinstance(size, int) for size in sets["embedding_batch_size"])
    for bad in ("cluster_threshold", "cluster_threshold=", "no_such_setting=1", "embedding_model=1",
                "cluster_threshold=0.3,high", "embedding_batch_size=16.5"):
        with pytest.raises(ValueError):
            parse_sets([bad])
    combos = variants({"a": [1.0, 2.0], "b": [3.0]})
    assert combos == [{}, {"a": 1.0, "b": 3.0}, {"a": 2.0, "b": 3.0}]  # the configured settings first
    assert variants({}) == [{}]


def test_halves_split_stories_in_two():
    records = [_record(n, f"s{n % 7}") for n in range(40)]
    parts = halves(records, 2, seed=5)
    assert len(parts) == 4
    for first, second in (parts[0:2], parts[2:4]):
        stories = {r.story for r in first}, {r.story for r in second}
        assert not stories[0] & stories[1] and stories[0] | stories[1] == {f"s{n}" for n in range(7)}
        assert len(first) + len(second) == 40  # a story's articles stay together
    assert parts != halves(records, 2, seed=6)
    assert [[r.id for r in part] for part in parts] == [[r.id for r in part] for part in halves(records, 2, seed=5)]


def test_narrow_streams_take_a_topics_stories_in_turn():
    records = [_record(0, "a", "1"), _record(1, "a", "1"), _record(2, "a", "1"), _record(3, "b", "1"),
               _record(4, "c", "2"),  # a topic with one story: nothing to tell apart
               _record(5, "d")]  # no topic
    streams = narrow_streams(records)
    assert len(streams) == 1
    assert [r.id for r, _ in streams[0]] == ["r0", "r3", "r1", "r2"]
    assert [at for _, at in streams[0]] == [1000.0 + NARROW_GAP_S * n for n in range(4)]


def test_small_sweep_on_ecb(shared_data, embedder, capsys):
    path = shared_data / "clustering" / "ecbplus-dev.jsonl"
    configured = Settings().cluster_threshold_long
    results = cluster_sweep.main([
        str(path), "--limit", "60", "--seeds", "3", "--halves", "1",
        "--set", f"cluster_threshold_long={configured},5",  # 5: no similarity reaches it
    ])
    result = results[0]
    assert result["articles"] == 60 and result["halves"] == 2 and result["narrow_topics"] >= 1
    rows = result["variants"]
    assert [row["settings"] for row in rows] == [
        "configured", {"cluster_threshold_long": configured}, {"cluster_threshold_long": 5.0}
    ]
    same = {key: value for key, value in rows[1].items() if key != "settings"}
    assert same == {key: value for key, value in rows[0].items() if key != "settings"}
    assert rows[0]["full_pairwise_f1"] > 0.5
    # articles with a lead then join nothing (only near-copies of wire text still join their original)
    assert rows[2]["full_pairwise_f1"] < rows[0]["full_pairwise_f1"] / 2
    for row in rows:
        for key in ("full_bcubed_f1", "halves_bcubed_f1", "halves_bcubed_f1_min", "narrow_pairwise_f1",
                    "narrow_headline_bcubed_f1", "full_birth_f1"):
            assert 0.0 <= row[key] <= 1.0, key
        assert row["halves_bcubed_f1_min"] <= row["halves_bcubed_f1"]
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1]) == result
    assert any(line.startswith("cluster_threshold_long=5") for line in out)
