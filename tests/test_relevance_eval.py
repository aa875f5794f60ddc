"""bench/relevance_eval.py: metrics on hand-made labels, the profile file, reasons, and a small real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import relevance_eval
from relevance_eval import (
    DEFAULT_PROFILES,
    classification_scores,
    load_labelled,
    load_profiles,
    story_majority,
)

from core.settings import TopicConfig
from enrichment.embeddings import article_text
from enrichment.relevance import TopicProfile

LABELS = ["a", "b", "c"]


def test_perfect_classification_scores_one():
    gold = ["a", "b", "b", "c"]
    block = classification_scores(gold, list(gold), LABELS)
    assert block["macro_f1"] == pytest.approx(1.0)
    assert block["accuracy"] == pytest.approx(1.0)
    for label in LABELS:
        assert block["per_category"][label]["f1"] == pytest.approx(1.0)


def test_known_precision_recall_f1():
    gold = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "a", "b", "b", "c", "c"]
    block = classification_scores(gold, predicted, LABELS)
    a, b, c = (block["per_category"][label] for label in LABELS)
    assert (a["precision"], a["recall"]) == (pytest.approx(1.0), pytest.approx(2 / 3, abs=1e-4))
    assert a["f1"] == pytest.approx(0.8)
    assert (b["precision"], b["recall"], b["f1"]) == (pytest.approx(0.5), pytest.approx(0.5), pytest.approx(0.5))
    assert (c["precision"], c["recall"]) == (pytest.approx(0.5), pytest.approx(1.0))
    assert c["f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert block["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3, abs=1e-4)
    assert block["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert (a["support"], b["support"], c["support"]) == (3, 2, 1)
    assert (a["predicted"], b["predicted"], c["predicted"]) == (2, 2, 2)


def test_category_absent_from_gold_is_left_out_of_macro_but_costs_recall():
    gold = ["a", "a", "b", "b"]
    predicted = ["a", "c", "b", "b"]
    block = classification_scores(gold, predicted, LABELS)
    assert block["macro_over"] == ["a", "b"]
    assert block["per_category"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0,
                                          "predicted": 1}
    a_f1 = 2 * 1.0 * 0.5 / 1.5
    assert block["macro_f1"] == pytest.approx((a_f1 + 1.0) / 2, abs=1e-4)


def test_never_predicted_label_has_zero_precision_and_length_mismatch_raises():
    block = classification_scores(["a", "b"], ["a", "a"], ["a", "b"])
    assert block["per_category"]["b"]["precision"] == 0.0
    assert block["per_category"]["b"]["f1"] == 0.0
    with pytest.raises(ValueError):
        classification_scores(["a"], ["a", "b"], LABELS)


def test_story_majority_relabels_each_story_with_its_most_given_category():
    stories = ["s1", "s1", "s1", "s2", "s2", "s3"]
    predicted = ["a", "b", "a", "c", "b", "b"]
    # s1: a twice; s2: a tie, the first given wins; s3 alone keeps its own
    assert story_majority(stories, predicted) == ["a", "a", "a", "c", "c", "b"]


def test_profile_file_loads_into_topic_configs():
    topics, labels = load_profiles(DEFAULT_PROFILES)
    assert all(isinstance(topic, TopicConfig) for topic in topics)
    assert [topic.name for topic in topics] == ["business", "science-technology", "entertainment", "health"]
    assert labels == {"b": "business", "t": "science-technology", "e": "entertainment", "m": "health"}
    for topic in topics:
        assert topic.description and topic.seeds and topic.keywords
        assert any(keyword.endswith("*") for keyword in topic.keywords)


def test_labelled_loader_keeps_the_clustering_loaders_rows(tmp_path: Path):
    path = tmp_path / "mini.csv"
    path.write_text(
        "ID,TITLE,URL,PUBLISHER,CATEGORY,STORY,HOSTNAME,TIMESTAMP\n"
        "1,Stocks rally,http://x/1,X,b,s1,x,1394470371207\n"
        "2,,http://x/2,X,e,s2,x,1394470371207\n"  # no title: skipped by load_uci
        "3,New phone,http://x/3,X,t,s3,x,1394470371207\n",
        encoding="utf-8",
    )
    rows = load_labelled(path)
    assert [(record.title, code) for record, code in rows] == [("Stocks rally", "b"), ("New phone", "t")]


@pytest.mark.slow
def test_reason_names_the_matched_business_keyword(embedder):
    topics, _ = load_profiles(DEFAULT_PROFILES)
    business = TopicProfile(next(t for t in topics if t.name == "business"), embedder, 0.5)
    title = "Central bank raises interest rates as inflation climbs"
    vector = embedder.passages([article_text(title)])[0]
    relevance = business.score(title, None, vector, language="en")
    assert "inflation" in [term.casefold() for term in relevance.matched_terms]
    assert "inflation" in relevance.reason
    assert relevance.reason.startswith("terms: ")
    assert relevance.score > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "title",
    [  # real r/television headlines (shared/data/replay/reddit-news-headlines.json), no entertainment keyword
        "Transformers Earthspark Cast Revealed with Danny Pudi as Bumblebee.",
        "Nasim Pedrad’s ‘Chad’ Scrapped at TBS",
    ],
)
def test_headline_without_keywords_is_ranked_by_meaning(embedder, shared_data: Path, title: str):
    items = json.loads((shared_data / "replay" / "reddit-news-headlines.json").read_text(encoding="utf-8"))
    assert title in {item["title"] for item in items}
    topics, _ = load_profiles(DEFAULT_PROFILES)
    vector = embedder.passages([article_text(title)])[0]
    profiles = [TopicProfile(topic, embedder, 0.5) for topic in topics]
    results = [profile.score(title, None, vector, language="en") for profile in profiles]
    assert not any(result.matched_terms for result in results)
    best = max(results, key=lambda r: r.score)
    assert best.topic == "entertainment" and best.score > 0  # not a tie at 0 between all categories
    entertainment = next(profile for profile in profiles if profile.name == "entertainment")
    assert entertainment.tail > 0  # a broad topic: closeness ranks below the floor
    assert best.reason.startswith("no terms; nearest seed: ")


@pytest.mark.slow
def test_small_real_run_returns_every_key(shared_data: Path, embedder, capsys, monkeypatch):
    path = shared_data / "clustering" / "uci-news-aggregator-dev.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    result = relevance_eval.evaluate(path, DEFAULT_PROFILES, limit=80, embedder=embedder)
    assert result["articles"] == 80
    assert result["file"] == str(path)
    blocks = [result["system"], result["baselines"]["keyword"], result["baselines"]["embedding"]]
    for block in blocks:
        assert 0.0 <= block["macro_f1"] <= 1.0
        assert 0.0 <= block["accuracy"] <= 1.0
        assert block["articles_per_s"] > 0
        assert set(block["per_category"]) == {"business", "science-technology", "entertainment", "health"}
        for scores in block["per_category"].values():
            for key in ("precision", "recall", "f1"):
                assert 0.0 <= scores[key] <= 1.0
        assert sum(s["predicted"] for s in block["per_category"].values()) == 80
    assert 0.0 <= result["system"]["story_majority_macro_f1"] <= 1.0
    # the command line prints a table and, as its last line, the same kind of JSON object
    monkeypatch.setattr(relevance_eval, "get_embedder", lambda _model: embedder)  # the session's model
    relevance_eval.main([str(path), "--limit", "40"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    printed = json.loads(last)
    assert set(printed) == {"file", "articles", "system", "baselines"}
    assert set(printed["baselines"]) == {"keyword", "embedding"}
    assert printed["articles"] == 40
