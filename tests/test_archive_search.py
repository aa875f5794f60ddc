"""Conformance suite of the archive interface: every backend must pass every test here.

The `backend` fixture is parametrised over backend names. Only "sqlite" exists today; the Elasticsearch
backend joins later by adding "elasticsearch" to its params (skipped when no cluster is reachable).
Tests talk to `ArchiveBackend` only, never to a backend's internals.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from archive.base import (
    HL_END,
    HL_START,
    ArchiveBackend,
    ArticleDoc,
    SearchQuery,
    StoryDoc,
    render_highlight,
    strip_highlight,
)

DIM = 16
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)
BRIGADE, SUWALKI = "bundeswehr-lithuania", "suwalki-gap"


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _doc(n: int, title: str, summary: str, content: str = "", *, source: str, language: str,
         topics: tuple[str, ...] = (), story: str | None = None, hours: float = 0) -> ArticleDoc:
    return ArticleDoc(
        id=f"a{n:02d}", url=f"https://example.org/{n}", title=title, summary=summary, content=content,
        source=source, language=language, published_at=T0 + timedelta(hours=hours + 24 * n),
        topics=list(topics), relevance=0.9 if topics else 0.1, story_id=story, embedding=_vector(n),
    )


CORPUS = [
    _doc(1, "German brigade begins deployment to Lithuania",
         "The Panzerbrigade 45 will be stationed near Vilnius and Rūdninkai.",
         "Berlin confirmed on Monday that the first soldiers of the brigade have arrived. " * 3,
         source="Reuters", language="en", topics=(BRIGADE,), story="s-brigade"),
    _doc(2, "Panzerbrigade 45: Erste Soldaten in Litauen eingetroffen",
         "Die Bundeswehr verlegt Truppen nach Rūdninkai. Das Vorkommando ist in Vilnius gelandet.",
         source="Tagesschau", language="de", topics=(BRIGADE,), story="s-brigade"),
    _doc(3, "Rūdninkai: pradėta statyti Vokietijos brigados bazė",
         "Krašto apsaugos ministerija pranešė, kad Lietuvos ir Vokietijos kariai dirbs kartu.",
         source="LRT", language="lt", topics=(BRIGADE,), story="s-brigade"),
    _doc(4, "Германия разместит танковую бригаду в Литве",
         "Бундесвер направит около 4800 военных. Ещё одна часть прибудет в следующем году.",
         source="RIA", language="ru", topics=(BRIGADE,)),
    _doc(5, "Poland reinforces the Suwałki Gap",
         "Polish and Lithuanian troops exercise near Suwałki, the corridor between Belarus and Kaliningrad.",
         source="Notes from Poland", language="en", topics=(SUWALKI, BRIGADE), story="s-suwalki"),
    _doc(6, "Baltic defence spending rises again",
         "Estonia, Latvia and Lithuania increase their budgets.",
         "Analysts note that the German brigade is only one part of a larger picture. " + "Budgets grow. " * 20,
         source="BBC", language="en"),
    _doc(7, "Exercise <script>alert('x')</script> Iron Wolf & friends",
         "Soldiers <b>trained</b> near the border; \ue000fake\ue001 markers in a feed mean nothing.",
         source="Hostile Feed", language="en", topics=(SUWALKI,), story="s-suwalki"),
    _doc(8, "Football: Lithuania beats Latvia 2-1",
         "A late goal decided the Baltic derby.",
         source="BBC", language="en"),
    _doc(9, "Bundeswehr übt mit litauischen Streitkräften",
         "Die Übung fand in der Nähe von Pabradė statt; die Panzergrenadiere blieben zwei Wochen.",
         source="Spiegel", language="de", topics=(BRIGADE,), hours=5),
]
IDS = {doc.id for doc in CORPUS}


def _make(name: str, tmp_path: Path) -> ArchiveBackend:
    if name == "sqlite":
        from archive.sqlite import SQLiteArchive

        return SQLiteArchive(tmp_path / "archive.db")
    raise ValueError(name)


# The Elasticsearch backend joins this list in its own issue; every test below then runs against it too.
@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveBackend]:
    archive = _make(request.param, tmp_path)
    archive.ensure_ready()
    report = archive.index_articles(CORPUS)
    assert report.failed == {} and sorted(report.indexed) == sorted(IDS)
    yield archive
    archive.close()


def ids(backend: ArchiveBackend, text: str = "", **filters: object) -> list[str]:
    result = backend.search(SearchQuery(text=text, per_page=100, **filters))  # type: ignore[arg-type]
    assert result.total == len(result.hits)
    return [hit.id for hit in result.hits]


# --- text ------------------------------------------------------------------------------------------


def test_exact_term(backend: ArchiveBackend) -> None:
    assert set(ids(backend, "Panzerbrigade")) == {"a01", "a02"}
    assert set(ids(backend, "panzerbrigade 45")) == {"a01", "a02"}  # case-insensitive, ANDed
    assert ids(backend, "Panzerbrigade Kaliningrad") == []


def test_title_match_ranks_above_body_only_match(backend: ArchiveBackend) -> None:
    found = ids(backend, "German brigade")
    assert found[0] == "a01"  # in the title
    assert found.index("a01") < found.index("a06")  # a06 mentions it in its content only
    scores = [hit.score for hit in backend.search(SearchQuery(text="German brigade")).hits]
    assert scores == sorted(scores, reverse=True)


def test_diacritics_insensitive(backend: ArchiveBackend) -> None:
    expected = {"a01", "a02", "a03"}
    assert set(ids(backend, "rudninkai")) == expected
    assert set(ids(backend, "Rūdninkai")) == expected
    assert set(ids(backend, "RUDNINKAI")) == expected
    assert set(ids(backend, "Pabrade")) == {"a09"}
    assert set(ids(backend, "ubung")) == {"a09"}  # Übung


def test_stroke_letters_fold_too(backend: ArchiveBackend) -> None:
    # unicode61 alone does not fold ł (not a decomposable letter); the archive folds it itself.
    assert set(ids(backend, "Suwalki")) == {"a05"}
    assert set(ids(backend, "Suwałki")) == {"a05"}
    hit = backend.search(SearchQuery(text="suwalki")).hits[0]
    assert f"{HL_START}Suwałki{HL_END}" in hit.highlights["title"][0]  # the original text, not the folded


def test_eszett_is_not_expanded(backend: ArchiveBackend) -> None:
    # Documented limit: ß is not folded to ss (one-to-many), but it matches itself and prefixes.
    extra = _doc(20, "Straße nach Rūdninkai gesperrt", "Kolonne unterwegs.", source="BR", language="de")
    backend.index_articles([extra])
    assert ids(backend, "Straße") == ["a20"]
    assert ids(backend, "STRAßE") == ["a20"]
    assert ids(backend, "Stra*") == ["a20"]


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
    assert set(ids(backend, "Lietuv*")) == {"a03"}
    assert set(ids(backend, "Litauen OR Литве")) == {"a02", "a04"}
    assert set(ids(backend, "Vilnius Litauen OR Lithuania")) == {"a01", "a02"}
    assert set(ids(backend, "Vilnius AND Litauen")) == {"a02"}


def test_hyphenated_word_is_a_phrase(backend: ArchiveBackend) -> None:
    assert ids(backend, "2-1") == ["a08"]
    assert ids(backend, "Iron-Wolf") == ["a07"]


HOSTILE = ['"', '""', '"unbalanced', "(", ")", "(Suwałki", "AND", "OR", "NOT", "AND OR", "NEAR(", "NEAR(a b)",
           "title:", "title:Suwalki", "content:", "*", "**", "-", "+", "^", "^Suwalki", "{title summary}:x",
           "a:b:c", "'", "\\", ";", "--", "%", "_", "\x00", HL_START, "<script>", "' OR 1=1 --",
           "Suwalki)", "brigade AND", "OR brigade", "brigade OR OR gap", "\"brigade\"*", "NEAR/2", "🫨", " ", ""]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_queries_never_raise(backend: ArchiveBackend, text: str) -> None:
    result = backend.search(SearchQuery(text=text))
    assert result.total >= 0
    assert backend.nearest(_vector(1), k=2, query=SearchQuery(text=text)) is not None


def test_random_query_text_never_raises(backend: ArchiveBackend) -> None:
    alphabet = list('"()*:^-+{}[],.;\'\\/ NEARORANDNOT') + ["Suwałki", "brigade", "Литве", " OR ", " AND "]
    rng = random.Random(7)
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        backend.search(SearchQuery(text=text, per_page=5))


def test_punctuation_only_text_browses(backend: ArchiveBackend) -> None:
    assert backend.search(SearchQuery(text="( * )")).total == len(CORPUS)


# --- browse, filters, sort, paging, facets ---------------------------------------------------------


def test_empty_text_browses_newest_first(backend: ArchiveBackend) -> None:
    result = backend.search(SearchQuery(per_page=100))
    assert result.total == len(CORPUS)
    dates = [hit.doc.published_at for hit in result.hits]
    assert dates == sorted(dates, reverse=True)
    assert all(hit.highlights == {} for hit in result.hits)


def test_filters(backend: ArchiveBackend) -> None:
    assert set(ids(backend, sources=["BBC"])) == {"a06", "a08"}
    assert set(ids(backend, sources=["BBC", "LRT"])) == {"a03", "a06", "a08"}
    assert set(ids(backend, languages=["de"])) == {"a02", "a09"}
    assert set(ids(backend, topics=[SUWALKI])) == {"a05", "a07"}
    assert set(ids(backend, topics=[BRIGADE])) == {"a01", "a02", "a03", "a04", "a05", "a09"}  # a05 has both
    assert set(ids(backend, story_ids=["s-brigade"])) == {"a01", "a02", "a03"}
    assert set(ids(backend, "Lithuania*", languages=["en"], topics=[BRIGADE])) == {"a01", "a05"}
    assert ids(backend, sources=["nobody"]) == []


def test_date_range_is_inclusive(backend: ArchiveBackend) -> None:
    a02, a04 = CORPUS[1].published_at, CORPUS[3].published_at
    assert set(ids(backend, date_from=a02, date_to=a04)) == {"a02", "a03", "a04"}
    assert set(ids(backend, date_from=CORPUS[7].published_at)) == {"a08", "a09"}
    assert set(ids(backend, date_to=a02 - timedelta(microseconds=1))) == {"a01"}
    # another time zone, same instant
    cet = timezone(timedelta(hours=2))
    assert set(ids(backend, date_from=a04.astimezone(cet), date_to=a04.astimezone(cet))) == {"a04"}


def test_naive_dates_are_rejected() -> None:
    with pytest.raises(ValueError):
        SearchQuery(date_from=datetime(2024, 5, 1))


def test_sort_newest_and_oldest(backend: ArchiveBackend) -> None:
    for sort, reverse in (("newest", True), ("oldest", False)):
        hits = backend.search(SearchQuery(text="Lithuania OR Litauen OR brigade", sort=sort, per_page=100)).hits
        dates = [hit.doc.published_at for hit in hits]
        assert len(dates) >= 4
        assert dates == sorted(dates, reverse=reverse)


def test_paging_is_disjoint_and_total_stable(backend: ArchiveBackend) -> None:
    for text, sort in (("", "newest"), ("brigade OR Lithuania OR Litauen OR Rūdninkai", "relevance")):
        seen: list[str] = []
        totals = set()
        for page in range(1, 5):
            result = backend.search(SearchQuery(text=text, sort=sort, page=page, per_page=3))  # type: ignore[arg-type]
            totals.add(result.total)
            assert result.page == page and result.per_page == 3
            seen.extend(hit.id for hit in result.hits)
        assert len(totals) == 1
        total = totals.pop()
        assert len(seen) == len(set(seen)) == total
        assert backend.search(SearchQuery(text=text, page=99, per_page=3)).hits == []


def test_facets_count_the_whole_match_set(backend: ArchiveBackend) -> None:
    result = backend.search(SearchQuery(per_page=1))
    assert len(result.hits) == 1
    assert result.facets["source"] == {
        "BBC": 2, "Reuters": 1, "Tagesschau": 1, "LRT": 1, "RIA": 1, "Notes from Poland": 1,
        "Hostile Feed": 1, "Spiegel": 1,
    }
    assert result.facets["language"] == {"en": 5, "de": 2, "lt": 1, "ru": 1}
    assert result.facets["topic"] == {BRIGADE: 6, SUWALKI: 2}
    assert result.facets["story_id"] == {"s-brigade": 3, "s-suwalki": 2}
    # most frequent first
    assert list(result.facets["language"])[:2] == ["en", "de"]

    filtered = backend.search(SearchQuery(text="Rūdninkai", languages=["de", "lt"], per_page=1))
    assert filtered.total == 2
    assert filtered.facets["language"] == {"de": 1, "lt": 1}
    assert filtered.facets["story_id"] == {"s-brigade": 2}

    only = backend.search(SearchQuery(facets=("source",), facet_size=1))
    assert only.facets == {"source": {"BBC": 2}}


# --- highlights ------------------------------------------------------------------------------------


def test_highlights_mark_the_matched_words(backend: ArchiveBackend) -> None:
    hit = next(h for h in backend.search(SearchQuery(text="rudninkai")).hits if h.id == "a03")
    assert hit.highlights["title"] == [f"{HL_START}Rūdninkai{HL_END}: pradėta statyti Vokietijos brigados bazė"]
    prefix = next(h for h in backend.search(SearchQuery(text="Litau*")).hits if h.id == "a02")
    assert f"{HL_START}Litauen{HL_END}" in prefix.highlights["title"][0]
    assert backend.search(SearchQuery(text="rudninkai", highlight=False)).hits[0].highlights == {}


def test_highlight_fragments_of_long_content(backend: ArchiveBackend) -> None:
    filler = "Nothing to see here today. " * 40
    long = _doc(21, "Long read", "Summary.", filler + "The Rūdninkai range opened. " + filler
                + "Later Rūdninkai again. " + filler, source="FT", language="en")
    backend.index_articles([long])
    hit = backend.search(SearchQuery(text="Rūdninkai", sources=["FT"])).hits[0]
    fragments = hit.highlights["content"]
    assert 1 <= len(fragments) <= 3
    for fragment in fragments:
        assert len(fragment) < 300
        assert fragment.count(HL_START) == fragment.count(HL_END) >= 1
        assert strip_highlight(fragment) in long.content


def test_hostile_text_is_escaped_and_cannot_forge_markers(backend: ArchiveBackend) -> None:
    hit = backend.search(SearchQuery(text="Iron Wolf trained")).hits[0]
    assert hit.id == "a07"
    title = render_highlight(hit.highlights["title"][0], "<mark>", "</mark>")
    assert title == ("Exercise &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; "
                     "<mark>Iron</mark> <mark>Wolf</mark> &amp; friends")
    summary = hit.highlights["summary"][0]
    assert summary.count(HL_START) == 1  # only "trained"; the feed's own marker characters are blanked
    assert render_highlight(summary, "*", "*", escape=lambda s: s) == (
        "Soldiers <b>*trained*</b> near the border;  fake  markers in a feed mean nothing."
    )
    assert "<script>" not in title and "<b>" not in render_highlight(summary, "<mark>", "</mark>")


# --- kNN -------------------------------------------------------------------------------------------


def test_nearest_returns_closest_first(backend: ArchiveBackend) -> None:
    target = _vector(3) + 0.05 * _vector(99)
    hits = backend.nearest(target, k=4)
    assert [h.id for h in hits][0] == "a03"
    assert len(hits) == 4
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0.95
    assert hits[0].doc.title.startswith("Rūdninkai")
    exact = backend.nearest(_vector(5), k=1)[0]
    assert exact.id == "a05" and exact.score == pytest.approx(1.0, abs=1e-5)
    assert len(backend.nearest(target, k=100)) == len(CORPUS)
    assert backend.nearest(target, k=0) == []


def test_nearest_honours_filters(backend: ArchiveBackend) -> None:
    hits = backend.nearest(_vector(3), k=10, query=SearchQuery(languages=["de"]))
    assert {h.id for h in hits} == {"a02", "a09"}
    hits = backend.nearest(_vector(1), k=10, query=SearchQuery(topics=[SUWALKI]))
    assert {h.id for h in hits} == {"a05", "a07"}
    hits = backend.nearest(_vector(1), k=10, query=SearchQuery(text="Rūdninkai", story_ids=["s-brigade"]))
    assert [h.id for h in hits][0] == "a01" and {h.id for h in hits} == {"a01", "a02", "a03"}


def test_nearest_rejects_a_zero_vector(backend: ArchiveBackend) -> None:
    with pytest.raises(ValueError):
        backend.nearest(np.zeros(DIM, dtype=np.float32))


# --- documents ------------------------------------------------------------------------------------


def test_get_article_round_trips(backend: ArchiveBackend) -> None:
    doc = backend.get_article("a05")
    assert doc is not None
    original = CORPUS[4]
    assert (doc.title, doc.summary, doc.source, doc.language, doc.story_id) == (
        original.title, original.summary, original.source, original.language, original.story_id)
    assert doc.published_at == original.published_at and doc.published_at.tzinfo is not None
    assert sorted(doc.topics) == sorted(original.topics)
    assert doc.embedding is not None and np.allclose(doc.embedding, original.embedding)
    assert backend.get_article("nope") is None


def test_reindexing_overwrites(backend: ArchiveBackend) -> None:
    before = backend.count()
    changed = _doc(8, "Basketball: Lithuania wins in Kaunas", "Zalgiris celebrates.", source="BBC",
                   language="en", topics=(SUWALKI,))
    report = backend.index_articles([changed, changed])
    assert report.failed == {}
    assert backend.count() == before
    assert ids(backend, "Kaunas") == ["a08"]
    assert ids(backend, "Football") == []
    assert ids(backend, "derby") == []
    assert "a08" in ids(backend, topics=[SUWALKI])
    doc = backend.get_article("a08")
    assert doc is not None and doc.title == changed.title


def test_bad_document_is_reported_not_raised(backend: ArchiveBackend) -> None:
    bad = _doc(30, "Broken vector", "x", source="X", language="en")
    bad.embedding = np.full(DIM, np.nan, dtype=np.float32)
    good = _doc(31, "Fine article about Rūdninkai", "x", source="X", language="en")
    report = backend.index_articles([bad, good])
    assert report.indexed == ["a31"]
    assert list(report.failed) == ["a30"]
    assert backend.get_article("a30") is None
    assert backend.count()["articles"] == len(CORPUS) + 1


def test_count(backend: ArchiveBackend) -> None:
    assert backend.count() == {"articles": len(CORPUS), "stories": 0}


def _story(n: int, topic: str, size: int, days: int) -> StoryDoc:
    return StoryDoc(
        id=f"s{n}", topic=topic, headline=f"Story {n}", first_seen=T0, last_seen=T0 + timedelta(days=days),
        article_count=size, source_count=min(size, 3), sources={"LRT": size}, languages={"lt": size},
        top_links=[{"title": "Rūdninkai <b>base</b>", "url": "https://lrt.lt/1", "source": "LRT"}],
    )


def test_stories_list_and_get(backend: ArchiveBackend) -> None:
    stories = [_story(1, BRIGADE, 10, 1), _story(2, BRIGADE, 3, 5), _story(3, SUWALKI, 7, 3)]
    report = backend.index_stories(stories)
    assert sorted(report.indexed) == ["s1", "s2", "s3"] and report.failed == {}
    assert [s.id for s in backend.list_stories()] == ["s2", "s3", "s1"]
    assert [s.id for s in backend.list_stories(sort="size")] == ["s1", "s3", "s2"]
    assert [s.id for s in backend.list_stories(topic=BRIGADE)] == ["s2", "s1"]
    assert [s.id for s in backend.list_stories(limit=1)] == ["s2"]
    assert backend.list_stories(topic="none") == []
    story = backend.get_story("s3")
    assert story == stories[2]
    assert backend.get_story("nope") is None
    backend.index_stories([_story(3, SUWALKI, 12, 9)])
    assert backend.count()["stories"] == 3
    assert backend.list_stories()[0].id == "s3" and backend.list_stories()[0].article_count == 12
