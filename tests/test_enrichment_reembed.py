"""Re-embedding after the embedding model changes: no vector space is mixed (enrichment.reembed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.models import Article, Story
from core.vectors import from_bytes
from enrichment.embeddings import PACKAGED_MODEL, get_embedder
from enrichment.enrich import enrich
from enrichment.reembed import pending_count, reembed
from enrichment.relevance import compile_topics
from test_enrichment_stage import ARTICLES, NOW, T0, insert_articles

pytestmark = pytest.mark.slow


def test_a_model_change_reembeds_articles_and_recentres_stories(settings, embedder) -> None:
    english = settings.model_copy(update={"embedding_model": PACKAGED_MODEL, "embedding_screen": "headline"})
    insert_articles(english)
    enrich(english, now=NOW)
    minilm = get_embedder(PACKAGED_MODEL)
    assert pending_count(english, minilm.name) == 0
    assert pending_count(settings, embedder.name) == len(ARTICLES)

    later = NOW + timedelta(hours=2)
    summary = reembed(settings, embedder, compile_topics(settings, embedder), now=later)
    assert summary.articles == len(ARTICLES) and summary.previous == {PACKAGED_MODEL: len(ARTICLES)}
    with session_scope(settings) as session:
        articles = session.scalars(select(Article)).all()
        assert {a.embedding_model for a in articles} == {embedder.name}
        assert all(a.updated_at == later for a in articles)  # pending for the archive again
        stories = session.scalars(select(Story)).all()
        assert summary.stories == len(stories) and {s.centroid_model for s in stories} == {embedder.name}
        story = stories[0]
        members = [from_bytes(a.embedding) for a in articles if a.story_id == story.id]
        mean = sum(members) / len(members)
        assert abs(float(from_bytes(story.centroid) @ (mean / (mean @ mean) ** 0.5)) - 1.0) < 1e-5
    assert reembed(settings, embedder, []).articles == 0  # idempotent


def test_the_stage_reembeds_active_stories_before_it_clusters(settings, embedder) -> None:
    english = settings.model_copy(update={"embedding_model": PACKAGED_MODEL, "embedding_screen": "headline"})
    insert_articles(english, ARTICLES[:3])
    enrich(english, now=NOW)
    with session_scope(settings) as session:
        in_stories = len(session.scalars(select(Article).where(Article.story_id.is_not(None))).all())
    insert_articles(settings, [("Bundeswehr brigade in Lithuania now has 4,800 troops, Berlin says", "", "lrt.lt",
                                "en")], start=T0 + timedelta(hours=5))
    summary = enrich(settings, now=NOW + timedelta(hours=1))
    assert summary.reembedded == in_stories  # the story's members, not the football article
    assert summary.stories_updated == 1 and summary.stories_created == 0  # compared in one space, it joins
    with session_scope(settings) as session:
        models = dict(session.execute(select(Article.title, Article.embedding_model)).all())
        assert models[ARTICLES[1][0]] == PACKAGED_MODEL  # not in a story: left for `enrich --reembed`
        assert models[ARTICLES[0][0]] == embedder.name
