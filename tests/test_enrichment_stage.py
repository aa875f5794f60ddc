"""The enrichment stage end to end: articles inserted through the ORM, the real model, a fresh state DB."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import func, select

from core.db import session_scope
from core.ids import article_id, stable_id
from core.models import Article, Story
from core.vectors import from_bytes, to_bytes
from enrichment.embeddings import STATIC_MODEL
from enrichment.enrich import enrich

T0 = datetime(2025, 4, 1, 8, 0, tzinfo=timezone.utc)
NOW = datetime(2025, 4, 2, 12, 0, tzinfo=timezone.utc)

# (title, summary, source, declared language)
ARTICLES = [
    ("Germany's brigade in Lithuania reaches 4,800 troops",
     "The Bundeswehr's Panzerbrigade 45 is at full strength, the defence ministry in Berlin said.", "reuters.com", "en"),
    ("Premier League: Arsenal beat Chelsea 2-0 at the Emirates", "Goals from Saka and Havertz.", "bbc.co.uk", "en"),
    ("German brigade stationed in Lithuania grows to 4,800 soldiers", "", "dw.com", "en"),
    ("Bundeswehr-Brigade in Litauen wächst auf 4.800 Soldaten", "Die Panzerbrigade 45 ist vollständig.", "tagesschau.de", "de"),
    ("Russia warns Lithuania over Kaliningrad transit ban on sanctioned goods", "", "apnews.com", "en"),
    ("Литва закрыла транзит грузов в Калининград, Москва грозит ответом",
     "Власти Литвы запретили транзит подсанкционных товаров по железной дороге.", "meduza.io", "en"),
    ("Taylor Swift announces new world tour dates", "", "people.com", "en"),
    ("Germany's brigade in Lithuania reaches 5,000 troops as the Rukla base opens", "", "politico.eu", "en"),
]


def insert_articles(settings, rows=ARTICLES, start=T0) -> list[str]:
    ids = []
    with session_scope(settings) as session:
        for index, (title, summary, source, language) in enumerate(rows):
            url = f"https://{source}/news/{index}"
            article = Article(
                id=article_id(url), source=source, url=url, canonical_url=url, title=title, summary=summary,
                language=language, published_at=start + timedelta(hours=index), fetched_at=start,
                updated_at=start, content_hash=stable_id("content", title),
            )
            session.add(article)
            ids.append(article.id)
    return ids


def snapshot(settings) -> tuple[list[tuple], list[tuple]]:
    with session_scope(settings) as session:
        articles = [
            (a.id, a.language, a.embedding, a.embedding_model, a.enriched_at, a.updated_at, a.topic, a.relevance,
             a.relevance_reason, a.relevant, a.story_id, a.novel_terms)
            for a in session.scalars(select(Article).order_by(Article.id))
        ]
        stories = [
            (s.id, s.headline, s.representative_article_id, s.first_seen, s.last_seen, s.article_count,
             s.source_count, s.sources, s.language_counts, s.terms, s.centroid, s.updated_at)
            for s in session.scalars(select(Story).order_by(Story.id))
        ]
    return articles, stories


def test_enrich_end_to_end_and_rerun_is_a_no_op(settings, embedder) -> None:
    ids = insert_articles(settings)
    calls: list[tuple[int, int]] = []
    summary = enrich(settings, now=NOW, progress=lambda done, total: calls.append((done, total)))

    assert summary.enriched == len(ARTICLES)
    assert summary.relevant == 6
    # the brigade (4 articles, one German), the Kaliningrad transit ban (in English and in Russian)
    assert summary.stories_created == 2 and summary.stories_updated == 0
    assert len(summary.story_ids) == 2
    assert set(summary.to_dict()) == {
        "enriched", "relevant", "stories_created", "stories_updated", "headline_only", "promoted", "reembedded",
        "story_ids", "step_seconds"}
    # the two that name no topic term kept the static model's vector (enrichment.screen, the default `static`)
    assert summary.headline_only == 2 and summary.promoted == 0
    assert set(summary.step_seconds) == {"language", "embedding", "relevance", "clustering", "database"}
    assert all(seconds >= 0 for seconds in summary.step_seconds.values()) and summary.step_seconds["embedding"] > 0
    assert calls[0] == (0, len(ARTICLES)) and calls[-1] == (len(ARTICLES), len(ARTICLES))

    with session_scope(settings) as session:
        articles = {a.id: a for a in session.scalars(select(Article))}
        by_title = {a.title: a for a in articles.values()}
        for article in articles.values():
            assert article.enriched_at == NOW and article.updated_at == NOW
            screened = article.title in (ARTICLES[1][0], ARTICLES[6][0])
            assert article.embedding_model == (STATIC_MODEL if screened else embedder.name)
            vector = from_bytes(article.embedding)
            assert vector.shape == (384,) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
            assert article.topic == "baltic-deployments" and article.relevance is not None
            assert article.relevance_reason
        assert not by_title[ARTICLES[1][0]].relevant and by_title[ARTICLES[1][0]].story_id is None
        assert not by_title[ARTICLES[6][0]].relevant
        russian = by_title[ARTICLES[5][0]]
        assert russian.language == "ru"  # declared "en", confidently Russian
        assert russian.relevant and "Калининград" in russian.relevance_reason
        brigade = by_title[ARTICLES[0][0]]
        assert brigade.relevant
        assert brigade.relevance_reason.startswith("terms: brigade in Lithuania, Panzerbrigade 45, troops")
        story = session.get(Story, brigade.story_id)
        assert story.article_count == 4  # three phrasings (one German) and the 5,000 update
        assert story.language_counts == {"en": 3, "de": 1}
        assert story.source_count == 4
        update = by_title[ARTICLES[7][0]]
        assert update.story_id == story.id and "5000" in update.novel_terms and "Rukla" in update.novel_terms
        kaliningrad = session.get(Story, by_title[ARTICLES[4][0]].story_id)
        # the multilingual model ties the Russian article to the English one on the same event
        assert kaliningrad.id != story.id and russian.story_id == kaliningrad.id
        assert kaliningrad.language_counts == {"en": 1, "ru": 1}
        assert session.scalar(select(func.sum(Story.article_count))) == summary.relevant

    before = snapshot(settings)
    again = enrich(settings, now=NOW + timedelta(hours=1))
    assert again.to_dict() == {
        "enriched": 0, "relevant": 0, "stories_created": 0, "stories_updated": 0, "headline_only": 0, "promoted": 0,
        "reembedded": 0, "story_ids": [], "step_seconds": {},
    }
    assert snapshot(settings) == before
    assert sorted(ids) == sorted(a[0] for a in before[0])


def test_second_run_updates_existing_stories(settings, embedder) -> None:
    insert_articles(settings, ARTICLES[:1])
    first = enrich(settings, now=NOW)
    assert first.stories_created == 1
    insert_articles(settings, [("Bundeswehr brigade in Lithuania now has 4,800 troops, Berlin says", "", "lrt.lt", "en")],
                    start=T0 + timedelta(hours=5))
    second = enrich(settings, now=NOW + timedelta(hours=1))
    assert second.enriched == 1 and second.stories_created == 0 and second.stories_updated == 1
    assert second.story_ids == first.story_ids


def test_existing_embeddings_of_the_same_model_are_kept(settings, embedder) -> None:
    ids = insert_articles(settings, ARTICLES[:2])
    marker = np.zeros(384, dtype=np.float32)
    marker[0] = 1.0
    with session_scope(settings) as session:
        same, other = (session.get(Article, i) for i in ids)
        same.embedding, same.embedding_model = to_bytes(marker), embedder.name
        other.embedding, other.embedding_model = to_bytes(marker), "another-model"
    enrich(settings, now=NOW)
    with session_scope(settings) as session:
        same, other = (session.get(Article, i) for i in ids)
        assert np.array_equal(from_bytes(same.embedding), marker)  # not re-embedded
        assert not np.array_equal(from_bytes(other.embedding), marker)
        assert other.embedding_model == STATIC_MODEL  # re-embedded as the screen says: off-topic, static


def test_a_crash_loses_only_the_unfinished_batch(settings, embedder) -> None:
    insert_articles(settings)

    def crash_after_first_batch(done: int, total: int) -> None:
        if done == 3:
            raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        enrich(settings, now=NOW, progress=crash_after_first_batch, batch_size=3)
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).where(Article.enriched_at.is_not(None))) == 3

    rest = enrich(settings, now=NOW, batch_size=3)
    assert rest.enriched == len(ARTICLES) - 3
    with session_scope(settings) as session:
        relevant = session.scalar(select(func.count()).where(Article.relevant.is_(True)))
        in_stories = session.scalar(select(func.count()).where(Article.story_id.is_not(None)))
        counted = session.scalar(select(func.sum(Story.article_count)))
        assert relevant == in_stories == counted == 6  # every relevant article counted exactly once


def test_a_prefetched_embedding_is_used_only_for_the_text_it_was_made_of(settings, embedder) -> None:
    """Embeddings are computed ahead of the batches; an article edited in between (the collector updated its
    summary) is embedded again from its current text."""
    from enrichment.embeddings import article_text
    from enrichment.enrich import _embeddings
    from enrichment.screen import Embedded, Screen

    ids = insert_articles(settings, ARTICLES[:2])
    marker = np.zeros(384, dtype=np.float32)
    marker[0] = 1.0
    with session_scope(settings) as session:
        unchanged, edited = (session.get(Article, i) for i in ids)
        prefetched = {
            unchanged.id: Embedded(article_text(unchanged.title, unchanged.summary), marker, embedder.name, True),
            edited.id: Embedded(article_text(edited.title, "the summary before the edit"), marker, embedder.name, True),
        }
        screen = Screen(settings, embedder, [])
        (first, second), leads = _embeddings([unchanged, edited], settings, embedder, screen, prefetched)
        assert leads == [True, True]  # no topics: every article is read with its lead
        assert np.array_equal(first, marker) and np.array_equal(from_bytes(unchanged.embedding), marker)
        assert not np.array_equal(second, marker)
        assert np.allclose(second, embedder.passages([article_text(edited.title, edited.summary)])[0], atol=1e-5)
        assert edited.embedding_model == unchanged.embedding_model == embedder.name
