"""Preflights answered from the protocol (server/inline.py): the same answers, order, logs,
records and connection handling as aiohttp's own way, which everything else still takes."""

from __future__ import annotations

import asyncio
import re

import pytest
import structlog
from aiohttp import web

from corsproxy import config as config_module
from corsproxy.server import inline, inspector
from corsproxy.server.app import STATE, State
from corsproxy.server.inspector import INSPECTOR
from tests.conftest import ALLOWED, FOREIGN

DATE = re.compile(rb"\r\nDate: [^\r]+\r\n")


def preflight(origin: str = ALLOWED, host: str = "127.0.0.1", version: str = "1.1", extra: str = "") -> bytes:
    return (f"OPTIONS /api/items?x=1 HTTP/{version}\r\nHost: {host}\r\nOrigin: {origin}\r\n"
            f"Access-Control-Request-Method: PUT\r\n{extra}\r\n").encode()


GET = f"GET /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {ALLOWED}\r\n\r\n".encode()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """One answer off the connection: status, head (Date masked), body (by Content-Length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
    body = await asyncio.wait_for(reader.readexactly(int(length[1])), 5) if length else b""
    return int(head.split(b" ", 2)[1]), DATE.sub(b"\r\nDate: -\r\n", head), body


async def exchange(port: int, *batches: bytes, answers: int) -> tuple[list[tuple[int, bytes, bytes]], bytes]:
    """Send each batch in one write, read `answers` answers, then what follows until the server
    closes or 1 s of silence (b"" when it closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for batch in batches:
            writer.write(batch)
        got = [await read_answer(reader) for _ in range(answers)]
        try:
            rest = await asyncio.wait_for(reader.read(), 1)
        except TimeoutError:
            rest = b"(still open)"
        return got, rest
    finally:
        writer.close()


@pytest.fixture
def handled(proxy) -> list[str]:
    """The requests that reached aiohttp's handler task (all but those answered inline)."""
    server = proxy.server.runner.server
    seen: list[str] = []
    original = server.request_handler

    async def counting(request: web.BaseRequest) -> web.StreamResponse:
        seen.append(f"{request.method} {request.headers.get('Origin')}")
        return await original(request)

    server.request_handler = counting
    return seen


def test_the_private_state_inline_reads_is_aiohttps() -> None:
    """Every RequestHandler name inline.py uses exists in the installed aiohttp (else it must change)."""
    async def names() -> list[str]:
        server = inline.InlineServer(lambda request: None, lambda view: None)
        handler = server()
        missing = [name for name in inline.HANDLER_STATE if not hasattr(handler, name)]
        missing += [name for name in ("_loop", "_kwargs") if not hasattr(server, name)]
        return missing + ([] if hasattr(handler._parser, "message_consumed") else ["parser.message_consumed"])

    assert asyncio.run(names()) == []


async def test_a_lone_preflight_is_answered_inline_with_the_normal_paths_bytes(proxy, handled):
    """A preflight on an idle connection never reaches the handler; its bytes are the handler's."""
    inline_answer, rest = await exchange(proxy.port, preflight(), answers=1)
    assert handled == [] and rest == b"(still open)"
    # Behind a GET in the same write, a preflight is queued, so the handler answers it.
    queued, _ = await exchange(proxy.port, GET + preflight(), answers=2)
    assert handled == [f"GET {ALLOWED}", f"OPTIONS {ALLOWED}"]
    assert inline_answer[0][0] == 204 and queued[1] == inline_answer[0]


async def test_pipelined_requests_are_answered_in_order(proxy, handled, received):
    """Preflight, GET, preflight, preflight in one write: four answers in that order."""
    got, _ = await exchange(proxy.port, preflight() + GET + preflight() + preflight(FOREIGN), answers=4)
    assert [status for status, _, _ in got] == [204, 200, 204, 403]
    assert b"Access-Control-Allow-Origin" not in got[3][1] and FOREIGN.encode() in got[3][2]
    assert handled == [f"GET {ALLOWED}", f"OPTIONS {ALLOWED}", f"OPTIONS {FOREIGN}"]
    assert [r["method"] for r in received] == ["GET"]


@pytest.mark.parametrize("version, extra, keeps", [
    ("1.1", "Connection: close\r\n", False), ("1.0", "", False), ("1.0", "Connection: keep-alive\r\n", True),
], ids=["1.1 close", "1.0", "1.0 keep-alive"])
async def test_connection_handling_is_aiohttps(proxy, version, extra, keeps):
    """Connection: close and HTTP/1.0 close after the answer; HTTP/1.0 keep-alive says so and stays open."""
    got, rest = await exchange(proxy.port, preflight(version=version, extra=extra), answers=1)
    status, head, _ = got[0]
    assert status == 204 and head.startswith(f"HTTP/{version} 204 No Content\r\n".encode())
    assert rest == (b"(still open)" if keeps else b"")
    connection = b"keep-alive" if keeps else b"close" if version == "1.1" else None
    assert (b"\r\nConnection: " + connection + b"\r\n" in head) if connection else b"Connection" not in head


async def test_a_refused_preflight_and_a_foreign_host_are_answered_once_by_the_handler(proxy, handled):
    """Not a cached allowed preflight: the handler answers, with one log line each."""
    with structlog.testing.capture_logs() as logged:
        got, _ = await exchange(proxy.port, preflight(FOREIGN), answers=1)
        host, _ = await exchange(proxy.port, preflight(host="evil.example"), answers=1)
    assert got[0][0] == 403 and b"is not in allow_origins" in got[0][2]
    assert host[0][0] == 403 and b"not in server.allowed_hosts" in host[0][2]
    assert handled == [f"OPTIONS {FOREIGN}", f"OPTIONS {ALLOWED}"]
    assert [(line["status"], line["origin"]) for line in logged] == [(403, FOREIGN), (403, ALLOWED)]


async def test_an_inline_answer_logs_and_records_as_the_handler_does(proxy, handled):
    """The log line and inspector record of an inline preflight are the handler's (but time)."""
    buffer = proxy.server.app[INSPECTOR]
    with structlog.testing.capture_logs() as logged:
        await exchange(proxy.port, preflight(), answers=1)
        await exchange(proxy.port, GET + preflight(), answers=2)
    assert handled == [f"GET {ALLOWED}", f"OPTIONS {ALLOWED}"]
    lines = [{k: v for k, v in line.items() if k != "duration_ms"} for line in logged if line["method"] == "OPTIONS"]
    assert len(lines) == 2 and lines[0] == lines[1] and lines[0]["path"] == "/api/items?x=1"
    records = [record for record in buffer if record.method == "OPTIONS"]
    assert len(records) == 2
    assert records[0][2:6] + records[0][7:] == records[1][2:6] + records[1][7:]   # but id, time, duration


async def test_a_reload_changes_the_next_inline_answer_on_the_same_connection(proxy, handled, tmp_path, upstream):
    """An open connection's next preflight reads the State a reload put in place."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(preflight())
        allowed = await read_answer(reader)
        path = tmp_path / "other.yaml"
        path.write_text(f"cors:\n  allow_origins: [{FOREIGN}]\nroutes:\n  - prefix: /api\n"
                        f"    upstream: http://127.0.0.1:{upstream.port}/v1\n")
        proxy.server.app[STATE].current = State.of(config_module.load(path, env={}))
        writer.write(preflight())
        refused = await read_answer(reader)
        writer.write(preflight(FOREIGN))
        swapped = await read_answer(reader)
    finally:
        writer.close()
    assert allowed[0] == 204 and f"Access-Control-Allow-Origin: {ALLOWED}".encode() in allowed[1]
    assert refused[0] == 403
    assert swapped[0] == 204 and f"Access-Control-Allow-Origin: {FOREIGN}".encode() in swapped[1]


async def test_an_idle_connection_still_times_out_after_an_inline_answer(proxy, handled):
    """aiohttp's keep-alive timer closes the connection that an inline answer left idle."""
    proxy.server.runner.server._kwargs["keepalive_timeout"] = 0.5   # for connections made from now on
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(preflight())
        assert (await read_answer(reader))[0] == 204
        assert await asyncio.wait_for(reader.read(), 10) == b""
    finally:
        writer.close()
    assert handled == []


async def test_a_fault_in_the_inline_path_leaves_the_answer_to_the_handler(proxy, handled, monkeypatch):
    """When reporting an inline answer raises (here: a record that cannot read the view), the
    handler answers the preflight and the connection stays usable."""
    record = inspector.record

    def strict(request, *args):
        if isinstance(request, inline.MessageView):
            raise AttributeError("not a BaseRequest")
        return record(request, *args)

    monkeypatch.setattr(inspector, "record", strict)
    got, rest = await exchange(proxy.port, preflight() + GET, answers=2)
    assert [status for status, _, _ in got] == [204, 200] and rest == b"(still open)"
    assert handled == [f"OPTIONS {ALLOWED}", f"GET {ALLOWED}"]



async def test_more_pipelined_preflights_than_aiohttp_queues_are_all_answered_in_order(proxy, handled):
    """40 preflights and a GET in one write (aiohttp pauses reading at 32 queued): 41 answers in order."""
    got, rest = await exchange(proxy.port, preflight() * 40 + GET, answers=41)
    assert [status for status, _, _ in got] == [204] * 40 + [200] and rest == b"(still open)"
    assert handled == [f"GET {ALLOWED}"]


class Arrivals:
    """How many times bytes reached a proxy connection's data_received (and were handled there)."""

    def __init__(self) -> None:
        self.count, self._changed = 0, asyncio.Event()

    def note(self) -> None:
        self.count += 1
        self._changed.set()

    async def reach(self, count: int) -> None:
        while self.count < count:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), 5)


@pytest.fixture
def arrivals(monkeypatch) -> Arrivals:
    seen, original = Arrivals(), inline.InlineHandler.data_received

    def noting(self, data: bytes) -> None:
        original(self, data)
        if data:   # not aiohttp's own reparse of buffered requests
            seen.note()

    monkeypatch.setattr(inline.InlineHandler, "data_received", noting)
    return seen


def hold_after_first_request(monkeypatch, until) -> None:
    """The handler task, once its first request is answered and written, waits for `until()`
    before it loops back: the moment uvloop often gives the next request's bytes."""
    original = inline.InlineHandler.finish_response
    held: list[bool] = []

    async def holding(self, *args):
        answer = await original(self, *args)
        if not held:
            held.append(True)
            await until()
        return answer

    monkeypatch.setattr(inline.InlineHandler, "finish_response", holding)


async def test_preflights_arriving_as_the_handler_finishes_a_request_are_answered_inline_in_order(
        proxy, handled, arrivals, monkeypatch):
    """A GET, then (after its answer, before the handler task waits again) preflight, preflight,
    GET, preflight in one write: the first two inline, all five in order, one log line each."""
    hold_after_first_request(monkeypatch, lambda: arrivals.reach(2))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    with structlog.testing.capture_logs() as logged:
        try:
            writer.write(GET)
            got = [await read_answer(reader)]
            writer.write(preflight() + preflight() + GET + preflight())
            got += [await read_answer(reader) for _ in range(4)]
        finally:
            writer.close()
    assert [status for status, _, _ in got] == [200, 204, 204, 200, 204]
    assert got[1] == got[2] == got[4] and got[0] == got[3]   # inline bytes are the handler's
    assert handled == [f"GET {ALLOWED}", f"GET {ALLOWED}", f"OPTIONS {ALLOWED}"]
    assert [(line["method"], line["status"]) for line in logged] == [
        ("GET", 200), ("OPTIONS", 204), ("OPTIONS", 204), ("GET", 200), ("OPTIONS", 204)]


async def test_a_preflight_behind_a_request_queued_in_that_moment_waits_for_its_answer(
        proxy, handled, arrivals, monkeypatch):
    """A GET queued after an answer, before the handler task waits again: a preflight arriving
    while that GET is being answered is answered after it, by the handler."""
    hold_after_first_request(monkeypatch, lambda: arrivals.reach(2))
    server = proxy.server.runner.server
    counting = server.request_handler

    async def second_waits_for_the_preflight(request: web.BaseRequest) -> web.StreamResponse:
        if len(handled) == 1:
            await arrivals.reach(3)
        return await counting(request)

    server.request_handler = second_waits_for_the_preflight
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(GET)
        got = [await read_answer(reader)]
        writer.write(GET)
        await arrivals.reach(2)
        writer.write(preflight())
        got += [await read_answer(reader) for _ in range(2)]
    finally:
        writer.close()
    assert [status for status, _, _ in got] == [200, 200, 204]
    assert handled == [f"GET {ALLOWED}", f"GET {ALLOWED}", f"OPTIONS {ALLOWED}"]
