"""What a feed server's response headers ask of the poller: validators to send back, `Cache-Control: max-age`,
`Retry-After`. Pure functions on header values; a value that cannot be read is ignored, never an error."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

# Column sizes of Feed.etag / Feed.last_modified: a longer validator is not worth keeping (or sending back).
MAX_ETAG_CHARS = 512
MAX_LAST_MODIFIED_CHARS = 128
# A server's hint beyond this is read as this (a week): schedules cap it further (`poll_max_interval_hours`).
MAX_HINT_SECONDS = 7 * 24 * 3600.0

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,12})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|=|$)", re.IGNORECASE)


def validator(value: str | None, limit: int) -> str | None:
    """A validator fit to store and send back: printable ASCII within the column size, else None."""
    if not value:
        return None
    value = value.strip()
    if not value or len(value) > limit or not value.isascii() or not value.isprintable():
        return None
    return value


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def retry_after_seconds(value: str | None, date: str | None = None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds from the response: delay-seconds, or an HTTP date taken relative to the
    response's own `Date` (so that a server with a wrong clock still means what it says), else to `now`."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_HINT_SECONDS)
    moment = _http_date(value)
    if moment is None:
        return None
    reference = _http_date(date) or now or datetime.now(timezone.utc)
    return min(max((moment - reference).total_seconds(), 0.0), MAX_HINT_SECONDS)


def max_age_seconds(cache_control: str | None, age: str | None = None) -> float | None:
    """How long the response stays fresh by `Cache-Control: max-age` (less its `Age`); None without one or
    with no-cache / no-store."""
    if not cache_control or _NO_CACHE.search(cache_control):
        return None
    match = _MAX_AGE.search(cache_control)
    if not match:
        return None
    seconds = float(match.group(1))
    if age and age.strip().isdigit():
        seconds -= float(age.strip())
    return min(max(seconds, 0.0), MAX_HINT_SECONDS)
