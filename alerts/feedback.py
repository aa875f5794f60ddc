"""Feedback on alerts: 👍 / 👎 reactions read back from Slack, and precision per rule and route.

Reactions are read with `reactions.get` inside the alert run (no Events API endpoint needed): each run
re-reads the least recently checked alerts sent within `reactions_lookback_days`, at most
`reactions_per_run` of them, so the cost per run stays bounded however many alerts there are.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from alerts.delivery import DeliveryError, Sender
from core.models import Alert
from core.settings import Settings

log = logging.getLogger(__name__)

SETTLE = timedelta(minutes=10)  # an alert this fresh has had no time for reactions: not read yet
UP = {"+1", "thumbsup", "white_check_mark", "heavy_check_mark"}
DOWN = {"-1", "thumbsdown", "x"}


def _counts(reactions: dict[str, int]) -> tuple[int, int]:
    def total(names: set[str]) -> int:
        # skin tones arrive as "+1::skin-tone-2"
        return sum(count for name, count in reactions.items() if name.split("::", 1)[0] in names)

    return total(UP), total(DOWN)


def read_reactions(session: Session, sender: Sender, settings: Settings, now: datetime) -> int:
    """Store the 👍 / 👎 counts of recently sent Slack alerts; returns how many alerts were read."""
    if sender.name != "slack":
        return 0
    since = now - timedelta(days=settings.reactions_lookback_days)
    due = list(
        session.scalars(
            select(Alert)
            .where(Alert.status == "sent", Alert.delivery == "slack", Alert.sent_at >= since,
                   Alert.sent_at <= now - SETTLE, Alert.remote_id.is_not(None))
            .order_by(Alert.reactions_checked_at.is_not(None), Alert.reactions_checked_at, Alert.sent_at)
            .limit(settings.reactions_per_run)
        )
    )
    read = 0
    for alert in due:
        try:
            reactions = sender.reactions(alert.remote_channel or alert.channel, alert.remote_id or "")
        except DeliveryError as err:
            log.warning("reactions of alert %s not read: %s", alert.id, err)
            if err.stop:
                break
            continue
        if reactions is None:
            break
        alert.reactions_up, alert.reactions_down = _counts(reactions)
        alert.reactions_checked_at = now
        session.commit()
        read += 1
    return read


@dataclass
class PrecisionRow:
    kind: str
    route: str
    sent: int
    rated: int  # alerts with at least one 👍 or 👎
    up: int
    down: int
    useful: int = 0  # rated alerts with more 👍 than 👎

    @property
    def precision(self) -> float | None:
        """Share of rated alerts that were useful (None before any rating)."""
        return None if not self.rated else round(self.useful / self.rated, 3)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "precision": self.precision}


def precision_report(session: Session, since: datetime | None = None) -> list[PrecisionRow]:
    """Per rule (alert kind) and route: alerts sent, rated, 👍, 👎 and precision."""
    rated = (Alert.reactions_up + Alert.reactions_down) > 0
    useful = Alert.reactions_up > Alert.reactions_down
    query = (
        select(
            Alert.kind,
            Alert.route,
            func.count(),
            func.sum(case((rated, 1), else_=0)),
            func.coalesce(func.sum(Alert.reactions_up), 0),
            func.coalesce(func.sum(Alert.reactions_down), 0),
            func.sum(case((rated & useful, 1), else_=0)),
        )
        .where(Alert.status == "sent")
        .group_by(Alert.kind, Alert.route)
    )
    if since is not None:
        query = query.where(Alert.sent_at >= since)
    rows: dict[tuple[str, str], PrecisionRow] = {}
    for kind, route, sent, rated_n, up, down, useful_n in session.execute(query):
        key = (kind, route or "default")  # alerts from before routes had names went to the default route
        row = rows.setdefault(key, PrecisionRow(kind, key[1], 0, 0, 0, 0))
        row.sent += int(sent)
        row.rated += int(rated_n or 0)
        row.up += int(up)
        row.down += int(down)
        row.useful += int(useful_n or 0)
    return [rows[key] for key in sorted(rows)]
