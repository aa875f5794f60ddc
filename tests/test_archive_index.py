"""The `index` stage: state DB -> archive, incremental and retry-safe."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import select, update

from archive.backends import open_archive
from archive.base import SearchQuery
from archive.documents import article_doc, story_doc
from archive.index import TOP_LINKS, index, reindex, status
from core.db import session_scope
from core.ids import article_id
from core.models import Article, Story
from core.vectors import to_bytes

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)
RNG = np.random.default_rng(42)


def _unit() -> bytes:
    v = RNG.standard_normal(384).astype(np.float32)
    return to_bytes(v / np.linalg.norm(v))


def _article(n: int, title: str, *, enriched: bool = True, story: str | None = None, topic: str | None = None,
             relevant: bool = False, language: str = "en", source: str = "LRT") -> Article:
    url = f"https://example.org/news/{n}"
    return Article(
        id=article_id(url), source=source, url=url, canonical_url=url, title=title,
        summary=f"Summary {n}: troops near Rūdninkai.", content=None, language=language,
        published_at=T0 + timedelta(hours=n), fetched_at=T0 + timedelta(hours=n),
        updated_at=T0 + timedelta(hours=n), content_hash=f"h{n}",
        embedding=_unit() if enriched else None, embedding_model="test" if enriched else None,
        enriched_at=T0 + timedelta(hours=n) if enriched else None, topic=topic, relevance=0.8 if relevant else 0.2,
        relevant=relevant, story_id=story,
    )


def _story(story_id: str, topic: str = "bundeswehr-lithuania") -> Story:
    return Story(
        id=story_id, topic=topic, headline="German brigade arrives in Lithuania", first_seen=T0,
        last_seen=T0 + timedelta(hours=10), article_count=7, source_count=2, sources={"LRT": 5, "BNS": 2},
        language_counts={"lt": 5, "en": 2}, terms=["Rūdninkai"], centroid=_unit(), updated_at=T0,
    )


@pytest.fixture
def state(settings):  # type: ignore[no-untyped-def]
    """A state DB with one story of 7 articles, 2 unrelated articles and 1 not yet enriched."""
    with session_scope(settings) as session:
        session.add(_story("s1"))
        session.flush()
        for n in range(1, 8):
            session.add(_article(n, f"Brigade report {n} Suwałki", story="s1", topic="bundeswehr-lithuania",
                                 relevant=True, source="LRT" if n % 2 else "BNS"))
        session.add(_article(8, "Футбол: Литва обыграла Латвию", language="ru", topic="bundeswehr-lithuania"))
        session.add(_article(9, "Weather in Vilnius"))
        session.add(_article(10, "Not enriched yet", enriched=False))
    return settings


def _indexed_at(settings, model, ident: str) -> datetime | None:  # type: ignore[no-untyped-def]
    with session_scope(settings) as session:
        return session.scalar(select(model.indexed_at).where(model.id == ident))


def test_index_makes_articles_and_stories_searchable(state) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[int, int]] = []
    summary = index(state, progress=lambda done, total: calls.append((done, total)))
    assert summary.to_dict() == {"articles_indexed": 9, "stories_indexed": 1, "failed": {}}
    assert calls[0] == (0, 10) and calls[-1] == (10, 10)

    with open_archive(state) as archive:
        assert archive.count() == {"articles": 9, "stories": 1}
        assert archive.search(SearchQuery(text="suwalki")).total == 7
        assert archive.search(SearchQuery(text="Литва")).total == 1
        assert archive.search(SearchQuery(text="enriched")).total == 0
        # the topic counts only for relevant articles
        assert archive.search(SearchQuery(topics=["bundeswehr-lithuania"])).total == 7
        doc = archive.get_article(article_id("https://example.org/news/3"))
        assert doc is not None and doc.embedding is not None and doc.embedding.shape == (384,)
        assert doc.published_at == T0 + timedelta(hours=3) and doc.story_id == "s1"
        story = archive.get_story("s1")
        assert story is not None
        assert story.languages == {"lt": 5, "en": 2} and story.sources == {"LRT": 5, "BNS": 2}
        assert len(story.top_links) == TOP_LINKS
        assert [link["title"] for link in story.top_links] == [f"Brigade report {n} Suwałki" for n in (7, 6, 5, 4, 3)]
        assert story.top_links[0] == {"title": "Brigade report 7 Suwałki", "url": "https://example.org/news/7",
                                      "source": "LRT"}

    assert _indexed_at(state, Article, article_id("https://example.org/news/9")) is not None
    assert _indexed_at(state, Article, article_id("https://example.org/news/10")) is None
    assert _indexed_at(state, Story, "s1") is not None


def test_second_run_indexes_nothing(state) -> None:  # type: ignore[no-untyped-def]
    index(state)
    assert index(state).to_dict() == {"articles_indexed": 0, "stories_indexed": 0, "failed": {}}


def test_updated_article_and_story_are_reindexed(state) -> None:  # type: ignore[no-untyped-def]
    index(state)
    ident = article_id("https://example.org/news/9")
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    with session_scope(state) as session:
        article = session.get(Article, ident)
        article.title = "Weather in Kaunas"
        article.updated_at = later
        session.get(Story, "s1").updated_at = later
    summary = index(state)
    assert (summary.articles_indexed, summary.stories_indexed) == (1, 1)
    assert _indexed_at(state, Article, ident) >= later
    with open_archive(state) as archive:
        assert archive.count() == {"articles": 9, "stories": 1}
        assert [h.id for h in archive.search(SearchQuery(text="Kaunas")).hits] == [ident]
        assert archive.search(SearchQuery(text="Vilnius")).total == 0
    assert index(state).articles_indexed == 0


def test_article_enriched_later_is_picked_up(state) -> None:  # type: ignore[no-untyped-def]
    index(state)
    ident = article_id("https://example.org/news/10")
    with session_scope(state) as session:
        article = session.get(Article, ident)
        article.embedding = _unit()
        article.enriched_at = article.updated_at = datetime.now(timezone.utc)
    assert index(state).articles_indexed == 1


def test_a_failed_document_stays_pending(state) -> None:  # type: ignore[no-untyped-def]
    ident = article_id("https://example.org/news/9")
    with session_scope(state) as session:  # a corrupt embedding: NaN everywhere
        session.execute(update(Article).where(Article.id == ident).values(
            embedding=to_bytes(np.full(384, np.nan, dtype=np.float32))))
    summary = index(state)
    assert summary.articles_indexed == 8
    assert list(summary.failed) == [f"article:{ident}"]
    assert _indexed_at(state, Article, ident) is None
    assert list(index(state).failed) == [f"article:{ident}"]  # retried, still failing
    queue = status(state)
    assert (queue.pending_articles, queue.failure_count) == (1, 1)
    assert queue.failures[0]["doc_id"] == ident and queue.failures[0]["attempts"] == 2
    assert "ValueError" in queue.failures[0]["error"]
    with session_scope(state) as session:
        session.execute(update(Article).where(Article.id == ident).values(embedding=_unit()))
    summary = index(state)
    assert (summary.articles_indexed, summary.failed) == (1, {})
    queue = status(state)
    assert (queue.pending_articles, queue.pending_stories, queue.failure_count) == (0, 0, 0)


def test_status_counts_the_queue(state) -> None:  # type: ignore[no-untyped-def]
    queue = status(state)
    assert (queue.pending_articles, queue.pending_stories, queue.awaiting_enrichment) == (9, 1, 1)
    index(state)
    assert (status(state).pending_articles, status(state).pending_stories) == (0, 0)


def test_reindex_rebuilds_the_archive_from_the_state_db(state) -> None:  # type: ignore[no-untyped-def]
    index(state)
    stray = article_doc(_article(99, "Not in the state DB any more"))
    with open_archive(state) as archive:
        archive.index_articles([stray])
        assert archive.count() == {"articles": 10, "stories": 1}
    summary = reindex(state)
    assert (summary.articles_indexed, summary.stories_indexed, summary.failed) == (9, 1, {})
    with open_archive(state) as archive:
        assert archive.count() == {"articles": 9, "stories": 1}
        assert archive.get_article(stray.id) is None
    assert index(state).articles_indexed == 0


def test_indexed_at_is_never_before_updated_at(state) -> None:  # type: ignore[no-untyped-def]
    """A stage running on a simulated clock may write updated_at in the future; it must not loop."""
    ident = article_id("https://example.org/news/9")
    future = datetime.now(timezone.utc) + timedelta(days=30)
    with session_scope(state) as session:
        session.get(Article, ident).updated_at = future
    index(state)
    assert _indexed_at(state, Article, ident) == future
    assert index(state).articles_indexed == 0


def test_documents_mapping(settings) -> None:  # type: ignore[no-untyped-def]
    relevant = _article(1, "A", topic="t", relevant=True)
    irrelevant = _article(2, "B", topic="t", relevant=False)
    assert article_doc(relevant).topics == ["t"]
    assert article_doc(irrelevant).topics == []
    assert article_doc(_article(3, "C", enriched=False)).embedding is None
    assert article_doc(relevant).content == ""
    doc = story_doc(_story("s9"), [relevant])
    assert doc.top_links == [{"title": "A", "url": relevant.url, "source": "LRT"}]
    assert doc.languages == {"lt": 5, "en": 2}


def test_package_exports_open_archive(settings) -> None:  # type: ignore[no-untyped-def]
    # Run the package's __init__ from its file: `import archive` may resolve to a namespace package while the
    # editable install predates archive/__init__.py (see the report to the lead).
    import runpy
    from pathlib import Path

    import archive.backends

    exported = runpy.run_path(str(Path(archive.backends.__file__).with_name("__init__.py")))
    with exported["open_archive"](settings) as backend:
        assert backend.count() == {"articles": 0, "stories": 0}


def test_a_merged_story_leaves_the_archive(settings, state):
    index(settings)
    with session_scope(settings) as session:
        session.add(_story("s2"))
        session.flush()
        session.execute(update(Story).where(Story.id == "s1").values(merged_into="s2", updated_at=T0 + timedelta(days=1)))
    summary = index(settings)
    assert summary.stories_indexed == 1  # s2; s1 is deleted, not indexed
    with open_archive(settings) as archive:
        assert archive.get_story("s1") is None and archive.get_story("s2") is not None
    assert index(settings).stories_indexed == 0  # done once
