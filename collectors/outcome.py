"""What polling one feed gave, before anything is written (shared by the poll and the batched writer)."""

from __future__ import annotations

from dataclasses import dataclass, field

from collectors import schedule
from collectors.http import FetchResult
from collectors.normalise import NormalisedArticle
from collectors.politeness import Ticket
from collectors.workers import FeedFields


@dataclass(frozen=True)
class DueFeed(FeedFields):
    """A feed to poll: the fields normalising needs and its conditional-GET validators."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass
class FeedOutcome:
    """What polling one feed gave, before anything is written."""

    feed_id: int
    fetch: FetchResult
    articles: list[NormalisedArticle] = field(default_factory=list)
    items_seen: int = 0
    skipped: int = 0
    error_class: str | None = None
    error_message: str | None = None
    ttl_minutes: int | None = None
    items_per_day: float | None = None
    # the room its body took among those not yet written (see `collectors.collect.poll_feed`); given back
    # once the outcome is committed
    ticket: Ticket | None = field(default=None, repr=False, compare=False)

    @property
    def status(self) -> str:
        return "error" if self.error_class else self.fetch.status

    def hints(self) -> schedule.Hints:
        ttl = self.ttl_minutes * 60.0 if self.ttl_minutes else None
        return schedule.Hints(max_age=self.fetch.max_age, ttl=ttl, retry_after=self.fetch.retry_after)
