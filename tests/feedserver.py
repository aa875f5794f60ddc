"""A real HTTP server on 127.0.0.1 for collector tests: serves feed files with ETag / Last-Modified (and 304 on
a matching If-None-Match), plus the ways real servers fail: error statuses, a body trickled byte by byte, an
endless body, a redirect loop, an HTML page instead of a feed, an entity bomb, a gzip bomb, a slow answer. A server binds
one loopback address (127.0.0.1 by default; 127.0.0.2, 127.0.0.3... are other hosts for the politeness
limits) and counts the requests it is answering at once (`max_in_flight`, also shared across servers
through a `Meter`).

    with FeedServer() as server:
        server.serve_file("/tagesschau.xml", path)
        url = server.url("/tagesschau.xml")

Every handler thread stops when the server stops (the `with` block ends).
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LAST_MODIFIED = "Sat, 21 Dec 2024 19:00:00 GMT"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title>
<item><title>&lol9;</title><link>https://example.org/lol</link></item>
</channel></rss>
"""

HTML_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Page not found</title>
<script>window.location = "/";</script></head>
<body><h1>Oops</h1><p>The page you requested has moved. <a href="/">Home</a></p></body></html>
"""


def gzip_bomb(decoded_bytes: int = 256 * 1024 * 1024) -> bytes:
    """A gzip stream of `decoded_bytes` zeros: about a thousandth of that on the wire."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b"\0" * (1024 * 1024)
    parts = [compressor.compress(block) for _ in range(decoded_bytes // len(block))]
    parts.append(compressor.flush())
    return b"".join(parts)


class Meter:
    """Requests being answered at once, and the most seen; one meter may count for several servers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def __enter__(self) -> Meter:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self.in_flight -= 1


@dataclass
class Route:
    """What one path answers. `mode`: static | trickle | endless | redirect | slow (static after `delay`)."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    mode: str = "static"
    etag: str | None = None
    last_modified: str | None = LAST_MODIFIED
    location: str | None = None
    interval: float = 0.1  # trickle: seconds between two bytes
    endless: bool = False  # redirect: stream a body forever after the headers
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # slow: seconds before the answer


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    at: float = 0.0  # time.monotonic() when it arrived


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a run opens many connections at once: the default backlog of 5 drops SYNs

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up mid-body is expected here


class FeedServer:
    def __init__(self, host: str = "127.0.0.1", meter: Meter | None = None) -> None:
        self.host = host
        self.meter = Meter()  # this server's own count
        self.shared_meter = meter  # a count across servers, if given
        self.routes: dict[str, Route] = {}
        self.requests: list[SeenRequest] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> FeedServer:
        server = _QuietServer((self.host, 0), _make_handler(self))
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- routes ----------------------------------------------------------------------------------------
    def route(self, path: str, route: Route) -> str:
        if route.mode == "static" and route.status == 200 and route.etag is None:
            route.etag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
        with self._lock:
            self.routes[path] = route
        return self.url(path)

    def serve_bytes(self, path: str, body: bytes, **options: object) -> str:
        return self.route(path, Route(body=body, **options))  # type: ignore[arg-type]

    def serve_file(self, path: str, file: Path, **options: object) -> str:
        return self.serve_bytes(path, Path(file).read_bytes(), **options)

    def error(self, path: str, status: int = 500, headers: dict[str, str] | None = None) -> str:
        return self.route(
            path, Route(body=b"Internal Server Error", status=status, content_type="text/plain", headers=headers or {})
        )

    def slow(self, path: str, body: bytes, delay: float, **options: object) -> str:
        """A feed answered after `delay` seconds."""
        return self.route(path, Route(body=body, mode="slow", delay=delay, **options))  # type: ignore[arg-type]

    def gzip_bomb(self, path: str, bomb: bytes) -> str:
        """`bomb` (see `gzip_bomb`) sent with Content-Encoding: gzip as an RSS feed."""
        return self.route(path, Route(body=bomb, headers={"Content-Encoding": "gzip"}))

    def html(self, path: str) -> str:
        return self.route(path, Route(body=HTML_PAGE, content_type="text/html; charset=utf-8"))

    def billion_laughs(self, path: str) -> str:
        return self.route(path, Route(body=BILLION_LAUGHS, content_type="application/xml"))

    def trickle(self, path: str, interval: float = 0.1) -> str:
        return self.route(path, Route(mode="trickle", interval=interval))

    def endless(self, path: str) -> str:
        return self.route(path, Route(mode="endless"))

    def redirect(self, path: str, location: str, status: int = 302, *, endless_body: bool = False) -> str:
        """A redirect; with `endless_body`, one that streams a body forever after its headers."""
        return self.route(path, Route(mode="redirect", status=status, location=location, endless=endless_body))

    def redirect_loop(self, path: str) -> str:
        other = path.rstrip("/") + "-again"
        self.redirect(other, path)
        return self.redirect(path, other)

    def requests_to(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]


def closed_port_url(path: str = "/feed.xml") -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def _make_handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection; a body ends when the connection closes

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet test output
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
                pass  # the client hung up: that is what a cut-off fetch does

        def finish(self) -> None:
            try:
                super().finish()
            except OSError:
                pass

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            path = self.path.split("?", 1)[0]
            with server._lock:
                server.requests.append(
                    SeenRequest(path=path, headers={k.lower(): v for k, v in self.headers.items()}, at=time.monotonic())
                )
                route = server.routes.get(path)
            with server.meter, (server.shared_meter or Meter()):
                self._answer(route)

        def _answer(self, route: Route | None) -> None:
            if route is None:
                self._plain(404, b"not found")
            elif route.mode == "redirect":
                self.send_response(route.status)
                self.send_header("Location", route.location or "/")
                if route.endless:
                    self.end_headers()
                    while not server.stopping:
                        self.wfile.write(b"x" * 65536)
                else:
                    self.send_header("Content-Length", "0")
                    self.end_headers()
            elif route.mode == "trickle":
                self._trickle(route)
            elif route.mode == "endless":
                self._endless(route)
            elif route.mode == "slow":
                if server._stop.wait(route.delay):
                    return
                self._static(route)
            else:
                self._static(route)

        def _plain(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _static(self, route: Route) -> None:
            if route.status == 200:
                if_none_match = self.headers.get("If-None-Match")
                if_modified_since = self.headers.get("If-Modified-Since")
                etag_matches = route.etag is not None and if_none_match == route.etag
                date_matches = route.last_modified is not None and if_modified_since == route.last_modified
                fresh = etag_matches or (if_none_match is None and date_matches)
                if fresh:
                    self.send_response(304)
                    if route.etag:
                        self.send_header("ETag", route.etag)
                    self.end_headers()
                    return
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(route.body)))
            if route.status == 200:
                if route.etag:
                    self.send_header("ETag", route.etag)
                if route.last_modified:
                    self.send_header("Last-Modified", route.last_modified)
            for name, value in route.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(route.body)

        def _trickle(self, route: Route) -> None:
            self.send_response(200)
            self.send_header("Content-Type", route.content_type)
            self.end_headers()
            self.wfile.write(b'<?xml version="1.0"?><rss version="2.0"><channel>')
            self.wfile.flush()
            while not server.stopping:
                time.sleep(route.interval)
                self.wfile.write(b" ")
                self.wfile.flush()

        def _endless(self, route: Route) -> None:
            self.send_response(200)
            self.send_header("Content-Type", route.content_type)
            self.end_headers()
            self.wfile.write(b'<?xml version="1.0"?><rss version="2.0"><channel><title>')
            chunk = b"x" * 65536
            while not server.stopping:
                self.wfile.write(chunk)

    return Handler
