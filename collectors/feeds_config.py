"""The list of outlets to poll: `config/feeds.yaml` (or an OPML import) synced into the `feeds` table."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Feed

_LANGUAGE = re.compile(r"^[a-z]{2}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class FeedsFileError(ValueError):
    """The feeds file cannot be read or one of its entries is invalid."""


class FeedSpec(BaseModel):
    """One outlet's feed as configured."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=1, max_length=2048)
    language: str | None = None  # ISO 639-1, lower case
    country: str | None = None  # ISO 3166-1 alpha-2, upper case
    fulltext: bool = False
    state_affiliated: bool = False  # owned or controlled by a state (alerts flag it)
    key: bool = False  # a key outlet: its silence, failures or a paywall alert the ops route

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value, re.IGNORECASE):
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        value = value.lower()
        if not _LANGUAGE.match(value):
            raise ValueError(f"language must be a 2-letter ISO 639-1 code, got {value!r}")
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        value = value.upper()
        if not _COUNTRY.match(value):
            raise ValueError(f"country must be a 2-letter ISO 3166-1 code, got {value!r}")
        return value


def parse_feed_specs(items: Any, *, where: str = "feeds") -> list[FeedSpec]:
    """Validate a list of feed mappings; the error names the entry at fault."""
    if not isinstance(items, list):
        raise FeedsFileError(f"{where}: expected a list of feeds, got {type(items).__name__}")
    specs: list[FeedSpec] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise FeedsFileError(f"{where}[{index}]: expected a mapping, got {type(item).__name__}")
        try:
            spec = FeedSpec.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'entry'}: {error['msg']}" for error in exc.errors()
            )
            raise FeedsFileError(f"{where}[{index}] ({item.get('name', '?')}): {problems}") from None
        if spec.url in seen:
            raise FeedsFileError(f"{where}[{index}]: url {spec.url} already listed at [{seen[spec.url]}]")
        seen[spec.url] = index
        specs.append(spec)
    return specs


def load_feeds_file(path: Path | str) -> list[FeedSpec]:
    """Read a feeds YAML file: either a list of feeds or a mapping with a `feeds:` list."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FeedsFileError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise FeedsFileError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return []
    if isinstance(data, dict):
        if "feeds" not in data:
            raise FeedsFileError(f"{path}: expected a top-level `feeds:` list")
        data = data["feeds"] or []
    return parse_feed_specs(data, where=str(path))


def sync_feeds(session: Session, specs: Iterable[FeedSpec], origin: str = "config") -> int:
    """Insert or update feeds by URL; returns how many rows were added or changed. Never deletes: a feed
    dropped from the file keeps its history (disable it with `enabled = false`)."""
    specs = list(specs)
    existing = {
        feed.url: feed
        for feed in session.scalars(select(Feed).where(Feed.url.in_([spec.url for spec in specs])))
    } if specs else {}
    changed = 0
    for spec in specs:
        feed = existing.get(spec.url)
        if feed is None:
            feed = Feed(
                url=spec.url,
                name=spec.name,
                language=spec.language,
                country=spec.country,
                fulltext=spec.fulltext,
                state_affiliated=spec.state_affiliated,
                key_outlet=spec.key,
                enabled=True,
                origin=origin,
                consecutive_failures=0,
                items_total=0,
            )
            session.add(feed)
            existing[spec.url] = feed
            changed += 1
            continue
        wanted = {
            "name": spec.name, "language": spec.language, "country": spec.country, "fulltext": spec.fulltext,
            "state_affiliated": spec.state_affiliated, "key_outlet": spec.key,
        }  # fmt: skip
        if any(getattr(feed, key) != value for key, value in wanted.items()):
            for key, value in wanted.items():
                setattr(feed, key, value)
            changed += 1
    session.flush()
    return changed
