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
    logs._request_logger, logs._info_enabled = None, True


def test_request_logger_is_bound_once_per_configure(configured_here, capsys) -> None:
    """configure() binds the request line's logger once; lines still reach stderr at the level set."""
    logs.configure("console", "info")
    first = logs.request_logger()
    assert first is logs.request_logger()
    assert not isinstance(first, structlog._config.BoundLoggerLazyProxy)
    first.info("request", status=200)
    logs.configure("json", "warning")
    assert logs.request_logger() is not first and not logs.info_enabled()
    logs.request_logger().info("request", status=200)    # filtered out at warning
    logs.request_logger().warning("refused", status=403)
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"\S+Z \[info {5}\] request {24}status=200", lines[0]), lines
    assert [json.loads(line)["event"] for line in lines[1:]] == ["refused"]
