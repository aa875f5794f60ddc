"""Online story clustering on the real model and a fresh state DB."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import select

from core.db import session_scope
from core.ids import article_id, stable_id
from core.models import Article, Story, StoryEvent
from core.vectors import from_bytes, to_bytes
from enrichment.clustering import StoryClusterer
from enrichment.embeddings import article_text
from enrichment.relevance import compile_topics

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


def priors(settings, embedder):
    """The topics' seed means, as the enrichment stage gives them to the clusterer."""
    return {p.name: p.prior for p in compile_topics(settings, embedder) if p.prior is not None}


def add_and_assign(settings, embedder, items, start=T0, step=timedelta(minutes=30), times=None):
    """Insert the articles in order (one session) and assign each as the enrichment stage does; returns the
    assignments. Items: (title, source, language) or (title, source, language, summary)."""
    items = [item if len(item) == 4 else (*item, "") for item in items]
    vectors = embedder.passages([article_text(title, summary) for title, _, _, summary in items])
    assignments = []
    with session_scope(settings) as session:
        clusterer = StoryClusterer.load(session, settings, embedder, priors(settings, embedder))
        for index, ((title, source, language, summary), vector) in enumerate(zip(items, vectors)):
            published = times[index] if times else start + index * step
            article = make_article(title, source, language, published, summary=summary)
            article.embedding = to_bytes(vector)
            article.embedding_model = embedder.name
            session.add(article)
            session.flush()
            assignments.append(clusterer.assign(session, article, vector, now=published))
        clusterer.persist(session)
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
    vector = embedder.passages([BRIGADE[0][0]])[0]
    with session_scope(settings) as session:
        article = session.scalars(select(Article)).one()
        again = StoryClusterer.load(session, settings, embedder).assign(session, article, vector, now=T0)
        assert again.story_id == first.story_id and not again.created
        assert session.get(Story, first.story_id).article_count == 1


# --- real text from the labelled corpora --------------------------------------------------------------


def uci_titles(shared_data, word: str, count: int) -> list[str]:
    """The first `count` UCI dev headlines (file order) that contain `word`."""
    with (shared_data / "clustering" / "uci-news-aggregator-dev.csv").open(encoding="utf-8", newline="") as handle:
        titles = [row["TITLE"] for row in csv.DictReader(handle) if word.lower() in row["TITLE"].lower()]
    return titles[:count]


def test_real_paraphrases_cluster_together_and_apart_from_other_stories(settings, embedder, shared_data) -> None:
    groups = [uci_titles(shared_data, word, 5) for word in ("Fyffes", "Wearhouse", "Volcano")]
    assert all(len(group) == 5 for group in groups)
    items = [(title, f"outlet{i}-{j}.com", "en") for i, titles in enumerate(zip(*groups)) for j, title in enumerate(titles)]
    assignments = add_and_assign(settings, embedder, items)
    story_of = {title: a.story_id for (title, _, _), a in zip(items, assignments)}
    stories = [{story_of[title] for title in group} for group in groups]
    assert all(len(found) == 1 for found in stories), [[a.similarity for a in assignments]]
    assert len(set.union(*stories)) == 3


def test_two_events_of_one_kind_stay_apart(settings, embedder, shared_data) -> None:
    # ECB+ topic 33: two murder trials over New York shootings that killed a bystander (a 10-year-old girl
    # in Albany, 2009; a mother in Brooklyn, 2011): same kind of news, different victims, suspects and
    # cities. Full texts, interleaved, with nothing else in the stream (the narrow-topic case: no other
    # stories to contrast). With multilingual-e5-small, 11 of the 30 ECB+ topics stay apart streamed alone
    # like this (enrichment/README.md); topic 25 (two Saints running backs on injured reserve) does not.
    rows = [json.loads(line) for line in (shared_data / "clustering" / "ecbplus-dev.jsonl").open(encoding="utf-8")]
    first = sorted((r for r in rows if r["story"] == "33ecb"), key=lambda r: r["id"])
    second = sorted((r for r in rows if r["story"] == "33ecbplus"), key=lambda r: r["id"])
    stream = [row for pair in zip(first, second) for row in pair] + first[len(second):] + second[len(first):]
    items = [(r["title"], f"{r['source'] or 'outlet'}-{i}", "en", r["text"]) for i, r in enumerate(stream)]
    assignments = add_and_assign(settings, embedder, items)
    gold_of_story: dict[str, set[str]] = {}
    for row, assignment in zip(stream, assignments):
        gold_of_story.setdefault(assignment.story_id, set()).add(row["story"])
    assert all(len(gold) == 1 for gold in gold_of_story.values()), gold_of_story
    assert len(gold_of_story) == 2  # and each event is one story


def test_a_new_number_is_a_development_with_what_it_replaces(settings, embedder, shared_data) -> None:
    titles = {t for t in uci_titles(shared_data, "Chrysler", 40)}
    items = [
        ("Chrysler Recalls 25000 Jeep Grand Cherokee, Dodge Durango SUVs", "outlet-a.com", "en"),
        ("Chrysler will recall 25000 Jeep and Dodge SUVs for brakes", "outlet-b.com", "en"),
        ("Chrysler Group issues two recalls of nearly 37000 vehicles in US", "outlet-c.com", "en"),
    ]
    assert {title for title, _, _ in items} <= titles  # real headlines of the dev file
    first, second, third = add_and_assign(settings, embedder, items)
    assert third.story_id == second.story_id == first.story_id
    assert "development" in third.events and "37000" in third.novel_terms
    with session_scope(settings) as session:
        developments = session.scalars(
            select(StoryEvent).where(StoryEvent.story_id == first.story_id, StoryEvent.kind == "development")
        ).all()
        latest = [event for event in developments if "37000" in event.facts]
        assert len(latest) == 1
        assert latest[0].facts[0] == "37000"  # numbers first
        assert latest[0].detail["replaces"] == {"37000": "25000"}
        born = session.scalars(select(StoryEvent).where(StoryEvent.kind == "born")).all()
        assert [event.story_id for event in born] == [first.story_id]  # two sources: born once


def test_converging_stories_merge_and_the_merge_is_recorded(tmp_path, embedder) -> None:
    from core.db import upgrade
    from core.settings import Settings

    # A high join threshold makes separate stories of one recall; the fourth headline is close to two of
    # them, whose centroids then reach the (low) merge threshold.
    settings = Settings(
        var_dir=tmp_path / "var", feeds_file=tmp_path / "none.yaml",
        cluster_threshold=0.55, cluster_threshold_long=0.55, cluster_merge_threshold=0.4,
    )
    upgrade(settings)
    titles = ["Chrysler Recalls 25000 Vehicles", "Chrysler recalls SUVs to fix brake pedal problem",
              "Chrysler will recall 25000 Jeep and Dodge SUVs for brakes",
              "Chrysler Recalls More Than 25000 Jeep Grand Cherokees and Dodge Durangos"]
    items = [(title, f"outlet{i}.com", "en") for i, title in enumerate(titles)]
    assignments = add_and_assign(settings, embedder, items)
    assert [a.created for a in assignments[:3]] == [True, True, True]
    bridge = assignments[3]
    # it joins one of the two "25000" stories and merges the other into it (the larger one survives)
    assert len(bridge.merged) == 1
    assert {bridge.story_id, *bridge.merged} == {assignments[0].story_id, assignments[2].story_id}
    with session_scope(settings) as session:
        absorbed = session.get(Story, bridge.merged[0])
        survivor = session.get(Story, bridge.story_id)
        assert absorbed.merged_into == survivor.id
        assert survivor.article_count == 3 and survivor.source_count == 3
        members = session.scalars(select(Article.title).where(Article.story_id == survivor.id)).all()
        assert set(members) == {titles[0], titles[2], titles[3]}
        merged = session.scalars(select(StoryEvent).where(StoryEvent.kind == "merged")).one()
        assert merged.story_id == survivor.id and merged.detail["absorbed"] == absorbed.id


def test_a_burst_after_a_quiet_spell_is_growing(settings, embedder) -> None:
    # two articles a day apart, then four within an hour: four times the usual rate and more
    times = [T0, T0 + timedelta(hours=24)] + [T0 + timedelta(hours=48, minutes=15 * i) for i in range(4)]
    items = [(title, f"outlet{i}.com", "en") for i, (title, _, _) in enumerate(BRIGADE + BRIGADE[:2])]
    assignments = add_and_assign(settings, embedder, items, times=times)
    assert len({a.story_id for a in assignments}) == 1
    assert "born" in assignments[1].events  # two sources
    growing = [i for i, a in enumerate(assignments) if "growing" in a.events]
    assert growing == [5]  # the fourth article of the burst; one event per window
    with session_scope(settings) as session:
        event = session.scalars(select(StoryEvent).where(StoryEvent.kind == "growing")).one()
        assert event.detail["articles_in_window"] == 4


def test_events_are_stored_once_across_runs(settings, embedder) -> None:
    add_and_assign(settings, embedder, BRIGADE[:2])
    add_and_assign(settings, embedder, BRIGADE[2:], start=T0 + timedelta(hours=2))  # a second run
    with session_scope(settings) as session:
        kinds = session.scalars(select(StoryEvent.kind)).all()
        assert kinds.count("born") == 1
        story = session.scalars(select(Story)).one()
        assert story.article_count == 4 and story.born_at == T0 + timedelta(minutes=30)


def test_a_syndicated_copy_joins_its_story_and_counts_once(settings, embedder) -> None:
    from test_enrichment_syndication import CHARGERS_A, CHARGERS_B, QUAKE_AFP, QUAKE_AP

    def split(text: str) -> tuple[str, str]:
        title, _, summary = text.partition(". ")
        return title, summary

    items = [
        (*split(CHARGERS_A)[:1], "apnews.com", "en", split(CHARGERS_A)[1]),
        (*split(QUAKE_AP)[:1], "apnews.com", "en", split(QUAKE_AP)[1]),
        (*split(CHARGERS_B)[:1], "sandiegouniontribune.com", "en", split(CHARGERS_B)[1]),  # the AP copy
        (*split(QUAKE_AFP)[:1], "afp.com", "en", split(QUAKE_AFP)[1]),  # same quake, its own text
    ]
    original, quake, copy, independent = add_and_assign(settings, embedder, items)
    assert copy.syndicated_from is not None and copy.story_id == original.story_id and not copy.created
    assert independent.syndicated_from is None
    with session_scope(settings) as session:
        story = session.get(Story, original.story_id)
        assert story.article_count == 2 and story.source_count == 1 and story.syndicated_outlets == 1
        assert story.copy_sources == {"sandiegouniontribune.com": 1}
        marked = session.scalars(select(Article).where(Article.syndicated_from.is_not(None))).one()
        assert marked.title == split(CHARGERS_B)[0]
        assert session.get(Article, marked.syndicated_from).title == split(CHARGERS_A)[0]
