"""The collector's HTTP/1.1 transport for `httpx.AsyncClient`: asyncio protocol, llhttp parser, SSRF guard.

Why not httpx's own transport (httpcore + h11 + anyio): a feed reader's typical request is a conditional GET
answered by a 304 with no body, and for that httpcore's connection pool, h11's pure-Python parser and anyio's
cancel scopes cost over a millisecond of CPU a request, several times what the request itself costs; a poll
of 10,000 mostly unchanged feeds was CPU-bound on it. Here the response is parsed by llhttp (Node's parser,
through `httptools`, the parser uvicorn uses), a connection is an `asyncio.Protocol`, and the pool is a dict
of idle connections per origin. The client in front is still `httpx.AsyncClient`: requests, responses,
headers, timeouts and exceptions are httpx's, so callers do not know the difference.

What it does, and nothing more (the collector needs nothing more):
- GET only (feeds and article pages), HTTP/1.1, no request body, no proxies, no HTTP/2, no upgrade;
- SSRF guard on every connection: the host is resolved here, the connection is refused when any address is
  not allowed by the `AddressPolicy`, then one of the checked addresses is connected to (so DNS rebinding
  between check and connect is impossible); TLS still verifies the certificate against the host name;
- keep-alive: a connection whose response was read to its end, and that the server did not ask to close,
  waits idle for the next request to the same origin for `keepalive_expiry` seconds (`max_idle` in all);
  a GET on a reused connection that dies before the first byte of an answer is retried once on a new one;
- bounds: response head at most `max_head_bytes` (else a protocol error), connect and read timeouts from the
  request's httpx timeout, socket reads paused while unread body piles up (the caller caps the body size
  and the total time, see `collectors.http`);
- errors raised as httpx raises them (ConnectError, ConnectTimeout, ReadError, ReadTimeout, WriteError,
  RemoteProtocolError, LocalProtocolError) with the OS or parser error as the cause, so
  `collectors.http.classify_exception` sees the same chains as with httpcore.
"""

from __future__ import annotations

import asyncio
import collections
import resource
import ssl
import time
from collections.abc import AsyncIterator

import httptools
import httpx

from collectors.safety import AddressPolicy, ForbiddenAddress, resolve

MAX_HEAD_BYTES = 64 * 1024  # status line and headers of one response
_HIGH_WATER = 256 * 1024  # unread body bytes at which the socket stops being read
_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def default_max_idle() -> int:
    """Idle connections kept: enough for one to each of a few thousand hosts between two of its requests
    (a host's feeds come a `fetch_host_delay_seconds` or more apart), within a quarter of the process's
    file descriptors (a quarter of 1,024, the usual default, is 256)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 2048
    return max(16, min(2048, soft // 4))


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection, carrying one request at a time. The parser's callbacks fill in the
    response: its head first (`head_done`), then body pieces queued in `_chunks` until `message_done`."""

    def __init__(self, origin: Origin, max_head_bytes: int) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self._max_head_bytes = max_head_bytes
        self._closed = False
        self._parser: httptools.HttpResponseParser | None = None
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.message_done = False
        self.keep_alive = False
        self.failure: BaseException | None = None
        self.received_any = False
        self._head_bytes = 0  # bytes received before the head was complete
        self._header_bytes = 0  # bytes of the header lines parsed
        self._framed = False  # Content-Length, chunked or no body: the end is known without the end of the stream
        self._interim = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._parser is None or self.message_done or self.failure is not None:
            self.keep_alive = False  # bytes nobody asked for: this connection is not reused
            self._parser = None
            return
        self.received_any = True
        if not self.head_done:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.failure = httpx.RemoteProtocolError("the server switched protocols")
        except httptools.HttpParserError as exc:
            if self.failure is None:  # else a callback already said what was wrong
                self.failure = httpx.RemoteProtocolError(f"invalid HTTP response: {exc}")
                self.failure.__cause__ = exc
        if not self.head_done and self._head_bytes > self._max_head_bytes:
            self._head_too_large()
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._parser is not None and not self.message_done and self.failure is None:
            if self.head_done and not self._framed:
                self.message_done = True  # a body delimited by the end of the stream
            else:
                error = httpx.ReadError if exc is not None else httpx.RemoteProtocolError
                where = "in the middle of the response" if self.received_any else "before answering"
                self.failure = error(f"the server closed the connection {where}")
                self.failure.__cause__ = exc
        self.keep_alive = False
        self._wake()

    # httptools callbacks
    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self._max_head_bytes:  # the whole head may come in one read
            self._head_too_large()
            raise ValueError("response head too large")  # stops the parser
        self.headers.append((name, value))

    def _head_too_large(self) -> None:
        if self.failure is None:
            self.failure = httpx.RemoteProtocolError(f"response head larger than {self._max_head_bytes} bytes")

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self._interim = True
            self.headers = []
            self.reason = b""
            return
        self.status = status
        self.head_done = True
        if status in (204, 304):
            self._framed = True
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length" or (lowered == b"transfer-encoding" and b"chunked" in value.lower()):
                self._framed = True

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        assert self._parser is not None
        self.message_done = True
        self.keep_alive = self._parser.should_keep_alive()

    # used by the transport
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, timeout: float | None, what: str) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._waiter
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no {what} within {timeout:g} s") from exc
        finally:
            self._waiter = None

    @property
    def reusable(self) -> bool:
        """Open, its last response read to the end, and quiet since (a server that closed it, or sent bytes
        nobody asked for, shows up here as a closing transport or as `keep_alive` turned off)."""
        transport = self.transport
        return (
            not self._closed and transport is not None and not transport.is_closing()
            and self.keep_alive and self.message_done and not self._chunks and self._parser is not None
        )

    def start(self, head: bytes) -> None:
        transport = self.transport
        if self._closed or transport is None or transport.is_closing():
            raise httpx.WriteError("the connection is closed")
        self._reset()
        self._parser = httptools.HttpResponseParser(self)
        if self._paused:  # paused while the last body piled up, which has been read by now
            self._paused = False
            transport.resume_reading()
        transport.write(head)

    async def read_head(self, timeout: float | None) -> None:
        while not self.head_done and self.failure is None:
            await self._wait(timeout, "response")
        if self.failure is not None:
            raise self.failure

    async def body(self, timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= _HIGH_WATER // 4 and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                yield chunk
            if self.failure is not None:
                raise self.failure
            if self.message_done:
                return
            await self._wait(timeout, "data")

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None and not self._closed:
            self.transport.close()
        self._closed = True


class _Body(httpx.AsyncByteStream):
    """A response body as httpx iterates it. The connection goes back to the pool once the body was read to
    its end, and is closed when the reader stops early."""

    def __init__(self, owner: LeanTransport, connection: _Connection, read_timeout: float | None) -> None:
        self._owner = owner
        self._connection: _Connection | None = connection
        self._read_timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        try:
            async for chunk in connection.body(self._read_timeout):
                yield chunk
        except BaseException:
            await self.aclose()
            raise
        await self.aclose()

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._owner.release(connection)


class LeanTransport(httpx.AsyncBaseTransport):
    """See the module docstring. Use it inside one event loop; `aclose` closes the idle connections."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle: int | None = None,
        keepalive_expiry: float = 5.0,
        max_head_bytes: int = MAX_HEAD_BYTES,
    ) -> None:
        self.policy = policy
        self.ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        self.max_idle = default_max_idle() if max_idle is None else max_idle
        self.keepalive_expiry = keepalive_expiry
        self.max_head_bytes = max_head_bytes
        self._idle: dict[_Connection, None] = {}  # every idle connection, oldest first
        self._idle_by_origin: dict[Origin, list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        head = _request_head(request)
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
        origin = (scheme, url.raw_host.decode("ascii"), url.port or _DEFAULT_PORTS[scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        connection = self._take_idle(origin)
        if connection is not None:
            try:
                return await self._exchange(connection, head, request, timeouts)
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                if connection.received_any:
                    raise
                # the server closed the idle connection as the request went out: once more on a new one
        connection = await self._connect(origin, timeouts.get("connect"))
        return await self._exchange(connection, head, request, timeouts)

    async def _exchange(self, connection: _Connection, head: bytes, request: httpx.Request,
                        timeouts: dict[str, float | None]) -> httpx.Response:
        try:
            connection.start(head)
            await connection.read_head(timeouts.get("read"))
        except BaseException:
            connection.close()
            raise
        return httpx.Response(
            connection.status,
            headers=connection.headers,
            stream=_Body(self, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": connection.reason.strip()},
            request=request,
        )

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                addresses = await resolve(host, port)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"resolving {host} took longer than {timeout:g} s") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        refused = [a for a in addresses if not self.policy.allows(a)]
        if refused:
            raise ForbiddenAddress(
                f"{host} resolves to {', '.join(map(str, refused))}: private, loopback or link-local addresses "
                "are not fetched (setting allow_private_addresses)"
            )
        tls = self.ssl_context if scheme == "https" else None
        last: httpx.TransportError | None = None
        for address in addresses:
            connection = _Connection(origin, self.max_head_bytes)
            try:
                async with asyncio.timeout_at(deadline):
                    await loop.create_connection(
                        lambda connection=connection: connection, str(address), port, ssl=tls, server_hostname=host if tls else None
                    )
            except TimeoutError as exc:
                last = httpx.ConnectTimeout(f"connecting to {host}:{port} ({address}) timed out")
                last.__cause__ = exc
            except OSError as exc:  # ssl.SSLError is an OSError
                last = httpx.ConnectError(str(exc) or type(exc).__name__)
                last.__cause__ = exc
            else:
                return connection
            connection.close()
            if deadline is not None and loop.time() >= deadline:
                break
        assert last is not None  # resolve never answers with an empty list
        raise last

    def _take_idle(self, origin: Origin) -> _Connection | None:
        waiting = self._idle_by_origin.get(origin)
        if not waiting:
            return None
        now = time.monotonic()
        while waiting:
            connection = waiting.pop()  # the most recently used: the least likely to be closed by the server
            del self._idle[connection]
            if connection.reusable and now - connection.idle_since < self.keepalive_expiry:
                break
            connection.close()
        else:
            connection = None
        if not waiting:
            del self._idle_by_origin[origin]
        return connection

    def release(self, connection: _Connection) -> None:
        """Back to the pool when it can carry another request, else closed."""
        if not connection.reusable:
            connection.close()
            return
        now = connection.idle_since = time.monotonic()
        self._idle[connection] = None
        self._idle_by_origin.setdefault(connection.origin, []).append(connection)
        while self._idle:  # oldest first: the expired ones, then any beyond max_idle
            oldest = next(iter(self._idle))
            if len(self._idle) <= self.max_idle and now - oldest.idle_since < self.keepalive_expiry:
                break
            self._forget(oldest)

    def _forget(self, connection: _Connection) -> None:
        del self._idle[connection]
        waiting = self._idle_by_origin[connection.origin]
        waiting.remove(connection)
        if not waiting:
            del self._idle_by_origin[connection.origin]
        connection.close()

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def aclose(self) -> None:
        for connection in list(self._idle):
            self._forget(connection)


def _request_head(request: httpx.Request) -> bytes:
    """The request line and headers. A target or header with CR, LF or NUL is refused: feed URLs and the
    validators sent back come from strangers, and must not be able to add a header or a second request."""
    if request.method != "GET":
        raise httpx.LocalProtocolError(f"the feed transport only sends GET, not {request.method}", request=request)
    raw = request.headers.raw
    parts = [b"GET ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in raw:
        if value != b"0" and name.lower() in (b"content-length", b"transfer-encoding"):
            raise httpx.LocalProtocolError("the feed transport sends no request body", request=request)
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    lines = len(raw) + 2  # the request line, the headers, the empty line: any other CR or LF was smuggled in
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\0" in head:
        raise httpx.LocalProtocolError("CR, LF or NUL in the request target or a header", request=request)
    return head
