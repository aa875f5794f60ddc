"""Rich tables for the CLI. Feed text is untrusted: it is always escaped for rich markup."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rich.markup import escape
from rich.table import Table

from archive.base import SearchResult, render_highlight
from core.models import Alert, Feed, Story, StoryEvent


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


def _counts(counts: dict[str, int] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((counts or {}).items(), key=lambda kv: -kv[1]))


def highlighted(fragment: str) -> str:
    """A highlight fragment as rich markup: the text escaped, the matches in bold yellow."""
    return render_highlight(fragment, "[bold yellow]", "[/bold yellow]", escape=escape)


MODE_NAMES = {"meaning": "meaning", "hybrid": "words and meaning"}


def search_table(result: SearchResult, mode: str = "words") -> Table:
    first = (result.page - 1) * result.per_page + 1
    if mode == "words":
        found = f"{'more than ' if not result.total_exact else ''}{result.total:,} hits"
        if result.window:
            found += f" (ranked and counted: the newest {result.window:,})"
    else:
        found = f"best {result.total} by {MODE_NAMES[mode]}"
    table = Table(title=f"{found} (showing {first}-{first + len(result.hits) - 1})" if result.hits else found,
                  show_lines=True)
    table.add_column("published", no_wrap=True)
    table.add_column("source")
    table.add_column("lang")
    table.add_column("article")
    for hit in result.hits:
        doc = hit.doc
        title = highlighted(hit.highlights["title"][0]) if hit.highlights.get("title") else escape(doc.title)
        snippets = [highlighted(f) for field in ("summary", "content") for f in hit.highlights.get(field, [])]
        body = f"[bold]{title}[/bold]"
        if snippets:
            body += "\n" + " … ".join(snippets[:2])
        body += f"\n[dim]{escape(doc.url)}[/dim]"
        if doc.story_id:
            body += f"\n[dim]story {escape(doc.story_id)}[/dim]"
        table.add_row(_when(doc.published_at), escape(doc.source), escape(doc.language or "-"), body)
    return table


def facets_table(result: SearchResult, top: int = 5) -> Table:
    table = Table(title="facets", show_header=True)
    table.add_column("facet")
    table.add_column("top values (count)")
    for name, counts in result.facets.items():
        if name == "day":  # days come in date order: show the most recent ones, still in date order
            best = list(counts.items())[-top:]
        else:
            best = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        table.add_row(name, escape(", ".join(f"{k} ({v})" for k, v in best)))
    return table


def stories_table(stories: Iterable[Story], title: str = "stories") -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("last seen", no_wrap=True)
    table.add_column("headline")
    table.add_column("articles", justify="right")
    table.add_column("sources", justify="right")
    table.add_column("languages")
    table.add_column("first seen", no_wrap=True)
    table.add_column("id", style="dim")
    for story in stories:
        sources = str(story.source_count)
        if story.syndicated_outlets:
            sources += f" (+{story.syndicated_outlets} syndicated)"
        table.add_row(_when(story.last_seen), escape(story.headline), str(story.article_count),
                      sources, escape(_counts(story.language_counts)), _when(story.first_seen),
                      story.id[:12])
    return table


def event_summary(event: StoryEvent) -> str:
    """One line on what happened: the new facts of a development (with what they replace), the figures of
    a growth, the story a merge absorbed."""
    detail = event.detail or {}
    if event.kind == "development":
        replaces = detail.get("replaces") or {}
        return ", ".join(f"{replaces[f]} -> {f}" if f in replaces else f for f in event.facts or [])
    if event.kind == "growing":
        return (f"{detail.get('articles_in_window')} articles in {detail.get('window_hours')} h "
                f"(usually {detail.get('usual_per_hour')}/h)")
    if event.kind == "merged":
        return f"absorbed {detail.get('articles')} articles: {detail.get('headline', '')}"
    if event.kind == "born":
        return f"{detail.get('articles')} articles, {detail.get('sources')} sources"
    return ""


def events_table(events: Iterable[StoryEvent], headlines: dict[str, str], title: str = "story events") -> Table:
    table = Table(title=title)
    table.add_column("at", no_wrap=True)
    table.add_column("kind")
    table.add_column("story")
    table.add_column("what")
    for event in events:
        table.add_row(_when(event.at), event.kind, escape(headlines.get(event.story_id, event.story_id[:12])),
                      escape(event_summary(event)))
    return table


def alerts_table(alerts: Iterable[Alert], headlines: dict[str, str], title: str = "alerts") -> Table:
    table = Table(title=title)
    table.add_column("created", no_wrap=True)
    table.add_column("kind")
    table.add_column("story")
    table.add_column("size", justify="right")
    table.add_column("status")
    table.add_column("delivery")
    for alert in alerts:
        table.add_row(_when(alert.created_at), alert.kind, escape(headlines.get(alert.story_id or "", "-")),
                      str(alert.story_article_count), alert.status, alert.delivery or "-")
    return table


def feeds_table(feeds: Iterable[Feed], new_items: dict[int, int], silent: set[int] | None = None) -> Table:
    """Feed health: ok / failing / unhealthy (never: not polled yet), the last error class, failures in a
    row, last success, the feed's rhythm in items per day, the next fetch and why then, the silent flag."""
    silent = silent or set()
    table = Table(title="feeds")
    table.add_column("feed")
    table.add_column("lang")
    table.add_column("health")
    table.add_column("error class")
    table.add_column("fails", justify="right")
    table.add_column("last success", no_wrap=True)
    table.add_column("items/day", justify="right")
    table.add_column("next fetch", no_wrap=True)
    table.add_column("silent")
    table.add_column("new last run", justify="right")
    table.add_column("items", justify="right")
    styles = {"ok": "green", "failing": "yellow", "unhealthy": "red"}
    for feed in feeds:
        health = feed.health if feed.last_fetch_at else "never"
        shown = f"[{styles.get(health, 'dim')}]{health}[/]" + ("" if feed.enabled else " [dim](disabled)[/dim]")
        per_day = f"{feed.items_per_day:.1f}" if feed.items_per_day is not None else "-"
        next_fetch = _when(feed.next_fetch_at) if feed.next_fetch_at else "due"
        if feed.next_fetch_at and feed.schedule_reason:
            next_fetch += f" [dim]({feed.schedule_reason})[/dim]"
        table.add_row(escape(feed.name), feed.language or "-", shown, feed.last_error_class or "",
                      str(feed.consecutive_failures), _when(feed.last_success_at), per_day, next_fetch,
                      "[yellow]silent[/yellow]" if feed.id in silent else "", str(new_items.get(feed.id, "-")),
                      str(feed.items_total))
    return table
