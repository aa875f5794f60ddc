"""Collector throughput against a loopback server: `python bench/collect_bench.py [--feeds 1000 10000]`.

A uvicorn server in a subprocess (its own core) serves N feeds built from the real outlet feeds of
../shared/data/feeds/outlets/ (their real sizes; item links made unique per feed so that every feed brings new
articles, as N different outlets would), spread over `--hosts` loopback addresses 127.0.x.y (a feed reader
polls thousands of hosts; the per-host limit and delay apply per address; default 2,000, 5 feeds a host at
10,000 feeds). Each feed answers with an ETag and 304 to a
matching If-None-Match. For each N it measures, on a fresh embedded state DB:

(a) the first poll of N feeds through the collect stage (fetch, parse, normalise, store);
(b) a second poll, where every feed answers 304;
(c) in the same run, bare `feedparser.parse` over the same N bodies, one after another.

It prints the figures and, last, one JSON line: feeds/s, the ratio first poll / bare parse (goal ≤ 1.3), the
304-poll time (goal ≤ 10 s for 10,000 feeds) and the peak RSS of this process, of the collector's helper
processes (the parse workers and their forkserver, `collectors.workers`; sampled while each poll runs) and
of the server. Also the CPU seconds each side used in each poll (this process, helpers, server): on a shared
machine the wall times vary with the neighbours' load, the CPU seconds much less.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import re
import resource
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "feeds" / "outlets"
_ITEM = re.compile(rb"<(?:item|entry)[\s>]")
_ITEM_END = re.compile(rb"</(?:item|entry)\s*>")
_LINK = re.compile(rb"(<(?:link|guid|id)\b[^>]*>\s*(?:<!\[CDATA\[)?\s*https?://)|(<link\b[^>]*\bhref=[\"']https?://)")
# GUIDs that are not URLs (e.g. "tag:...", numbers) and item titles
_OPAQUE_ID = re.compile(rb"<(?:guid|id)\b[^>]*>\s*(?:<!\[CDATA\[)?\s*(?!https?://)(?=[^<\s])")
_TITLE = re.compile(rb"<title\b[^>]*>\s*(?:<!\[CDATA\[)?\s*(?=[^<\s])")


def corpus(folder: Path) -> list[bytes]:
    """The real feed files of `folder` (sorted, so every run serves the same bytes)."""
    return [p.read_bytes() for p in sorted(folder.rglob("*.xml")) if p.is_file()]


def trim_items(body: bytes, keep: int) -> bytes:
    """The feed with its first `keep` items only (a poll sees a feed's latest items; the corpus holds some
    archive-sized feeds of 300 items and 400 KB that feed readers rarely meet)."""
    starts = [m.start() for m in _ITEM.finditer(body)]
    if len(starts) <= keep:
        return body
    ends = [m.end() for m in _ITEM_END.finditer(body)]
    last = max(ends) if ends else len(body)
    return body[: starts[keep]] + body[last:]


def feed_body(bodies: list[bytes], index: int, keep: int = 30) -> bytes:
    """Feed `index`: a real feed, its first `keep` items, made an outlet of its own: article links prefixed by
    a host label of its own, non-URL GUIDs and titles by a label of its own. (N different outlets share no
    GUIDs and rarely a title; 10,000 feeds cut from ~100 files would otherwise share each title and GUID
    ~100 times, which the store's dedup lookups, by GUID and title across sources, pay for at every batch.)"""
    label = b"f%d" % index
    body = _LINK.sub(lambda m: m.group(0) + label + b".", trim_items(bodies[index % len(bodies)], keep))
    body = _OPAQUE_ID.sub(lambda m: m.group(0) + label + b"-", body)
    return _TITLE.sub(lambda m: m.group(0) + label + b": ", body)


def etag(index: int) -> str:
    return f'"{index}-{hashlib.blake2b(str(index).encode(), digest_size=4).hexdigest()}"'


def _serve(folder: str, count: int, hosts: int, port: int, ready: Any) -> None:
    """The server process: uvicorn (httptools, uvloop where installed) on one socket per loopback host."""
    import asyncio
    import uvicorn

    bodies = corpus(Path(folder))
    feeds = [feed_body(bodies, i) for i in range(count)]
    tags = [etag(i).encode() for i in range(count)]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            index = int(scope["path"].rsplit("/", 1)[-1].removesuffix(".xml"))
            body, tag = feeds[index], tags[index]
        except (ValueError, IndexError):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = dict(scope["headers"])
        if headers.get(b"if-none-match") == tag:
            await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", tag)]})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/rss+xml; charset=utf-8"), (b"etag", tag),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    sockets = []
    for host in range(hosts):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address(host), port))
        sockets.append(sock)
    config = uvicorn.Config(app, log_level="warning", access_log=False, backlog=4096, timeout_keep_alive=30)
    server = uvicorn.Server(config)
    ready.set()
    asyncio.run(server.serve(sockets=sockets))


def address(host: int) -> str:
    """The loopback address of host number `host` (0-based): 127.0.0.1, 127.0.0.2, ... 127.0.1.1, ..."""
    return f"127.0.{host // 250}.{host % 250 + 1}"


def _peak_rss_kib(pid: int | None) -> int:
    """A live process's peak resident set (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class Helpers:
    """Samples this process's descendants other than the server (parse workers, forkserver) while a poll runs:
    their peak RSS (VmHWM, last value seen per process) and CPU seconds (last value seen per process)."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.peak_kib: dict[int, int] = {}
        self.cpu_s: dict[int, float] = {}  # CPU seconds used since the sampling started
        self._before: dict[int, float] = {}  # CPU seconds of the processes that were already there
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Helpers:
        import psutil

        for child in psutil.Process().children(recursive=True):
            try:
                times = child.cpu_times()
                self._before[child.pid] = times.user + times.system
            except psutil.Error:
                pass
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while True:
            for child in me.children(recursive=True):
                try:
                    if child.pid == self.server_pid or "resource_tracker" in " ".join(child.cmdline()):
                        continue
                    self.peak_kib[child.pid] = max(self.peak_kib.get(child.pid, 0), _peak_rss_kib(child.pid))
                    times = child.cpu_times()
                    self.cpu_s[child.pid] = times.user + times.system - self._before.get(child.pid, 0.0)
                except (psutil.Error, OSError):
                    pass
            if self._stop.wait(0.2):
                return


def _cpu_s(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bare_parse(bodies: list[bytes]) -> float:
    """Seconds for feedparser alone over the bodies, one after another."""
    import feedparser

    started = time.perf_counter()
    for body in bodies:
        feedparser.parse(io.BytesIO(body))
    return time.perf_counter() - started


def measure(count: int, hosts: int, folder: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import insert

    from collectors.collect import collect
    from core.db import session_scope, upgrade
    from core.models import Feed
    from core.settings import Settings

    port = _free_port()
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    server = context.Process(target=_serve, args=(str(folder), count, hosts, port, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(120):
            raise RuntimeError("the loopback server did not start")
        bodies = corpus(folder)
        served = [feed_body(bodies, i) for i in range(count)]
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(var_dir=Path(tmp), feeds_file=Path(tmp) / "none.yaml", **overrides)
            upgrade(settings)
            with session_scope(settings) as session:
                session.execute(insert(Feed), [
                    {"url": f"http://{address(i % hosts)}:{port}/feeds/{i}.xml", "name": f"bench feed {i}",
                     "language": "en", "origin": "bench"} for i in range(count)])
            _wait_for_server(port, hosts)
            cpu: dict[str, float] = {}
            helper_peak_kib: dict[int, int] = {}
            polls = {}
            for label, extra in (("first", {}), ("second", _due_later())):
                own, served_cpu = time.process_time(), _cpu_s(server.pid)
                with Helpers(server.pid) as helpers:
                    started = time.perf_counter()
                    polls[label] = collect(settings, run_id=f"bench-{count}-{label}", origin="bench", **extra)
                    polls[label + "_s"] = time.perf_counter() - started
                cpu[f"{label}_poll_cpu_s_main"] = round(time.process_time() - own, 2)
                cpu[f"{label}_poll_cpu_s_helpers"] = round(sum(helpers.cpu_s.values()), 2)
                cpu[f"{label}_poll_cpu_s_server"] = round(_cpu_s(server.pid) - served_cpu, 2)
                for pid, kib in helpers.peak_kib.items():
                    helper_peak_kib[pid] = max(helper_peak_kib.get(pid, 0), kib)
            first, first_s, second, second_s = polls["first"], polls["first_s"], polls["second"], polls["second_s"]
        parse_s = bare_parse(served)
        server_rss_kib = _peak_rss_kib(server.pid)
    finally:
        server.terminate()
        server.join(10)
    figures = {
        "feeds": count, "hosts": hosts, "bytes": sum(map(len, served)),
        "first_poll_s": round(first_s, 2), "first_poll_feeds_per_s": round(count / first_s, 1),
        "first_poll_ok": first.ok, "first_poll_errors": first.errors, "new_articles": first.new_articles,
        "bare_parse_s": round(parse_s, 2), "ratio_first_poll_to_bare_parse": round(first_s / parse_s, 3),
        "second_poll_s": round(second_s, 2), "second_poll_not_modified": second.not_modified,
        "server_peak_rss_mib": round(server_rss_kib / 1024, 1),
        "helper_processes": len(helper_peak_kib),
        "helpers_peak_rss_mib": round(sum(helper_peak_kib.values()) / 1024, 1),
        **cpu,
    }
    print(f"{count:>6} feeds on {hosts} hosts, {figures['bytes'] / 1e6:.1f} MB: first poll {first_s:.2f} s "
          f"({figures['first_poll_feeds_per_s']} feeds/s, {first.ok} ok, {first.errors} errors, "
          f"{first.new_articles} new articles); bare feedparser {parse_s:.2f} s; ratio "
          f"{figures['ratio_first_poll_to_bare_parse']}; 304 poll {second_s:.2f} s "
          f"({second.not_modified} not modified); CPU s first poll main/helpers/server "
          f"{cpu['first_poll_cpu_s_main']}/{cpu['first_poll_cpu_s_helpers']}/{cpu['first_poll_cpu_s_server']}, "
          f"304 poll {cpu['second_poll_cpu_s_main']}/{cpu['second_poll_cpu_s_helpers']}/"
          f"{cpu['second_poll_cpu_s_server']}; helpers' peak RSS {figures['helpers_peak_rss_mib']} MiB "
          f"({len(helper_peak_kib)} processes), server {figures['server_peak_rss_mib']} MiB")
    return figures


def _due_later() -> dict[str, Any]:
    """The second poll runs as if the feeds were due again (its clock past every next-fetch time)."""
    import inspect
    from datetime import datetime, timedelta, timezone

    from collectors.collect import collect

    if "now" in inspect.signature(collect).parameters:
        return {"now": datetime.now(timezone.utc) + timedelta(days=2)}
    return {}


def _wait_for_server(port: int, hosts: int) -> None:
    deadline = time.monotonic() + 60
    for host in (0, hosts - 1):
        while True:
            try:
                socket.create_connection((address(host), port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--hosts", type=int, default=2000,
                        help="loopback addresses (127.0.x.y) the feeds are spread over, at most one per feed")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a collector setting for the run, e.g. fetch_concurrency=64")
    args = parser.parse_args()
    overrides: dict[str, Any] = {"allow_private_addresses": True}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    from core.settings import Settings

    overrides = {k: v for k, v in overrides.items() if k in Settings.model_fields}
    runs = [measure(count, min(args.hosts, count), args.corpus, overrides) for count in args.feeds]
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps({"runs": runs, "settings": overrides, "peak_rss_mib": peak}))


if __name__ == "__main__":
    main()
