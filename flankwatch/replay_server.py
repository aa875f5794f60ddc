"""A local feed server for the demo: each outlet's items, served as a growing RSS 2.0 feed on 127.0.0.1.

The demo moves the simulated clock forward; the server then shows every item published up to that time
(newest first, at most `window` items), with an ETag and Last-Modified, and answers a conditional GET with
304 when nothing changed: the collectors' real path runs against it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import defaultdict
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from flankwatch.replay import ReplayItem


def slug(name: str) -> str:
    value = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return value or hashlib.sha1(name.encode()).hexdigest()[:10]


def render_rss(title: str, language: str, items: list[ReplayItem]) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>http://127.0.0.1/</link>",
        f"<description>Flankwatch demo replay of {escape(title)}</description><language>{escape(language)}</language>",
    ]
    for item in items:
        parts.append(
            "<item>"
            f"<title>{escape(item.title)}</title><link>{escape(item.link)}</link>"
            f"<description>{escape(item.description)}</description>"
            f"<pubDate>{format_datetime(item.published, usegmt=True)}</pubDate>"
            f'<guid isPermaLink="false">{escape(item.guid)}</guid>'
            "</item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


class ReplayServer:
    """`with ReplayServer(items) as server:` ... `server.clock = t` ... `server.feed_url(outlet)`."""

    def __init__(self, items: list[ReplayItem], window: int = 50) -> None:
        self.window = window
        self.clock: datetime | None = None
        self.outlets: dict[str, list[ReplayItem]] = defaultdict(list)
        self.requests = 0
        for item in sorted(items, key=lambda i: i.published):
            self.outlets[item.outlet].append(item)
        self._slugs: dict[str, str] = {}  # outlet -> unique slug ("Delfi.lt" and "delfi.lt" are two outlets)
        for name in self.outlets:
            base = candidate = slug(name)
            n = 1
            while candidate in self._slugs.values():
                n += 1
                candidate = f"{base}-{n}"
            self._slugs[name] = candidate
        self._by_slug = {value: name for name, value in self._slugs.items()}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="replay-server", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def feed_url(self, outlet: str) -> str:
        return f"{self.base_url}/feeds/{self._slugs[outlet]}.xml"

    def language(self, outlet: str) -> str:
        return self.outlets[outlet][0].language

    def visible(self, outlet: str) -> list[ReplayItem]:
        items = [i for i in self.outlets[outlet] if self.clock is None or i.published <= self.clock]
        return list(reversed(items[-self.window:]))

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with server._lock:
                    server.requests += 1
                match = re.fullmatch(r"/feeds/([a-z0-9-]+)\.xml", self.path)
                outlet = server._by_slug.get(match.group(1)) if match else None
                if outlet is None:
                    self.send_error(404)
                    return
                items = server.visible(outlet)
                body = render_rss(outlet, server.language(outlet), items)
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                if items:
                    self.send_header("Last-Modified", format_datetime(items[0].published, usegmt=True))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        return Handler
