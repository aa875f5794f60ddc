"""Language of an article (ISO 639-1) from its text, with the feed's declared language as a fallback."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# Below this many letters a headline says too little: the declared language is more reliable.
MIN_LETTERS = 25
# Probability (py3langid, calibrated across lengths) needed to contradict the declared language.
MIN_CONFIDENCE = 0.9
# ... and needed to state a language at all when nothing was declared.
MIN_GUESS = 0.5

_NON_LETTERS = re.compile(r"[\W\d_]+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
# Languages written in Cyrillic: a declared language outside this set cannot be right for a Cyrillic text
# (and vice versa), however short the text is.
CYRILLIC_LANGUAGES = frozenset({"ru", "uk", "be", "bg", "sr", "mk", "kk", "ky", "mn", "tg", "tt", "ba", "cv"})


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def normalise_code(code: str | None) -> str | None:
    """"en-US" -> "en", "DE" -> "de", "" -> None."""
    if not code:
        return None
    code = code.strip().lower().replace("_", "-").split("-", 1)[0]
    return code or None


def identify(text: str) -> tuple[str | None, float]:
    """py3langid's best language for `text` (ISO 639-1) and its probability; (None, 0.0) without letters."""
    if not _NON_LETTERS.sub("", text or ""):
        return None, 0.0
    language, probability = _identifier().classify(text)
    language = normalise_code(language)
    if language is None or len(language) != 2:
        return None, 0.0  # "zxx" (no language), or a language without an ISO 639-1 code ("ltg", "pcm")
    return language, float(probability)


def detect_language(text: str, hint: str | None = None) -> str | None:
    """The language of `text`. `hint` (the feed's declared language) wins when the text is short or
    the detection is not confident, so a three-word headline does not turn a German feed Dutch."""
    hint = normalise_code(hint)
    letters = len(_NON_LETTERS.sub("", text or ""))
    if letters == 0:
        return hint
    language, probability = identify(text)
    if hint is not None:
        cyrillic_text = len(_CYRILLIC.findall(text)) * 2 > letters
        if cyrillic_text != (hint in CYRILLIC_LANGUAGES):
            # the feed declares a language of the other script: a weaker detection is enough to override it
            return language if language and probability >= MIN_GUESS else hint
        if letters < MIN_LETTERS or probability < MIN_CONFIDENCE:
            return hint
        return language or hint
    return language if probability >= MIN_GUESS else None
