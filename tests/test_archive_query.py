"""The query builder, folding, fragments and highlight rendering (backend-independent units)."""

from __future__ import annotations

import html
import random
import sqlite3

import pytest

from archive.base import HL_END, HL_START, render_highlight, strip_highlight
from archive.folding import fold, restore
from archive.fragments import fragments
from archive.query import MAX_TERMS, ParsedQuery, Term, parse_query, to_fts5


def clauses(text: str) -> list[list[tuple[str, bool]]]:
    return [[(t.text, t.prefix) for t in clause] for clause in parse_query(text).clauses]


def test_words_are_anded() -> None:
    assert clauses("Panzerbrigade  Litauen") == [[("Panzerbrigade", False)], [("Litauen", False)]]
    assert to_fts5(parse_query("Panzerbrigade Litauen")) == '"Panzerbrigade" AND "Litauen"'


def test_phrases_prefixes_and_or() -> None:
    parsed = parse_query('"Panzerbrigade  45" Lietuv* Suwałki OR Suwalki')
    assert parsed.clauses == (
        (Term("Panzerbrigade 45", quoted=True),),
        (Term("Lietuv", prefix=True),),
        (Term("Suwałki"), Term("Suwalki")),
    )
    assert to_fts5(parsed) == '"Panzerbrigade 45" AND "Lietuv" * AND ("Suwalki" OR "Suwalki")'
    assert to_fts5(parse_query('"Panzerbrigade 4"*')) == '"Panzerbrigade 4" *'
    assert clauses("a AND b") == [[("a", False)], [("b", False)]]


def test_operators_not_between_terms_are_words() -> None:
    assert clauses("OR brigade") == [[("OR", False)], [("brigade", False)]]
    assert clauses("brigade AND") == [[("brigade", False)], [("AND", False)]]
    assert clauses("AND") == [[("AND", False)]]
    assert clauses("brigade or gap") == [[("brigade", False)], [("or", False)], [("gap", False)]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"unbalanced', '"unbalanced"'),
        ('a "b c" "d', '"a" AND "b c" AND "d"'),
        ("(Suwałki)", '"(Suwalki)"'),
        ("NEAR(a b)", '"NEAR(a" AND "b)"'),
        ("title:Suwalki", '"title:Suwalki"'),
        ("^x", '"^x"'),
        ("*", ""),
        ("( ) - + ;", ""),
        ("", ""),
        ("\x00 \ue000", ""),
        ('""', ""),
    ],
)
def test_anything_else_is_plain_text(text: str, expected: str) -> None:
    assert to_fts5(parse_query(text)) == expected


def test_term_count_is_capped() -> None:
    assert len(parse_query(" ".join(f"w{i}" for i in range(500))).clauses) == MAX_TERMS
    assert parse_query(None).empty and ParsedQuery().empty  # type: ignore[arg-type]


def test_rendered_queries_are_valid_fts5() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(a, b, tokenize='unicode61 remove_diacritics 2')")
    db.execute("INSERT INTO t VALUES ('Suwałki gap', 'NEAR title')")
    alphabet = list('"()*:^-+{}[],.;\'\\/ \x00\ue000') + ["NEAR", "OR", "AND", "NOT", "a", "b", "ł", "Ё"]
    rng = random.Random(11)
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 16)))
        match = to_fts5(parse_query(text))
        if match:
            db.execute("SELECT count(*) FROM t WHERE t MATCH ?", (match,)).fetchone()


def test_fold_keeps_length_and_folds_what_unicode61_does_not() -> None:
    text = "Suwałki, Łódź, Đakovo, Tromsø, Ħamrun, Ёлка, ещё, Straße, \ue000x\ue001"
    folded = fold(text)
    assert len(folded) == len(text)
    assert folded == "Suwalki, Lódź, Dakovo, Tromso, Hamrun, Елка, еще, Straße,  x "


def test_restore_carries_markers_onto_the_original() -> None:
    original = "Suwałki i Łódź \ue000forged\ue001"
    highlighted = f"{HL_START}Suwalki{HL_END} i {HL_START}Lódź{HL_END}  forged "
    assert restore(highlighted, original) == f"{HL_START}Suwałki{HL_END} i {HL_START}Łódź{HL_END}  forged "
    assert restore(highlighted, "other text") == highlighted  # does not line up: the safe folded text


def test_fragments() -> None:
    short = f"a {HL_START}b{HL_END} c"
    assert fragments(short) == [short]
    assert fragments("no marks") == []
    words = [f"w{i}" for i in range(200)]
    words[20] = f"{HL_START}hit{HL_END}"
    words[22] = f"{HL_START}hot{HL_END}"
    words[150] = f"{HL_START}end{HL_END}"
    text = " ".join(words)
    parts = fragments(text, size=60, limit=3)
    assert len(parts) == 2  # hit and hot share a fragment
    assert "hit" in parts[0] and "hot" in parts[0] and "end" in parts[1]
    for part in parts:
        assert part.count(HL_START) == part.count(HL_END)
        assert part in text and not part.startswith(" ")
        assert len(part) <= 70
    assert len(fragments(text, size=60, limit=1)) == 1


def test_fragment_never_cuts_a_span() -> None:
    text = "x" * 50 + f" {HL_START}{'long match ' * 10}{HL_END} " + "y" * 50
    (part,) = fragments(text, size=30)
    assert part.count(HL_START) == part.count(HL_END) == 1


def test_render_highlight_escapes_first() -> None:
    fragment = f"<script>alert(1)</script> {HL_START}Suwałki & co{HL_END} <b>"
    assert render_highlight(fragment, "<mark>", "</mark>") == (
        "&lt;script&gt;alert(1)&lt;/script&gt; <mark>Suwałki &amp; co</mark> &lt;b&gt;"
    )
    slack = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
    escape = lambda s: "".join(slack.get(c, c) for c in s)  # noqa: E731
    assert render_highlight(fragment, "*", "*", escape=escape) == (
        "&lt;script&gt;alert(1)&lt;/script&gt; *Suwałki &amp; co* &lt;b&gt;"
    )
    assert render_highlight(fragment, "[", "]", escape=html.escape).count("[") == 1
    assert strip_highlight(fragment) == "<script>alert(1)</script> Suwałki & co <b>"
