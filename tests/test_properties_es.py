"""Properties of the Elasticsearch bodies built from user text (archive/es_requests.py; no server needed):
user text is only ever a `query` value of `multi_match` or a value of an exact `terms` filter, never a key,
never `query_string`/`simple_query_string` syntax."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from archive.base import SearchQuery  # noqa: E402
from archive.es_requests import search_body  # noqa: E402
from archive.folding import sanitize  # noqa: E402
from archive.query import parse_query  # noqa: E402

_SYNTAX = st.sampled_from(
    ['"', "*", "(", ")", ":", "^", "~", "-", "+", "\\", "/", "[", "]", "{", "}", "OR", "AND", "NOT", "title:",
     "_exists_:x", "query_string", "script", "\x00", "ß", "Suwałki", "x", "7", "&&", "||", "<", ">"]
)
USER_TEXT = st.lists(st.one_of(_SYNTAX, st.text(max_size=5)), max_size=12).map(" ".join) | st.text(max_size=30)
VALUES = st.lists(USER_TEXT, max_size=3)


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {key for value in node.values() for key in _keys(value)}
    if isinstance(node, list):
        return {key for value in node for key in _keys(value)}
    return set()


def _nodes(node: Any, name: str) -> list[Any]:
    if isinstance(node, dict):
        own = [node[name]] if name in node else []
        return own + [found for value in node.values() for found in _nodes(value, name)]
    if isinstance(node, list):
        return [found for value in node for found in _nodes(value, name)]
    return []


# Every key any body may hold: those of bodies built from benign text, all grammar features and filters.
_REFERENCE = [
    SearchQuery(text=text, sources=("a",), languages=("de",), topics=("t",), story_ids=("s",), sort=sort)
    for text in ("a", "a b", "a*", '"a b"*', "a OR b", '"a b" OR c*') for sort in ("relevance", "newest")
]
ALLOWED_KEYS = set().union(*(_keys(search_body(query)) for query in [*_REFERENCE, SearchQuery()]))


@given(USER_TEXT, VALUES, VALUES, st.sampled_from(["relevance", "newest"]))
def test_user_text_is_never_syntax_nor_a_key(text: str, sources: list[str], topics: list[str], sort: str) -> None:
    query = SearchQuery(text=text, sources=sources, topics=topics, sort=sort)
    body = search_body(query)
    keys = _keys(body)
    assert keys <= ALLOWED_KEYS, keys - ALLOWED_KEYS
    assert not keys & {"query_string", "simple_query_string", "script", "regexp", "wildcard"}
    # The text reaches ES only as analysed `query` strings of multi_match, term by term.
    expected = {sanitize(term.text) for clause in parse_query(text).clauses for term in clause}
    matches = [node["query"] for node in _nodes(body, "multi_match") if node.get("type") != "most_fields"]
    assert set(matches) == expected
    assert all(isinstance(value, str) and "\x00" not in value for value in matches)
    # Filters: exactly the values given, as exact terms.
    terms = {field: values for node in _nodes(body, "terms") if "field" not in node for field, values in node.items()}
    assert terms.get("source", []) == list(sources)
    assert terms.get("topics", []) == list(topics)
