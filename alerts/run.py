"""The alerts stage: evaluate the rules, then deliver everything pending (see docs/CONTRACTS.md)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.delivery import sender_for
from alerts.feedback import read_reactions
from alerts.outbox import deliver_pending
from alerts.rules import evaluate
from core.db import session_scope
from core.models import Alert, Watch
from core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class AlertSummary:
    created: int = 0  # outbox rows the rules wrote in this run
    sent: int = 0  # alerts delivered in this run (new or left over from earlier runs)
    failed: int = 0  # alerts given up in this run (after alert_max_attempts)
    pending: int = 0  # alerts still waiting after this run
    alert_ids: list[str] = field(default_factory=list)  # ids of the rows created in this run
    held: int = 0  # rows of this run held for a digest (quiet hours, budget)
    by_kind: dict[str, int] = field(default_factory=dict)  # rows of this run per rule
    reactions_read: int = 0  # alerts whose 👍 / 👎 were read back
    errors: dict[str, str] = field(default_factory=dict)  # a rule that failed (the others still ran)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rules(session: Session, settings: Settings, now: datetime) -> tuple[list[Alert], dict[str, str]]:
    """Every rule, each in its own savepoint: one that fails (the archive down for saved searches) is
    recorded and the others still write their rows."""
    from alerts.coverage import coverage_alerts
    from alerts.spikes import spike_alerts

    def watches() -> list[Alert]:
        from alerts.watches import watch_alerts
        from archive.backends import open_archive

        with open_archive(settings) as archive:
            return watch_alerts(session, settings, now, archive)

    rules: list[tuple[str, Callable[[], list[Alert]]]] = [
        ("stories", lambda: evaluate(session, settings, now)),
        ("watches", watches),
        ("spikes", lambda: spike_alerts(session, settings, now)),
        ("coverage", lambda: coverage_alerts(session, settings, now)),
    ]
    created: list[Alert] = []
    errors: dict[str, str] = {}
    for name, rule in rules:
        if name == "watches" and session.scalar(select(func.count()).select_from(Watch)) == 0:
            continue  # no saved search: the archive need not be opened
        try:
            with session.begin_nested():
                created += rule()
        except Exception as err:  # noqa: BLE001 - recorded; the other rules and the delivery still run
            log.exception("alert rule %s failed", name)
            errors[name] = f"{type(err).__name__}: {err}"
    return created, errors


def deliver_outbox(settings: Settings, *, now: datetime | None = None, slack_token: str | None = None) -> tuple[int, int, int]:
    """Deliver every pending alert (digests included); (sent, failed, pending)."""
    now = now or datetime.now(timezone.utc)
    sender = sender_for(settings, slack_token)
    with session_scope(settings) as session:
        return deliver_pending(session, sender, settings, now)


def alert(settings: Settings, *, now: datetime | None = None, slack_token: str | None = None) -> AlertSummary:
    """Run the alert rules at `now`, deliver the outbox (Slack with a token and channel, else console) and
    read back the reactions to recent alerts.

    Safe to re-run: rows have deterministic ids, and a sent alert is never sent again.
    """
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: pass a UTC-aware clock")
    sender = sender_for(settings, slack_token)
    with session_scope(settings) as session:
        created, errors = _rules(session, settings, now)
        session.commit()
        sent, failed, pending = deliver_pending(session, sender, settings, now)
        reactions = read_reactions(session, sender, settings, now)
    return AlertSummary(
        created=len(created), sent=sent, failed=failed, pending=pending, alert_ids=[a.id for a in created],
        held=sum(1 for a in created if a.status == "held"), by_kind=dict(Counter(a.kind for a in created)),
        reactions_read=reactions, errors=errors,
    )  # fmt: skip
