"""The alerts stage: evaluate the rules, then deliver everything pending (see docs/CONTRACTS.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from alerts.delivery import sender_for
from alerts.outbox import deliver_pending
from alerts.rules import evaluate
from core.db import session_scope
from core.settings import Settings


@dataclass
class AlertSummary:
    created: int = 0  # outbox rows the rules wrote in this run
    sent: int = 0  # alerts delivered in this run (new or left over from earlier runs)
    failed: int = 0  # alerts given up in this run (after alert_max_attempts)
    pending: int = 0  # alerts still waiting after this run
    alert_ids: list[str] = field(default_factory=list)  # ids of the rows created in this run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def alert(settings: Settings, *, now: datetime | None = None, slack_token: str | None = None) -> AlertSummary:
    """Run the alert rules at `now` and deliver the outbox (Slack with a token and channel, else console).

    Safe to re-run: rows have deterministic ids, and a sent alert is never sent again.
    """
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: pass a UTC-aware clock")
    sender = sender_for(settings, slack_token)
    with session_scope(settings) as session:
        created = evaluate(session, settings, now)
        session.commit()
        sent, failed, pending = deliver_pending(session, sender, settings, now)
    return AlertSummary(
        created=len(created), sent=sent, failed=failed, pending=pending, alert_ids=[a.id for a in created]
    )
