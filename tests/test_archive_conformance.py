"""The archive contract (`archive.base.ArchiveBackend`): ONE suite that every backend must pass.

Every test runs once per backend: "sqlite" always, "elasticsearch" when `ELASTICSEARCH_URL` names a live
cluster (each test then gets indices of its own, under a random prefix, dropped afterwards). Tests talk to
`ArchiveBackend` only, never to a backend's internals, and call `refresh()` after writing, as ES needs.
What only one backend does (SQLite's schema upgrade, fragment sizes, ...) is tested in that backend's file
(`tests/test_archive_search.py` for SQLite).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest

from archive.base import (
    HL_END,
    HL_START,
    RRF_RANK_CONSTANT,
    ArchiveBackend,
    ArticleDoc,
    SavedSearch,
    SearchQuery,
    StoryDoc,
    render_highlight,
    strip_highlight,
)

DIM = 384  # the embedding model's dimension: the ES mapping is made for it
BRIGADE, SUWALKI = "bundeswehr-lithuania", "suwalki-gap"
ES_SKIP = (
    "ELASTICSEARCH_URL is not set: the Elasticsearch half of the conformance suite needs a live cluster "
    "(see docs/ELASTICSEARCH.md)"
)
BACKENDS = [
    "sqlite",
    pytest.param(
        "elasticsearch", marks=pytest.mark.skipif(not os.environ.get("ELASTICSEARCH_URL"), reason=ES_SKIP)
    ),
]


MODEL = "model-a"  # the corpus's vectors: `test_vectors_of_two_models_are_never_compared` adds another's


def vector(seed: int) -> np.ndarray:
    """A deterministic float32 unit vector: article `aNN` is indexed with `vector(NN)`."""
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def at(when: str) -> datetime:
    """"2024-05-02 07:00" as a UTC datetime."""
    return datetime.fromisoformat(when).replace(tzinfo=timezone.utc)


def article(n: int, when: str, title: str, summary: str, content: str = "", *, source: str, language: str,
            topics: Sequence[str] = (), story: str | None = None, prefix: str = "a") -> ArticleDoc:
    return ArticleDoc(
        id=f"{prefix}{n:02d}", url=f"https://example.org/{prefix}/{n}", title=title, summary=summary,
        content=content, source=source, language=language, published_at=at(when), topics=list(topics),
        relevance=0.9 if topics else 0.1, story_id=story, embedding=vector(n), embedding_model=MODEL,
    )


# Days (UTC): 05-02: a01 a02 a03 | 05-03: a04 | 05-04: a05 a06 | 05-05: a07 | 05-06: a08 a09 (a09 at 23:30 UTC,
# already 05-07 in Vilnius: the day facet counts UTC days).
CORPUS = [
    article(1, "2024-05-02 07:00", "German brigade begins deployment to Lithuania",
            "The Panzerbrigade 45 will be stationed near Vilnius and Rūdninkai.",
            "Berlin confirmed on Monday that the first soldiers of the brigade have arrived. " * 3,
            source="Reuters", language="en", topics=(BRIGADE,), story="s-brigade"),
    article(2, "2024-05-02 09:30", "Panzerbrigade 45: Erste Soldaten in Litauen eingetroffen",
            "Die Bundeswehr verlegt Truppen nach Rūdninkai. Das Vorkommando ist in Vilnius gelandet.",
            source="Tagesschau", language="de", topics=(BRIGADE,), story="s-brigade"),
    article(3, "2024-05-02 16:45", "Rūdninkai: pradėta statyti Vokietijos brigados bazė",
            "Krašto apsaugos ministerija pranešė, kad Lietuvos ir Vokietijos kariai dirbs kartu.",
            source="LRT", language="lt", topics=(BRIGADE,), story="s-brigade"),
    article(4, "2024-05-03 12:00", "Германия разместит танковую бригаду в Литве",
            "Бундесвер направит около 4800 военных. Ещё одна часть прибудет в следующем году.",
            source="RIA", language="ru", topics=(BRIGADE,)),
    article(5, "2024-05-04 10:00", "Poland reinforces the Suwałki Gap",
            "Polish and Lithuanian troops exercise near Suwałki, the corridor between Belarus and Kaliningrad.",
            source="Notes from Poland", language="en", topics=(SUWALKI, BRIGADE), story="s-suwalki"),
    article(6, "2024-05-04 18:00", "Baltic defence spending rises again",
            "Estonia, Latvia and Lithuania increase their budgets.",
            "Analysts note that the German brigade is only one part of a larger picture. "
            + "Budgets grow. " * 20,
            source="BBC", language="en"),
    article(7, "2024-05-05 08:00", "Exercise <script>alert('x')</script> Iron Wolf & friends",
            "Soldiers <b>trained</b> near the border; \ue000fake\ue001 markers in a feed mean nothing.",
            source="Hostile Feed", language="en", topics=(SUWALKI,), story="s-suwalki"),
    article(8, "2024-05-06 05:00", "Football: Lithuania beats Latvia 2-1",
            "A late goal decided the Baltic derby.",
            source="BBC", language="en"),
    article(9, "2024-05-06 23:30", "Bundeswehr übt mit litauischen Streitkräften",
            "Die Übung fand in der Nähe von Pabradė statt; die Panzergrenadiere blieben zwei Wochen.",
            source="Spiegel", language="de", topics=(BRIGADE,)),
]
IDS = {doc.id for doc in CORPUS}
BY_ID = {doc.id: doc for doc in CORPUS}


def open_backend(name: str, tmp_path: Path) -> ArchiveBackend:
    if name == "sqlite":
        from archive.sqlite import SQLiteArchive

        archive: ArchiveBackend = SQLiteArchive(tmp_path / "archive.db")
    else:
        from archive.elastic import ElasticsearchArchive

        archive = ElasticsearchArchive(os.environ["ELASTICSEARCH_URL"], prefix=f"fwtest-{uuid4().hex[:8]}")
    archive.ensure_ready()
    return archive


@pytest.fixture(params=BACKENDS)
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveBackend]:
    """A fresh, empty archive of each backend."""
    archive = open_backend(request.param, tmp_path)
    try:
        yield archive
    finally:
        try:
            if request.param == "elasticsearch":
                archive.drop_all()  # type: ignore[attr-defined]  # this test's indices
        finally:
            archive.close()


@pytest.fixture
def backend(empty: ArchiveBackend) -> ArchiveBackend:
    """An archive holding CORPUS."""
    report = put(empty, CORPUS)
    assert sorted(report.indexed) == sorted(IDS)
    return empty


def put(archive: ArchiveBackend, docs: Sequence[ArticleDoc]):  # type: ignore[no-untyped-def]
    report = archive.index_articles(docs)
    assert report.failed == {}
    archive.refresh()
    return report


def ids(archive: ArchiveBackend, text: str = "", **filters: object) -> list[str]:
    result = archive.search(SearchQuery(text=text, per_page=100, **filters))  # type: ignore[arg-type]
    assert result.total == len(result.hits)
    return [hit.id for hit in result.hits]


# --- text ------------------------------------------------------------------------------------------


def test_words_are_anded_and_case_insensitive(backend: ArchiveBackend) -> None:
    assert set(ids(backend, "Panzerbrigade")) == {"a01", "a02"}
    assert set(ids(backend, "panzerbrigade 45")) == {"a01", "a02"}
    assert ids(backend, "Panzerbrigade Kaliningrad") == []


def test_title_match_ranks_above_body_only_match(backend: ArchiveBackend) -> None:
    found = ids(backend, "German brigade")
    assert found[0] == "a01"  # in the title
    assert found.index("a01") < found.index("a06")  # a06 mentions it in its content only
    scores = [hit.score for hit in backend.search(SearchQuery(text="German brigade")).hits]
    assert scores == sorted(scores, reverse=True)


def test_diacritics_and_stroke_letters_fold(backend: ArchiveBackend) -> None:
    expected = {"a01", "a02", "a03"}
    for text in ("rudninkai", "Rūdninkai", "RUDNINKAI", "RŪDNINKAI"):
        assert set(ids(backend, text)) == expected, text
    assert ids(backend, "Pabrade") == ["a09"]
    assert ids(backend, "ubung") == ["a09"]  # Übung
    assert ids(backend, "Suwalki") == ids(backend, "Suwałki") == ["a05"]  # ł is no decomposable letter
    hit = backend.search(SearchQuery(text="suwalki")).hits[0]
    assert f"{HL_START}Suwałki{HL_END}" in hit.highlights["title"][0]  # the original text, not the folded


def test_cyrillic(backend: ArchiveBackend) -> None:
    assert ids(backend, "бригаду") == ["a04"]
    assert ids(backend, "БРИГАДУ") == ["a04"]
    assert ids(backend, "Литве") == ["a04"]
    assert ids(backend, "еще") == ["a04"]  # Ещё: ё is folded to е
    assert ids(backend, "бригад*") == ["a04"]


def test_phrase_prefix_and_or(backend: ArchiveBackend) -> None:
    assert set(ids(backend, '"Panzerbrigade 45"')) == {"a01", "a02"}
    assert ids(backend, '"45 Panzerbrigade"') == []
    assert set(ids(backend, "Litau*")) == {"a02", "a09"}  # Litauen, litauischen
    assert ids(backend, "Lietuv*") == ["a03"]
    assert set(ids(backend, "Litauen OR Литве")) == {"a02", "a04"}
    assert set(ids(backend, "Vilnius Litauen OR Lithuania")) == {"a01", "a02"}
    assert ids(backend, "Vilnius AND Litauen") == ["a02"]


def test_hyphenated_word_is_a_phrase(backend: ArchiveBackend) -> None:
    assert ids(backend, "2-1") == ["a08"]
    assert ids(backend, "Iron-Wolf") == ["a07"]


HOSTILE = ['"', '""', '"unbalanced', "(", ")", "(Suwałki", "AND", "OR", "NOT", "AND OR", "NEAR(", "NEAR(a b)",
           "title:", "title:Suwalki", "content:", "*", "**", "-", "+", "^", "^Suwalki", "{title summary}:x",
           "a:b:c", "'", "\\", ";", "--", "%", "_", "\x00", HL_START, "<script>", "' OR 1=1 --", "/", "~1",
           "Suwalki)", "brigade AND", "OR brigade", "brigade OR OR gap", '"brigade"*', "NEAR/2", "🫨", " ", "",
           "a" * 5000, "brigade " * 200, "[", "]", "{", "}", "?", "!", "&&", "||", "\\\\", "field:[* TO *]"]


def test_hostile_query_text_never_raises(backend: ArchiveBackend) -> None:
    for text in HOSTILE:
        query = SearchQuery(text=text)
        assert backend.search(query).total >= 0, text
        assert backend.nearest(vector(1), k=2, query=query) is not None, text
        assert backend.hybrid(query, vector(1), k=2) is not None, text
    # punctuation is a separator, never syntax: "(Suwałki" is the word, "title:Suwalki" the phrase "title suwalki"
    assert ids(backend, "(Suwałki") == ids(backend, "Suwalki)") == ["a05"]
    assert ids(backend, "title:Suwalki") == []


def test_random_query_text_never_raises(backend: ArchiveBackend) -> None:
    alphabet = list('"()*:^-+{}[],.;\'\\/~?! NEARORANDNOT') + ["Suwałki", "brigade", "Литве", " OR ", " AND "]
    rng = random.Random(7)
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        backend.search(SearchQuery(text=text, per_page=5))


def test_punctuation_only_text_browses(backend: ArchiveBackend) -> None:
    assert backend.search(SearchQuery(text="( * )")).total == len(CORPUS)


# --- browse, filters, sort, paging -----------------------------------------------------------------


def test_empty_text_browses_newest_first(backend: ArchiveBackend) -> None:
    result = backend.search(SearchQuery(per_page=100))
    assert result.total == len(CORPUS)
    assert [hit.id for hit in result.hits] == sorted(IDS, reverse=True)  # ids follow publication order
    assert all(hit.highlights == {} for hit in result.hits)


def test_filters(backend: ArchiveBackend) -> None:
    assert set(ids(backend, sources=["BBC"])) == {"a06", "a08"}
    assert set(ids(backend, sources=["BBC", "LRT"])) == {"a03", "a06", "a08"}
    assert set(ids(backend, languages=["de"])) == {"a02", "a09"}
    assert set(ids(backend, languages=["de", "ru"])) == {"a02", "a04", "a09"}
    assert set(ids(backend, topics=[SUWALKI])) == {"a05", "a07"}
    assert set(ids(backend, topics=[BRIGADE])) == {"a01", "a02", "a03", "a04", "a05", "a09"}  # a05 has both
    assert set(ids(backend, story_ids=["s-brigade"])) == {"a01", "a02", "a03"}
    assert set(ids(backend, story_ids=["s-brigade", "s-suwalki"])) == {"a01", "a02", "a03", "a05", "a07"}
    assert set(ids(backend, "Lithuania*", languages=["en"], topics=[BRIGADE])) == {"a01", "a05"}
    assert ids(backend, "Rūdninkai", sources=["LRT"], story_ids=["s-brigade"]) == ["a03"]
    assert ids(backend, sources=["nobody"]) == []
    assert ids(backend, sources=["bbc"]) == []  # exact values: no case folding in filters


def test_date_range_is_inclusive_at_both_ends(backend: ArchiveBackend) -> None:
    a02, a04 = BY_ID["a02"].published_at, BY_ID["a04"].published_at
    assert set(ids(backend, date_from=a02, date_to=a04)) == {"a02", "a03", "a04"}
    assert set(ids(backend, date_from=BY_ID["a08"].published_at)) == {"a08", "a09"}
    assert ids(backend, date_to=a02 - timedelta(seconds=1)) == ["a01"]
    assert ids(backend, date_from=a04 + timedelta(seconds=1), date_to=BY_ID["a05"].published_at) == ["a05"]
    cet = timezone(timedelta(hours=2))  # another time zone, same instant
    assert ids(backend, date_from=a04.astimezone(cet), date_to=a04.astimezone(cet)) == ["a04"]
    assert set(ids(backend, "Rūdninkai", date_from=a02)) == {"a02", "a03"}


def test_sort_orders(backend: ArchiveBackend) -> None:
    text = "Lithuania OR Litauen OR brigade"
    newest = ids(backend, text, sort="newest")
    assert len(newest) >= 4
    assert newest == sorted(newest, reverse=True)  # ids follow publication order
    assert ids(backend, text, sort="oldest") == newest[::-1]
    relevance = backend.search(SearchQuery(text=text, per_page=100)).hits
    assert {hit.id for hit in relevance} == set(newest)
    scores = [hit.score for hit in relevance]
    assert scores == sorted(scores, reverse=True)


def test_paging_is_disjoint_and_total_stable(backend: ArchiveBackend) -> None:
    for text, sort in (("", "newest"), ("", "oldest"), ("brigade OR Lithuania OR Litauen OR Rūdninkai", "relevance")):
        first = backend.search(SearchQuery(text=text, sort=sort, page=1, per_page=3))  # type: ignore[arg-type]
        second = backend.search(SearchQuery(text=text, sort=sort, page=2, per_page=3))  # type: ignore[arg-type]
        assert first.total == second.total >= 5
        assert first.pages == second.pages == (first.total + 2) // 3
        assert (second.page, second.per_page) == (2, 3)
        assert len(first.hits) == 3 and len(second.hits) == min(3, first.total - 3)
        assert not {h.id for h in first.hits} & {h.id for h in second.hits}
        seen = [hit.id for page in range(1, first.pages + 1)
                for hit in backend.search(SearchQuery(text=text, sort=sort, page=page, per_page=3)).hits]  # type: ignore[arg-type]
        assert len(seen) == len(set(seen)) == first.total
        assert backend.search(SearchQuery(text=text, page=99, per_page=3)).hits == []


# --- facets ----------------------------------------------------------------------------------------


def test_facets_count_the_whole_match_set(backend: ArchiveBackend) -> None:
    result = backend.search(SearchQuery(per_page=1))
    assert len(result.hits) == 1
    assert result.facets["source"] == {
        "BBC": 2, "Reuters": 1, "Tagesschau": 1, "LRT": 1, "RIA": 1, "Notes from Poland": 1,
        "Hostile Feed": 1, "Spiegel": 1,
    }
    assert next(iter(result.facets["source"])) == "BBC"  # most frequent first
    assert result.facets["language"] == {"en": 5, "de": 2, "lt": 1, "ru": 1}
    assert list(result.facets["language"])[:2] == ["en", "de"]
    assert result.facets["topic"] == {BRIGADE: 6, SUWALKI: 2}
    assert result.facets["story_id"] == {"s-brigade": 3, "s-suwalki": 2}
    assert result.facets["day"] == {
        "2024-05-02": 3, "2024-05-03": 1, "2024-05-04": 2, "2024-05-05": 1, "2024-05-06": 2,
    }
    assert list(result.facets["day"]) == sorted(result.facets["day"])  # date order, not count order

    filtered = backend.search(SearchQuery(text="Rūdninkai", languages=["de", "lt"], per_page=1))
    assert filtered.total == 2
    assert filtered.facets["language"] == {"de": 1, "lt": 1}
    assert filtered.facets["story_id"] == {"s-brigade": 2}
    assert filtered.facets["day"] == {"2024-05-02": 2}


def test_facet_size_and_choice(backend: ArchiveBackend) -> None:
    only = backend.search(SearchQuery(facets=("source",), facet_size=1))
    assert only.facets == {"source": {"BBC": 2}}
    # the most recent days that have articles (not the busiest: 05-02 has 3), still in date order
    days = backend.search(SearchQuery(facets=("day",), facet_size=2))
    assert days.facets == {"day": {"2024-05-05": 1, "2024-05-06": 2}}
    assert list(days.facets["day"]) == ["2024-05-05", "2024-05-06"]
    dated = backend.search(SearchQuery(facets=("day",), date_to=BY_ID["a05"].published_at, facet_size=2))
    assert dated.facets == {"day": {"2024-05-03": 1, "2024-05-04": 1}}
    assert backend.search(SearchQuery(facets=())).facets == {}
    none = backend.search(SearchQuery(text="Kaliningrad Panzerbrigade"))
    assert none.total == 0 and all(counts == {} for counts in none.facets.values())


# --- highlights ------------------------------------------------------------------------------------


def test_highlights_mark_the_matched_words(backend: ArchiveBackend) -> None:
    hit = next(h for h in backend.search(SearchQuery(text="rudninkai")).hits if h.id == "a03")
    assert hit.highlights["title"] == [f"{HL_START}Rūdninkai{HL_END}: pradėta statyti Vokietijos brigados bazė"]
    prefix = next(h for h in backend.search(SearchQuery(text="Litau*")).hits if h.id == "a02")
    assert f"{HL_START}Litauen{HL_END}" in prefix.highlights["title"][0]
    summary = next(h for h in backend.search(SearchQuery(text="Vorkommando")).hits if h.id == "a02")
    assert "title" not in summary.highlights  # a field without a match has no fragments
    assert f"{HL_START}Vorkommando{HL_END}" in summary.highlights["summary"][0]
    assert all(hit.highlights == {} for hit in backend.search(SearchQuery(text="rudninkai", highlight=False)).hits)


def test_highlights_are_plain_text_and_a_feed_cannot_forge_them(backend: ArchiveBackend) -> None:
    hit = backend.search(SearchQuery(text="Iron Wolf trained")).hits[0]
    assert hit.id == "a07"
    title = render_highlight(hit.highlights["title"][0], "<mark>", "</mark>")
    assert title == ("Exercise &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; "
                     "<mark>Iron</mark> <mark>Wolf</mark> &amp; friends")
    summary = hit.highlights["summary"][0]
    # only "trained" is marked: the feed's own marker characters around "fake" are not markers any more
    assert summary.count(HL_START) == summary.count(HL_END) == 1
    assert f"{HL_START}trained{HL_END}" in summary
    assert "fake" in strip_highlight(summary)
    html = render_highlight(summary, "<mark>", "</mark>")
    assert "<b>" not in html and "&lt;b&gt;<mark>trained</mark>&lt;/b&gt;" in html
    # searching the marker characters finds nothing special and marks nothing
    for text in (HL_START, f"{HL_START}fake{HL_END}"):
        for found in backend.search(SearchQuery(text=text)).hits:
            assert all(f.count(HL_START) == f.count(HL_END) for fs in found.highlights.values() for f in fs)


# --- documents -------------------------------------------------------------------------------------


def test_upsert_by_id_overwrites_and_never_duplicates(backend: ArchiveBackend) -> None:
    before = backend.count()
    changed = article(8, "2024-05-06 05:00", "Basketball: Lithuania wins in Kaunas", "Zalgiris celebrates.",
                      source="BBC", language="en", topics=(SUWALKI,))
    report = put(backend, [changed, changed])
    assert set(report.indexed) == {"a08"}
    put(backend, [changed])
    assert backend.count() == before
    assert ids(backend, "Kaunas") == ["a08"]
    assert ids(backend, "Football") == ids(backend, "derby") == []
    assert "a08" in ids(backend, topics=[SUWALKI])
    assert backend.search(SearchQuery(facets=("topic",))).facets["topic"] == {BRIGADE: 6, SUWALKI: 3}
    doc = backend.get_article("a08")
    assert doc is not None and doc.title == changed.title


def test_get_article_round_trips_with_its_embedding(backend: ArchiveBackend) -> None:
    doc = backend.get_article("a05")
    assert doc is not None
    original = BY_ID["a05"]
    assert (doc.id, doc.url, doc.title, doc.summary, doc.source, doc.language, doc.story_id) == (
        original.id, original.url, original.title, original.summary, original.source, original.language,
        original.story_id)
    assert doc.published_at == original.published_at and doc.published_at.tzinfo is not None
    assert sorted(doc.topics) == sorted(original.topics)
    assert doc.relevance == pytest.approx(original.relevance)
    assert doc.embedding is not None and doc.embedding.shape == (DIM,)
    assert np.allclose(doc.embedding, original.embedding, atol=1e-6)
    assert backend.get_article("nope") is None


def test_count(empty: ArchiveBackend) -> None:
    assert empty.count() == {"articles": 0, "stories": 0}
    put(empty, CORPUS[:4])
    assert empty.count() == {"articles": 4, "stories": 0}


def story(n: int, topic: str, size: int, days: int) -> StoryDoc:
    first = at("2024-05-01 08:00")
    return StoryDoc(
        id=f"s{n}", topic=topic, headline=f"Story {n}: Rūdninkai", first_seen=first,
        last_seen=first + timedelta(days=days), article_count=size, source_count=min(size, 3),
        sources={"LRT": size}, languages={"lt": size},
        top_links=[{"title": "Rūdninkai <b>base</b>", "url": "https://lrt.lt/1", "source": "LRT"}],
    )


STORIES = [story(1, BRIGADE, 10, 1), story(2, BRIGADE, 3, 5), story(3, SUWALKI, 7, 3)]


def put_stories(archive: ArchiveBackend, stories: Sequence[StoryDoc]) -> None:
    report = archive.index_stories(stories)
    assert report.failed == {} and sorted(report.indexed) == sorted(s.id for s in stories)
    archive.refresh()


def test_list_stories_sorts_and_get_story_round_trips(backend: ArchiveBackend) -> None:
    put_stories(backend, STORIES)
    assert [s.id for s in backend.list_stories()] == ["s2", "s3", "s1"]
    assert [s.id for s in backend.list_stories(sort="size")] == ["s1", "s3", "s2"]
    assert [s.id for s in backend.list_stories(topic=BRIGADE)] == ["s2", "s1"]
    assert [s.id for s in backend.list_stories(limit=1)] == ["s2"]
    assert backend.list_stories(topic="none") == []
    assert backend.get_story("s3") == STORIES[2]
    assert backend.get_story("nope") is None
    put_stories(backend, [story(3, SUWALKI, 12, 9)])  # upsert
    assert backend.count() == {"articles": len(CORPUS), "stories": 3}
    assert backend.list_stories()[0].id == "s3" and backend.list_stories()[0].article_count == 12
    assert [s.id for s in backend.list_stories(sort="size")] == ["s3", "s1", "s2"]


def test_delete_stories_is_idempotent(backend: ArchiveBackend) -> None:
    put_stories(backend, STORIES)
    assert backend.delete_stories(["s1", "missing"]) == 1
    backend.refresh()
    assert backend.delete_stories(["s1"]) == 0
    assert backend.delete_stories([]) == 0
    backend.refresh()
    assert backend.get_story("s1") is None
    assert [s.id for s in backend.list_stories()] == ["s2", "s3"]
    assert backend.count() == {"articles": len(CORPUS), "stories": 2}


# --- kNN and hybrid --------------------------------------------------------------------------------


def test_nearest_returns_cosine_scores_closest_first(backend: ArchiveBackend) -> None:
    target = vector(3) + 0.05 * vector(99)
    hits = backend.nearest(target, k=4)
    assert hits[0].id == "a03"
    assert len(hits) == 4
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0.95
    assert all(-0.5 < s < 0.5 for s in scores[1:])  # random 384-d vectors are near-orthogonal: cosine, not (1+cos)/2
    assert hits[0].doc.title.startswith("Rūdninkai")
    exact = backend.nearest(vector(5), k=1)[0]
    assert exact.id == "a05" and exact.score == pytest.approx(1.0, abs=1e-4)
    assert backend.nearest(-vector(5), k=len(CORPUS))[-1].score == pytest.approx(-1.0, abs=1e-4)
    assert len(backend.nearest(target, k=100)) == len(CORPUS)
    assert backend.nearest(target, k=0) == []


def test_nearest_honours_filters_and_text(backend: ArchiveBackend) -> None:
    hits = backend.nearest(vector(3), k=10, query=SearchQuery(languages=["de"]))
    assert {h.id for h in hits} == {"a02", "a09"}
    hits = backend.nearest(vector(1), k=10, query=SearchQuery(topics=[SUWALKI]))
    assert {h.id for h in hits} == {"a05", "a07"}
    hits = backend.nearest(vector(1), k=10, query=SearchQuery(text="Rūdninkai", story_ids=["s-brigade"]))
    assert hits[0].id == "a01" and {h.id for h in hits} == {"a01", "a02", "a03"}
    hits = backend.nearest(vector(9), k=10, query=SearchQuery(date_from=BY_ID["a08"].published_at))
    assert [h.id for h in hits] == ["a09", "a08"]


def test_nearest_rejects_a_zero_vector(backend: ArchiveBackend) -> None:
    with pytest.raises(ValueError):
        backend.nearest(np.zeros(DIM, dtype=np.float32))


def test_hybrid_puts_a_doc_ranked_high_by_both_first(backend: ArchiveBackend) -> None:
    query = SearchQuery(text="brigade OR Panzerbrigade OR бригаду OR brigados")
    text_first = backend.search(replace(query, per_page=1)).hits[0].id
    hits = backend.hybrid(query, BY_ID[text_first].embedding, k=5)  # type: ignore[arg-type]
    assert hits[0].id == text_first  # first by text and by vector
    assert hits[0].score == pytest.approx(2 / (RRF_RANK_CONSTANT + 1))
    assert len(hits) == 5 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    # both rankings count: the two text matches first, then the vector-only match
    hits = backend.hybrid(SearchQuery(text="Panzerbrigade"), vector(9), k=3)
    assert {h.id for h in hits[:2]} == {"a01", "a02"} and hits[2].id == "a09"
    # the filters apply to both rankings
    hits = backend.hybrid(SearchQuery(text="Rūdninkai", languages=["de"]), vector(9), k=10)
    assert {h.id for h in hits} == {"a02", "a09"}


def test_vectors_of_two_models_are_never_compared(backend: ArchiveBackend) -> None:
    # two models, one vector size: articles b01/b02 carry vectors of "model-b", one of them equal to a01's
    others = [replace(article(n, "2024-05-07 10:00", f"Other model {n}", "x", source="X", language="en",
                              prefix="b"), embedding=vector(1 if n == 1 else 50 + n), embedding_model="model-b")
              for n in (1, 2)]
    backend.index_articles(others)
    backend.refresh()
    assert backend.vector_models() == {MODEL: len(CORPUS), "model-b": 2}
    assert backend.has_vectors(MODEL) and backend.has_vectors("model-b") and not backend.has_vectors("model-c")
    assert backend.get_article("b01").embedding_model == "model-b"
    assert {h.id for h in backend.nearest(vector(1), k=2)} == {"a01", "b01"}  # no model: both spaces
    assert [h.id for h in backend.nearest(vector(1), k=2, model=MODEL)][0] == "a01"
    assert all(h.id.startswith("a") for h in backend.nearest(vector(1), k=20, model=MODEL))
    assert {h.id for h in backend.nearest(vector(1), k=20, model="model-b")} == {"b01", "b02"}
    assert backend.nearest(vector(1), k=5, model="model-c") == []
    hits = backend.hybrid(SearchQuery(text="Other"), vector(1), k=20, model=MODEL)
    assert {h.id for h in hits} >= {"b01", "b02"}  # found by their words
    vector_only = backend.hybrid(SearchQuery(text="Panzerbrigade"), vector(1), k=20, model="model-b")
    assert {h.id for h in vector_only} == {"a01", "a02", "b01", "b02"}  # words: a01 a02; vectors: model-b's


# --- saved searches and the percolator -------------------------------------------------------------

MAY = (at("2024-05-01 00:00"), at("2024-05-31 23:59"))
SAVED = [
    SavedSearch("rudninkai", SearchQuery(text="Rudninkai"), name="Rūdninkai base"),
    SavedSearch("brigade-de", SearchQuery(text="Panzerbrigade", languages=["de"])),
    SavedSearch("phrase", SearchQuery(text='"Panzerbrigade 45"')),
    SavedSearch("suwalki-may", SearchQuery(text="suwałki", date_from=MAY[0], date_to=MAY[1])),
    SavedSearch("bbc", SearchQuery(sources=["BBC"])),
    SavedSearch("gap-story", SearchQuery(topics=[SUWALKI], story_ids=["s-suwalki"])),
    SavedSearch("lietuva", SearchQuery(text="Lietuv* OR Литв*")),
    SavedSearch("hostile", SearchQuery(text='"Rūdninkai (NEAR title:')),  # = Rūdninkai AND near AND title
]
# New articles, not in the archive: what each matches is written out by hand.
NEW = [
    article(41, "2024-06-03 09:00", "Panzerbrigade 45 übernimmt Kasernen in Rūdninkai", "Der Aufbau läuft.",
            source="Tagesschau", language="de", topics=(BRIGADE,), prefix="n"),
    article(42, "2024-06-03 10:00", "Panzerbrigade 45 takes over barracks near Rudninkai",
            "The title of the base is still open.", source="Reuters", language="en", prefix="n"),
    article(43, "2024-05-31 23:59", "Drill in the Suwalki Gap", "Troops rehearse a corridor defence.",
            source="Notes from Poland", language="en", topics=(SUWALKI,), story="s-suwalki", prefix="n"),
    article(44, "2024-06-01 00:00", "Another drill in the Suwałki Gap", "One minute after the window.",
            source="Notes from Poland", language="en", topics=(SUWALKI,), prefix="n"),
    article(45, "2024-05-08 12:00", "Football: Latvia draws with Estonia", "A dull match in Riga.",
            source="BBC", language="en", prefix="n"),
    article(46, "2024-05-09 07:00", "Lietuvos kariuomenė gavo naujų šarvuočių", "Литва закупает технику.",
            source="LRT", language="lt", prefix="n"),
    article(47, "2024-05-09 08:00", "Weather in Riga: rain all week", "Nothing about troops.",
            source="LSM", language="en", prefix="n"),
]
PERCOLATED = {
    "n41": ["brigade-de", "phrase", "rudninkai"],
    "n42": ["hostile", "phrase", "rudninkai"],
    "n43": ["gap-story", "suwalki-may"],  # published at the very end of the window: inclusive
    "n45": ["bbc"],
    "n46": ["lietuva"],
}  # n44 (one minute too late, no story) and n47 match nothing: left out


def save_all(archive: ArchiveBackend, searches: Sequence[SavedSearch]) -> None:
    for saved in searches:
        archive.save_search(saved)
    archive.refresh()


def test_saved_searches_save_replace_list_delete(empty: ArchiveBackend) -> None:
    assert empty.list_searches() == []
    save_all(empty, SAVED)
    assert empty.list_searches() == sorted(SAVED, key=lambda s: s.id)  # round trip: names, dates, filters
    renamed = SavedSearch("bbc", SearchQuery(text="Riga", languages=["en"]), name="Riga in English")
    save_all(empty, [renamed])
    listed = empty.list_searches()
    assert len(listed) == len(SAVED)
    assert next(s for s in listed if s.id == "bbc") == renamed
    assert empty.delete_search("bbc") is True
    empty.refresh()
    assert empty.delete_search("bbc") is False
    assert "bbc" not in {s.id for s in empty.list_searches()}
    assert len(empty.list_searches()) == len(SAVED) - 1


@pytest.mark.parametrize(
    "query", [SearchQuery(), SearchQuery(text="   "), SearchQuery(text="( * )"), SearchQuery(facet_size=3)]
)
def test_a_saved_search_without_text_or_filter_is_refused(empty: ArchiveBackend, query: SearchQuery) -> None:
    # no searchable term (as `search` reads the text) and no filter: it would alert on every article
    with pytest.raises(ValueError):
        empty.save_search(SavedSearch("everything", query))
    empty.refresh()
    assert empty.list_searches() == []


def test_a_saved_search_of_filters_only_matches_by_filter(backend: ArchiveBackend) -> None:
    save_all(backend, [SavedSearch("recent", SearchQuery(text="( * )", date_from=at("2024-05-06 00:00")))])
    assert backend.percolate(CORPUS) == {"a08": ["recent"], "a09": ["recent"]}


def test_percolate_finds_the_saved_searches_each_new_doc_matches(backend: ArchiveBackend) -> None:
    save_all(backend, SAVED)
    assert backend.percolate(NEW) == PERCOLATED
    assert backend.percolate([]) == {}
    assert backend.percolate([BY_ID["a05"], BY_ID["a06"]]) == {"a05": ["gap-story", "suwalki-may"], "a06": ["bbc"]}
    assert backend.get_article("n41") is None and backend.count()["articles"] == len(CORPUS)  # nothing indexed


def test_percolate_agrees_with_search(backend: ArchiveBackend) -> None:
    """A saved search matches a document exactly when `search` finds it once it is indexed."""
    save_all(backend, SAVED)
    percolated = backend.percolate(NEW)
    put(backend, NEW)
    new_ids = {doc.id for doc in NEW}
    for saved in SAVED:
        query = replace(saved.query, per_page=100, facets=(), highlight=False)
        found = {hit.id for hit in backend.search(query).hits} & new_ids
        assert found == {doc_id for doc_id, names in percolated.items() if saved.id in names}, saved.id


def test_percolate_follows_replaced_and_deleted_searches(empty: ArchiveBackend) -> None:
    kaunas = article(48, "2024-05-10 10:00", "Zalgiris wins in Kaunas", "Basketball.", source="LRT",
                     language="lt", prefix="n")
    save_all(empty, [SavedSearch("watch", SearchQuery(text="Kaunas"))])
    assert empty.percolate([kaunas]) == {"n48": ["watch"]}
    save_all(empty, [SavedSearch("watch", SearchQuery(text="Kaunas", sources=["BBC"]))])
    assert empty.percolate([kaunas]) == {}
    save_all(empty, [SavedSearch("watch", SearchQuery(text="zalgiris")), SavedSearch("other", SearchQuery(text="wins"))])
    assert empty.percolate([kaunas]) == {"n48": ["other", "watch"]}
    empty.delete_search("watch")
    empty.refresh()
    assert empty.percolate([kaunas]) == {"n48": ["other"]}


# --- rebuild ---------------------------------------------------------------------------------------


def test_rebuild_keeps_what_was_reindexed_and_drops_the_rest(backend: ArchiveBackend) -> None:
    put_stories(backend, STORIES)
    save_all(backend, SAVED[:2])
    backend.begin_rebuild()
    assert set(ids(backend)) == IDS  # searches keep answering
    kept = [BY_ID["a01"], BY_ID["a02"], BY_ID["a05"]]
    put(backend, kept)
    put_stories(backend, [STORIES[1]])
    assert {"a01", "a02", "a05"} <= set(ids(backend))
    assert set(ids(backend, "Panzerbrigade")) == {"a01", "a02"}
    backend.finish_rebuild()
    backend.refresh()

    assert backend.count() == {"articles": 3, "stories": 1}
    assert set(ids(backend)) == {"a01", "a02", "a05"}
    assert set(ids(backend, "Rūdninkai")) == {"a01", "a02"}
    assert backend.get_article("a03") is None and backend.get_story("s1") is None
    assert [s.id for s in backend.list_stories()] == ["s2"]
    assert {h.id for h in backend.nearest(vector(3), k=10)} == {"a01", "a02", "a05"}
    assert backend.search(SearchQuery(facets=("language",))).facets == {"language": {"en": 2, "de": 1}}
    assert backend.list_searches() == sorted(SAVED[:2], key=lambda s: s.id)  # not part of the rebuild
    put(backend, [BY_ID["a03"]])  # indexing goes on as usual
    assert set(ids(backend, "Rūdninkai")) == {"a01", "a02", "a03"}
    backend.finish_rebuild()  # no rebuild under way: changes nothing
    backend.refresh()
    assert backend.count() == {"articles": 4, "stories": 1}
