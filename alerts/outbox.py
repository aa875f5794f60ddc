"""Delivering the outbox: every pending alert, oldest first, each committed as soon as it is settled."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from alerts.delivery import DeliveryError, Sender
from core.models import Alert, Story
from core.settings import Settings

log = logging.getLogger(__name__)


def _claim(session: Session, alert: Alert) -> bool:
    """Count the attempt before sending, and only if no other run took the alert since we read it.

    Committed at once, with `in_doubt` set: a crash during the send still counts as an attempt and leaves
    the alert marked as possibly sent, so the next try looks for it before posting; and a second run that
    read the same pending row finds `attempts` changed and leaves it alone.
    """
    seen = alert.attempts or 0
    result = session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.status == "pending", Alert.attempts == seen)
        .values(attempts=Alert.attempts + 1, in_doubt=True)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount != 1:
        return False
    # What the row now holds, as its committed state (not reloaded: the session may expire on commit), so
    # that setting `in_doubt` back to False later is seen as a change and written.
    set_committed_value(alert, "attempts", seen + 1)
    set_committed_value(alert, "in_doubt", True)
    return True


def _thread_of(session: Session, alert: Alert) -> tuple[str, str | None]:
    """("send", thread ts or None) or ("wait", None) while the thread's parent is not sent yet."""
    if not alert.parent_id:
        return "send", None
    parent = session.get(Alert, alert.parent_id)
    if parent is None or parent.status in ("failed", "held", "digested"):
        return "send", None  # no thread to reply in: the alert stands on its own
    if parent.status != "sent" or not parent.remote_id:
        return "wait", None
    return "send", parent.remote_id


def _known_channel_ids(session: Session, sender: Sender) -> None:
    """Tell a Slack sender the channel ids earlier sends learned, so that looking up a send in doubt in a
    channel configured by name needs no `conversations.list`."""
    known = getattr(sender, "channel_ids", None)
    if known is None:
        return
    rows = session.execute(
        select(Alert.channel, Alert.remote_channel)
        .where(Alert.delivery == "slack", Alert.remote_channel.is_not(None), Alert.channel != Alert.remote_channel)
        .distinct()
    )
    for channel, remote in rows:
        if channel and remote:
            known.setdefault(channel.lstrip("#"), remote)


def deliver_pending(session: Session, sender: Sender, settings: Settings, now: datetime) -> tuple[int, int, int]:
    """Send pending alerts, oldest first; return (sent, failed, pending) after this run.

    A sent alert is marked `sent` and committed right after the send, so it is never sent again. A failed
    send keeps the alert pending with `last_error` until `alert_max_attempts`, then marks it `failed` (kept
    for the record). An error that is not the alert's fault (Slack down, rate limited past what the run may
    wait, bad token) stops the run: the remaining alerts wait for the next run without losing an attempt.

    Replies wait for their thread's parent, and the replies of one thread go out in order: once one of them
    is not sent, the later ones of that thread wait for the next run. Parents whose thread got replies are
    then brought up to date (`chat.update`).
    """
    session.commit()  # the rules' rows must be durable before anything is sent
    # Thread openers first (a reply written in the same run as its parent goes out in this run too), then
    # the replies, oldest first.
    pending = list(session.scalars(
        select(Alert).where(Alert.status == "pending")
        .order_by(Alert.parent_id.is_not(None), Alert.created_at, Alert.id)
    ))  # fmt: skip
    _known_channel_ids(session, sender)
    sent = failed = 0
    blocked: set[str] = set()  # threads (parent ids) with an earlier reply still unsent
    for alert in pending:
        thread = alert.parent_id
        if thread is not None and thread in blocked:
            continue
        decision, thread_ts = _thread_of(session, alert)
        if decision == "wait":
            blocked.add(thread)  # type: ignore[arg-type]
            continue
        in_doubt = bool(alert.in_doubt)  # from an earlier try, before this claim sets it
        if not _claim(session, alert):
            continue
        if alert.kind == "story_merged":  # its link to the other thread can only be known now
            from alerts.rules import merge_payload

            alert.payload = merge_payload(session, settings, alert)
        try:
            result = sender.send(alert, thread_ts=thread_ts, in_doubt=in_doubt)
        except Exception as err:  # noqa: BLE001 - a poison alert must not block the outbox: record, move on
            delivery = isinstance(err, DeliveryError)
            stop = delivery and err.stop
            alert.in_doubt = err.in_doubt if delivery else True
            alert.last_error = str(err) if delivery else f"{type(err).__name__}: {err}"
            if alert.attempts >= settings.alert_max_attempts:
                alert.status = "failed"
                failed += 1
            session.commit()
            log.warning("alert %s not delivered (attempt %d): %s", alert.id, alert.attempts, alert.last_error)
            if thread is not None:
                blocked.add(thread)
            if stop:
                break
            continue
        alert.status = "sent"
        alert.sent_at = now
        alert.remote_id = result.ts
        alert.remote_channel = result.channel or None
        alert.thread_ts = thread_ts
        alert.delivery = sender.name
        alert.last_error = None
        alert.in_doubt = False
        if thread is not None and thread_ts is not None:
            session.execute(
                update(Alert).where(Alert.id == thread).values(stale=True).execution_options(synchronize_session=False)
            )
        session.commit()
        sent += 1
    refresh_parents(session, sender, settings)
    remaining = session.scalar(select(func.count()).select_from(Alert).where(Alert.status == "pending")) or 0
    return sent, failed, remaining


def refresh_parents(session: Session, sender: Sender, settings: Settings) -> int:
    """`chat.update` every sent thread parent whose story changed (its thread got replies, or its counts
    moved: `alerts.rules.mark_stale_openers`): articles, sources, languages, last seen stay current.
    Idempotent: an update that fails is tried on the next run."""
    from alerts.rules import opener_payload, rendered_counts  # the rules know how an opening message reads

    stale = list(session.scalars(select(Alert).where(Alert.stale.is_(True), Alert.status == "sent")))
    done = 0
    for parent in stale:
        payload = opener_payload(session, settings, parent)
        if payload is not None and parent.remote_id:
            try:
                sender.update(parent.remote_channel or parent.channel, parent.remote_id, payload)
            except DeliveryError as err:
                log.warning("thread parent %s not updated: %s", parent.id, err)
                if err.stop:
                    break
                continue
        parent.stale = False
        story = session.get(Story, parent.story_id) if parent.story_id else None
        if story is not None:
            parent.detail = {**(parent.detail or {}), "rendered": rendered_counts(story)}
        session.commit()
        done += 1
    return done


def add(session: Session, alert: Alert) -> bool:
    """Add the row unless one with its id exists (False then: the rule fired before, or another run did).

    No savepoint: pysqlite opens its transaction only at the first write, so a savepoint taken before
    any write would be the outermost transaction and its release would commit this row alone, apart from
    the state written with it (a feed's coverage state, a digest's carried alerts). The row is flushed
    with the caller's transaction; two runs inserting the same id at once fail at the primary key and the
    loser's re-run finds the row.
    """
    if session.get(Alert, alert.id) is not None:
        return False
    session.add(alert)
    session.flush()
    return True
