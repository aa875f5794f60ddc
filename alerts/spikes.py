"""Spike alerts: an hour in which a topic, or a place named in a topic's articles, is far above its own usual.

The volume of a key (`topic:<name>`, or `place:<topic>:<keyword>` for each of the topic's `places`) is the
number of its relevant articles published in the hour ending at `now`. It is a spike when it is at least
`spike_min_count` and the Poisson chance of so many articles at the key's usual hourly rate is below
`spike_p_value`. The usual rate is the mean of the hourly counts (zeros included) of the
`spike_baseline_days` before the hour, floored so that a key never seen before still needs
`spike_min_count` articles and a rare one is not alerted on two articles.

One burst is one episode (`SpikeEpisode`): the hours of a key that spike with gaps of at most
`EPISODE_GAP` between them alert once, when the episode opens. Ids are deterministic (`core.ids.stable_id`),
so evaluating again at the same `now`, or after a crash, creates nothing twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from alerts import outbox, routing
from alerts.blocks import FALLBACK_MAX, SECTION_TEXT_MAX, SOURCE_MAX, TITLE_MAX, URL_MAX, context, header, section, utc
from alerts.escape import clean_text, escape_mrkdwn, link, truncate
from core.ids import stable_id
from core.models import Alert, Article, SpikeEpisode, Story
from core.settings import Settings, TopicConfig
from enrichment.terms import Term, TermMatcher, compile_term

HOUR = timedelta(hours=1)
# No spike is claimed on less history than this: two days show the day/night rhythm at least twice.
MIN_HISTORY_HOURS = 48
# The lowest usual rate (articles per hour): a key with no or almost no history still needs
# `spike_min_count` articles, and its p-value stays finite and comparable.
RATE_FLOOR = 1 / 24
# A spike within this time of the last spiking hour of the key's episode continues that episode.
EPISODE_GAP = timedelta(hours=2)
HIGH_FACTOR = 1000  # p below spike_p_value / HIGH_FACTOR: severity high
TOP_HEADLINES = 5
STREAM_BATCH = 500  # rows per fetch when streaming a topic's titles and summaries


# --- statistics ---------------------------------------------------------------------------------------


def log_poisson_tail(count: int, rate: float) -> float:
    """log P(X >= count) for X ~ Poisson(rate), without overflow or underflow.

    Above the mean it sums the tail from `count` on as a series of ratios (each term is the previous times
    rate / (j + 1) < 1, so it converges): log P(X = count) + log(1 + r1 + r1 r2 + ...). At or below the mean the
    tail is at least about one half, so 1 - P(X < count) loses nothing; P(X < count) is a log-sum-exp.
    """
    if count <= 0:
        return 0.0
    if rate <= 0:
        return -math.inf
    log_rate = math.log(rate)
    if count > rate:
        total = term = 1.0
        j = count
        while True:
            j += 1
            term *= rate / j
            total += term
            if term <= total * 1e-17:
                break
        return count * log_rate - rate - math.lgamma(count + 1) + math.log(total)
    logs = [j * log_rate - rate - math.lgamma(j + 1) for j in range(count)]
    peak = max(logs)
    below = peak + math.log(sum(math.exp(value - peak) for value in logs))
    return math.log(-math.expm1(below)) if below < 0 else -math.inf


def poisson_tail(count: int, rate: float) -> float:
    """P(X >= count) for X ~ Poisson(rate)."""
    return math.exp(log_poisson_tail(count, rate))


# --- volumes --------------------------------------------------------------------------------------------


@dataclass
class _Group:
    """The articles of one story (or one article without a story) in the window."""

    story_id: str | None
    count: int
    newest: tuple[datetime, str, str, str, str]  # published_at, id, title, url, source


@dataclass
class Headlines:
    """The window's articles of one key, kept per story: bounded by what one hour brings."""

    groups: dict[str, _Group] = field(default_factory=dict)

    def add(self, article_id: str, story_id: str | None, published_at: datetime, title: str, url: str,
            source: str) -> None:
        key = story_id or f"article:{article_id}"
        row = (published_at, article_id, title or "", url or "", source or "")
        group = self.groups.get(key)
        if group is None:
            self.groups[key] = _Group(story_id, 1, row)
            return
        group.count += 1
        if row[:2] > group.newest[:2]:
            group.newest = row

    def top(self, n: int = TOP_HEADLINES) -> list[_Group]:
        """The biggest stories of the window first, then the newest."""
        ranked = sorted(self.groups.values(), key=lambda g: (-g.count, -g.newest[0].timestamp(), g.newest[1]))
        return ranked[:n]


@dataclass
class Volume:
    """One key's count in the window and in its baseline hours."""

    key: str
    topic: str
    place: str | None  # the configured keyword, for a place key
    hours: float  # baseline hours (the baseline days, or the history when shorter)
    count: int = 0
    baseline: int = 0
    headlines: Headlines = field(default_factory=Headlines)

    @property
    def label(self) -> str:
        return self.place or self.topic

    @property
    def mean(self) -> float:
        return self.baseline / self.hours if self.hours > 0 else 0.0

    @property
    def rate(self) -> float:
        return max(self.mean, RATE_FLOOR)


def topic_key(topic: str) -> str:
    return f"topic:{topic}"


def place_key(topic: str, keyword: str) -> str:
    return f"place:{topic}:{keyword}"


def _place_terms(topic: TopicConfig) -> list[Term]:
    """The topic's places compiled as enrichment matches them; spellings that match alike count once."""
    unique: dict[tuple, Term] = {}
    for label in topic.places:
        term = compile_term(label, "place")
        if term is not None:
            unique.setdefault((term.tokens, term.prefixes), term)
    return list(unique.values())


def _relevant(topic: str, start: datetime, end: datetime) -> list[Any]:
    """Relevant articles of `topic` published in (start, end]."""
    return [
        Article.relevant.is_(True),
        Article.topic == topic,
        Article.published_at > start,
        Article.published_at <= end,
    ]


def _first_published(session: Session, topics: list[str], now: datetime) -> dict[str, datetime]:
    # one min() per topic, not GROUP BY: the first entry of ix_articles_topic_relevant, not every article
    firsts = {topic: session.scalar(select(func.min(Article.published_at)).where(
        Article.relevant.is_(True), Article.topic == topic, Article.published_at <= now)) for topic in topics}
    return {topic: first for topic, first in firsts.items() if first is not None}


def _topic_counts(session: Session, topics: list[str], start: datetime, window_start: datetime,
                  now: datetime) -> dict[str, tuple[int, int]]:
    """topic -> (articles in the window, articles in the baseline), counted by the database."""
    in_window = func.sum(case((Article.published_at > window_start, 1), else_=0))
    rows = session.execute(
        select(Article.topic, in_window, func.count())
        .where(Article.relevant.is_(True), Article.topic.in_(topics), Article.published_at > start,
               Article.published_at <= now)
        .group_by(Article.topic)
    )
    return {topic: (int(window or 0), int(total) - int(window or 0)) for topic, window, total in rows}


def _article_rows(session: Session, topic: str, start: datetime, end: datetime, *, text: bool):
    columns = [Article.id, Article.story_id, Article.published_at, Article.title, Article.url, Article.source]
    if text:
        columns.append(Article.summary)
    return session.execute(
        select(*columns).where(*_relevant(topic, start, end)).execution_options(yield_per=STREAM_BATCH)
    )


def _place_volumes(session: Session, topic: TopicConfig, hours: float, start: datetime, window_start: datetime,
                   now: datetime) -> list[Volume]:
    """Counts of each place of the topic in its relevant articles' titles and summaries, streamed."""
    terms = _place_terms(topic)
    if not terms:
        return []
    matcher = TermMatcher(terms)
    volumes = {term.label: Volume(place_key(topic.name, term.label), topic.name, term.label, hours) for term in terms}
    for article_id, story_id, published_at, title, url, source, summary in _article_rows(
        session, topic.name, start, now, text=True
    ):
        found = {match.term.label for text in (title, summary) if text for match in matcher.find(text)}
        for label in found:
            volume = volumes[label]
            if published_at > window_start:
                volume.count += 1
                volume.headlines.add(article_id, story_id, published_at, title, url, source)
            else:
                volume.baseline += 1
    return list(volumes.values())


def _topic_headlines(session: Session, topic: str, window_start: datetime, now: datetime) -> Headlines:
    headlines = Headlines()
    for article_id, story_id, published_at, title, url, source in _article_rows(
        session, topic, window_start, now, text=False
    ):
        headlines.add(article_id, story_id, published_at, title, url, source)
    return headlines


# --- the message ----------------------------------------------------------------------------------------


def _per_hour(mean: float) -> str:
    if mean == 0:
        return "0/h"
    return f"{mean:.1f}/h" if mean >= 0.1 else "<0.1/h"


def _headline_lines(session: Session, headlines: Headlines) -> list[str]:
    lines: list[str] = []
    for group in headlines.top():
        _, _, title, url, source = group.newest
        story = session.get(Story, group.story_id) if group.story_id else None
        label = clean_text(story.headline if story is not None else title) or clean_text(title) or "(untitled)"
        line = f"• {link(url, label, max_url=URL_MAX, max_label=TITLE_MAX)}"
        if group.count > 1:
            line += f" ({group.count} articles)"
        elif clean_text(source):
            line += f" ({truncate(escape_mrkdwn(clean_text(source)), SOURCE_MAX)})"
        lines.append(line)
    return lines


def spike_message(session: Session, volume: Volume, p_value: float, settings: Settings, now: datetime) -> dict:
    """`{"text": fallback, "blocks": [...]}`: what spiked, its top stories of the hour, the test's figures."""
    what = f"{volume.place} ({volume.topic})" if volume.place else volume.topic
    title = f"Spike: {what} — {volume.count} articles in an hour (usual {_per_hour(volume.mean)})"
    blocks = [header(title)]

    heading = "*In this hour*"
    lines, size = [heading], len(heading)
    for line in _headline_lines(session, volume.headlines):
        if size + 1 + len(line) > SECTION_TEXT_MAX:
            continue  # never cut a link in half: that could leave a `<` open
        lines.append(line)
        size += 1 + len(line)
    if len(lines) > 1:
        blocks.append(section("\n".join(lines)))

    figures = (
        f"Flankwatch spike · topic {escape_mrkdwn(clean_text(volume.topic))} · key `{escape_mrkdwn(volume.key)}` · "
        f"Poisson P(X ≥ {volume.count} | λ = {volume.rate:.3g}/h) = {p_value:.2g} < {settings.spike_p_value:g} · "
        f"baseline {volume.baseline} articles in {volume.hours:.0f} h · "
        f"hour {utc(now - HOUR)} – {utc(now)}"
    )
    blocks.append(context(figures))
    return {"text": truncate(escape_mrkdwn(clean_text(title)), FALLBACK_MAX), "blocks": blocks}


# --- episodes and alerts ------------------------------------------------------------------------------------


def episode_id(key: str, started: datetime) -> str:
    return stable_id("spike", key, started.astimezone(UTC).isoformat())


def spike_alert_id(episode: str) -> str:
    return stable_id("alert", "spike", episode)


def _open_episode(session: Session, key: str, now: datetime) -> SpikeEpisode | None:
    """The key's episode whose last spiking hour is recent enough for this hour to continue it."""
    return session.scalars(
        select(SpikeEpisode)
        .where(SpikeEpisode.key == key, SpikeEpisode.last_hour >= now - EPISODE_GAP,
               SpikeEpisode.started_hour <= now)
        .order_by(SpikeEpisode.last_hour.desc(), SpikeEpisode.id)
        .limit(1)
    ).first()


def _spike(session: Session, settings: Settings, volume: Volume, p_value: float, now: datetime) -> Alert | None:
    """Extend the key's open episode, or open one with its alert (returned)."""
    episode = _open_episode(session, volume.key, now)
    if episode is not None:
        episode.last_hour = max(episode.last_hour, now)
        episode.peak_count = max(episode.peak_count or 0, volume.count)
        return None
    if volume.place is None:
        volume.headlines = _topic_headlines(session, volume.topic, now - HOUR, now)
    episode_key = episode_id(volume.key, now)
    alert_id = spike_alert_id(episode_key)
    if session.get(SpikeEpisode, episode_key) is None:
        session.add(SpikeEpisode(id=episode_key, key=volume.key, started_hour=now, last_hour=now,
                                 peak_count=volume.count, baseline_per_hour=volume.mean, alert_id=alert_id))
    alert = Alert(
        id=alert_id,
        kind="spike",
        story_id=None,
        topic=volume.topic,
        severity="high" if p_value < settings.spike_p_value / HIGH_FACTOR else "normal",
        thread_key=None,
        parent_id=None,
        payload=spike_message(session, volume, p_value, settings, now),
        detail={
            "key": volume.key,
            "count": volume.count,
            "baseline_per_hour": round(volume.mean, 4),
            "baseline_hours": round(volume.hours, 2),
            "p_value": p_value,
            "window_start": (now - HOUR).isoformat(),
            "window_end": now.isoformat(),
            "place": volume.place,
        },
        status="pending",
        attempts=0,
        created_at=now,
    )
    routing.place(session, settings, alert, now)
    return alert if outbox.add(session, alert) else None


def volumes(session: Session, settings: Settings, now: datetime) -> list[Volume]:
    """Every key's window and baseline counts at `now`; keys with too little history are left out."""
    names = [topic.name for topic in settings.topics]
    if not names:
        return []
    window_start = now - HOUR
    baseline_hours = settings.spike_baseline_days * 24
    start = window_start - baseline_hours * HOUR
    needed = min(MIN_HISTORY_HOURS, baseline_hours)
    firsts = _first_published(session, names, now)
    counts = _topic_counts(session, names, start, window_start, now)
    found: list[Volume] = []
    for topic in settings.topics:
        first = firsts.get(topic.name)
        if first is None:
            continue
        # The data of a topic starts with its first article: that is the history of its places too (a place
        # first named in this very hour is the spike to see, not a key without history).
        hours = min(float(baseline_hours), (window_start - first) / HOUR)
        if hours < needed:
            continue
        count, baseline = counts.get(topic.name, (0, 0))
        found.append(Volume(topic_key(topic.name), topic.name, None, hours, count, baseline))
        found += _place_volumes(session, topic, hours, start, window_start, now)
    return found


def spike_alerts(session: Session, settings: Settings, now: datetime) -> list[Alert]:
    """Open an episode and write one alert for each key that spikes in the hour ending at `now` and has no
    episode in progress; extend the episodes in progress. Returns the alerts created.

    Flushes but does not commit: the caller owns the transaction.
    """
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: pass a UTC-aware clock")
    now = now.astimezone(UTC)
    created = []
    for volume in volumes(session, settings, now):  # all counted before anything is written
        if volume.count < settings.spike_min_count:
            continue
        p_value = poisson_tail(volume.count, volume.rate)
        if p_value >= settings.spike_p_value:
            continue
        alert = _spike(session, settings, volume, p_value, now)
        if alert is not None:
            created.append(alert)
    session.flush()
    return created
