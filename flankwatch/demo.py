"""`flankwatch demo`: replay real news through the real pipeline, with no network.

Items from `../shared/data/` are grouped per outlet and served as growing RSS feeds by a local server on
127.0.0.1; a simulated clock moves forward one cycle at a time and each cycle runs every stage (conditional
GET, parsing, enrichment, archive, alerts), so stories form and grow as they did. The demo writes into the
embedded default (the same state DB and archive that `flankwatch search` reads); its feeds are registered
with origin "demo" and disabled again at the end, so a scheduled run never polls them. Re-running the demo
is idempotent: nothing is duplicated, and it shows the stories and alerts of the earlier replay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from core.db import session_scope, upgrade
from core.models import Feed
from core.settings import PROJECT_ROOT, Settings
from flankwatch.pipeline import run_once
from flankwatch.replay import ReplayItem, cycle_clocks, load_items, select as select_items
from flankwatch.replay_server import ReplayServer

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"


@dataclass
class DemoResult:
    items: int
    outlets: int
    cycles: int
    new_articles: int = 0
    relevant: int = 0
    story_ids: set[str] = field(default_factory=set)
    alert_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def topical_filter(settings: Settings) -> Callable[[str], bool]:
    """Pre-selection of replay items by the topic profiles' own terms: a strong term, or a place together
    with another keyword (the keyword evidence that alone makes an article relevant)."""
    from enrichment.embeddings import get_embedder
    from enrichment.relevance import PLACE_AND_KEYWORD, compile_topics, keyword_evidence

    profiles = compile_topics(settings, get_embedder(settings.embedding_model))
    return lambda text: any(keyword_evidence(p.matcher.find(text)) >= PLACE_AND_KEYWORD for p in profiles)


def register_feeds(settings: Settings, server: ReplayServer) -> None:
    """One demo feed per outlet, found again by name on a later demo (the server's port changes)."""
    with session_scope(settings) as session:
        existing = {f.name: f for f in session.scalars(select(Feed).where(Feed.origin == "demo"))}
        for outlet in server.outlets:
            feed = existing.get(outlet)
            if feed is None:
                feed = Feed(name=outlet, url=server.feed_url(outlet), origin="demo")
                session.add(feed)
            feed.url = server.feed_url(outlet)
            feed.language = server.language(outlet)
            feed.enabled = True
            feed.etag = None
            feed.next_fetch_at = None  # the replay restarts its clock: every feed is due in its first cycle


def disable_feeds(settings: Settings) -> None:
    with session_scope(settings) as session:
        for feed in session.scalars(select(Feed).where(Feed.origin == "demo")):
            feed.enabled = False


def run_demo(
    settings: Settings,
    *,
    data_dir: Path = DEFAULT_DATA,
    limit: int = 400,
    cycles: int = 16,
    console: Console | None = None,
) -> DemoResult:
    console = console or Console()
    if not data_dir.exists():
        raise FileNotFoundError(f"demo data not found at {data_dir} (expected ../shared/data beside the project)")
    upgrade(settings)
    # The replay server is the demo's own, on 127.0.0.1: the SSRF guard and per-host politeness do not apply.
    settings = settings.model_copy(update={"allow_private_addresses": True, "fetch_host_delay_seconds": 0.0,
                                           "fetch_per_host": settings.fetch_concurrency})
    items: list[ReplayItem] = select_items(load_items(data_dir), topical=topical_filter(settings), limit=limit)
    clocks = cycle_clocks(items, cycles)
    result = DemoResult(items=len(items), outlets=len({i.outlet for i in items}), cycles=len(clocks))
    console.print(f"Replaying {result.items} real items from {result.outlets} outlets in {result.cycles} cycles "
                  f"({clocks[0]:%Y-%m-%d} .. {clocks[-1]:%Y-%m-%d}, simulated time).")
    with ReplayServer(items) as server:
        register_feeds(settings, server)
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console, transient=False) as bar:
                task = bar.add_task("demo cycles", total=len(clocks))
                for clock in clocks:
                    server.clock = clock
                    bar.update(task, description=f"cycle at {clock:%Y-%m-%d %H:%M}")
                    summary = run_once(settings, now=clock, run_id=f"demo-{clock:%Y%m%dT%H%M%S}", origin="demo")
                    result.new_articles += summary.stages.get("collect", {}).get("new_articles", 0)
                    result.relevant += summary.stages.get("enrich", {}).get("relevant", 0)
                    result.story_ids.update(summary.stages.get("enrich", {}).get("story_ids", []))
                    result.alert_ids.extend(summary.stages.get("alert", {}).get("alert_ids", []))
                    result.errors.extend(f"{clock:%Y-%m-%d}: {stage}: {err}" for stage, err in summary.errors.items())
                    bar.advance(task)
        finally:
            disable_feeds(settings)
    return result
