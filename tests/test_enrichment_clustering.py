"""Online story clustering on the real model and a fresh state DB."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import select

from core.db import session_scope
from core.ids import article_id, stable_id
from core.models import Article, Story
from core.vectors import from_bytes, to_bytes
from enrichment.clustering import assign
from enrichment.embeddings import article_text

TOPIC = "baltic-deployments"
T0 = datetime(2025, 4, 1, 8, 0, tzinfo=timezone.utc)

BRIGADE = [
    ("Germany's brigade in Lithuania reaches 4,800 troops", "reuters.com", "en"),
    ("German brigade stationed in Lithuania grows to 4,800 soldiers", "dw.com", "en"),
    ("Bundeswehr brigade in Lithuania now has 4,800 troops, Berlin says", "politico.eu", "en"),
    ("Lithuania: German armoured brigade hits full strength of 4,800 troops", "lrt.lt", "en"),
]
KALININGRAD = [
    ("Russia warns Lithuania over Kaliningrad transit ban on sanctioned goods", "reuters.com", "en"),
    ("Moscow threatens retaliation after Lithuania blocks rail transit to Kaliningrad", "bbc.co.uk", "en"),
]
SUMMIT = [
    ("NATO leaders meet in Vilnius for annual summit", "apnews.com", "en"),
    ("NATO summit in Vilnius opens with Ukraine membership debate", "ft.com", "en"),
]
EARTHQUAKE = [
    ("Magnitude 6.4 earthquake strikes southern Turkey, killing dozens", "reuters.com", "en"),
    ("Strong earthquake hits Turkey, dozens dead", "aljazeera.com", "en"),
]


def make_article(title: str, source: str, language: str, published_at: datetime, summary: str = "") -> Article:
    url = f"https://{source}/{abs(hash((title, published_at)))}"
    return Article(
        id=article_id(url),
        source=source,
        url=url,
        canonical_url=url,
        title=title,
        summary=summary,
        language=language,
        published_at=published_at,
        fetched_at=published_at,
        updated_at=published_at,
        content_hash=stable_id("content", title),
        topic=TOPIC,
        relevant=True,
    )


def add_and_assign(settings, embedder, items, start=T0, step=timedelta(minutes=30)):
    """Insert the articles in order (one session) and assign each; returns the assignments."""
    vectors = embedder.encode([article_text(title, "") for title, _, _ in items])
    assignments = []
    with session_scope(settings) as session:
        for index, ((title, source, language), vector) in enumerate(zip(items, vectors)):
            article = make_article(title, source, language, start + index * step)
            article.embedding = to_bytes(vector)
            article.embedding_model = embedder.name
            session.add(article)
            session.flush()
            assignments.append(assign(session, article, vector, settings, now=start + index * step))
    return assignments


def test_paraphrases_form_one_story_and_events_stay_apart(settings, embedder) -> None:
    # interleaved arrivals, as in a live stream
    items = [BRIGADE[0], KALININGRAD[0], SUMMIT[0], BRIGADE[1], EARTHQUAKE[0], KALININGRAD[1], BRIGADE[2],
             SUMMIT[1], EARTHQUAKE[1], BRIGADE[3]]
    assignments = add_and_assign(settings, embedder, items)
    story_of = {title: a.story_id for (title, _, _), a in zip(items, assignments)}
    for group in (BRIGADE, KALININGRAD, SUMMIT, EARTHQUAKE):
        assert len({story_of[title] for title, _, _ in group}) == 1, group
    assert len(set(story_of.values())) == 4
    assert [a.created for a in assignments] == [True, True, True, False, True, False, False, False, False, False]
    assert all(a.similarity >= settings.cluster_threshold for a in assignments if not a.created)
    first = assignments[0]
    assert first.story_id == stable_id("story", TOPIC, article_id_of(settings, BRIGADE[0][0]))


def article_id_of(settings, title: str) -> str:
    with session_scope(settings) as session:
        return session.scalars(select(Article.id).where(Article.title == title)).one()


def test_story_bookkeeping(settings, embedder) -> None:
    # The English-only model still links this German headline (shared words: "Brigade", "Litauen", "4.800");
    # Lithuanian or Russian ones would need a multilingual model (see the enrichment report).
    german = ("Bundeswehr-Brigade in Litauen wächst auf 4.800 Soldaten", "tagesschau.de", "de")
    items = [BRIGADE[0], german, BRIGADE[2], (BRIGADE[1][0], "reuters.com", "en")]  # reuters.com twice
    assignments = add_and_assign(settings, embedder, items)
    story_ids = {a.story_id for a in assignments}
    if len(story_ids) != 1:
        pytest.fail(f"expected one story, got {[(a.created, a.similarity) for a in assignments]}")
    with session_scope(settings) as session:
        story = session.get(Story, story_ids.pop())
        members = list(session.scalars(select(Article).where(Article.story_id == story.id)))
        assert story.article_count == 4 == len(members)
        assert story.sources == {"reuters.com": 2, "tagesschau.de": 1, "politico.eu": 1}
        assert story.source_count == 3
        assert story.language_counts == {"en": 3, "de": 1}
        assert story.first_seen == T0 and story.last_seen == T0 + timedelta(minutes=90)
        assert story.updated_at == T0 + timedelta(minutes=90)
        assert story.topic == TOPIC
        centroid = from_bytes(story.centroid)
        mean = np.mean([from_bytes(m.embedding) for m in members], axis=0)
        assert np.isclose(np.linalg.norm(centroid), 1.0, atol=1e-5)
        assert np.allclose(centroid, mean / np.linalg.norm(mean), atol=1e-5)
        # the headline is the member closest to the centroid
        closest = max(members, key=lambda m: float(from_bytes(m.embedding) @ centroid))
        assert story.representative_article_id == closest.id and story.headline == closest.title
        assert "4800" in story.terms and "Lithuania" in story.terms


def test_time_window_starts_a_new_story(settings, embedder) -> None:
    window = timedelta(hours=settings.cluster_window_hours)
    early, late = add_and_assign(settings, embedder, BRIGADE[:2], step=window + timedelta(hours=1))
    assert early.created and late.created and early.story_id != late.story_id
    # within the window the same two join
    close = add_and_assign(settings, embedder, BRIGADE[2:4], start=T0 + timedelta(days=30))
    assert close[0].created and not close[1].created


def test_novel_terms_record_what_an_article_adds(settings, embedder) -> None:
    items = [
        BRIGADE[0],
        ("Germany's brigade in Lithuania reaches 5,000 troops as the Rukla base opens", "dw.com", "en"),
        ("Germany's brigade in Lithuania reaches 4,800 troops, ministry confirms", "lrt.lt", "en"),
    ]
    first, second, third = add_and_assign(settings, embedder, items)
    assert first.created and first.novel_terms == []
    assert not second.created and second.story_id == first.story_id
    assert "5000" in second.novel_terms and "Rukla" in second.novel_terms
    assert "4800" not in second.novel_terms and "Lithuania" not in second.novel_terms
    assert not third.created and third.novel_terms == []
    with session_scope(settings) as session:
        stored = session.scalars(select(Article.novel_terms).where(Article.title == items[1][0])).one()
        assert stored == second.novel_terms


def test_assign_is_idempotent_per_article(settings, embedder) -> None:
    (first,) = add_and_assign(settings, embedder, BRIGADE[:1])
    vector = embedder.encode([BRIGADE[0][0]])[0]
    with session_scope(settings) as session:
        article = session.scalars(select(Article)).one()
        again = assign(session, article, vector, settings, now=T0)
        assert again.story_id == first.story_id and not again.created
        assert session.get(Story, first.story_id).article_count == 1
