"""The cheap log line (issue #15) writes what structlog's own renderers wrote, byte for byte."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime

import pytest
import structlog
from structlog.dev import ConsoleRenderer
from structlog.processors import JSONRenderer

from corsproxy.server import logs

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
    logs._request_line, logs._info_enabled, logs._json = None, True, False


HOSTILE = {"method": "GET", "path": "/api/x\x1b]0;pwned\x07 y", "route": "/api", "source": "c.yaml:3",
           "origin": "http://localhost:3000", "status": 403, "upstream_status": None, "duration_ms": 0.5,
           "cors": "refused", "why": "origin 'x' is not in allow_origins", "intercepted": "https://a.test"}
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.mark.parametrize("log_format", ["console", "json"])
@pytest.mark.parametrize("fields", [REQUEST, HOSTILE], ids=["request", "refusal with escapes"])
def test_request_line_is_the_line_structlog_writes(configured_here, capsys, log_format: str, fields: dict) -> None:
    """request_line writes the bytes structlog's configured chain writes for the same call, but the time."""
    fields = {k: v for k, v in fields.items() if k not in ("timestamp", "level", "event")}
    logs.configure(log_format, "info")
    for level, event in (("info", "request"), ("warning", "refused")):
        getattr(logs.get_logger(), level)(event, **fields)
        logs.request_line(level, event, dict(fields))
    lines = [STAMP.sub("T", line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 4 and lines[0] == lines[1] and lines[2] == lines[3], lines
    assert "\x1b" not in "".join(lines)


def test_request_line_in_colour_is_console_renderers_line() -> None:
    """In colour too, the request line is ConsoleRenderer's line for the printable fields."""
    fields = {k: v for k, v in HOSTILE.items()}
    expected = ConsoleRenderer(colors=True)(None, "warning", logs._printable_values(
        None, "warning", {"timestamp": "t", "level": "warning", "event": "refused", **fields}))
    assert logs.ConsoleLine(True).fields_line("t", "warning", "refused", dict(fields)) == expected


def test_request_line_keeps_the_level_set(configured_here, capsys) -> None:
    """configure()'s level holds for the request line: warning drops info lines, error drops warnings."""
    logs.configure("console", "warning")
    logs.request_line("info", "request", {"status": 200})
    logs.request_line("warning", "refused", {"status": 403})
    logs.configure("json", "error")
    logs.request_line("warning", "refused", {"status": 403})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and re.fullmatch(r"\S+Z \[warning  \] refused {24}status=403", lines[0]), lines
