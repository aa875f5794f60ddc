"""Topic relevance with the configured "baltic-deployments" profile and the real model."""

from __future__ import annotations

import pytest

from core.settings import Settings, TopicConfig
from enrichment.embeddings import article_text
from enrichment.relevance import Relevance, TopicProfile, best_relevance, compile_topics

TOPIC = "baltic-deployments"


@pytest.fixture(scope="module")
def profile(embedder) -> TopicProfile:
    profiles = {p.name: p for p in compile_topics(Settings(), embedder)}
    return profiles[TOPIC]


def score(profile: TopicProfile, embedder, title: str, summary: str = "", language: str | None = None) -> Relevance:
    vector = embedder.encode([article_text(title, summary)])[0]
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
