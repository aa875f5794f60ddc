"""What polling one feed gave, before anything is written (shared by the poll and the batched writer)."""

from __future__ import annotations

from dataclasses import dataclass, field

from collectors import schedule
from collectors.http import FetchResult
from collectors.politeness import Ticket
from collectors.workers import FeedFields, Reading


@dataclass(frozen=True)
class DueFeed(FeedFields):
    """A feed to poll: the fields normalising needs and its conditional-GET validators."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass
class FeedOutcome(Reading):
    """What polling one feed gave, before anything is written: the fetch, and what its body gave (the
    `Reading`'s fields, empty for a 304 or a failed fetch)."""

    feed_id: int = field(kw_only=True)
    fetch: FetchResult = field(kw_only=True)
    # the room its body took among those not yet written (see `collectors.collect.poll_feed`); given back
    # once the outcome is committed
    ticket: Ticket | None = field(default=None, repr=False, compare=False)

    @property
    def status(self) -> str:
        return "error" if self.error_class else self.fetch.status

    def take(self, reading: Reading) -> None:
        """Adopt what the body gave."""
        for name in Reading.__dataclass_fields__:
            setattr(self, name, getattr(reading, name))

    def hints(self) -> schedule.Hints:
        ttl = self.ttl_minutes * 60.0 if self.ttl_minutes else None
        return schedule.Hints(max_age=self.fetch.max_age, ttl=ttl, retry_after=self.fetch.retry_after)
