"""Real news items from `../shared/data/` as time-ordered streams per outlet, for the demo.

Sources (see shared/README.md): `replay/` item streams (WSJ World, Russian-language independent media,
Reddit news headlines from ~2,000 outlets, Delfi.lt headlines), the outlet feeds in `feeds/outlets/` and the
reference article in `articles/`.
Items without a usable date or link are left out: the Meduza "chronicle" stream carries a 1970 date and the
home page as link for every item, so as a feed it would be one article repeated 1,168 times.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urljoin

from collectors.urls import is_site_root

EPOCH_FLOOR = datetime(1990, 1, 1, tzinfo=timezone.utc)

# Delfi.lt home-page scrapes carry no dates; the dates of the course notebooks they came from.
DELFI_DATES = {
    "20240930webscraping-delfi_naujienos.csv": datetime(2024, 9, 30, 8, tzinfo=timezone.utc),
    "scraping_20230919-delfi_naujienos.csv": datetime(2023, 9, 19, 8, tzinfo=timezone.utc),
    "web_scraping_answers_20240131-delfi_straipsniai.csv": datetime(2024, 1, 31, 8, tzinfo=timezone.utc),
    "web_scraping_pavyzdziai-delfi_straipsniai.csv": datetime(2022, 11, 15, 8, tzinfo=timezone.utc),
}
OUTLET_FILE_NAMES = {"wsj_world": "WSJ World News"}
# The reference article (shared/data/articles) has no date or URL of its own. It reports the start of the
# German deployment to Lithuania ("This week Germany has begun deploying troops"): the advance party
# arrived in the week of 8 April 2024. Its link uses the reserved `.invalid` domain: it names the file, not
# a page that exists.
REFERENCE_DATES = {"000_c0ef11d0e1d4fb0b.txt": datetime(2024, 4, 8, 12, tzinfo=timezone.utc)}


@dataclass(frozen=True)
class ReplayItem:
    outlet: str
    language: str
    country: str
    title: str
    link: str
    description: str
    published: datetime
    guid: str

    @property
    def text(self) -> str:
        return f"{self.title} {self.description}"


def _rfc822(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    parsed = parsed.astimezone(timezone.utc)
    return parsed if parsed >= EPOCH_FLOOR else None


def _usable_link(link: str | None) -> bool:
    return bool(link) and link.startswith(("http://", "https://")) and not is_site_root(link)


def _wsj(path: Path) -> Iterable[ReplayItem]:
    for item in json.loads(path.read_text(encoding="utf-8")):
        published = _rfc822(item.get("pubDate"))
        if published and _usable_link(item.get("link")):
            yield ReplayItem("WSJ World News", "en", "us", item["title"], item["link"],
                             item.get("description") or "", published, item.get("guid") or item["link"])


def _russian(path: Path) -> Iterable[ReplayItem]:
    for item in json.loads(path.read_text(encoding="utf-8")):
        published = _rfc822(item.get("pubDate"))
        if published and _usable_link(item.get("link")):
            yield ReplayItem(item["feed_title"], "ru", "", item["title"], item["link"],
                             item.get("description") or "", published, item.get("guid") or item["link"])


def _reddit(path: Path) -> Iterable[ReplayItem]:
    for item in json.loads(path.read_text(encoding="utf-8")):
        if not _usable_link(item.get("link")) or not item.get("timestamp"):
            continue
        published = datetime.fromtimestamp(int(item["timestamp"]), tz=timezone.utc)
        yield ReplayItem(item["domain"], "en", "", item["title"], item["link"], "", published, item["link"])


def _delfi(folder: Path) -> Iterable[ReplayItem]:
    for path in sorted(folder.glob("*.csv")):
        base = DELFI_DATES.get(path.name)
        if base is None:
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        header = [h.strip().lower() for h in rows[0]]
        title_col = next(i for i, h in enumerate(header) if h in ("title", "antraštė", "text"))
        link_col = next(i for i, h in enumerate(header) if h in ("link", "nuoroda"))
        for n, row in enumerate(rows[1:]):
            if len(row) <= max(title_col, link_col):
                continue
            title = re.sub(r"\s*\(\d+\)$", "", row[title_col].strip())  # "(5)" is a comment count
            link = urljoin("https://www.delfi.lt/", row[link_col].strip().lstrip("/")) \
                if not row[link_col].startswith("http") else row[link_col].strip()
            if title and _usable_link(link):
                yield ReplayItem("Delfi.lt", "lt", "lt", title, link, "", base + timedelta(minutes=7 * n), link)


def _reference_articles(folder: Path) -> Iterable[ReplayItem]:
    for path in sorted(folder.glob("*.txt")):
        published = REFERENCE_DATES.get(path.name)
        if published is None:
            continue
        text = " ".join(path.read_text(encoding="utf-8").split())
        title, _, rest = text.partition(". ")
        link = f"https://flankwatch.invalid/shared/articles/{path.stem}"
        yield ReplayItem("Reference article", "en", "", title.strip(), link, rest[:2000], published, link)


def _outlet_feeds(folder: Path) -> Iterable[ReplayItem]:
    import feedparser

    for path in sorted(folder.glob("*/*.xml")):
        language = path.parent.name
        parsed = feedparser.parse(path.read_bytes())
        outlet = OUTLET_FILE_NAMES.get(path.name.split(".")[0]) or parsed.feed.get("title") or path.stem
        for entry in parsed.entries:
            struct = entry.get("published_parsed") or entry.get("updated_parsed")
            if not struct or not _usable_link(entry.get("link")):
                continue
            published = datetime(*struct[:6], tzinfo=timezone.utc)
            if published < EPOCH_FLOOR:
                continue
            yield ReplayItem(outlet, language, "", entry.get("title", ""), entry["link"],
                             entry.get("summary", ""), published, entry.get("id") or entry["link"])


def load_items(data_dir: Path) -> list[ReplayItem]:
    """Every usable item of the replay streams and outlet feeds, one per (outlet, link), in time order."""
    replay = data_dir / "replay"
    streams: list[Iterable[ReplayItem]] = [
        _wsj(replay / "wsj-world-items.json"),
        _russian(replay / "ru-independent-media-items.json"),
        _reddit(replay / "reddit-news-headlines.json"),
        _delfi(replay / "delfi-lt"),
        _outlet_feeds(data_dir / "feeds" / "outlets"),
        _reference_articles(data_dir / "articles"),
    ]
    seen: set[tuple[str, str]] = set()
    items: list[ReplayItem] = []
    for stream in streams:
        for item in stream:
            key = (item.outlet, item.link)
            if item.title.strip() and key not in seen:
                seen.add(key)
                items.append(item)
    items.sort(key=lambda i: (i.published, i.outlet, i.link))
    return items


def select(items: list[ReplayItem], *, topical: Callable[[str], bool], limit: int,
           seed: int = 7) -> list[ReplayItem]:
    """A replay of at most `limit` items: every topical item (newest first if they exceed the limit) and a
    seeded sample of other items from the same days as background noise, as a live feed would carry."""
    on_topic = [i for i in items if topical(i.text)]
    if len(on_topic) >= limit:
        return sorted(on_topic[-limit:], key=lambda i: i.published)
    days = {i.published.date() for i in on_topic}
    chosen = set(on_topic)
    pool = [i for i in items if i.published.date() in days and i not in chosen]
    noise = random.Random(seed).sample(pool, min(len(pool), limit - len(on_topic)))
    return sorted(on_topic + noise, key=lambda i: (i.published, i.outlet, i.link))


def cycle_clocks(items: list[ReplayItem], cycles: int) -> list[datetime]:
    """Simulated clock for each demo cycle: the time of the last item of each of `cycles` equal slices, so
    every cycle brings new items and idle years between the streams are skipped."""
    if not items:
        return []
    cycles = max(1, min(cycles, len(items)))
    bounds = [round(len(items) * (n + 1) / cycles) - 1 for n in range(cycles)]
    clocks = sorted({items[b].published + timedelta(minutes=1) for b in bounds})
    return clocks
