"""Spike alerts on a real SQLite DB: Poisson test against the hourly baseline, episodes, places, routing."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from slack_sdk.models.blocks import Block
from sqlalchemy import func, select

from alerts.spikes import episode_id, log_poisson_tail, poisson_tail, spike_alert_id, spike_alerts
from core.db import session_scope
from core.ids import stable_id
from core.models import Alert, Article, SpikeEpisode, Story
from core.settings import AlertRoute, TopicConfig

NOW = datetime(2025, 3, 6, 12, 0, tzinfo=UTC)
TOPIC = "lithuania-brigade"
KEY = f"topic:{TOPIC}"


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def _settings(settings, **extra):
    topic = TopicConfig(name=TOPIC, keywords=["Brigade*"], places=["Rukla", "Rūdnink*"])
    other = TopicConfig(name="other", keywords=["Hafen*"])
    update = {"topics": [topic, other], "alert_routes": [], "slack_channel": "C0SPIKES", **extra}
    return settings.model_copy(update=update)


def _add(session, times, *, title="Brigade drill report", summary="", topic=TOPIC, relevant=True,
         story_id=None, source="LRT", url=None) -> list[Article]:
    """Articles published at `times`; `title` may be a callable of the article's number."""
    start = session.scalar(select(func.count()).select_from(Article)) or 0
    added = []
    for offset, published in enumerate(times):
        number = start + offset
        link = url or f"https://{source.lower()}.example/{number}"
        article = Article(
            id=stable_id("article", str(number)),
            source=source,
            url=link,
            canonical_url=f"{link}#{number}",
            title=title(number) if callable(title) else title,
            summary=summary,
            language="en",
            published_at=published,
            fetched_at=published,
            updated_at=published,
            content_hash=stable_id("hash", str(number)),
            enriched_at=published,
            topic=topic,
            relevance=0.9 if relevant else 0.1,
            relevant=relevant,
            story_id=story_id,
        )
        session.add(article)
        added.append(article)
    session.flush()
    return added


def _story(session, story_id: str, headline: str) -> Story:
    story = Story(id=story_id, topic=TOPIC, headline=headline, first_seen=NOW, last_seen=NOW,
                  centroid=b"\x00" * 16, created_at=NOW, updated_at=NOW)
    session.add(story)
    session.flush()
    return story


def _every(step_hours: float, span_hours: float, end: datetime | None = None) -> list[datetime]:
    """One time every `step_hours` going back `span_hours` from `end` (default: half an hour before the window)."""
    end = end or NOW - hours(1.5)
    count = int(span_hours / step_hours) + 1
    return [end - hours(step_hours * i) for i in range(count)]


def _burst(n: int, end: datetime = NOW) -> list[datetime]:
    """`n` times inside the hour ending at `end`."""
    return [end - timedelta(minutes=59) + timedelta(seconds=i * 3540 // n) for i in range(n)]


def _steady(session) -> None:
    """1 article every 2 hours for 3 days: 36 articles, history 70.5 hours before the window."""
    _add(session, _every(2, 70))


def _validate(payload: dict) -> None:
    assert 0 < len(payload["blocks"]) <= 50
    for block in payload["blocks"]:
        Block.parse(block).validate_json()
    header = payload["blocks"][0]
    assert header["type"] == "header" and len(header["text"]["text"]) <= 150


def _all(session, model):
    session.expire_all()
    return list(session.scalars(select(model)))


# --- the Poisson tail ---------------------------------------------------------------------------------------


def _exact_tail(count: int, rate: Fraction) -> float:
    """P(X >= count) summed in exact rationals (the tail beyond 150 more terms is far below 1e-15)."""
    if count <= rate:
        below = sum(rate**j / math.factorial(j) for j in range(count))
        return 1.0 - math.exp(-rate) * float(below)
    return math.exp(-rate) * float(sum(rate**j / math.factorial(j) for j in range(count, count + 150)))


@pytest.mark.parametrize(
    ("count", "rate"),
    [(1, Fraction(1, 2)), (3, Fraction(1, 2)), (5, Fraction(1, 24)), (12, Fraction(1, 2)), (10, Fraction(4)),
     (4, Fraction(4)), (3, Fraction(19, 2)), (30, Fraction(20)), (60, Fraction(1, 3))],
)
def test_poisson_tail_matches_the_exact_sum(count, rate):
    assert poisson_tail(count, float(rate)) == pytest.approx(_exact_tail(count, rate), rel=1e-9)


def test_poisson_tail_is_stable_at_the_extremes():
    assert poisson_tail(0, 3.0) == 1.0
    assert poisson_tail(5, 0.0) == 0.0
    # 500 articles against 0.5/h: far below float's range, but its log is exact (log P(X = 500) dominates)
    log_p = log_poisson_tail(500, 0.5)
    assert math.isfinite(log_p)
    assert log_p == pytest.approx(500 * math.log(0.5) - 0.5 - math.lgamma(501), abs=1e-2)
    assert 0.4 < poisson_tail(1000, 1000.0) < 0.6  # at the mean of a huge rate
    assert poisson_tail(10, 5000.0) == pytest.approx(1.0)
    # 2.8 sigma above a huge mean: the terms summed one by one in log space agree
    direct = sum(math.exp(j * math.log(5000) - 5000 - math.lgamma(j + 1)) for j in range(5200, 6500))
    assert poisson_tail(5200, 5000.0) == pytest.approx(direct, rel=1e-9)
    assert 0.002 < direct < 0.003


# --- topic spikes and episodes -------------------------------------------------------------------------------


def test_burst_after_a_steady_baseline_alerts_once_and_extends_its_episode(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        _steady(session)
        _add(session, _burst(12))
        [alert] = spike_alerts(session, settings, NOW)

        first_episode = episode_id(KEY, NOW)
        assert alert.id == spike_alert_id(first_episode) == stable_id("alert", "spike", first_episode)
        assert (alert.kind, alert.topic, alert.status, alert.channel) == ("spike", TOPIC, "pending", "C0SPIKES")
        assert (alert.thread_key, alert.parent_id, alert.story_id) == (None, None, None)
        assert alert.severity == "high"  # p ~ 1e-12, far below spike_p_value / 1000
        detail = alert.detail
        assert (detail["key"], detail["count"], detail["place"]) == (KEY, 12, None)
        assert detail["baseline_per_hour"] == pytest.approx(36 / 70.5, abs=1e-3)
        assert detail["p_value"] == pytest.approx(poisson_tail(12, 36 / 70.5), rel=1e-3)
        assert detail["p_value"] < settings.spike_p_value / 1000
        assert (detail["window_start"], detail["window_end"]) == ((NOW - hours(1)).isoformat(), NOW.isoformat())

        header = alert.payload["blocks"][0]["text"]["text"]
        assert header == f"Spike: {TOPIC} — 12 articles in an hour (usual 0.5/h)"
        figures = alert.payload["blocks"][-1]["elements"][0]["text"]
        assert "P(X ≥ 12 | λ = 0.511/h)" in figures and "baseline 36 articles in 70 h" in figures
        _validate(alert.payload)
        [episode] = _all(session, SpikeEpisode)
        assert (episode.id, episode.key, episode.alert_id, episode.peak_count) == (first_episode, KEY, alert.id, 12)

    with session_scope(settings) as session:  # the same `now` again (a re-run, or a retry after a crash)
        assert spike_alerts(session, settings, NOW) == []

    with session_scope(settings) as session:  # an hour later, still high: the episode goes on, no alert
        _add(session, _burst(15, NOW + hours(1)))
        assert spike_alerts(session, settings, NOW + hours(1)) == []
        [episode] = _all(session, SpikeEpisode)
        assert (episode.started_hour, episode.last_hour, episode.peak_count) == (NOW, NOW + hours(1), 15)
        assert spike_alerts(session, settings, NOW + hours(2)) == []  # quiet again: nothing to say

    with session_scope(settings) as session:  # 4 quiet hours after the last spiking one: a new burst alerts
        _add(session, _burst(12, NOW + hours(5)))
        [again] = spike_alerts(session, settings, NOW + hours(5))
        assert again.id == spike_alert_id(episode_id(KEY, NOW + hours(5)))
        # the earlier bursts are part of the baseline now: 36 + 12 + 15 articles in 75.5 hours
        assert again.detail["baseline_per_hour"] == pytest.approx(63 / 75.5, abs=1e-3)
        assert len(_all(session, SpikeEpisode)) == 2
        assert len(_all(session, Alert)) == 2


def test_a_burst_in_the_gap_of_an_episode_continues_it(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        _steady(session)
        _add(session, _burst(12))
        assert len(spike_alerts(session, settings, NOW)) == 1
        _add(session, _burst(12, NOW + hours(2)))  # one quiet hour in between: the same episode
        assert spike_alerts(session, settings, NOW + hours(2)) == []
        [episode] = _all(session, SpikeEpisode)
        assert episode.last_hour == NOW + hours(2)


def test_a_burst_under_the_minimum_count_does_not_alert(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        _add(session, _every(12, 60))  # 6 articles in 60.5 hours: 0.1/h
        _add(session, _burst(4))  # P(X >= 4 | 0.1) ~ 4e-6: improbable enough, but 4 < spike_min_count (5)
        assert poisson_tail(4, 6 / 60.5) < settings.spike_p_value
        assert spike_alerts(session, settings, NOW) == []
        assert _all(session, SpikeEpisode) == []
        [alert] = spike_alerts(session, settings.model_copy(update={"spike_min_count": 4}), NOW)
        assert alert.detail["count"] == 4


def test_a_usual_busy_hour_does_not_alert(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        _add(session, _every(0.25, 70))  # 4 an hour
        _add(session, _burst(8))  # P(X >= 8 | 4) ~ 0.05
        assert spike_alerts(session, settings, NOW) == []


def test_a_key_with_less_than_48_hours_of_history_does_not_alert(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        _add(session, _every(2, 30))  # history since the first article: 31.5 hours
        _add(session, _burst(12))
        _add(session, [NOW - hours(200)], topic="other")  # another topic's history is not this one's
        _add(session, [NOW - hours(200)], relevant=False)  # nor an irrelevant article's
        assert spike_alerts(session, settings, NOW) == []
        _add(session, [NOW - hours(60)])  # with one older article the history is long enough
        [alert] = spike_alerts(session, settings, NOW)
        assert alert.detail["key"] == KEY


def test_only_the_baseline_days_count(settings):
    settings = _settings(settings, spike_baseline_days=3)
    with session_scope(settings) as session:
        _add(session, _every(0.1, 48, end=NOW - hours(80)))  # 10 an hour, but longer ago than 3 days
        _steady(session)
        _add(session, _burst(12))
        [alert] = spike_alerts(session, settings, NOW)
        assert alert.detail["baseline_hours"] == 72
        assert alert.detail["baseline_per_hour"] == pytest.approx(36 / 72, abs=1e-3)


def test_naive_now_is_refused(settings):
    with session_scope(settings) as session, pytest.raises(ValueError, match="naive"):
        spike_alerts(session, _settings(settings), NOW.replace(tzinfo=None))


# --- places ----------------------------------------------------------------------------------------------


def test_place_spike_alerts_for_the_place_not_the_busy_topic(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        _add(session, _every(0.1, 70), title="Brigade exercise near Vilnius")  # the topic: 10 an hour
        rukla = ["Troops arrive in Rukla", "RUKLA base expands", "Rūkla: new barracks", "Brigade at rukla"]
        _add(session, _burst(4), title=lambda n: rukla[n % 4])
        _add(session, _burst(4), title=lambda n: rukla[n % 4] + " again")
        _add(session, _burst(1), title="Convoy on the move", summary="The convoy reached Rukla at noon.")
        _add(session, _burst(6), title="Drill at the Rudninkų range")  # "Rūdnink*": any ending, no diacritics
        # not counted: an irrelevant article, another topic's, a longer word that merely starts like the place
        _add(session, _burst(3), title="Rukla again", relevant=False)
        _add(session, _burst(3), title="Rukla harbour", topic="other")
        _add(session, _burst(2), title="Ruklanai village fair")
        created = spike_alerts(session, settings, NOW)

        # 17 topic articles against 10/h: P ~ 0.03 is no spike; the places had never been named before
        by_key = {alert.detail["key"]: alert for alert in created}
        assert set(by_key) == {f"place:{TOPIC}:Rukla", f"place:{TOPIC}:Rūdnink*"}
        rukla_alert = by_key[f"place:{TOPIC}:Rukla"]
        assert (rukla_alert.detail["place"], rukla_alert.detail["count"], rukla_alert.topic) == ("Rukla", 9, TOPIC)
        assert rukla_alert.detail["baseline_per_hour"] == 0
        assert by_key[f"place:{TOPIC}:Rūdnink*"].detail["count"] == 6
        header = rukla_alert.payload["blocks"][0]["text"]["text"]
        assert header == f"Spike: Rukla ({TOPIC}) — 9 articles in an hour (usual 0/h)"
        links = rukla_alert.payload["blocks"][1]["text"]["text"]
        assert links.count("\n•") == 5 and "Rukla" in links
        assert "Drill at the" not in links and "Ruklanai" not in links and "harbour" not in links
        for alert in created:
            _validate(alert.payload)
        assert {e.key for e in _all(session, SpikeEpisode)} == set(by_key)
        assert spike_alerts(session, settings, NOW) == []


# --- the message ---------------------------------------------------------------------------------------------


def test_the_message_lists_the_hours_stories_and_escapes_feed_text(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        _steady(session)
        _story(session, "s1", "<!here> Brigade <@U999> moves")
        _add(session, _burst(7), story_id="s1", title="Story article", url="https://lrt.example/a|b><!channel>")
        hostile = "<!channel> Brigade <@U123> & <https://evil.example|click>"
        _add(session, _burst(6), title=hostile, source="<!everyone>")
        for n in range(3):
            _add(session, _burst(1), title=f"Loose article {n}")
        [alert] = spike_alerts(session, settings, NOW)

    _validate(alert.payload)
    text = json.dumps(alert.payload, ensure_ascii=False)
    for control in ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<@U999>", "<https://evil"):
        assert control not in text
    links = alert.payload["blocks"][1]["text"]["text"].split("\n")
    assert links[0] == "*In this hour*"
    assert len(links) == 1 + 5  # at most five headlines
    # the biggest story first, by its headline, linked to its newest article of the hour (URL made safe)
    assert links[1].startswith("• <https://lrt.example/a%7Cb%3E%3C!channel%3E|&lt;!here&gt; Brigade")
    assert links[1].endswith("(7 articles)")
    assert "&lt;!channel&gt; Brigade &lt;@U123&gt; &amp; &lt;https://evil.example" in links[2]
    assert links[2].endswith("(&lt;!everyone&gt;)")
    assert "<!" not in alert.payload["text"] and "Spike:" in alert.payload["text"]


@pytest.mark.parametrize(
    ("quiet_hours", "status", "reason"), [("11:00-13:00", "held", "quiet_hours"), ("00:00-06:00", "pending", None)]
)
def test_the_route_of_the_topic_takes_it_and_quiet_hours_hold_it(settings, quiet_hours, status, reason):
    route = AlertRoute(name="brigade", topic=TOPIC, channel="C0BRIGADE", quiet_hours=quiet_hours)
    settings = _settings(settings, alert_routes=[route])
    with session_scope(settings) as session:
        _steady(session)
        _add(session, _burst(12))
        [alert] = spike_alerts(session, settings, NOW)
    with session_scope(settings) as session:
        stored = session.get(Alert, alert.id)
        assert (stored.route, stored.channel, stored.status, stored.held_reason) == (
            "brigade", "C0BRIGADE", status, reason
        )
