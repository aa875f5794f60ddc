"""Delivering the outbox: every pending alert, oldest first, each committed as soon as it is settled."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from alerts.delivery import DeliveryError, Sender
from core.models import Alert
from core.settings import Settings

log = logging.getLogger(__name__)


def _claim(session: Session, alert: Alert) -> bool:
    """Count the attempt before sending, and only if no other run took the alert since we read it.

    Committed at once: a crash during the send still counts as an attempt, and a second run that read the
    same pending row finds `attempts` changed and leaves it alone.
    """
    seen = alert.attempts or 0
    result = session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.status == "pending", Alert.attempts == seen)
        .values(attempts=Alert.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount != 1:
        return False
    alert.attempts = seen + 1  # what the row now holds (set, not reloaded: the session may expire on commit)
    return True


def deliver_pending(session: Session, sender: Sender, settings: Settings, now: datetime) -> tuple[int, int, int]:
    """Send pending alerts; return (sent, failed, pending) after this run.

    A sent alert is marked `sent` and committed right after the send, so it is never sent again. A failed
    send keeps the alert pending with `last_error` until `alert_max_attempts`, then marks it `failed` (kept
    for the record). An error that is not the alert's fault (Slack down, rate limited, bad token) stops the
    run: the remaining alerts wait for the next run without losing an attempt.
    """
    session.commit()  # the rules' rows must be durable before anything is sent
    pending = list(session.scalars(select(Alert).where(Alert.status == "pending").order_by(Alert.created_at, Alert.id)))
    sent = failed = 0
    for alert in pending:
        if not _claim(session, alert):
            continue
        try:
            remote_id = sender.send(alert)
        except Exception as err:  # noqa: BLE001 - a poison alert must not block the outbox: record, move on
            stop = isinstance(err, DeliveryError) and err.stop
            alert.last_error = str(err) if isinstance(err, DeliveryError) else f"{type(err).__name__}: {err}"
            if alert.attempts >= settings.alert_max_attempts:
                alert.status = "failed"
                failed += 1
            session.commit()
            log.warning("alert %s not delivered (attempt %d): %s", alert.id, alert.attempts, alert.last_error)
            if stop:
                break
            continue
        alert.status = "sent"
        alert.sent_at = now
        alert.remote_id = remote_id
        alert.delivery = sender.name
        alert.last_error = None
        session.commit()
        sent += 1
    remaining = session.scalar(select(func.count()).select_from(Alert).where(Alert.status == "pending")) or 0
    return sent, failed, remaining
