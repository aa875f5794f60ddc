"""Language detection on real headlines, and the fallback to the feed's declared language.

The texts are copied from ../shared/data (so that these tests do not depend on it): WSJ World News and The
Economist (replay/wsj-world-items.json, feeds/outlets/en/),
tagesschau, Deutschlandfunk and heise (feeds/outlets/de/, feeds/miniflux-testdata/parser/rdf_UTF8.xml), Radio
Svoboda, BBC Russian and the Russian-language independent media stream (feeds/outlets/ru/,
replay/ru-independent-media-items.json), Delfi.lt (replay/delfi-lt/), Le Cercle Psy and BBC Urdu
(feeds/miniflux-testdata/parser/).
"""

from __future__ import annotations

import pytest
from language_eval import SHORT_CHARS, Sample, scores, texts_of

from enrichment.language import (
    MIN_CONFIDENCE,
    MIN_GUESS,
    MIN_LETTERS,
    choose,
    detect_language,
    identify,
    letter_count,
    mostly_cyrillic,
)

HEADLINES = [
    ("en", "Australia to Boost Defense Spending Amid U.S.-China Tensions"),
    ("en", "The U.S. Reinforces Europe’s Northern Front, Fearing War With Russia"),
    ("de", "Syrische Übergangsregierung benennt Außenminister"),
    ("de", "OLED-TVs: Vorsichtsmaßnahmen gegen Einbrennen"),
    ("de", "Anschlag in Magdeburg - Mutmaßlicher Täter war den Behörden bekannt"),
    ("ru", "Кэш и трэш. Рекордные пожертвования фондам Медведева"),
    ("ru", "«Рабыни божьи». Как индийские девушки, став девадаси, попадают в ловушку сексуальной эксплуатации"),
    ("lt", "Nausėda perspėja dėl taikos derybų rizikos: Rusijai reikia tik vieno"),
    ("lt", "Erdoganas: Scholzas pakeitė požiūrį į Putiną"),
]

# py3langid over all its 97 languages gets these wrong (Nigerian Pidgin, Dutch, Bulgarian): restricted to the
# languages Flankwatch follows, it does not.
RESTRICTION_FIXES = [
    ("en", "Trump Says Greenland Is Vital for U.S. National Security"),  # alone: pcm 0.25
    ("en", "Wall Street is drooling over bank mergers"),  # alone: nl 0.64
    ("ru", "Поезд из Краматорска"),  # alone: bg 0.28
]


@pytest.mark.parametrize(("language", "headline"), HEADLINES + RESTRICTION_FIXES)
def test_real_headlines_are_detected_with_or_without_the_declaration(language: str, headline: str) -> None:
    detected, probability = identify(headline)
    assert detected == language and probability >= MIN_CONFIDENCE
    assert detect_language(headline) == language
    assert detect_language(headline, hint=language) == language


def test_headline_and_summary_of_a_german_feed() -> None:
    text = (
        "Sicherheitslage in Europa - Russland, die NATO und die Kriegsgefahr Seit Russlands Überfall auf die "
        "Ukraine wird über die Gefahr eines Dritten Weltkriegs debattiert. Das Putin-Regime stelle eine "
        "Bedrohung für die NATO dar, sagen Experten."
    )
    assert detect_language(text, hint="de-DE") == "de"
    assert detect_language(text, hint="en") == "de"  # a wrong declaration is corrected on a long text


def test_short_ambiguous_headlines_fall_back_to_the_declared_language() -> None:
    # Deutschlandfunk's sport podcast: not confidently German (English words), not confidently anything else
    podcast = "Podcast - Players – Der Sportpodcast"
    assert identify(podcast)[1] < MIN_GUESS
    assert detect_language(podcast, hint="de") == "de"
    assert detect_language(podcast) is None  # nothing declared: no guess
    # a Russian outlet's headline that reads as Ukrainian to the detector
    threat = "Чем грозит Max"
    assert identify(threat)[0] == "uk" and letter_count(threat) < MIN_LETTERS
    assert detect_language(threat, hint="ru") == "ru"


def test_too_few_letters_never_contradict_a_same_script_declaration() -> None:
    # an English title of a Russian-language outlet: confidently English, but 10 letters
    detected, probability = identify("Succession")
    assert detected == "en" and probability >= MIN_CONFIDENCE and letter_count("Succession") < MIN_LETTERS
    assert detect_language("Succession", hint="de") == "de"


def test_cyrillic_text_overrides_a_latin_script_declaration() -> None:
    assert detect_language("Кэш и трэш. Рекордные пожертвования фондам Медведева", hint="en") == "ru"
    assert detect_language("Поезд из Краматорска", hint="lt") == "ru"  # short, but the script decides
    assert mostly_cyrillic("Поезд из Краматорска") and not mostly_cyrillic("Succession")


def test_latin_text_overrides_a_cyrillic_declaration() -> None:
    # real items of the Russian-language independent media stream, in English
    assert detect_language("Succession", hint="ru") == "en"
    assert detect_language("“The Russian President is a war criminal”", hint="ru") == "en"


def test_a_language_flankwatch_does_not_follow_is_still_named() -> None:
    french = "Perturbateurs endocriniens : quels effets sur le cerveau ?"
    urdu = "امریکی عسکری امداد کی بندش کی وجوہات: انڈیا سے جنگ، جوہری پروگرام"
    assert detect_language(french) == "fr" and detect_language(french, hint="fr") == "fr"
    assert detect_language(urdu) == "ur" and detect_language(urdu, hint="ur") == "ur"


def test_declared_codes_are_normalised_and_empty_text_keeps_the_declaration() -> None:
    assert detect_language("", hint="DE") == "de"
    assert detect_language("2:1 (0:0)", hint="en-GB") == "en"
    assert detect_language("   ") is None
    assert identify("2025") == (None, 0.0)


def test_choose_policy_edges() -> None:
    # the declaration is used when the detection is unsure, the text short, or nothing was detected
    assert choose("en", 0.99, MIN_LETTERS, False, "de") == "en"
    assert choose("en", MIN_CONFIDENCE - 0.01, 100, False, "de") == "de"
    assert choose("en", 0.99, MIN_LETTERS - 1, False, "de") == "de"
    assert choose(None, 0.0, 100, False, "de") == "de"
    # nothing declared: a guess needs MIN_GUESS
    assert choose("lt", MIN_GUESS, 5, False, None) == "lt"
    assert choose("lt", MIN_GUESS - 0.01, 100, False, None) is None
    # a declaration of the other script yields to a guess of MIN_GUESS, at any length
    assert choose("ru", MIN_GUESS, 3, True, "en") == "ru"
    assert choose("ru", MIN_GUESS - 0.01, 100, True, "en") == "en"


# ---------------------------------------------------------------------------------- bench/language_eval.py


def test_bench_forms_of_an_item() -> None:
    assert texts_of("Headline", "") == {"headline": "Headline"}
    assert texts_of("Same", "Same") == {"headline": "Same"}
    forms = texts_of("Headline", "Summary " * 200)
    assert forms["headline"] == "Headline" and len(forms["headline+summary"]) == 600


def test_bench_scores_per_form_language_and_short_subset() -> None:
    long_en = "x" * SHORT_CHARS
    samples = [
        Sample("Kurz", "de", "a", "headline"),
        Sample(long_en, "en", "b", "headline"),
        Sample(long_en + " summary", "en", "b", "headline+summary"),
        Sample("Kurz und gut", "de", "a", "headline+summary"),
        Sample("Bonjour", "fr", "c", "control"),
    ]
    result = scores(samples, ["de", "nl", "en", "en", "fr"])
    headline = result["headline"]
    assert headline["n"] == 2 and headline["per_language"] == {"de": 1.0, "en": 0.0}
    assert headline["macro"] == 0.5 and headline["micro"] == 0.5
    assert result["short"]["n"] == 1 and result["short"]["per_language"] == {"de": 1.0}  # "Kurz" only
    assert result["headline+summary"]["per_language"] == {"de": 0.0, "en": 1.0}
    assert result["control"]["per_language"] == {"fr": 1.0}
    assert result["confusions"] == {"en->nl": 1, "de->en": 1}  # controls are not errors of our languages


def test_a_declaration_the_full_model_confirms_decides_as_the_restricted_pass_would(shared_data) -> None:
    """`detect_language` skips the restricted pass when the full model's answer is the declared language:
    the decision must be the one the two passes and `choose` give, on real headlines of every declared
    language (and on declarations the text contradicts)."""
    import random

    from language_eval import build_samples

    samples = random.Random(3).sample(build_samples(shared_data), 600)
    checked = 0
    for sample in samples:
        for hint in {sample.language, "en", "de", "ru"}:
            language, probability = identify(sample.text, hint)
            expected = choose(language, probability, letter_count(sample.text), mostly_cyrillic(sample.text), hint)
            assert detect_language(sample.text, hint) == expected, (sample.text, hint)
            checked += 1
    assert checked >= 1800
