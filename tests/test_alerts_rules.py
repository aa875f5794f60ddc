"""Alert rules on a real SQLite DB: new-story thresholds, updates, deterministic ids."""

from __future__ import annotations

import pytest
from alerts_support import T0, TOPIC, add_articles, add_story, alerts, minutes

from alerts.rules import evaluate
from core.db import session_scope
from core.ids import stable_id
from core.models import Story, StoryEvent
from core.settings import AlertRoute


def _sources(*names: str) -> list[dict]:
    return [{"source": name} for name in names]


@pytest.mark.parametrize(
    ("names", "fires"),
    [
        (("LRT", "LRT", "LRT"), True),  # 3 articles (alert_min_articles) from one source
        (("LRT", "Delfi"), True),  # 2 sources (alert_min_sources)
        (("LRT", "LRT"), False),  # below both
        (("LRT",), False),
    ],
)
def test_new_story_thresholds(settings, names, fires):
    settings = settings.model_copy(update={"alert_min_articles": 3, "alert_min_sources": 2})
    with session_scope(settings) as session:
        add_story(session, "s1", _sources(*names))
        created = evaluate(session, settings, T0)
    assert len(created) == int(fires)
    if fires:
        alert = created[0]
        assert alert.id == stable_id("alert", "new_story", "s1")
        assert (alert.kind, alert.status, alert.attempts) == ("new_story", "pending", 0)
        assert alert.story_article_count == len(names)
        assert alert.created_at == T0


def test_new_story_row_fields_and_no_second_row(settings):
    settings = settings.model_copy(
        update={
            "alert_routes": [AlertRoute(topic="other", channel="C0OTHER"), AlertRoute(topic=TOPIC, channel="C0BRIGADE")]
        }
    )
    with session_scope(settings) as session:
        add_story(session, "s1", _sources("LRT", "Delfi", "Tagesschau"))
        [alert] = evaluate(session, settings, T0)
        assert (alert.topic, alert.channel, alert.story_id) == (TOPIC, "C0BRIGADE", "s1")
        assert alert.payload["blocks"][0]["type"] == "header"
        assert "New story: 3 articles from 3 independent sources" in alert.payload["blocks"][1]["text"]["text"]
        assert evaluate(session, settings, T0 + minutes(10)) == []
        add_articles(session, session.get(Story, "s1"), _sources("LRT"))
        assert evaluate(session, settings, T0 + minutes(20)) == []  # grows, but 1 new article: no update
        assert len(alerts(session)) == 1


def _new(source: str, at_minute: float, *terms: str) -> dict:
    """An article enriched `at_minute` after T0 that brought `terms`."""
    return {"source": source, "enriched_at": T0 + minutes(at_minute), "novel_terms": list(terms)}


def _alerted_story(session, settings):
    """A story with a new_story alert created at T0."""
    story = add_story(session, "s1", _sources("LRT", "Delfi", "Tagesschau"))
    [first] = evaluate(session, settings, T0)
    return story, first


def test_update_needs_enough_new_articles(settings):
    with session_scope(settings) as session:
        story, _ = _alerted_story(session, settings)
        add_articles(session, story, [{"source": "LRT", "enriched_at": T0 + minutes(30), "novel_terms": ["5000"]}])
        assert evaluate(session, settings, T0 + minutes(120)) == []  # 1 < update_min_new_articles (2)


def test_update_needs_the_interval(settings):
    with session_scope(settings) as session:
        story, _ = _alerted_story(session, settings)
        add_articles(
            session,
            story,
            [_new("LRT", 10, "5000"), _new("Delfi", 20)],
        )
        assert evaluate(session, settings, T0 + minutes(59)) == []  # < update_min_interval_minutes (60)
        assert len(evaluate(session, settings, T0 + minutes(60))) == 1


def test_update_needs_novelty(settings):
    with session_scope(settings) as session:
        story, _ = _alerted_story(session, settings)
        add_articles(
            session,
            story,
            [
                {"source": "LRT", "enriched_at": T0 + minutes(30), "novel_terms": []},
                {"source": "delfi ", "enriched_at": T0 + minutes(40), "novel_terms": None},  # same source, other case
            ],
        )
        assert evaluate(session, settings, T0 + minutes(120)) == []


def test_update_lists_new_facts_and_is_deterministic(settings):
    with session_scope(settings) as session:
        story, first = _alerted_story(session, settings)
        new = add_articles(
            session,
            story,
            [
                {"source": "LRT", "enriched_at": T0 + minutes(30), "novel_terms": ["5000", "Rukla"]},
                {"source": "Delfi", "enriched_at": T0 + minutes(50), "novel_terms": ["rukla", "Panzerbrigade 45"]},
            ],
        )
        now = T0 + minutes(90)
        [update] = evaluate(session, settings, now)
        assert update.id == stable_id("alert", "story_update", "s1", new[1].id)  # newest article
        assert (update.kind, update.story_article_count, update.created_at) == ("story_update", 5, now)
        # a reply in the story's thread, with only what is new
        assert (update.parent_id, update.thread_key, update.channel) == (first.id, "s1", first.channel)
        summary, diff, links, _ = update.payload["blocks"]
        assert summary["text"]["text"] == "2 new articles · now 5 articles from 3 independent outlets"
        assert diff["text"]["text"] == "*What is new*\n• new figure: 5000\n• new name: Rukla\n• new name: Panzerbrigade 45"
        assert update.detail["weight"] == 4.0 and update.broadcast  # a new figure and two names: 2 + 1 + 1
        assert links["text"]["text"].startswith("*New articles*")
        assert links["text"]["text"].index(new[1].url) < links["text"]["text"].index(new[0].url)  # newest first

        assert evaluate(session, settings, now) == []  # same clock again: nothing new
        assert evaluate(session, settings, now + minutes(200)) == []  # no article since the update
        assert [a.kind for a in alerts(session)] == ["new_story", "story_update"]


def test_update_for_a_new_source(settings):
    with session_scope(settings) as session:
        story, _ = _alerted_story(session, settings)
        add_articles(
            session,
            story,
            [_new("LRT", 30), _new("Wirtualna Polska", 31)],
        )
        [update] = evaluate(session, settings, T0 + minutes(61))
        diff = update.payload["blocks"][1]["text"]["text"]
        assert diff == "*What is new*\n• new source: Wirtualna Polska"
        assert update.detail["weight"] == 1.0 and not update.broadcast  # one more outlet: in the thread only


def test_second_update_counts_from_the_last_alert(settings):
    with session_scope(settings) as session:
        story, _ = _alerted_story(session, settings)
        add_articles(
            session,
            story,
            [_new("LRT", 30, "5000"), _new("LRT", 31)],
        )
        [first_update] = evaluate(session, settings, T0 + minutes(61))
        add_articles(
            session,
            story,
            [_new("LRT", 70, "Pabradė"), _new("LRT", 80)],
        )
        assert evaluate(session, settings, T0 + minutes(100)) == []  # 39 min after the last alert
        [second] = evaluate(session, settings, T0 + minutes(121))
        assert second.id != first_update.id
        assert second.detail["developments"] == ["new name: Pabradė"]
        assert "5000" not in second.payload["blocks"][1]["text"]["text"]


def test_future_articles_are_not_seen(settings):
    """With a simulated clock, an article enriched after `now` does not exist yet."""
    with session_scope(settings) as session:
        story, _ = _alerted_story(session, settings)
        add_articles(
            session,
            story,
            [_new("LRT", 30, "5000"), _new("Delfi", 300)],
        )
        assert evaluate(session, settings, T0 + minutes(120)) == []


def test_naive_clock_is_refused(settings):
    with session_scope(settings) as session, pytest.raises(ValueError, match="naive"):
        evaluate(session, settings, T0.replace(tzinfo=None))


def test_update_shows_the_number_a_development_replaces(settings):
    with session_scope(settings) as session:
        story, _ = _alerted_story(session, settings)
        new = add_articles(
            session,
            story,
            [
                {"source": "LRT", "enriched_at": T0 + minutes(30), "novel_terms": ["5000", "Rukla"]},
                {"source": "Delfi", "enriched_at": T0 + minutes(50), "novel_terms": []},
            ],
        )
        session.add(StoryEvent(id="e1", story_id=story.id, kind="development", at=T0 + minutes(30),
                               article_id=new[0].id, facts=["5000", "Rukla"], detail={"replaces": {"5000": "4800"}}))
        session.flush()
        [update] = evaluate(session, settings, T0 + minutes(90))
        assert update.detail["developments"] == ["4800 → 5000", "new name: Rukla"]
        assert "• 4800 → 5000" in update.payload["blocks"][1]["text"]["text"]
