"""The Block Kit message of an alert (https://docs.slack.dev/reference/block-kit/blocks).

Every piece of feed text (headline, titles, source names, facts) is cleaned and escaped here, and every
text is cut to Slack's limits, so a message built here is always accepted and never pings anybody.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from alerts.escape import clean_text, escape_mrkdwn, link, truncate
from core.models import Article, Story

# Slack's limits for messages.
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
BLOCKS_MAX = 50
CONTEXT_TEXT_MAX = 2000
FALLBACK_MAX = 3000  # Slack allows 40,000; the fallback is what a notification shows, so keep it short

TOP_LINKS = 5
# Per link line (after escaping/encoding), so that five links fit one section; a longer URL is shown as
# plain title.
TITLE_MAX = 200
URL_MAX = 500
SOURCE_MAX = 60

KIND_LABELS = {"new_story": "New story", "story_update": "Story update"}


def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    # verbatim: Slack does not auto-link names or parse mentions in it; explicit <url|label> still works.
    return {"type": "mrkdwn", "text": truncate(text, limit), "verbatim": True}


def _field(title: str, value: str) -> dict[str, Any]:
    return _mrkdwn(f"*{title}*\n{value}", FIELD_MAX)


def _names(values: Iterable[str]) -> str:
    cleaned = (clean_text(str(value)) for value in values)
    return ", ".join(escape_mrkdwn(value) for value in cleaned if value)


def _ranked(counts: dict[str, int] | None) -> list[str]:
    """Keys by count (highest first), then name."""
    return [name for name, _ in sorted((counts or {}).items(), key=lambda item: (-int(item[1] or 0), item[0]))]


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return "unknown"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def headline_of(kind: str, story: Story) -> str:
    """The plain headline of the message (not escaped)."""
    headline = clean_text(story.headline) or "(untitled story)"
    return f"Update: {headline}" if kind == "story_update" else headline


def _link_line(article: Article) -> str:
    title = clean_text(article.title) or "(untitled)"
    source = truncate(escape_mrkdwn(clean_text(article.source)), SOURCE_MAX)
    line = f"• {link(article.url, title, max_url=URL_MAX, max_label=TITLE_MAX)}"
    return f"{line} ({source})" if source else line


def _links_section(articles: Sequence[Article]) -> dict[str, Any] | None:
    lines: list[str] = []
    size = len("*Top articles*")
    for article in articles[:TOP_LINKS]:
        line = _link_line(article)
        if size + 1 + len(line) > SECTION_TEXT_MAX:
            continue  # never cut a link in half: that could leave a `<` open
        lines.append(line)
        size += 1 + len(line)
    if not lines:
        return None
    return {"type": "section", "text": _mrkdwn("\n".join(["*Top articles*", *lines]), SECTION_TEXT_MAX)}


def story_message(
    kind: str,
    story: Story,
    articles: Sequence[Article],
    *,
    why: str,
    new_facts: list[str],
) -> dict[str, Any]:
    """`{"text": fallback, "blocks": [...]}` for chat.postMessage.

    `why` and `new_facts` are plain text (they may contain feed text) and are escaped here. `articles` are
    shown in the given order, the first `TOP_LINKS` of them as links.
    """
    label = KIND_LABELS.get(kind, kind)
    headline = headline_of(kind, story)
    why_text = escape_mrkdwn(clean_text(why))

    source_names = _ranked(story.sources)
    language_counts = story.language_counts or {}
    languages = [f"{code} ({language_counts[code]})" for code in _ranked(language_counts)]
    sources = f"{story.source_count}: {_names(source_names)}" if source_names else str(story.source_count)
    if story.syndicated_outlets:  # wire copies count once: say how many outlets only re-ran it
        sources += f" (syndicated by {story.syndicated_outlets} more outlet{'s' if story.syndicated_outlets != 1 else ''})"
    fields = [
        _field("Sources", sources),
        _field("Languages", _names(languages) or "unknown"),
        _field("First seen", _utc(story.first_seen)),
        _field("Articles", str(story.article_count)),
    ]
    if new_facts:
        fields.append(_field("New facts", _names(new_facts)))

    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(escape_mrkdwn(headline), HEADER_MAX), "emoji": False},
        },
        {"type": "section", "text": _mrkdwn(f"*Why it alerts:* {why_text}", SECTION_TEXT_MAX)},
        {"type": "section", "fields": fields[:FIELDS_MAX]},
    ]
    links = _links_section(articles)
    if links is not None:
        blocks.append(links)
    topic = escape_mrkdwn(clean_text(story.topic)) or "no topic"
    context = f"Flankwatch {escape_mrkdwn(label.lower())} · topic {topic} · story `{escape_mrkdwn(story.id)}`"
    blocks.append({"type": "context", "elements": [_mrkdwn(context, CONTEXT_TEXT_MAX)]})

    # The fallback is what notifications and screen readers show.
    fallback = truncate(escape_mrkdwn(f"{headline} — {clean_text(why)}"), FALLBACK_MAX)
    return {"text": fallback, "blocks": blocks[:BLOCKS_MAX]}
