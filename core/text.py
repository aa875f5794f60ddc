"""Text normalisation shared by the layers: one folded form for matching terms in any language."""

from __future__ import annotations

import unicodedata

# Latin letters that carry their mark in the letter itself, so NFKD does not split them.
_UNDECOMPOSED = str.maketrans(
    {
        "ł": "l",
        "ø": "o",
        "ß": "ss",
        "ẞ": "ss",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "æ": "ae",
        "œ": "oe",
        "ı": "i",
        "ħ": "h",
        "ŧ": "t",
        "ŀ": "l",
        "ŋ": "n",
        "ſ": "s",
        "ƀ": "b",
        "ɨ": "i",
    }
)

_BREVE = "\u0306"
_CYRILLIC_I = {"и", "И"}


def fold(text: str) -> str:
    """Lower-case `text` and strip its diacritics: "Suwałki" -> "suwalki", "Rūdninkai" -> "rudninkai".

    Cyrillic stays Cyrillic (no transliteration). "й" keeps its breve because it is a letter of its own,
    while "ё" becomes "е" as Russian writing does itself.
    """
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    out: list[str] = []
    for char in decomposed:
        if unicodedata.combining(char):
            if char == _BREVE and out and out[-1] in _CYRILLIC_I:
                out[-1] = "й"
            continue
        out.append(char)
    return "".join(out).translate(_UNDECOMPOSED)
