"""The collector's HTTP/1.1 transport (`collectors.transport`) against a raw socket server on 127.0.0.1 that
answers with exact bytes: body framings, keep-alive and its limits, interim answers, broken and oversized
answers, header injection, the address guard."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from collectors.http import classify_exception, make_client
from collectors.safety import AddressPolicy
from collectors.transport import LeanTransport
from core.settings import Settings

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawServer"], Awaitable[None]]


@dataclass
class RawServer:
    """A loopback server that reads each request head and lets `script` answer it."""

    script: Script
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/feed.xml"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        self.requests.append(head)
        return head

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def keep_alive(*answers: bytes) -> Script:
    """Answer each request on a connection with the next of `answers` (the last one repeats)."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        sent = 0
        while await server.read_request(reader) is not None:
            writer.write(answers[min(sent, len(answers) - 1)])
            await writer.drain()
            sent += 1

    return script


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 5\r\n\r\nhello"
NOT_MODIFIED = b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n'


def client(**options: object) -> httpx.AsyncClient:
    transport = LeanTransport(AddressPolicy(allow_private=True), **options)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(2.0, read=0.5))


def run(coroutine: Awaitable[object]) -> object:
    return asyncio.run(asyncio.wait_for(coroutine, 20))  # type: ignore[arg-type]


def test_content_length_body_and_keep_alive_reuse() -> None:
    async def go() -> None:
        async with RawServer(keep_alive(OK, NOT_MODIFIED)) as server, client() as http:
            first = await http.get(server.url, headers={"If-None-Match": '"v0"'})
            assert (first.status_code, first.content, first.reason_phrase) == (200, b"hello", "OK")
            assert first.headers["content-type"] == "application/rss+xml"
            second = await http.get(server.url)
            assert second.status_code == 304 and second.headers["etag"] == '"v1"' and second.content == b""
            third = await http.get(server.url)
            assert third.status_code == 304
            assert server.connections == 1, "one connection carried all three requests"
            head = server.requests[0]
            assert head.startswith(b"GET /feed.xml HTTP/1.1\r\n") and b'\r\nif-none-match: "v0"\r\n' in head.lower()
            assert b"\r\nhost: 127.0.0.1:" in head.lower()

    run(go())


def test_chunked_body_with_extensions_and_trailers() -> None:
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5;name=x\r\nhello\r\n7\r\n, world\r\n0\r\nExpires: never\r\n\r\n")

    async def go() -> None:
        async with RawServer(keep_alive(answer)) as server, client() as http:
            assert (await http.get(server.url)).content == b"hello, world"
            assert (await http.get(server.url)).content == b"hello, world"
            assert server.connections == 1

    run(go())


def test_body_delimited_by_the_end_of_the_stream_and_connection_close() -> None:
    async def close_delimited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<rss>")
        await writer.drain()
        writer.write(b"</rss>")
        await writer.drain()

    async def go() -> None:
        async with RawServer(close_delimited) as server, client() as http:
            assert (await http.get(server.url)).content == b"<rss></rss>"
            assert (await http.get(server.url)).content == b"<rss></rss>"
            assert server.connections == 2, "a body that ends with the stream leaves no connection to reuse"
        closing = OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length")
        async with RawServer(keep_alive(closing)) as server, client() as http:
            await http.get(server.url)
            await http.get(server.url)
            assert server.connections == 2, "Connection: close is honoured"

    run(go())


def test_interim_answers_are_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + OK

    async def go() -> None:
        async with RawServer(keep_alive(answer)) as server, client() as http:
            response = await http.get(server.url)
            assert (response.status_code, response.content) == (200, b"hello")
            assert "link" not in response.headers

    run(go())


def test_a_stale_idle_connection_is_retried_once_on_a_new_one() -> None:
    async def one_answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                    server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(OK)  # keep-alive by default in HTTP/1.1, then the server drops it without a word
        await writer.drain()
        await server.read_request(reader)

    async def go() -> None:
        async with RawServer(one_answer_then_close) as server, client() as http:
            assert (await http.get(server.url)).content == b"hello"
            assert (await http.get(server.url)).content == b"hello"
            assert server.connections == 2 and len(server.requests) == 3

    run(go())


def test_idle_connections_expire_and_are_capped() -> None:
    async def go() -> None:
        async with RawServer(keep_alive(OK)) as server, client(keepalive_expiry=0.05) as http:
            await http.get(server.url)
            await asyncio.sleep(0.15)
            await http.get(server.url)
            assert server.connections == 2, "an expired idle connection is not reused"
        async with RawServer(keep_alive(OK)) as one, RawServer(keep_alive(OK)) as two, client(max_idle=1) as http:
            transport = http._transport  # noqa: SLF001
            assert isinstance(transport, LeanTransport)
            await http.get(one.url)
            await http.get(two.url)
            assert transport.idle_connections == 1
            await http.get(one.url)
            assert one.connections == 2 and two.connections == 1, "the oldest idle connection went first"

    run(go())


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed the connection in the middle"),
        (b"", "closed the connection before answering"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "invalid HTTP response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "invalid HTTP response"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", "response head larger than"),
    ],
    ids=["truncated", "no answer", "not http", "two lengths", "huge head"],
)
def test_broken_answers_are_protocol_errors(answer: bytes, expected: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(answer)
        await writer.drain()

    async def go() -> None:
        async with RawServer(script) as server, client() as http:
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)) as caught:
                await (await http.get(server.url)).aread()
            assert expected in str(caught.value)
            assert classify_exception(caught.value) in ("protocol", "connect")

    run(go())


def test_silent_server_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        await server.read_request(reader)
        await asyncio.sleep(2)

    async def go() -> None:
        async with RawServer(silent) as server, client() as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(server.url)

    run(go())


def test_large_body_is_read_in_pieces_with_reading_paused_in_between() -> None:
    body = bytes(range(256)) * 8192  # 2 MiB

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()

    async def go() -> None:
        async with RawServer(big) as server, client() as http:
            async with http.stream("GET", server.url) as response:
                pieces = [piece async for piece in response.aiter_raw()]
            assert b"".join(pieces) == body and len(pieces) > 1
            assert (await http.get(server.url)).content == body
            assert server.connections == 1, "a paused connection is resumed for its next request"

    run(go())


def test_header_injection_and_other_methods_are_refused() -> None:
    async def go() -> None:
        async with RawServer(keep_alive(OK)) as server, client() as http:
            with pytest.raises(httpx.LocalProtocolError, match="CR, LF or NUL"):
                await http.get(server.url, headers={"If-None-Match": '"x"\r\nX-Evil: 1'})
            with pytest.raises(httpx.LocalProtocolError, match="only sends GET"):
                await http.post(server.url, content=b"x")
            assert server.requests == []

    run(go())


def test_private_addresses_are_refused_unless_allowed() -> None:
    async def go() -> None:
        async with RawServer(keep_alive(OK)) as server:
            transport = LeanTransport(AddressPolicy(allow_private=False))
            async with httpx.AsyncClient(transport=transport) as http:
                with pytest.raises(Exception) as caught:
                    await http.get(server.url)
            assert classify_exception(caught.value) == "forbidden_address"
            assert server.connections == 0
            trusted = LeanTransport(AddressPolicy.build(False, ["127.0.0.0/8"]))
            async with httpx.AsyncClient(transport=trusted) as http:
                assert (await http.get(server.url)).content == b"hello"

    run(go())


def test_the_feed_client_keeps_no_cookies(tmp_path: Path) -> None:
    setting = OK.replace(b"Content-Length", b"Set-Cookie: session=abc; Path=/\r\nContent-Length")
    settings = Settings(var_dir=tmp_path, allow_private_addresses=True)

    async def go() -> None:
        async with RawServer(keep_alive(setting)) as server, make_client(settings) as http:
            await http.get(server.url)
            await http.get(server.url)
            assert len(server.requests) == 2 and all(b"cookie" not in head.lower() for head in server.requests)
            assert not http.cookies

    run(go())
