"""The cheap log line (issue #15) writes what structlog's own renderers wrote, byte for byte."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
import time
from datetime import datetime

import pytest
import structlog
import structlog.testing
from aiohttp import web
from structlog.dev import ConsoleRenderer
from structlog.processors import JSONRenderer

from corsproxy.server import logs
from tests.conftest import raw_http

REQUEST = {"timestamp": "2026-12-01T09:31:13.019334Z", "level": "info", "event": "request", "method": "GET",
           "path": "/api/orders?page=2", "route": "/api", "source": "config/orders.yaml:7",
           "origin": "http://localhost:3000", "status": 200, "upstream_status": 200, "duration_ms": 1.23,
           "cors": "cors"}
LINES = {
    "request": REQUEST,
    "no-origin request": {**REQUEST, "origin": None, "route": None, "cors": "no-origin"},
    "refusal with a sentence": {**REQUEST, "level": "warning", "event": "refused", "status": 403,
                                "why": "origin 'https://evil.example' is not in allow_origins of route /api"},
    "quotes, tabs, = and newlines": {"timestamp": "t", "level": "error", "event": "x", "a": "k=v", "b": "a\tb",
                                     "c": 'say "hi"', "d": "it's", "e": "two\nlines", "f": ""},
    "lists and dicts": {"timestamp": "t", "level": "info", "event": "config reloaded", "added": ["/billing"],
                        "changed": [], "counts": {"a": 1}, "server_changed": False},
    "event longer than its column": {"timestamp": "t", "level": "debug", "event": "e" * 40, "k": 1},
    "event alone": {"timestamp": "t", "level": "info", "event": "stopped"},
    "no timestamp": {"level": "info", "event": "listening", "url": "http://127.0.0.1:8080"},
    "a logger name (aiohttp's own lines)": {"timestamp": "t", "level": "error", "event": "Error handling request",
                                            "logger": "aiohttp.server"},
    "an unknown level": {"timestamp": "t", "level": "trace", "event": "x"},
}


@pytest.mark.parametrize("colors", [False, True], ids=["plain", "colours"])
@pytest.mark.parametrize("event_dict", LINES.values(), ids=LINES.keys())
def test_console_line_is_console_renderers_line(event_dict: dict, colors: bool) -> None:
    """ConsoleLine writes exactly the line ConsoleRenderer writes for the same event."""
    expected = ConsoleRenderer(colors=colors)(None, "info", dict(event_dict))
    assert logs.ConsoleLine(colors)(None, "info", dict(event_dict)) == expected


def test_console_line_keeps_a_traceback() -> None:
    """A line with exc_info is rendered with its traceback, as ConsoleRenderer does."""
    try:
        raise ValueError("boom")
    except ValueError as exc:
        line = logs.ConsoleLine(False)(None, "error", {"timestamp": "t", "level": "error", "event": "failed",
                                                       "exc_info": exc})
    assert line.startswith("t [error    ] failed") and "ValueError: boom" in line and "Traceback" in line


@pytest.mark.parametrize("event_dict", LINES.values(), ids=LINES.keys())
def test_json_line_is_json_renderers_line(event_dict: dict) -> None:
    """JSONLine writes the bytes JSONRenderer writes: the same keys, values and spacing."""
    assert logs.JSONLine()(None, "info", dict(event_dict)) == JSONRenderer()(None, "info", dict(event_dict))


def test_timestamp_is_the_utc_time_in_iso_8601() -> None:
    """UtcTimestamp writes the current UTC time as YYYY-MM-DDTHH:MM:SS.ffffffZ, six digits always."""
    stamp = logs.UtcTimestamp()
    values = []
    for _ in range(3):  # the second one reuses the date and time made for the first
        before = time.time()
        values.append((before, stamp(None, "info", {})["timestamp"], time.time()))
    for before, value, after in values:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", value), value
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        assert before - 1e-6 <= moment <= after


@pytest.fixture
def configured_here():
    """logs.configure() in this test only: structlog, the root logger and logs' globals are put
    back afterwards (the rest of the suite logs as conftest set it up)."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:], root.level = handlers, level
    logs.request_line, logs.info_line, logs._json = logs._structlog_line, logs._structlog_info, False


# request_line's values (request_fields's arguments), as the request path passes them.
VALUES = {"method": "GET", "path": "/api/orders?page=2", "route": "/api", "source": "config/orders.yaml:7",
          "origin": "http://localhost:3000", "status": 200, "upstream_status": 200, "duration_ns": 1_234_567,
          "cors": "cors"}
HOSTILE = {"method": "GET", "path": "/api/x\x1b]0;pwned\x07 y", "route": "/api", "source": "c.yaml:3",
           "origin": "http://localhost:3000", "status": 403, "upstream_status": None, "duration_ns": 500_000,
           "cors": "refused", "intercepted": "https://a.test", "why": "origin 'x' is not in allow_origins"}
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.mark.parametrize("log_format", ["console", "json"])
@pytest.mark.parametrize("values", [VALUES, HOSTILE], ids=["request", "refusal with escapes"])
def test_request_line_is_the_line_structlog_writes(configured_here, capsys, log_format: str, values: dict) -> None:
    """request_line writes the bytes structlog's configured chain writes for the same call, but the time."""
    logs.configure(log_format, "info")
    for level, event in (("info", "request"), ("warning", "refused")):
        getattr(logs.get_logger(), level)(event, **logs.request_fields(**values))
        logs.request_line(level, event, **values)
    lines = [STAMP.sub("T", line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 4 and lines[0] == lines[1] and lines[2] == lines[3], lines
    assert "\x1b" not in "".join(lines)


# Values the console's info line writes from its pieces (all bare) and values it hands to
# ConsoleLine (quoted, escaped or not ASCII), each of which must come out as ConsoleRenderer's.
INFO_VALUES = {
    "bare": VALUES,
    "no origin, no route": {**VALUES, "origin": None, "route": None, "cors": "no-origin", "upstream_status": None},
    "intercepted": {**VALUES, "intercepted": "https://api.example.com"},
    "a whole millisecond and a half": {**VALUES, "duration_ns": 1_005_000},
    "a slow upstream": {**VALUES, "duration_ns": 12_345_678_901},
    "nothing measured": {**VALUES, "duration_ns": 0},
    "a source with a space": {**VALUES, "source": "/home/me/My Project/corsproxy.yaml:3"},
    "an origin with quotes": {**VALUES, "origin": "http://a'b\"c"},
    "a method with =": {**VALUES, "method": "GET=X"},
    "a control character": {**VALUES, "path": "/api/\x1b[2J"},
    "a letter beyond ASCII": {**VALUES, "origin": "http://bücher.example"},
    "a bidi override": {**VALUES, "origin": "http://a\u202eb"},
}


@pytest.mark.parametrize("colors", [False, True], ids=["plain", "colours"])
@pytest.mark.parametrize("values", INFO_VALUES.values(), ids=INFO_VALUES.keys())
def test_info_line_is_console_renderers_line(tmp_path, monkeypatch, configured_here, colors: bool,
                                             values: dict) -> None:
    """The console's info line is ConsoleRenderer's line for the printable fields, byte for byte,
    written to the file stderr is, in order with structlog's own lines."""
    path = tmp_path / "stderr"
    with open(path, "w", buffering=1, errors="backslashreplace") as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)
        monkeypatch.setattr(stderr, "isatty", lambda: colors)
        logs.configure("console", "info")
        logs.get_logger().info("before")
        logs.info_line(*values.values())
        logs.get_logger().info("after")
    fields = logs.request_fields(**values)
    expected = ConsoleRenderer(colors=colors)(None, "info", logs._printable_values(
        None, "info", {"timestamp": "T", "level": "info", "event": "request", **fields}))
    lines = [STAMP.sub("T", line) for line in path.read_text().splitlines()]
    assert len(lines) == 3 and "before" in lines[0] and "after" in lines[2], lines
    assert lines[1] == expected


JSON_VALUES = {**INFO_VALUES, "a quote and a backslash": {**VALUES, "path": '/api/"a\\b'},
               "DEL": {**VALUES, "origin": "http://a\x7fb"}}


@pytest.mark.parametrize("values", JSON_VALUES.values(), ids=JSON_VALUES.keys())
def test_json_info_line_is_json_renderers_line(tmp_path, monkeypatch, configured_here, values: dict) -> None:
    """The JSON info line is JSONRenderer's object for the same fields, byte for byte, written to
    the file stderr is, in order with structlog's own lines."""
    path = tmp_path / "stderr"
    with open(path, "w", buffering=1, errors="backslashreplace") as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)
        logs.configure("json", "info")
        logs.get_logger().info("before")
        logs.info_line(*values.values())
        logs.get_logger().info("after")
    fields = {**logs.request_fields(**values), "event": "request", "level": "info", "timestamp": "T"}
    lines = [STAMP.sub("T", line) for line in path.read_text().splitlines()]
    assert len(lines) == 3 and '"before"' in lines[0] and '"after"' in lines[2], lines
    assert lines[1] == JSONRenderer()(None, "info", fields)


async def test_request_lines_of_one_turn_go_out_together_after_what_came_before(tmp_path, monkeypatch,
                                                                                configured_here) -> None:
    """While serve's loop is bound, the request lines of one turn of it are held and written at its
    end, in one write; a structlog or logging line writes what is held first, so the order holds;
    unbinding writes the rest."""
    path = tmp_path / "stderr"
    writes = []
    real_write = logs.os.write
    monkeypatch.setattr(logs.os, "write", lambda fd, data: writes.append(data) or real_write(fd, data))

    def lines() -> list[str]:
        return [re.search(r"\] (\S+)", line).group(1) for line in path.read_text().splitlines()]

    with open(path, "w", buffering=1) as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)
        logs.configure("console", "info")
        logs.batch_lines(asyncio.get_running_loop())
        logs.info_line(*VALUES.values())
        logs.request_line("warning", "refused", **HOSTILE)
        assert lines() == []
        logs.get_logger().info("between")
        logging.getLogger("aiohttp.server").warning("from logging")
        assert lines() == ["request", "refused", "between", "from"]
        logs.info_line(*VALUES.values())
        await asyncio.sleep(0)   # the rest of this turn: the held line goes out at its end
        assert lines() == ["request", "refused", "between", "from", "request"]
        logs.info_line(*VALUES.values())
        logs.batch_lines(None)
        assert lines() == ["request", "refused", "between", "from", "request", "request"]
        logs.info_line(*VALUES.values())
        assert len(lines()) == 7
    assert len(writes) == 4   # the first two lines together, then one per turn, and the last unheld


HELD_BY_A_REAL_STDERR = f"""
import asyncio, os
from corsproxy.server import logs
logs.configure("console", "info")

async def main():
    logs.batch_lines(asyncio.get_running_loop())
    logs.info_line(*{tuple(VALUES.values())!r})
    logs.info_line(*{tuple(VALUES.values())!r})
    held = os.fstat(2).st_size
    await asyncio.sleep(0)
    print(held, os.fstat(2).st_size)

asyncio.run(main())
"""


def test_python_s_own_stderr_gets_the_held_lines(tmp_path) -> None:
    """Python's stderr (write-through to the raw file, not line-buffered) is written directly,
    so serve's lines are held to the end of the turn there too, not written one by one."""
    path = tmp_path / "stderr"
    with open(path, "wb") as stderr:
        out = subprocess.run([sys.executable, "-c", HELD_BY_A_REAL_STDERR], stderr=stderr, capture_output=False,
                             stdout=subprocess.PIPE, text=True, timeout=60, check=True).stdout
    held, written = map(int, out.split())
    assert held == 0 and written == path.stat().st_size > 0
    assert [re.search(r"\] (\S+)", line).group(1) for line in path.read_text().splitlines()] == ["request"] * 2


@pytest.mark.parametrize(("duration_ns", "shown"), [
    (0, "0.0"), (4_999, "0.0"), (5_000, "0.01"), (1_000_000, "1.0"), (1_230_000, "1.23"), (1_234_999, "1.23"),
    (1_235_000, "1.24"), (10_100_000, "10.1"), (99_995_000, "100.0"), (3_600_000_000_000, "3600000.0"),
])
def test_duration_is_shown_in_milliseconds_to_two_decimals(duration_ns: int, shown: str) -> None:
    """duration_ms is the duration in milliseconds rounded half up to two decimals, written as
    repr() writes a float (no trailing zero but one)."""
    assert repr(logs.request_fields(**{**VALUES, "duration_ns": duration_ns})["duration_ms"]) == shown
    line = logs.ConsoleRequestLine(io.StringIO(), logging.INFO, logs.UtcTimestamp(), logs.ConsoleLine(False))
    line.info(*{**VALUES, "duration_ns": duration_ns}.values())
    assert f" duration_ms={shown} " in line._stream.getvalue()


def test_request_line_in_colour_is_console_renderers_line() -> None:
    """In colour too, a refusal's line is ConsoleRenderer's line for the printable fields."""
    fields = logs.request_fields(**HOSTILE)
    expected = ConsoleRenderer(colors=True)(None, "warning", logs._printable_values(
        None, "warning", {"timestamp": "t", "level": "warning", "event": "refused", **fields}))
    assert logs.ConsoleLine(True).fields_line("t", "warning", "refused", dict(fields)) == expected


def test_request_line_keeps_the_level_set(configured_here, capsys) -> None:
    """configure()'s level holds for the request line: warning drops info lines (info_line is
    None: nothing is built), error drops warnings."""
    logs.configure("console", "warning")
    assert logs.info_line is None
    logs.request_line("info", "request", **VALUES)
    logs.request_line("warning", "refused", **{**VALUES, "status": 403})
    logs.configure("json", "error")
    logs.request_line("warning", "refused", **{**VALUES, "status": 403})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and re.fullmatch(r"\S+Z \[warning  \] refused {24}cors=cors .*status=403 .*", lines[0]), lines


TARGETS = ["/api/orders", "/api/orders?page=2&x=%20", "/api/orders?", "/api/orders??", "/api/a#frag",
           "/api/a?q#frag", "/api/a#", "//api/orders", "/api/%2e%2e/%2F", "/api/a:b", "/nowhere?x=1"]


async def test_logged_path_is_aiohttps_path_qs(proxy, aiohttp_raw_server) -> None:
    """The line's path is request.path_qs, as it always was (the request path does not make
    yarl's URL for it): the same text for a fragment, an empty query or a leading //."""
    async def path_qs(request: web.BaseRequest) -> web.Response:
        return web.Response(text=request.path_qs)

    echo = await aiohttp_raw_server(path_qs)
    port = proxy.server.port
    with structlog.testing.capture_logs() as logged:
        for target in TARGETS:
            request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            await raw_http(port, request)
    expected = []
    for target in TARGETS:
        answer = await raw_http(echo.port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        expected.append(answer.split(b"\r\n\r\n", 1)[1].decode())
    assert [entry["path"] for entry in logged if "path" in entry] == expected
