"""Language of an article (ISO 639-1) from its text, with the feed's declared language as a fallback.

The detector is py3langid (offline: its model is inside the 4.6 MB package), restricted to the languages
Flankwatch follows. bench/language_eval.py compared it on real headlines with lingua-language-detector 2.1 (all
75 languages or ours, high or low accuracy), langdetect and pycld2. Restricted py3langid matches restricted
lingua in high-accuracy mode on headlines (99.6% vs 99.7% macro over en/de/ru/lt; under 40 characters 98.2% for
both, 95.3% vs 97.2% micro: short Russian headlines taken for Ukrainian or Belarusian, at low confidence, where
the declared language wins) at 1.5-1.7 times its speed (3,300-4,100 vs 1,900-2,700 texts/s of CPU time), with
95 MB of memory instead of 320, and a 4.6 MB package instead of 100. The others are less accurate (pycld2,
lingua in low-accuracy mode, py3langid over all its languages) or too slow (langdetect, lingua over all
languages: ~300 texts/s).
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

# Figures: bench/language_eval.py on 8,346 real en/de/ru/lt headlines and headline+summary texts of shared/data
# (labelled by the outlet's language; see its docstring), with the detection of `identify`.
#
# The languages Flankwatch follows (those config/feeds.yaml declares) and the region's other two. Detection is
# restricted to these (plus the declared language): py3langid's 97-language model otherwise files headlines
# under Nigerian Pidgin, Dutch, Bulgarian or Macedonian. Restricted, headline accuracy rises from 97.9% to 99.6%
# (macro over en/de/ru/lt), and under 40 characters from 91.7% to 98.2%.
FOLLOWED_LANGUAGES = frozenset({"en", "de", "ru", "lt", "lv", "et", "pl", "uk", "be"})
# ... unless the unrestricted model gives a language outside them this probability or more: the text is then in
# a language Flankwatch does not follow (a French or Urdu feed). No labelled text reaches 0.7 for an outside
# language (13 reach 0.5); 67 of the 70 French and Urdu control texts reach 0.8.
OUTSIDE_MIN_CONFIDENCE = 0.8
# A full-model answer among the candidates at this probability is kept without the restricted pass, which could
# only raise it, by less than 0.01: 53% of the texts need only the full pass. 3,300-4,100 texts/s of CPU time
# instead of ~2,600 with two passes on every text (py3langid alone: 4,500-5,000; sentence embedding: 150-300).
SURE = 0.99
# Below this many letters a headline says too little to contradict the declared language, however confident
# the detection: 12 of 85 such texts are misdetected (14%; 7 of 154 with 15-24 letters, 0.1% above), and
# lv/et/pl, which shared/data has no text in, are untested.
MIN_LETTERS = 15
# Probability (renormalised over the candidates) needed to contradict the declared language. The most
# confident misdetection is at 0.65; every text detected at 0.7 or more as another language than its outlet's
# is in that other language (5: English and Latvian titles in Russian-language outlets). With MIN_LETTERS,
# 0.8 corrects 96.7% of wrong same-script declarations (0.9: 94.5%) and keeps every correct one.
MIN_CONFIDENCE = 0.8
# ... and needed to state a language at all when nothing was declared (or against a declaration of the other
# script): below 0.5, 15 of 25 detections are right; from 0.5 to 0.7, 93 of 106.
MIN_GUESS = 0.5

_NON_LETTERS = re.compile(r"[\W\d_]+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
# Languages written in Cyrillic: a declared language outside this set cannot be right for a Cyrillic text
# (and vice versa), however short the text is.
CYRILLIC_LANGUAGES = frozenset({"ru", "uk", "be", "bg", "sr", "mk", "kk", "ky", "mn", "tg", "tt", "ba", "cv"})


@lru_cache(maxsize=1)
def _identifier() -> Any:
    """py3langid over all its languages (loaded once: ~1 s, ~95 MB)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@lru_cache(maxsize=16)
def _restricted(languages: frozenset[str]) -> Any:
    """py3langid restricted to `languages`: a copy of the full identifier sharing its model (set_languages
    replaces the copy's class columns, never the full model's)."""
    identifier = copy.copy(_identifier())
    identifier.set_languages(sorted(languages))
    return identifier


@lru_cache(maxsize=1)
def _known_languages() -> frozenset[str]:
    return frozenset(_identifier().nb_classes)


def normalise_code(code: str | None) -> str | None:
    """"en-US" -> "en", "DE" -> "de", "" -> None."""
    if not code:
        return None
    code = code.strip().lower().replace("_", "-").split("-", 1)[0]
    return code or None


def _iso_639_1(language: str | None, probability: float) -> tuple[str | None, float]:
    language = normalise_code(language)
    if language is None or len(language) != 2:
        return None, 0.0  # "zxx" (no language), or a language without an ISO 639-1 code ("ltg", "pcm")
    return language, float(probability)


def identify(text: str, hint: str | None = None) -> tuple[str | None, float]:
    """The best language for `text` (ISO 639-1) and its probability; (None, 0.0) without letters.

    Among FOLLOWED_LANGUAGES and `hint` (the declared language, when py3langid knows it), with the probability
    renormalised over them; a language outside them only when the full model is sure of it
    (OUTSIDE_MIN_CONFIDENCE). A second, restricted py3langid pass only where the full model's answer is not
    already a sure candidate (SURE)."""
    if not letter_count(text):
        return None, 0.0
    return _identify(text, normalise_code(hint), _identifier().classify(text))


def _identify(text: str, hint: str | None, full: tuple[str, float]) -> tuple[str | None, float]:
    """`identify`, given the full model's answer `full` for `text`."""
    language, probability = full
    candidates = FOLLOWED_LANGUAGES
    if hint and hint not in candidates and hint in _known_languages():
        candidates = candidates | {hint}
    if language in candidates and probability >= SURE:
        return _iso_639_1(language, probability)
    if language not in candidates and probability >= OUTSIDE_MIN_CONFIDENCE:
        return _iso_639_1(language, probability)
    return _iso_639_1(*_restricted(candidates).classify(text))


def letter_count(text: str) -> int:
    return len(_NON_LETTERS.sub("", text or ""))


def mostly_cyrillic(text: str) -> bool:
    """More than half of the letters of `text` are Cyrillic."""
    return len(_CYRILLIC.findall(text or "")) * 2 > letter_count(text)


def choose(
    detected: str | None,
    probability: float,
    letters: int,
    cyrillic_text: bool,
    hint: str | None,
    *,
    min_letters: int = MIN_LETTERS,
    min_confidence: float = MIN_CONFIDENCE,
    min_guess: float = MIN_GUESS,
) -> str | None:
    """The language to record, from a detection (`detected`, `probability`) of a text of `letters` letters and
    the feed's declaration `hint`. Apart from `detect_language` so that bench/language_eval.py can evaluate
    the constants on precomputed detections."""
    if letters == 0:
        return hint
    if hint is None:
        return detected if probability >= min_guess else None
    if cyrillic_text != (hint in CYRILLIC_LANGUAGES):
        # the feed declares a language of the other script: a weaker detection is enough to override it
        return detected if detected and probability >= min_guess else hint
    if letters < min_letters or probability < min_confidence:
        return hint
    return detected or hint


def detect_language(text: str, hint: str | None = None) -> str | None:
    """The language of `text`. `hint` (the feed's declared language) wins when the text is short or
    the detection is not confident, so a three-word headline does not turn a German feed Dutch."""
    hint = normalise_code(hint)
    letters = letter_count(text)
    if letters == 0:
        return hint
    full = _identifier().classify(text)
    if hint is not None and full[0] == hint:
        # The restricted pass ranks the candidates as the full model does (its probabilities are the full
        # model's, renormalised over them), so it would name the declared language too, and `choose` keeps a
        # declaration the detection agrees with whatever the probability: no second pass (most articles).
        return hint
    language, probability = _identify(text, hint, full)
    return choose(language, probability, letters, mostly_cyrillic(text), hint)
