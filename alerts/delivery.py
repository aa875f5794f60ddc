"""Senders: deliver one outbox alert, to Slack or to the console (and a JSONL file).

A sender either returns the remote id of the delivered message or raises `DeliveryError`; it never
sleeps and never retries by itself: a failed alert stays in the outbox and the next run tries again.
"""

from __future__ import annotations

import ipaddress
import json
import re
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

# Errors that no message will get past: stop the run instead of burning every alert's attempts.
_SYSTEMIC_ERRORS = {
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "no_permission", "missing_scope", "org_login_required", "team_access_not_granted",
    "ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout",
}  # fmt: skip


class DeliveryError(Exception):
    """A send that did not happen.

    `stop`: the cause is not this alert (Slack down, rate limited, bad token), so the run should stop
    sending and leave the other alerts for the next run. `retry_after`: seconds Slack asked us to wait.
    """

    def __init__(self, message: str, *, stop: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.stop = stop
        self.retry_after = retry_after


class Sender(Protocol):
    name: str  # what Alert.delivery records: slack | console

    def send(self, alert: Alert) -> str:
        """Deliver the alert; return the remote id (Slack: the message ts). Raises DeliveryError."""
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
        return DeliveryError(f"Slack rate limited (HTTP {status}, {wait})", stop=True, retry_after=retry_after)
    if isinstance(status, int) and status >= 500:
        return DeliveryError(f"Slack server error (HTTP {status}): {_short(error or 'no detail')}", stop=True)
    return DeliveryError(
        f"Slack refused the message to {_short(channel, 80)}: {_short(error or 'unknown error')} (HTTP {status})",
        stop=error in _SYSTEMIC_ERRORS,
    )


class SlackSender:
    """Posts alerts with `chat.postMessage` (needs the `chat:write` scope)."""

    name = "slack"

    def __init__(self, token: str, channel_default: str = "", base_url: str = WebClient.BASE_URL, *, timeout: int = 10):
        if not token:
            raise ValueError("SlackSender needs a bot token")
        self.channel_default = channel_default
        self.base_url = base_url
        # No built-in retries: they would sleep inside the run; the outbox retries on the next run.
        self.client = WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])
        if _is_local(base_url):
            self.client.proxy = None  # slack_sdk reads HTTPS_PROXY and ignores NO_PROXY

    def send(self, alert: Alert) -> str:
        channel = alert.channel or self.channel_default
        if not channel:
            raise DeliveryError("no Slack channel: set FLANKWATCH_SLACK_CHANNEL or alert_routes")
        payload = alert.payload or {}
        try:
            response = self.client.chat_postMessage(
                channel=channel,
                text=payload.get("text") or "Flankwatch alert",
                blocks=payload.get("blocks"),
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as err:
            raise _api_error(err, channel) from None
        except (SlackClientError, OSError, HTTPException) as err:
            raise DeliveryError(
                f"cannot reach Slack at {self.base_url}: {type(err).__name__}: {_short(err)}", stop=True
            ) from None
        ts = response.get("ts")
        if not ts:
            raise DeliveryError("Slack accepted the message but returned no ts")
        return str(ts)


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

    def send(self, alert: Alert) -> str:
        payload = alert.payload or {}
        record = {
            "id": alert.id,
            "kind": alert.kind,
            "story_id": alert.story_id,
            "topic": alert.topic,
            "channel": alert.channel,
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
        self.console.print(Panel(body, title=header, subtitle=Text(f"{alert.kind}{channel}"), title_align="left"))
        return f"{self.path.name}@{offset}"[-64:]


def sender_for(settings: Settings, slack_token: str | None = None) -> Sender:
    """Slack when a token (argument, else settings) and a channel (default or a route) are set, else console."""
    token = slack_token or (settings.slack_token.get_secret_value() if settings.slack_token else None)
    has_channel = bool(settings.slack_channel) or any(route.channel for route in settings.alert_routes)
    if token and has_channel:
        return SlackSender(token, settings.slack_channel, settings.slack_api_url)
    assert settings.alert_log is not None  # set by Settings.model_post_init
    return ConsoleSender(settings.alert_log)
