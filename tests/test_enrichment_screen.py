"""What the model reads of an article (enrichment.screen): title and lead for candidates, else the headline."""

from __future__ import annotations

from core.settings import Settings
from enrichment.relevance import Relevance, compile_topics
from enrichment.screen import PROMOTE_SHARE, embedded_text, promoted, wants_lead


def test_an_article_naming_a_topic_term_in_any_language_is_a_candidate(embedder) -> None:
    profiles = compile_topics(Settings(), embedder)
    assert wants_lead("Panzerbrigade 45 in Litauen", "", profiles)
    assert wants_lead("Российские дроны над Польшей", "", profiles)  # a place, in Cyrillic
    assert wants_lead("Weather", "Storm over the Baltic coast", profiles)  # in the summary
    assert not wants_lead("Champions League: late goal sends holders through", "A header decided it.", profiles)
    assert wants_lead("anything at all", "", [])  # no topics: nothing to screen by
    takes_all = [profiles[0]]
    takes_all[0].threshold = 0.0
    assert wants_lead("Champions League: late goal", "", takes_all)  # every article is relevant: read in full


def test_the_embedded_text_and_promotion() -> None:
    assert embedded_text("Title", "The lead.", lead=True) == "Title. The lead."
    assert embedded_text("Title", "The lead.", lead=False) == "Title"

    class Profile:
        threshold = 0.5

    def score(value: float) -> Relevance:
        return Relevance(topic="t", score=value, relevant=value >= 0.5, reason="")

    assert promoted([score(PROMOTE_SHARE * 0.5)], [Profile()])
    assert not promoted([score(PROMOTE_SHARE * 0.5 - 0.01)], [Profile()])
