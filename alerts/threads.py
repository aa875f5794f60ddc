"""One Slack thread per story and channel: which alert opened it, and a link to it.

The alerts of one `thread_key` (a story id, or an article id for a saved-search match outside any story)
in one channel form a thread. Its opener is the earliest alert of that key and channel that is, or will
be, a message of its own (`parent_id` NULL, status pending or sent); every later alert replies to it.
A held opener is no opener: a digest carried it, so the next alert of the story opens the thread.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Alert
from core.settings import Settings


def thread_parent(session: Session, thread_key: str | None, channel: str) -> Alert | None:
    """The alert that opens (or opened) the thread of `thread_key` in `channel`, or None."""
    if not thread_key:
        return None
    return session.scalars(
        select(Alert)
        .where(
            Alert.thread_key == thread_key,
            Alert.channel == channel,
            Alert.parent_id.is_(None),
            Alert.status.in_(("pending", "sent")),
            Alert.kind != "digest",
        )
        .order_by(Alert.created_at, Alert.id)
        .limit(1)
    ).first()


def message_link(settings: Settings, channel_id: str | None, ts: str | None) -> str | None:
    """The web link of a Slack message (`<workspace>/archives/<channel>/p<ts without the dot>`), or None
    before it is sent (or when it went to the console)."""
    if not channel_id or not ts or not ts.replace(".", "").isdigit():
        return None
    return f"{settings.slack_workspace_url.rstrip('/')}/archives/{channel_id}/p{ts.replace('.', '')}"


def thread_link(settings: Settings, parent: Alert | None) -> str | None:
    if parent is None or parent.delivery != "slack":
        return None
    return message_link(settings, parent.remote_channel or parent.channel, parent.remote_id)
