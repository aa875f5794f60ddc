"""Senders: deliver one outbox alert, to Slack or to the console (and a JSONL file).

A sender either returns where the message went (`Sent`) or raises `DeliveryError`. Slack's answers decide
what happens next:
- 429: wait its `Retry-After`, then try again; 5xx, timeouts and resets: exponential backoff. All the
  waiting of one run is capped (`slack_max_wait_seconds`); past it the run stops and the rest stays pending.
- A send whose outcome is unknown (timeout or reset after the request went out, a 5xx, or a crash of an
  earlier run: the outbox passes `in_doubt`) may have reached Slack: `chat.postMessage` has no idempotency
  key, so every message carries its alert id in its metadata and the next try first looks for it
  (`conversations.history`, or `conversations.replies` in a thread) and posts only if it is absent.
- Messages to one channel are paced (`slack_min_interval_seconds`, Slack allows about one per second).
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit
from urllib.request import proxy_bypass

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from alerts.escape import clean_text
from core.models import Alert
from core.settings import Settings

METADATA_EVENT = "flankwatch_alert"
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
FIND_PAGES = 5  # pages of 200 messages searched for an alert id before concluding it was never posted
BACKOFF_START, BACKOFF_MAX = 1.0, 30.0

# Errors that no message will get past: stop the run instead of burning every alert's attempts.
_SYSTEMIC_ERRORS = {
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "no_permission", "missing_scope", "org_login_required", "team_access_not_granted",
    "ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout",
}  # fmt: skip


class DeliveryError(Exception):
    """A send that did not happen (as far as we know).

    `stop`: the cause is not this alert (Slack down, rate limited, bad token), so the run should stop
    sending and leave the other alerts for the next run. `retry_after`: seconds Slack asked us to wait.
    `transient`: trying again later may work (429, 5xx, timeout). `in_doubt`: the message may have been
    posted all the same (no answer after the request went out), so look for it before posting again.
    """

    def __init__(
        self, message: str, *, stop: bool = False, retry_after: float | None = None, transient: bool = False,
        in_doubt: bool = False,
    ) -> None:
        super().__init__(message)
        self.stop = stop
        self.retry_after = retry_after
        self.transient = transient
        self.in_doubt = in_doubt


@dataclass(frozen=True)
class Sent:
    """Where a message went: its id (Slack: ts) and channel (Slack: the channel id it answered with)."""

    ts: str
    channel: str = ""


class Sender(Protocol):
    name: str  # what Alert.delivery records: slack | console

    def send(self, alert: Alert, *, thread_ts: str | None = None, in_doubt: bool = False) -> Sent:
        """Deliver the alert (a reply when `thread_ts`); raises DeliveryError. With `in_doubt`, an earlier
        try may have delivered it: look for it first."""
        ...

    def update(self, channel: str, ts: str, payload: dict[str, Any]) -> None:
        """Replace the text and blocks of a message already sent (a thread's parent kept current)."""
        ...

    def reactions(self, channel: str, ts: str) -> dict[str, int] | None:
        """Reaction name -> count on a message; None where the sender cannot read them."""
        ...


# --- Slack -----------------------------------------------------------------------------------------


def _is_local(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return bool(host) and bool(proxy_bypass(host))


def _short(text: Any, limit: int = 200) -> str:
    text = clean_text(str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(headers: dict[str, Any] | None) -> float | None:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list) and value else value
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


def _api_error(err: SlackApiError, channel: str) -> DeliveryError:
    response = err.response
    status = getattr(response, "status_code", None)
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    if status == 429 or error == "ratelimited":
        retry_after = _retry_after(getattr(response, "headers", None))
        wait = f"Retry-After {retry_after:g} s" if retry_after is not None else "no Retry-After"
        return DeliveryError(
            f"Slack rate limited (HTTP {status}, {wait})", stop=True, retry_after=retry_after, transient=True
        )
    if isinstance(status, int) and status >= 500:
        # Slack may have done the work before failing to answer: a post is in doubt
        return DeliveryError(
            f"Slack server error (HTTP {status}): {_short(error or 'no detail')}", stop=True, transient=True,
            in_doubt=True,
        )
    return DeliveryError(
        f"Slack refused the message to {_short(channel, 80)}: {_short(error or 'unknown error')} (HTTP {status})",
        stop=error in _SYSTEMIC_ERRORS,
    )


def metadata_of(alert: Alert) -> dict[str, Any]:
    """The message metadata that names the alert, so that a message can be found again by its alert id."""
    return {"event_type": METADATA_EVENT, "event_payload": {"alert_id": alert.id}}


def _alert_id_of(message: dict[str, Any]) -> str | None:
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != METADATA_EVENT:
        return None
    payload = metadata.get("event_payload") or {}
    value = payload.get("alert_id")
    return value if isinstance(value, str) else None


class SlackSender:
    """Posts alerts with `chat.postMessage` (scopes: `chat:write`; `channels:history` / `groups:history` to
    find a message whose send was in doubt; `reactions:read` for feedback).

    `max_wait`: seconds this sender may spend waiting (Retry-After, backoff) over its life (one run); 0
    never waits: the first transient failure raises, and the outbox retries on the next run.
    `min_interval`: least seconds between two posts to one channel. `sleep` and `clock` are injectable so
    that benchmarks can run Slack's waits on an accelerated clock.
    """

    name = "slack"

    def __init__(
        self,
        token: str,
        channel_default: str = "",
        base_url: str = WebClient.BASE_URL,
        *,
        timeout: float = 10,
        min_interval: float = 0.0,
        max_wait: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not token:
            raise ValueError("SlackSender needs a bot token")
        self.channel_default = channel_default
        self.base_url = base_url
        self.min_interval = min_interval
        self.wait_left = max_wait
        self._sleep = sleep
        self._clock = clock
        self._last_post: dict[str, float] = {}
        self.channel_ids: dict[str, str] = {}  # channel name (no "#") -> id
        # Retries are ours (below): slack_sdk's would repeat a post whose outcome is unknown.
        self.client = WebClient(token=token, base_url=base_url, timeout=int(max(1, timeout)), retry_handlers=[])
        self.client.timeout = timeout
        if _is_local(base_url):
            self.client.proxy = None  # slack_sdk reads HTTPS_PROXY and ignores NO_PROXY

    # --- one call --------------------------------------------------------------------------------

    def _call(self, where: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        """One Web API call; every failure is a DeliveryError (transient ones marked in doubt when the
        request may have been carried out)."""
        try:
            return method(**kwargs)
        except SlackApiError as err:
            raise _api_error(err, where) from None
        except (SlackClientError, OSError, HTTPException) as err:
            raise DeliveryError(
                f"cannot reach Slack at {self.base_url}: {type(err).__name__}: {_short(err)}",
                stop=True, transient=True, in_doubt=True,
            ) from None

    def _wait(self, err: DeliveryError, tries: int) -> None:
        """Sleep before the next try, or raise `err` when this run's waiting budget cannot pay for it."""
        delay = err.retry_after if err.retry_after is not None else min(BACKOFF_MAX, BACKOFF_START * 2 ** (tries - 1))
        if not err.transient or delay > self.wait_left:
            raise err
        self.wait_left -= delay
        self._sleep(delay)

    def _retrying(self, where: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        """A call that is safe to repeat (reads, chat.update), retried while the waiting budget lasts."""
        tries = 0
        while True:
            tries += 1
            try:
                return self._call(where, method, **kwargs)
            except DeliveryError as err:
                self._wait(err, tries)

    def _pace(self, channel: str) -> None:
        last = self._last_post.get(channel)
        if last is not None and self.min_interval > 0:
            gap = self._clock() - last
            if gap < self.min_interval:
                self._sleep(self.min_interval - gap)

    # --- the sender ------------------------------------------------------------------------------

    def channel_of(self, alert: Alert) -> str:
        channel = alert.remote_channel or alert.channel or self.channel_default
        if not channel:
            raise DeliveryError("no Slack channel: set FLANKWATCH_SLACK_CHANNEL or alert_routes")
        return channel

    def channel_id(self, channel: str) -> str:
        """The id of a channel named like "#alerts": reads need the id, which a post's answer gives (cached
        here, and seeded by the outbox from earlier sends), else `conversations.list` (`channels:read`)."""
        if _CHANNEL_ID.match(channel):
            return channel
        name = channel.lstrip("#")
        if name not in self.channel_ids:
            cursor = None
            for _ in range(FIND_PAGES * 2):
                response = self._retrying(
                    channel, self.client.conversations_list, types="public_channel,private_channel",
                    exclude_archived=True, limit=1000, cursor=cursor,
                )  # fmt: skip
                for entry in response.get("channels") or []:
                    if entry.get("name") and entry.get("id"):
                        self.channel_ids.setdefault(str(entry["name"]), str(entry["id"]))
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if name in self.channel_ids or not cursor:
                    break
        return self.channel_ids.get(name, channel)

    def find(self, alert: Alert, *, thread_ts: str | None = None) -> Sent | None:
        """The message of this alert if Slack has it (looked up by the alert id in its metadata)."""
        channel = self.channel_id(self.channel_of(alert))
        cursor = None
        for _ in range(FIND_PAGES):
            if thread_ts:
                method, kwargs = self.client.conversations_replies, {"ts": thread_ts}
            else:
                method, kwargs = self.client.conversations_history, {}
            response = self._retrying(
                channel, method, channel=channel, include_all_metadata=True, limit=200, cursor=cursor, **kwargs
            )
            for message in response.get("messages") or []:
                if _alert_id_of(message) == alert.id and message.get("ts"):
                    return Sent(str(message["ts"]), str(response.get("channel") or channel))
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not response.get("has_more") or not cursor:
                return None
        return None

    def post(self, alert: Alert, *, thread_ts: str | None = None) -> Sent:
        """One `chat.postMessage`, no retry."""
        channel = self.channel_of(alert)
        payload = alert.payload or {}
        extra: dict[str, Any] = {}
        if thread_ts:
            extra["thread_ts"] = thread_ts
            if alert.broadcast:
                extra["reply_broadcast"] = True
        self._pace(channel)
        try:
            response = self._call(
                channel,
                self.client.chat_postMessage,
                channel=channel,
                text=payload.get("text") or "Flankwatch alert",
                blocks=payload.get("blocks"),
                unfurl_links=False,
                unfurl_media=False,
                metadata=metadata_of(alert),
                **extra,
            )
        finally:
            self._last_post[channel] = self._clock()
        ts = response.get("ts")
        if not ts:
            raise DeliveryError("Slack accepted the message but returned no ts", in_doubt=True)
        answered = str(response.get("channel") or channel)
        if not _CHANNEL_ID.match(channel) and _CHANNEL_ID.match(answered):
            self.channel_ids[channel.lstrip("#")] = answered
        return Sent(str(ts), answered)

    def send(self, alert: Alert, *, thread_ts: str | None = None, in_doubt: bool = False) -> Sent:
        maybe_posted = in_doubt
        tries = 0
        while True:
            tries += 1
            try:
                if maybe_posted:
                    found = self.find(alert, thread_ts=thread_ts)
                    if found is not None:
                        return found
                    maybe_posted = False  # looked, and it is not there: no earlier try got through
                return self.post(alert, thread_ts=thread_ts)
            except DeliveryError as err:
                maybe_posted = maybe_posted or err.in_doubt
                err.in_doubt = maybe_posted
                self._wait(err, tries)

    def update(self, channel: str, ts: str, payload: dict[str, Any]) -> None:
        channel = self.channel_id(channel)
        self._retrying(
            channel, self.client.chat_update, channel=channel, ts=ts,
            text=payload.get("text") or "Flankwatch alert", blocks=payload.get("blocks"),
        )  # fmt: skip

    def reactions(self, channel: str, ts: str) -> dict[str, int] | None:
        channel = self.channel_id(channel)
        response = self._retrying(channel, self.client.reactions_get, channel=channel, timestamp=ts, full=True)
        message = response.get("message") or {}
        return {str(r.get("name")): int(r.get("count") or 0) for r in message.get("reactions") or [] if r.get("name")}


# --- console ---------------------------------------------------------------------------------------

_LINK = re.compile(r"<([^<>|]*)\|([^<>]*)>|<([^<>|]*)>")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mrkdwn_to_plain(text: str) -> str:
    """Slack mrkdwn as plain text: `<url|label>` -> `label (url)`, entities decoded, bold markers dropped."""

    def _link(match: re.Match[str]) -> str:
        url = match.group(1) if match.group(3) is None else match.group(3)
        label = match.group(2)
        return f"{label} ({url})" if label is not None and label != url else url

    return _unescape(_BOLD.sub(r"\1", _LINK.sub(_link, text)))


def _block_lines(blocks: list[dict[str, Any]]) -> tuple[str, list[str]]:
    title, lines = "", []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = _unescape(block.get("text", {}).get("text", ""))
        elif kind == "section":
            if "text" in block:
                lines.extend(mrkdwn_to_plain(block["text"].get("text", "")).splitlines())
            for field in block.get("fields", []):
                label, _, value = mrkdwn_to_plain(field.get("text", "")).partition("\n")
                lines.append(f"{label}: {value}" if value else label)
        elif kind == "context":
            lines.extend(mrkdwn_to_plain(element.get("text", "")) for element in block.get("elements", []))
    return title, lines


class ConsoleSender:
    """Prints alerts with rich and appends each as a JSON line to `path` (the demo's and dev's Slack)."""

    name = "console"

    def __init__(self, path: Path, console: Console | None = None):
        self.path = Path(path)
        self.console = console or Console()

    def _append(self, record: dict[str, Any]) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True) + "\n"  # ASCII JSON: no raw U+2028 splits a line
        with self.path.open("ab") as handle:
            offset = handle.seek(0, 2)
            handle.write(line.encode("ascii"))
        return offset

    def _logged(self, alert_id: str) -> int | None:
        """Offset of the alert's line in the log, if an earlier try wrote it (the log's last 4 MB)."""
        try:
            with self.path.open("rb") as handle:
                size = handle.seek(0, 2)
                start = max(0, size - 4 * 1024 * 1024)
                handle.seek(start)
                data = handle.read()
        except OSError:
            return None
        needle = json.dumps({"id": alert_id})[1:-1].encode("ascii")  # "id": "..."
        offset = start
        for line in data.splitlines(keepends=True):
            if needle in line:
                return offset
            offset += len(line)
        return None

    def send(self, alert: Alert, *, thread_ts: str | None = None, in_doubt: bool = False) -> Sent:
        if in_doubt:
            found = self._logged(alert.id)
            if found is not None:
                return Sent(f"{self.path.name}@{found}"[-64:], alert.channel or "")
        payload = alert.payload or {}
        record = {
            "id": alert.id,
            "kind": alert.kind,
            "story_id": alert.story_id,
            "topic": alert.topic,
            "channel": alert.channel,
            "thread_ts": thread_ts,
            "broadcast": bool(alert.broadcast) if thread_ts else False,
            "created_at": alert.created_at.isoformat() if alert.created_at else None,
            "text": payload.get("text", ""),
            "blocks": payload.get("blocks", []),
        }
        try:
            offset = self._append(record)
        except OSError as err:
            raise DeliveryError(f"cannot write the alert log {self.path}: {err}") from None
        title, lines = _block_lines(payload.get("blocks", []))
        # Text objects are never parsed for rich markup, and clean_text drops terminal escapes.
        body = Group(*(Text(clean_text(line)) for line in lines))
        header = Text(clean_text(title or _unescape(payload.get("text", ""))), style="bold")
        channel = f" -> {clean_text(alert.channel)}" if alert.channel else ""
        reply = " (thread reply)" if thread_ts else ""
        self.console.print(
            Panel(body, title=header, subtitle=Text(f"{alert.kind}{channel}{reply}"), title_align="left")
        )
        return Sent(f"{self.path.name}@{offset}"[-64:], alert.channel or "")

    def update(self, channel: str, ts: str, payload: dict[str, Any]) -> None:
        """The console cannot edit what it printed: the log gets an `update` record instead."""
        record = {"update": ts, "channel": channel, "text": payload.get("text", ""), "blocks": payload.get("blocks", [])}
        try:
            self._append(record)
        except OSError as err:
            raise DeliveryError(f"cannot write the alert log {self.path}: {err}") from None

    def reactions(self, channel: str, ts: str) -> dict[str, int] | None:
        return None


def sender_for(settings: Settings, slack_token: str | None = None) -> Sender:
    """Slack when a token (argument, else settings) and a channel (default or a route) are set, else console."""
    token = slack_token or (settings.slack_token.get_secret_value() if settings.slack_token else None)
    has_channel = bool(settings.slack_channel) or any(route.channel for route in settings.alert_routes)
    if token and has_channel:
        return SlackSender(
            token, settings.slack_channel, settings.slack_api_url, timeout=settings.slack_timeout_seconds,
            min_interval=settings.slack_min_interval_seconds, max_wait=settings.slack_max_wait_seconds,
        )
    assert settings.alert_log is not None  # set by Settings.model_post_init
    return ConsoleSender(settings.alert_log)
