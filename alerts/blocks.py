"""The Block Kit message of an alert (https://docs.slack.dev/reference/block-kit/blocks).

Every piece of feed text (headline, titles, source names, facts) is cleaned and escaped here, and every
text is cut to Slack's limits, so a message built here is always accepted and never pings anybody.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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

KIND_LABELS = {
    "new_story": "New story", "story_update": "Story update", "story_merged": "Stories merged",
    "watch_match": "Saved search", "spike": "Spike", "coverage": "Coverage", "digest": "Digest",
}  # fmt: skip


def mrkdwn(text: str, limit: int) -> dict[str, Any]:
    # verbatim: Slack does not auto-link names or parse mentions in it; explicit <url|label> still works.
    return {"type": "mrkdwn", "text": truncate(text, limit), "verbatim": True}


def field(title: str, value: str) -> dict[str, Any]:
    return mrkdwn(f"*{title}*\n{value}", FIELD_MAX)


def names(values: Iterable[str]) -> str:
    cleaned = (clean_text(str(value)) for value in values)
    return ", ".join(escape_mrkdwn(value) for value in cleaned if value)


def _ranked(counts: dict[str, int] | None) -> list[str]:
    """Keys by count (highest first), then name."""
    return [name for name, _ in sorted((counts or {}).items(), key=lambda item: (-int(item[1] or 0), item[0]))]


def utc(moment: datetime | None) -> str:
    if moment is None:
        return "unknown"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def header(text: str) -> dict[str, Any]:
    """A header block; `text` is plain (feed text or ours), cleaned and escaped here like every header."""
    text = truncate(escape_mrkdwn(clean_text(text) or "Flankwatch"), HEADER_MAX)
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": False}}


def section(text: str) -> dict[str, Any]:
    """A section of mrkdwn that the caller has escaped (`escape_mrkdwn`, `link`)."""
    return {"type": "section", "text": mrkdwn(text, SECTION_TEXT_MAX)}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(text, CONTEXT_TEXT_MAX)]}


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
    return {"type": "section", "text": mrkdwn("\n".join(["*Top articles*", *lines]), SECTION_TEXT_MAX)}


@dataclass(frozen=True)
class Provenance:
    """Who reports a story: the first outlet and when, how many independent outlets (wire copies count
    once), and the state-affiliated ones among them (name, country). Plain text: escaped when shown."""

    first_source: str = ""
    first_at: datetime | None = None
    independent: int = 0
    state_outlets: tuple[tuple[str, str], ...] = ()
    only_state: bool = False

    @property
    def single(self) -> bool:
        return self.independent <= 1

    def lead(self) -> str | None:
        """The first line an analyst must read before the rest: single source, or state media only."""
        if self.only_state:
            outlets = ", ".join(f"{name} ({country})" if country else name for name, country in self.state_outlets)
            return f"Only state-affiliated outlets report this: {outlets}"
        if self.single:
            who = self.first_source or "one outlet"
            return f"Single source: only {who} reports this so far"
        return None


def _outlet(name: str, state: dict[str, str]) -> str:
    key = clean_text(name)
    shown = escape_mrkdwn(key)
    if key in state:
        country = state[key]
        return f"{shown} ⚑ state-affiliated{f' ({escape_mrkdwn(country)})' if country else ''}"
    return shown


def _sources_field(story: Story, provenance: Provenance | None) -> str:
    state = {clean_text(name): country for name, country in (provenance.state_outlets if provenance else ())}
    outlets = ", ".join(_outlet(name, state) for name in _ranked(story.sources) if clean_text(name))
    count = f"{story.source_count} independent" if provenance is not None else str(story.source_count)
    sources = f"{count}: {outlets}" if outlets else count
    if story.syndicated_outlets:  # wire copies count once: say how many outlets only re-ran it
        sources += f" (syndicated by {story.syndicated_outlets} more outlet{'s' if story.syndicated_outlets != 1 else ''})"
    return sources


def _languages(story: Story) -> str:
    language_counts = story.language_counts or {}
    return names(f"{code} ({language_counts[code]})" for code in _ranked(language_counts)) or "unknown"


def _context(kind: str, story: Story) -> dict[str, Any]:
    label = KIND_LABELS.get(kind, kind)
    topic = escape_mrkdwn(clean_text(story.topic)) or "no topic"
    return context(f"Flankwatch {escape_mrkdwn(label.lower())} · topic {topic} · story `{escape_mrkdwn(story.id)}`")


def story_message(
    kind: str,
    story: Story,
    articles: Sequence[Article],
    *,
    why: str,
    new_facts: list[str],
    provenance: Provenance | None = None,
) -> dict[str, Any]:
    """`{"text": fallback, "blocks": [...]}` for chat.postMessage: the whole story, as a thread opens.

    `why` and `new_facts` are plain text (they may contain feed text) and are escaped here. `articles` are
    shown in the given order, the first `TOP_LINKS` of them as links. With `provenance`, the message says
    who reported first, flags state-affiliated outlets and leads with "single source" or "state media only".
    """
    headline = headline_of(kind, story)
    why_text = escape_mrkdwn(clean_text(why))
    lead = provenance.lead() if provenance is not None else None

    fields = [field("Sources", _sources_field(story, provenance)), field("Languages", _languages(story))]
    if provenance is not None and provenance.first_source:
        first = f"{escape_mrkdwn(clean_text(provenance.first_source))}, {utc(provenance.first_at or story.first_seen)}"
        fields.append(field("First reported", first))
    else:
        fields.append(field("First seen", utc(story.first_seen)))
    fields.append(field("Articles", str(story.article_count)))
    if provenance is not None:
        fields.append(field("Last seen", utc(story.last_seen)))
    if new_facts:
        fields.append(field("New facts", names(new_facts)))

    lines = [f"*{escape_mrkdwn(clean_text(lead))}*"] if lead else []
    lines.append(f"*Why it alerts:* {why_text}")
    blocks: list[dict[str, Any]] = [
        header(headline),
        section("\n".join(lines)),
        {"type": "section", "fields": fields[:FIELDS_MAX]},
    ]
    links = _links_section(articles)
    if links is not None:
        blocks.append(links)
    blocks.append(_context(kind, story))

    # The fallback is what notifications and screen readers show: the lead first.
    first = f"{clean_text(lead)}: " if lead else ""
    fallback = truncate(escape_mrkdwn(f"{first}{headline} — {clean_text(why)}"), FALLBACK_MAX)
    return {"text": fallback, "blocks": blocks[:BLOCKS_MAX]}


def reply_message(
    kind: str,
    story: Story,
    new_articles: Sequence[Article],
    *,
    summary: str,
    developments: Sequence[str],
    lead: str | None = None,
) -> dict[str, Any]:
    """A thread reply: only what is new (the developments as a diff, new sources and languages, the new
    articles as links). Plain text in, escaped here."""
    lines = [f"*{escape_mrkdwn(clean_text(lead))}*"] if lead else []
    lines.append(escape_mrkdwn(clean_text(summary)))
    blocks: list[dict[str, Any]] = [section("\n".join(lines))]
    if developments:
        bullets, size = [], len("*What is new*")
        for item in developments:
            line = f"• {escape_mrkdwn(clean_text(item))}"
            line = truncate(line, 300)
            if size + 1 + len(line) > SECTION_TEXT_MAX:
                break
            bullets.append(line)
            size += 1 + len(line)
        blocks.append(section("\n".join(["*What is new*", *bullets])))
    links = _links_section(new_articles)
    if links is not None:
        links["text"]["text"] = links["text"]["text"].replace("*Top articles*", "*New articles*", 1)
        blocks.append(links)
    blocks.append(_context(kind, story))
    parts = ([clean_text(lead)] if lead else []) + [clean_text(summary), *map(clean_text, developments[:8])]
    text = "; ".join(parts)
    fallback = truncate(escape_mrkdwn(f"{clean_text(story.headline)} — {text}"), FALLBACK_MAX)
    return {"text": fallback, "blocks": blocks[:BLOCKS_MAX]}
