"""Properties of user search text -> FTS5 MATCH (archive/query.py), run against a real FTS5 table with the
archive's tokenizer: never raises, and the expression is only quoted strings, prefixes, AND, OR and
parentheses (no column filter, NEAR, NOT or `^` from user text)."""

from __future__ import annotations

import re
import sqlite3

import pytest

pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from archive.query import parse_query, to_fts5  # noqa: E402

_SYNTAX = st.sampled_from(
    ['"', "*", "(", ")", ":", "^", "-", "+", "NEAR(", "NOT", "OR", "AND", "title:", "{title content}:", "}", "{",
     " ", "\x00", "\u0301", "ß", "Suwałki", "NATO-Truppen", "'", ";", "--", "ǅ", "İ", "\ufb01", "x", "7"]
)
USER_TEXT = st.lists(st.one_of(_SYNTAX, st.text(max_size=5)), max_size=14).map(" ".join) | st.text(max_size=30)
_STRING = r'"[^"]*"(?: \*)?'
_CLAUSE = rf"(?:{_STRING}|\((?:{_STRING})(?: OR {_STRING})+\))"
_GRAMMAR = re.compile(rf"(?:{_CLAUSE}(?: AND {_CLAUSE})*)?")


@pytest.fixture(scope="module")
def fts() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE VIRTUAL TABLE articles_fts USING fts5(title, summary, content, "
        "tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')"
    )
    db.executemany(
        "INSERT INTO articles_fts(title, summary, content) VALUES (?, ?, ?)",
        [("Panzerbrigade Litauen", "NATO Truppen", "Suwałki Lücke"), ("near title", "not or and", "x 7 ß")],
    )
    return db


@given(USER_TEXT)
def test_fts5_expression_is_only_quoted_terms(fts: sqlite3.Connection, text: str) -> None:
    match = to_fts5(parse_query(text))
    assert _GRAMMAR.fullmatch(match), match
    if match:
        fts.execute("SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?", (match,)).fetchall()
