"""Helpers of the collector tests: settings with a feeds file served on 127.0.0.1, and reading back results."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import func, select

from core.db import session_scope
from core.models import Feed, FetchRecord
from core.settings import Settings

RSS_ITEM = "<item><title>{title}</title><link>https://outlet.example/{n}</link><pubDate>{date}</pubDate></item>"


def configure(settings: Settings, tmp_path: Path, feeds: dict[str, str | dict], **overrides: object) -> Settings:
    """Settings whose feeds file lists `feeds` (name -> url or feed fields), with small HTTP limits for tests,
    the SSRF guard lifted (the servers are on 127.0.0.1) and no politeness delay unless asked for."""
    entries = [{"name": name, **({"url": spec} if isinstance(spec, str) else spec)} for name, spec in feeds.items()]
    path = tmp_path / "feeds.yaml"
    path.write_text(yaml.safe_dump({"feeds": entries}, allow_unicode=True))
    values: dict[str, object] = {
        "feeds_file": path,
        "http_connect_timeout": 1.0,
        "http_read_timeout": 0.5,
        "http_total_timeout": 1.0,
        "http_max_bytes": 2_000_000,
        "fetch_concurrency": 4,
        "fetch_host_delay_seconds": 0.0,
        "allow_private_addresses": True,
    }
    values.update(overrides)
    return settings.model_copy(update=values)


def records(settings: Settings, run_id: str) -> dict[str, FetchRecord]:
    with session_scope(settings) as session:
        rows = session.execute(
            select(Feed.name, FetchRecord)
            .join(FetchRecord, FetchRecord.feed_id == Feed.id)
            .where(FetchRecord.run_id == run_id)
        ).all()
        return {name: record for name, record in rows}


def feeds_by_name(settings: Settings) -> dict[str, Feed]:
    with session_scope(settings) as session:
        rows = list(session.scalars(select(Feed)))
        session.expunge_all()
        return {feed.name: feed for feed in rows}


def count(settings: Settings, model: type) -> int:
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def rss(items: list[tuple[int, str]], *, ttl: int | None = None) -> bytes:
    """An RSS 2.0 feed of (number, RFC 822 date) items."""
    body = "".join(RSS_ITEM.format(n=n, title=f"Item {n}", date=date) for n, date in items)
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Outlet</title>'
        f"<link>https://outlet.example/</link>{ttl_tag}{body}</channel></rss>"
    ).encode()
