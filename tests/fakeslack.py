"""A fake Slack Web API on 127.0.0.1 for tests: real HTTP, real slack_sdk client, no internet.

It answers, the way Slack does (JSON, form or query arguments, `Authorization: Bearer` token checked):

- `chat.postMessage`: channel (a name such as "#flankwatch-alerts" or an id such as "C0123"; the answer
  names the channel id: ids stay, a name maps to a stable fake id, see `channel_id`), text, blocks (Block
  Kit limits and `slack_sdk` validation enforced: `invalid_blocks`), thread_ts (a reply to an existing
  top-level message of that channel, else `thread_not_found`), reply_broadcast, metadata (object or JSON
  string). Every accepted message is stored per channel with a unique, increasing ts.
- `chat.update` (replaces text / blocks / metadata of a stored message; `message_not_found`).
- `conversations.history` (top-level messages and broadcast replies, newest first) and
  `conversations.replies` (the parent, then its replies, oldest first): oldest / latest / inclusive, limit,
  cursor paging (`has_more`, `response_metadata.next_cursor`), metadata only with include_all_metadata.
- `reactions.get` (reactions only present when there are some, as in Slack) and `reactions.add`.

Reads and updates accept a channel name too (real Slack wants the id there). Every request is recorded
(`requests`); tests inspect what Slack holds with `top_level`, `replies`, `message`, `updates`, `alert_ids`,
add reactions with `react`, and inject faults:

    with FakeSlack() as slack:
        settings = settings.model_copy(update={"slack_api_url": slack.url})
        slack.fail_next(1, "ratelimited", retry_after=30)   # or "server_error", "channel_not_found"
        slack.chaos(rate_429=0.2, rate_500=0.1, rate_slow=0.1, slow_seconds=2, seed=7)  # random faults
        ...
        assert len(slack.messages) == 1
        assert len(slack.alert_ids()) == len(set(slack.alert_ids()))   # no alert posted twice

A "slow" fault (postMessage only) stores the message and answers only after `slow_seconds`: a client
with a shorter timeout sees a timeout although Slack has the message, the in-doubt case of a real send.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import itertools
import json
import random
import re
import threading
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

from slack_sdk.models.blocks import Block

TOKEN = "xoxb-fake-token"
FAIL_MODES = ("ratelimited", "server_error", "channel_not_found")
BOT_USER = "U0FAKEBOT"  # the user every message of the fake is posted as (and reactions.add reacts as)
BOT_ID = "B0FAKEBOT"
METHODS = (
    "chat.postMessage",
    "chat.update",
    "conversations.history",
    "conversations.replies",
    "reactions.get",
    "reactions.add",
    "conversations.list",
)
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]+$")
_POST = "chat.postMessage"
_HISTORY_MAX, _REPLIES_MAX = 999, 1000
_USERS_SHOWN = 50  # reactions.get without full=true may not list every user; `count` is always right

Response = tuple[int, dict[str, str], bytes]


@dataclass
class Request:
    """One request as the server saw it: `body` is parsed (query arguments included), with `blocks` decoded
    when sent as a string. `delay`: seconds the answer was held back (a slow fault)."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes
    status: int = 0
    response: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0


def block_kit_errors(blocks: Any) -> list[str]:
    """What Slack would reject in `blocks` (the limits this project relies on), empty when valid."""
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        return ["blocks is not a list"]
    errors = []
    if len(blocks) > 50:
        errors.append(f"{len(blocks)} blocks > 50")
    for index, block in enumerate(blocks):
        if not isinstance(block, dict):
            errors.append(f"block {index}: not an object")
            continue
        kind = block.get("type")
        text = (block.get("text") or {}).get("text", "") if isinstance(block.get("text"), dict) else ""
        if kind == "header":
            if not isinstance(block.get("text"), dict) or block["text"].get("type") != "plain_text":
                errors.append(f"block {index}: header text must be plain_text")
            if not 0 < len(text) <= 150:
                errors.append(f"block {index}: header text {len(text)} chars")
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"block {index}: section without text or fields")
            if len(text) > 3000:
                errors.append(f"block {index}: section text {len(text)} chars")
            fields = block.get("fields", [])
            if len(fields) > 10:
                errors.append(f"block {index}: {len(fields)} fields")
            long_fields = [f for f in fields if len(f.get("text", "")) > 2000]
            errors += [f"block {index}: field of {len(f['text'])} chars" for f in long_fields]
        elif kind == "context":
            if not 0 < len(block.get("elements", [])) <= 10:
                errors.append(f"block {index}: context elements")
        elif kind != "divider":
            errors.append(f"block {index}: unexpected type {kind!r}")
    return errors


def sdk_block_errors(blocks: Any) -> list[str]:
    """What `slack_sdk.models.blocks.Block.parse(block).validate_json()` rejects in `blocks`."""
    if not isinstance(blocks, list):
        return []  # block_kit_errors says so
    errors = []
    for index, block in enumerate(blocks):
        try:
            parsed = Block.parse(block)
            if parsed is None:
                raise ValueError(f"unknown block type {block.get('type')!r}")
            parsed.validate_json()
        except Exception as err:  # noqa: BLE001 - any failure of the SDK model is a rejection
            errors.append(f"block {index}: {type(err).__name__}: {err}")
    return errors


@dataclass
class _Message:
    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None  # set on replies only (the parent's ts)
    metadata: dict[str, Any] | None = None
    reply_broadcast: bool = False
    reactions: dict[str, list[str]] = field(default_factory=dict)
    edited_ts: str | None = None


@dataclass
class _Chaos:
    rate_429: float
    rate_500: float
    rate_slow: float
    slow_seconds: float
    retry_after: float
    methods: frozenset[str]
    rng: random.Random


class _Refusal(Exception):
    """An `{"ok": false, "error": ...}` answer (HTTP 200), raised from deep inside a method."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error, self.extra = error, extra


class FakeSlack:
    """The server. Use as a context manager (or the `fake_slack` fixture): leaving it stops the server.

    `channels`: the channels that exist (names or ids); None: every channel exists."""

    def __init__(self, token: str = TOKEN, channels: tuple[str, ...] | None = None) -> None:
        self.token = token
        self.channels = channels
        self.requests: list[Request] = []
        self.injected: dict[str, int] = {"429": 0, "500": 0, "slow": 0}  # chaos faults so far (not fail_next)
        self._failures: list[tuple[str, float]] = []
        self._chaos: _Chaos | None = None
        self._lock = threading.RLock()
        self._ts = itertools.count(1)
        self._users = itertools.count(1)
        self._posted: list[_Message] = []  # accepted postMessages, in posting order
        self._by_key: dict[tuple[str, str], _Message] = {}
        self._thread_replies: dict[tuple[str, str], list[_Message]] = {}
        self._updates: list[dict[str, Any]] = []
        self._names: dict[str, str] = {name.lstrip("#"): self.channel_id(name) for name in channels or ()
                                       if not _CHANNEL_ID.match(name)}  # channel name -> id, for conversations.list
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "reactions.get": self._reactions_get,
            "reactions.add": self._reactions_add,
            "conversations.list": self._list_channels,
        }

    # --- control ---------------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        self._stopping.clear()
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes the handlers holding back a slow answer
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The API base URL (the `slack_api_url` setting)."""
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def fail_next(self, count: int, mode: str, *, retry_after: float = 30) -> None:
        """Answer the next `count` postMessage calls with a failure: ratelimited (429 + Retry-After),
        server_error (HTTP 500, HTML body) or channel_not_found (200, ok: false)."""
        if mode not in FAIL_MODES:
            raise ValueError(f"mode must be one of {FAIL_MODES}")
        with self._lock:
            self._failures += [(mode, retry_after)] * count

    def chaos(
        self,
        rate_429: float = 0.0,
        rate_500: float = 0.0,
        rate_slow: float = 0.0,
        slow_seconds: float = 2.0,
        retry_after: float = 1,
        seed: int = 0,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Random faults from now on, drawn from `random.Random(seed)` (one draw per request of `methods`,
        default all of METHODS, so the same requests get the same faults): HTTP 429 with Retry-After
        (rate_429), HTTP 500 with an HTML body (rate_500), and for chat.postMessage a slow answer
        (rate_slow): the message is stored, the answer sent after `slow_seconds`. No arguments: off."""
        rates = (rate_429, rate_500, rate_slow)
        if any(not 0 <= rate <= 1 for rate in rates) or sum(rates) > 1 + 1e-9:
            raise ValueError("rates must be within 0..1 and add up to at most 1")
        chosen = frozenset(METHODS if methods is None else methods)
        if chosen - set(METHODS):
            raise ValueError(f"unknown methods {sorted(chosen - set(METHODS))}; known: {METHODS}")
        with self._lock:
            if not any(rates):
                self._chaos = None
                return
            self._chaos = _Chaos(rate_429, rate_500, rate_slow, slow_seconds, retry_after, chosen, random.Random(seed))

    def react(self, channel_id: str, ts: str, name: str, count: int = 1) -> None:
        """`count` more (distinct, fake) users react with `name` to a stored message (KeyError if absent)."""
        with self._lock:
            message = self._by_key.get((self.channel_id(channel_id), ts))
            if message is None:
                raise KeyError(f"no message {ts} in {channel_id}")
            users = message.reactions.setdefault(name.strip(":"), [])
            users += [f"U{next(self._users):08d}" for _ in range(count)]

    # --- inspection ------------------------------------------------------------------------------

    @staticmethod
    def channel_id(name_or_id: str) -> str:
        """The channel id Slack answers with: an id (C…, G…, D…) stays, a name (with or without "#") maps
        to a stable fake id "C" + 8 hex digits."""
        if _CHANNEL_ID.match(name_or_id):
            return name_or_id
        return "C" + hashlib.sha1(name_or_id.lstrip("#").encode()).hexdigest()[:8].upper()

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Bodies of the messages Slack accepted (posted), in order."""
        with self._lock:
            return [r.body for r in self.requests if r.path == f"/api/{_POST}" and r.response.get("ok")]

    @property
    def updates(self) -> list[dict[str, Any]]:
        """Accepted chat.update calls, in order: {"channel" (id), "ts", "text", "blocks", "metadata"}
        (None for what the call did not send)."""
        with self._lock:
            return copy.deepcopy(self._updates)

    def top_level(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Top-level messages (not replies, broadcast or not) in posting order, of one channel or all.
        Each: channel, ts, thread_ts (None), text, blocks, metadata, reply_broadcast, reactions
        ({name: count}), edited."""
        with self._lock:
            wanted = None if channel is None else self.channel_id(channel)
            return [
                self._public(m) for m in self._posted if m.thread_ts is None and wanted in (None, m.channel)
            ]

    def replies(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The replies to `thread_ts` (without the parent), in posting order."""
        with self._lock:
            return [self._public(m) for m in self._thread_replies.get((self.channel_id(channel), thread_ts), [])]

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The stored message (as in `top_level`), None when Slack has no such message."""
        with self._lock:
            found = self._by_key.get((self.channel_id(channel), ts))
            return None if found is None else self._public(found)

    def alert_ids(self) -> list[str]:
        """metadata.event_payload.alert_id of every accepted postMessage that has one, in posting order
        (duplicates kept: the way to see an alert posted twice)."""
        with self._lock:
            ids = [((m.metadata or {}).get("event_payload") or {}).get("alert_id") for m in self._posted]
            return [i for i in ids if i is not None]

    # --- behaviour -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            name = request.path.removeprefix("/api/")
            method = self._methods.get(name) if request.path.startswith("/api/") else None
            if method is None:
                return self._json(request, 404, {"ok": False, "error": "unknown_method"})
            if request.headers.get("authorization") != f"Bearer {self.token}":
                error = "not_authed" if "authorization" not in request.headers else "invalid_auth"
                return self._json(request, 200, {"ok": False, "error": error})
            if name == _POST and self._failures:
                mode, retry_after = self._failures.pop(0)
                return self._failure(request, mode, retry_after)
            fault = self._draw(name)
            if fault in ("429", "500"):
                assert self._chaos is not None
                self.injected[fault] += 1
                mode = "ratelimited" if fault == "429" else "server_error"
                return self._failure(request, mode, self._chaos.retry_after)
            if fault == "slow":
                assert self._chaos is not None
                self.injected["slow"] += 1
                request.delay = self._chaos.slow_seconds
            try:
                data = method(request.body)
            except _Refusal as refusal:
                data = {"ok": False, "error": refusal.error, **refusal.extra}
            return self._json(request, 200, data)

    def _draw(self, name: str) -> str | None:
        chaos = self._chaos
        if chaos is None or name not in chaos.methods:
            return None
        roll = chaos.rng.random()
        if roll < chaos.rate_429:
            return "429"
        if roll < chaos.rate_429 + chaos.rate_500:
            return "500"
        if name == _POST and roll < chaos.rate_429 + chaos.rate_500 + chaos.rate_slow:
            return "slow"
        return None

    def _failure(self, request: Request, mode: str, retry_after: float) -> Response:
        if mode == "ratelimited":
            headers = {"Retry-After": f"{retry_after:g}"}
            return self._json(request, 429, {"ok": False, "error": "ratelimited"}, headers)
        if mode == "server_error":
            request.status = 500
            return 500, {"Content-Type": "text/html"}, b"<html><body>Internal Server Error</body></html>"
        return self._json(request, 200, {"ok": False, "error": "channel_not_found"})

    # --- the methods (called under the lock; raise _Refusal for an ok: false answer) -------------

    def _channel(self, body: dict[str, Any], *, by_id: bool = False) -> str:
        """The channel id a request names. Like Slack, only chat.postMessage takes a name ("#alerts"); reads,
        updates and reactions need the id (`by_id`), which the answer to a post gives, or conversations.list."""
        raw = body.get("channel")
        if not raw or not isinstance(raw, str) or (by_id and not _CHANNEL_ID.match(raw)):
            raise _Refusal("channel_not_found")
        if not _CHANNEL_ID.match(raw):
            with self._lock:
                self._names[raw.lstrip("#")] = self.channel_id(raw)
        if self.channels is not None and raw not in self.channels:
            if self.channel_id(raw) not in {self.channel_id(c) for c in self.channels}:
                raise _Refusal("channel_not_found")
        return self.channel_id(raw)

    @staticmethod
    def _validate_blocks(blocks: Any) -> None:
        errors = block_kit_errors(blocks) + sdk_block_errors(blocks)
        if errors:
            raise _Refusal("invalid_blocks", errors=errors)

    @staticmethod
    def _metadata(value: Any) -> dict[str, Any] | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise _Refusal("invalid_metadata_format") from None
        if not isinstance(value, dict):
            raise _Refusal("invalid_metadata_format")
        if not isinstance(value.get("event_type"), str) or not isinstance(value.get("event_payload"), dict):
            raise _Refusal("invalid_metadata_schema")
        return copy.deepcopy(value)

    def _post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body)
        if not body.get("text") and not body.get("blocks"):
            raise _Refusal("no_text")
        self._validate_blocks(body.get("blocks"))
        metadata = self._metadata(body.get("metadata"))
        thread_ts = body.get("thread_ts") or None
        if thread_ts is not None:
            parent = self._by_key.get((channel, str(thread_ts)))
            if parent is None or parent.thread_ts is not None:
                raise _Refusal("thread_not_found")
        message = _Message(
            channel=channel,
            ts=f"1700000000.{next(self._ts):06d}",
            text=body.get("text"),
            blocks=copy.deepcopy(body.get("blocks")),
            thread_ts=None if thread_ts is None else str(thread_ts),
            metadata=metadata,
            reply_broadcast=thread_ts is not None and _flag(body.get("reply_broadcast")),
        )
        self._posted.append(message)
        self._by_key[(channel, message.ts)] = message
        if message.thread_ts is not None:
            self._thread_replies.setdefault((channel, message.thread_ts), []).append(message)
        return {"ok": True, "channel": channel, "ts": message.ts, "message": self._render(message, True)}

    def _find(self, channel: str, ts: Any) -> _Message:
        message = self._by_key.get((channel, str(ts))) if ts else None
        if message is None:
            raise _Refusal("message_not_found")
        return message

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body, by_id=True)
        message = self._find(channel, body.get("ts"))
        if not body.get("text") and not body.get("blocks"):
            raise _Refusal("no_text")
        self._validate_blocks(body.get("blocks"))
        metadata = self._metadata(body.get("metadata"))
        if "text" in body:
            message.text = body["text"]
        if "blocks" in body:  # as in Slack: blocks not sent are kept
            message.blocks = copy.deepcopy(body["blocks"]) or None
        if metadata is not None:
            message.metadata = metadata
        message.edited_ts = f"1700000000.{next(self._ts):06d}"
        self._updates.append(
            {"channel": channel, "ts": message.ts, "text": body.get("text"),
             "blocks": copy.deepcopy(body.get("blocks")), "metadata": metadata}
        )  # fmt: skip
        rendered = self._render(message, False)
        return {"ok": True, "channel": channel, "ts": message.ts, "text": message.text or "", "message": rendered}

    def _list_channels(self, body: dict[str, Any]) -> dict[str, Any]:
        """The channels known by name (posted to by name, or given to the constructor), in one page."""
        with self._lock:
            channels = [{"id": cid, "name": name, "is_channel": True} for name, cid in sorted(self._names.items())]
        return {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}

    def _history(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body, by_id=True)
        with_metadata = _flag(body.get("include_all_metadata"))
        visible = [
            m for m in self._posted
            if m.channel == channel and (m.thread_ts is None or m.reply_broadcast) and _within(m.ts, body)
        ]  # fmt: skip
        visible.sort(key=lambda m: _ts_value(m.ts), reverse=True)
        limit = _limit(body, 100, _HISTORY_MAX)
        page, more = _page(visible, body.get("cursor"), limit, newest_first=True)
        return self._listing([self._render(m, with_metadata) for m in page], more)

    def _replies(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body, by_id=True)
        message = self._by_key.get((channel, str(body.get("ts")))) if body.get("ts") else None
        if message is None:
            raise _Refusal("thread_not_found")
        if message.thread_ts is not None:  # a reply's ts names its thread, as in Slack
            message = self._by_key[(channel, message.thread_ts)]
        with_metadata = _flag(body.get("include_all_metadata"))
        thread = [message] + [r for r in self._thread_replies.get((channel, message.ts), []) if _within(r.ts, body)]
        limit = _limit(body, 1000, _REPLIES_MAX)
        page, more = _page(thread, body.get("cursor"), limit, newest_first=False)
        return self._listing([self._render(m, with_metadata) for m in page], more)

    @staticmethod
    def _listing(messages: list[dict[str, Any]], more: _Message | None) -> dict[str, Any]:
        data: dict[str, Any] = {"ok": True, "messages": messages, "has_more": more is not None}
        if more is not None:
            data["response_metadata"] = {"next_cursor": _cursor(more.ts)}
        return data

    def _reacted(self, body: dict[str, Any]) -> tuple[str, _Message]:
        if not body.get("channel") or not body.get("timestamp"):
            raise _Refusal("no_item_specified")
        channel = self._channel(body, by_id=True)
        return channel, self._find(channel, body.get("timestamp"))

    def _reactions_get(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, message = self._reacted(body)
        rendered = self._render(message, False, all_users=_flag(body.get("full")))
        return {"ok": True, "type": "message", "channel": channel, "message": rendered}

    def _reactions_add(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("name") or "").strip(":")
        if not name:
            raise _Refusal("invalid_name")
        _, message = self._reacted(body)
        users = message.reactions.setdefault(name, [])
        if BOT_USER in users:
            raise _Refusal("already_reacted")
        users.append(BOT_USER)
        return {"ok": True}

    # --- shapes ----------------------------------------------------------------------------------

    def _render(self, message: _Message, with_metadata: bool, *, all_users: bool = False) -> dict[str, Any]:
        """The message as the Web API shows it."""
        data: dict[str, Any] = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": message.text or "",
                                "ts": message.ts}  # fmt: skip
        if message.blocks:
            data["blocks"] = copy.deepcopy(message.blocks)
        if message.thread_ts is not None:
            data["thread_ts"], data["parent_user_id"] = message.thread_ts, BOT_USER
            if message.reply_broadcast:
                data["subtype"] = "thread_broadcast"
        else:
            replies = self._thread_replies.get((message.channel, message.ts))
            if replies:
                data.update(thread_ts=message.ts, reply_count=len(replies), reply_users=[BOT_USER],
                            reply_users_count=1, latest_reply=replies[-1].ts)  # fmt: skip
        if message.edited_ts is not None:
            data["edited"] = {"user": BOT_USER, "ts": message.edited_ts}
        reactions = [
            {"name": name, "count": len(users), "users": users if all_users else users[:_USERS_SHOWN]}
            for name, users in message.reactions.items() if users
        ]  # fmt: skip
        if reactions:
            data["reactions"] = copy.deepcopy(reactions)
        if with_metadata and message.metadata is not None:
            data["metadata"] = copy.deepcopy(message.metadata)
        return data

    @staticmethod
    def _public(message: _Message) -> dict[str, Any]:
        return {
            "channel": message.channel,
            "ts": message.ts,
            "thread_ts": message.thread_ts,
            "text": message.text,
            "blocks": copy.deepcopy(message.blocks),
            "metadata": copy.deepcopy(message.metadata),
            "reply_broadcast": message.reply_broadcast,
            "reactions": {name: len(users) for name, users in message.reactions.items() if users},
            "edited": message.edited_ts is not None,
        }

    @staticmethod
    def _json(request: Request, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
        request.status, request.response = status, data
        return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, json.dumps(data).encode()


# --- argument helpers ------------------------------------------------------------------------------


def _flag(value: Any) -> bool:
    """A boolean argument: JSON true, or "true" / "1" in a form or query."""
    return value is True or (isinstance(value, (str, int)) and str(value).lower() in ("1", "true"))


def _ts_value(ts: str) -> Decimal:
    return Decimal(ts)


def _bound(body: dict[str, Any], name: str) -> Decimal | None:
    value = body.get(name)
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise _Refusal(f"invalid_ts_{name}") from None


def _within(ts: str, body: dict[str, Any]) -> bool:
    """Between `oldest` and `latest` (exclusive unless `inclusive`, as in Slack)."""
    oldest, latest, value = _bound(body, "oldest"), _bound(body, "latest"), _ts_value(ts)
    if _flag(body.get("inclusive")):
        return (oldest is None or value >= oldest) and (latest is None or value <= latest)
    return (oldest is None or value > oldest) and (latest is None or value < latest)


def _limit(body: dict[str, Any], default: int, most: int) -> int:
    value = body.get("limit")
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _Refusal("invalid_limit") from None
    return default if number <= 0 else min(number, most)


def _cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _page(
    messages: list[_Message], cursor: Any, limit: int, *, newest_first: bool
) -> tuple[list[_Message], _Message | None]:
    """One page of `messages` (already in answer order) from `cursor`, and the first message of the next."""
    if cursor:
        try:
            text = base64.b64decode(str(cursor), validate=True).decode()
            start = _ts_value(text.removeprefix("next_ts:")) if text.startswith("next_ts:") else None
        except (binascii.Error, UnicodeDecodeError, InvalidOperation):
            start = None
        if start is None:
            raise _Refusal("invalid_cursor")
        messages = [m for m in messages if (_ts_value(m.ts) <= start if newest_first else _ts_value(m.ts) >= start)]
    page = messages[:limit]
    return page, (messages[limit] if len(messages) > limit else None)


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        body = json.loads(raw or b"{}")
    elif content_type.startswith("application/x-www-form-urlencoded"):
        body = {key: values[-1] for key, values in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
    else:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if isinstance(body.get("blocks"), str):  # the form API sends blocks as a JSON string
        body["blocks"] = json.loads(body["blocks"])
    return body


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSlack
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve()

    def do_GET(self) -> None:  # noqa: N802 - slack_sdk reads (history, replies, reactions.get) with GET
        self._serve()

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            body = {**query, **_parse_body(headers.get("content-type", ""), raw)}
            if isinstance(body.get("blocks"), str):
                body["blocks"] = json.loads(body["blocks"])
        except (ValueError, UnicodeDecodeError):
            body = {}
        request = Request(self.command, parts.path, headers, body, raw)
        status, response_headers, payload = self.fake.handle(request)
        if request.delay and self.fake._stopping.wait(request.delay):
            self.close_connection = True  # the server is stopping: the answer is never sent
            return
        try:
            self.send_response(status)
            for name, value in response_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up (timed out) before the answer came
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass
