"""Topic relevance with the configured "baltic-deployments" profile and the real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.settings import Settings, TopicConfig
from enrichment.embeddings import article_text
from enrichment.relevance import (
    PLACE_ONLY,
    SEED_FLOOR,
    SEED_FULL,
    SEED_TAIL,
    SEED_TOP_K,
    SEED_ZERO,
    Relevance,
    TopicProfile,
    best_relevance,
    closeness,
    compile_topics,
    semantic_evidence,
    tail_share,
)

TOPIC = "baltic-deployments"


@pytest.fixture(scope="module")
def profile(embedder) -> TopicProfile:
    profiles = {p.name: p for p in compile_topics(Settings(), embedder)}
    return profiles[TOPIC]


def score(profile: TopicProfile, embedder, title: str, summary: str = "", language: str | None = None) -> Relevance:
    vector = embedder.passages([article_text(title, summary)])[0]
    return profile.score(title, summary, vector, language)


def test_reference_article_is_relevant_with_a_reason(profile, embedder, shared_data) -> None:
    text = next((shared_data / "articles").glob("000_*.txt")).read_text(encoding="utf-8")
    result = score(profile, embedder, "", text, "en")
    assert result.relevant and result.score >= 0.8
    assert result.topic == TOPIC
    assert {"Lithuania", "NATO", "troops"} <= set(result.matched_terms)
    assert result.reason.startswith("terms: ")
    assert 'nearest seed: "Germany deploys a permanent armoured brigade' in result.reason
    assert result.nearest_seed is not None and result.seed_similarity > 0.5


def assert_reason_explains(result: Relevance) -> None:
    """The reason names every matched term as written, the nearest seed with its cosine and the closeness
    (mean of the nearest seeds) that the score came from."""
    assert result.reason.startswith(f"terms: {', '.join(result.matched_terms)}; ")
    assert result.nearest_seed is not None
    assert f'nearest seed: "{result.nearest_seed[:40]}' in result.reason
    assert f"({result.seed_similarity:.2f}; mean of {SEED_TOP_K} nearest {result.closeness:.2f})" in result.reason
    assert 0.0 < result.closeness <= result.seed_similarity


def test_reference_article_reason_names_its_matched_terms(profile, embedder, shared_data) -> None:
    text = next((shared_data / "articles").glob("000_*.txt")).read_text(encoding="utf-8")
    result = score(profile, embedder, "", text, "en")
    assert_reason_explains(result)
    for term in result.matched_terms:
        assert term in text and term in result.reason


# Real headlines of the Reddit replay stream (shared/data/replay/reddit-news-headlines.json).
REDDIT_HEADLINES = [
    "Kaliningrad row: Lithuania accuses Russia of lying about rail 'blockade'",
    "Lithuania hit with 'intensive' cyber attacks amid Kaliningrad row",
    "Russia tells Lithuania: your citizens will feel the pain over Kaliningrad",
]


@pytest.fixture(scope="module")
def reddit_titles(shared_data: Path) -> set[str]:
    items = json.loads((shared_data / "replay" / "reddit-news-headlines.json").read_text(encoding="utf-8"))
    return {item["title"] for item in items}


@pytest.mark.parametrize("title", REDDIT_HEADLINES)
def test_reasons_on_real_headlines_name_matched_terms_and_nearest_seed(
    profile, embedder, reddit_titles, title: str
) -> None:
    assert title in reddit_titles
    result = score(profile, embedder, title, language="en")
    assert result.relevant
    assert {"Lithuania", "Kaliningrad"} <= set(result.matched_terms)
    assert_reason_explains(result)
    assert all(term in title for term in result.matched_terms)


def test_closeness_is_the_mean_of_the_nearest_seeds() -> None:
    sims = np.array([0.1, 0.5, 0.3, 0.45, 0.2])
    assert closeness(sims) == pytest.approx(np.mean(sorted(sims)[-SEED_TOP_K:]))
    assert closeness(np.array([0.2, 0.4])) == pytest.approx(0.3)  # fewer seeds than SEED_TOP_K: all of them
    assert closeness(np.array([])) == 0.0


def test_semantic_evidence_ranks_below_the_floor_without_deciding_relevance() -> None:
    assert semantic_evidence(SEED_ZERO - 0.05) == 0.0
    below = [semantic_evidence(x) for x in np.linspace(SEED_ZERO, SEED_FLOOR, 7)]
    assert below == sorted(below) and below[0] == 0.0 and below[-1] == pytest.approx(SEED_TAIL)
    above = [semantic_evidence(x) for x in np.linspace(SEED_FLOOR, SEED_FULL + 0.1, 9)]
    assert above == sorted(above) and above[-1] == 1.0
    # the most a text below the floor gets, with a place alone, stays under the default threshold
    assert 1.0 - (1.0 - PLACE_ONLY) * (1.0 - SEED_TAIL) < Settings().relevance_threshold
    assert semantic_evidence(SEED_FLOOR - 0.01, tail=0.0) == 0.0  # a narrow topic: nothing below the floor


def test_narrow_topic_gets_no_evidence_below_the_floor(profile) -> None:
    assert profile.tail == 0.0  # its seeds are close to each other (mean cosine 0.47)
    assert tail_share(None) == 0.0
    assert tail_share(np.eye(3, dtype=np.float32)) == pytest.approx(SEED_TAIL)  # seeds unrelated to each other
    same = np.ones((3, 4), dtype=np.float32) / 2.0
    assert tail_share(same) == 0.0 and tail_share(same[:1]) == 0.0


@pytest.mark.parametrize(
    ("title", "language"),
    [
        ("Germany's brigade in Lithuania reaches 4,800 troops", "en"),
        ("Bundeswehr-Brigade in Litauen: Erste Soldaten in Rūdninkai eingetroffen", "de"),
        ("Vokietijos brigada Lietuvoje: pirmieji kariai atvyko į Rūdninkus", "lt"),
        ("Литва закрыла транзит грузов в Калининград, Москва грозит ответом", "ru"),
        ("Russia demands Lithuania lift Kaliningrad transit ban immediately", "en"),
        ("NATO jets intercept Russian aircraft over Estonia", "en"),
    ],
)
def test_baltic_headlines_are_relevant(profile, embedder, title: str, language: str) -> None:
    result = score(profile, embedder, title, language=language)
    assert result.relevant, result
    assert result.matched_terms


@pytest.mark.parametrize(
    "title",
    [
        "Bayern Munich beat Dortmund 3-1 to go top of the Bundesliga",
        "Manchester United sign striker in record transfer deal",
        "Taylor Swift and Travis Kelce spotted at a New York restaurant",
        "Apple shares rise after record quarterly iPhone sales",
        "Senate Republicans block Democrats' voting rights bill",
        "Taiwan opens office in Lithuania, brushing aside China opposition",  # Lithuania, but not the topic
    ],
)
def test_unrelated_headlines_are_not_relevant(profile, embedder, title: str) -> None:
    result = score(profile, embedder, title, language="en")
    assert not result.relevant, result
    assert 0.0 <= result.score < profile.threshold


def test_language_is_detected_when_not_given(profile, embedder) -> None:
    result = score(profile, embedder, "Bundeswehr-Brigade in Litauen nimmt Dienst auf")
    assert result.relevant and "Litauen" in result.matched_terms and "Brigade" in result.matched_terms


def test_topic_threshold_overrides_the_default(embedder, tmp_path) -> None:
    strict = TopicConfig(name="strict", places=["Lithuania"], keywords=["troops"], threshold=0.99)
    loose = TopicConfig(name="loose", places=["Lithuania"], keywords=["troops"])
    settings = Settings(var_dir=tmp_path, topics=[strict, loose], relevance_threshold=0.6)
    profiles = {p.name: p for p in compile_topics(settings, embedder)}
    assert profiles["strict"].threshold == 0.99 and profiles["loose"].threshold == 0.6
    strict_result = score(profiles["strict"], embedder, "Troops arrive in Lithuania", language="de")
    loose_result = score(profiles["loose"], embedder, "Troops arrive in Lithuania", language="de")
    assert strict_result.matched_terms == ["Troops", "Lithuania"]
    assert strict_result.score == loose_result.score and 0.6 <= loose_result.score < 0.99
    assert loose_result.relevant and not strict_result.relevant
    assert strict_result.nearest_seed is None and "nearest seed" not in strict_result.reason  # no seeds


def test_best_relevance_prefers_relevant_then_score() -> None:
    low = Relevance("a", 0.9, False, "")
    high = Relevance("b", 0.6, True, "")
    assert best_relevance([low, high]) is high
    assert best_relevance([]) is None
