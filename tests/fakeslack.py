"""A fake Slack Web API on 127.0.0.1 for tests: real HTTP, real slack_sdk client, no internet.

It implements `POST /api/chat.postMessage` the way Slack does (JSON or form body, `Authorization: Bearer`
token checked, Block Kit limits enforced), records every request, and can be told to fail the next calls:

    with FakeSlack() as slack:
        settings = settings.model_copy(update={"slack_api_url": slack.url})
        slack.fail_next(1, "ratelimited", retry_after=30)   # or "server_error", "channel_not_found"
        ...
        assert len(slack.messages) == 1
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

TOKEN = "xoxb-fake-token"
FAIL_MODES = ("ratelimited", "server_error", "channel_not_found")


@dataclass
class Request:
    """One request as the server saw it: `body` is parsed, with `blocks` decoded when sent as a string."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes
    status: int = 0
    response: dict[str, Any] = field(default_factory=dict)


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
        kind = block.get("type")
        text = (block.get("text") or {}).get("text", "") if isinstance(block.get("text"), dict) else ""
        if kind == "header":
            if block["text"].get("type") != "plain_text":
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


class FakeSlack:
    """The server. Use as a context manager (or the `fake_slack` fixture): leaving it stops the server."""

    def __init__(self, token: str = TOKEN, channels: tuple[str, ...] | None = None) -> None:
        self.token = token
        self.channels = channels  # None: every channel exists
        self.requests: list[Request] = []
        self._failures: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
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

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Bodies of the messages Slack accepted (posted), in order."""
        with self._lock:
            return [r.body for r in self.requests if r.response.get("ok")]

    # --- behaviour -------------------------------------------------------------------------------

    def _next_failure(self) -> tuple[str, float] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def handle(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(request)
        if request.path != "/api/chat.postMessage":
            return self._json(request, 404, {"ok": False, "error": "unknown_method"})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            error = "not_authed" if "authorization" not in request.headers else "invalid_auth"
            return self._json(request, 200, {"ok": False, "error": error})
        failure = self._next_failure()
        if failure is not None:
            mode, retry_after = failure
            if mode == "ratelimited":
                headers = {"Retry-After": f"{retry_after:g}"}
                return self._json(request, 429, {"ok": False, "error": "ratelimited"}, headers)
            if mode == "server_error":
                request.status = 500
                return 500, {"Content-Type": "text/html"}, b"<html><body>Internal Server Error</body></html>"
            return self._json(request, 200, {"ok": False, "error": "channel_not_found"})
        body = request.body
        channel = body.get("channel")
        if not channel or (self.channels is not None and channel not in self.channels):
            return self._json(request, 200, {"ok": False, "error": "channel_not_found"})
        if not body.get("text") and not body.get("blocks"):
            return self._json(request, 200, {"ok": False, "error": "no_text"})
        errors = block_kit_errors(body.get("blocks"))
        if errors:
            return self._json(request, 200, {"ok": False, "error": "invalid_blocks", "errors": errors})
        ts = f"1700000000.{next(self._ts):06d}"
        message = {"type": "message", "ts": ts, "text": body.get("text"), "blocks": body.get("blocks")}
        return self._json(request, 200, {"ok": True, "channel": channel, "ts": ts, "message": message})

    @staticmethod
    def _json(
        request: Request, status: int, data: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        request.status, request.response = status, data
        return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, json.dumps(data).encode()


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        body = json.loads(raw or b"{}")
    elif content_type.startswith("application/x-www-form-urlencoded"):
        body = {key: values[-1] for key, values in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
    else:
        body = {}
    if isinstance(body.get("blocks"), str):  # the form API sends blocks as a JSON string
        body["blocks"] = json.loads(body["blocks"])
    return body


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSlack
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body = _parse_body(headers.get("content-type", ""), raw)
        except (ValueError, UnicodeDecodeError):
            body = {}
        status, response_headers, payload = self.fake.handle(Request("POST", self.path, headers, body, raw))
        self.send_response(status)
        for name, value in response_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass
