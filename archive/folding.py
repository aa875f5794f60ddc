"""Letter folding that the FTS5 tokenizer does not do, kept one code point for one code point.

`unicode61 remove_diacritics 2` folds case and the letters that decompose into a base letter and a mark
(`ū` -> `u`, `š` -> `s`, `ü` -> `u`), but not letters that are letters of their own in Unicode, such as a
letter with a stroke: on its own it would not let `Suwalki` find `Suwałki`. `fold` maps those to their base
letter before the text reaches the index and before a query is built, so both sides agree.

Folding is strictly one code point to one code point, so the folded text has the same length as the
original: markers that FTS5's `highlight()` puts into the folded text can be carried over onto the
original text (`restore`), and analysts see `Suwałki`, not `Suwalki`. The price is that one-to-many
foldings are left out: `ß` stays `ß`, so `strasse` does not find `Straße` (search `straße` or `stra*`).
"""

from __future__ import annotations

from archive.base import HL_END, HL_START

# Highlight markers and NUL never reach the index: a feed must not be able to forge a highlight.
_SANITIZE: dict[int, str] = {ord(HL_START): " ", ord(HL_END): " ", 0: " "}

_FOLD: dict[int, str] = {
    **_SANITIZE,
    **{ord(k): v for k, v in {
        "ł": "l", "Ł": "L",  # Polish: Suwałki, Łódź
        "đ": "d", "Đ": "D",  # Croatian, Serbian Latin, Vietnamese
        "ø": "o", "Ø": "O",  # Danish, Norwegian
        "ħ": "h", "Ħ": "H",  # Maltese
        "ı": "i",  # Turkish dotless i
        "ŧ": "t", "Ŧ": "T",  # Sami
        "ŀ": "l", "Ŀ": "L",  # Catalan
        "ё": "е", "Ё": "Е",  # Russian, Belarusian: ё is often written е
    }.items()},
}
_FOLD_TABLE = str.maketrans(_FOLD)
_SANITIZE_TABLE = str.maketrans(_SANITIZE)


def fold(text: str) -> str:
    """The text as the index holds it: same length, stroke letters and ё folded, markers and NUL blanked."""
    return text.translate(_FOLD_TABLE)


def sanitize(text: str) -> str:
    """The original text with highlight markers and NUL blanked (same length)."""
    return text.translate(_SANITIZE_TABLE)


def restore(highlighted: str, original: str) -> str:
    """Carry the markers of `highlighted` (= `fold(original)` plus markers) over onto `original`.

    Falls back to `highlighted` itself (folded, still marker-safe) if the two do not line up, which would
    mean the index holds another version of the text than the caller.
    """
    clean = sanitize(original)
    if len(highlighted) - highlighted.count(HL_START) - highlighted.count(HL_END) != len(clean):
        return highlighted
    out: list[str] = []
    position = 0
    for char in highlighted:
        if char == HL_START or char == HL_END:
            out.append(char)
        else:
            out.append(clean[position])
            position += 1
    return "".join(out)
