"""structlog set-up: configured once, console or JSON, to stderr.

stdout is kept for the ready line and command output, so a script can read the address
without parsing logs. aiohttp's own messages (stdlib logging) go through the same renderer,
so a JSON log stays one JSON object per line.

Every request writes a line at the default level, so the line must be cheap (issue #15): the
timestamp's date and time are formatted once a second, `ConsoleLine` writes ConsoleRenderer's
line from pieces computed at start-up instead of ConsoleRenderer's per-column objects (about
30 µs a line; what it cannot render exactly, a traceback or a stack, it hands to
ConsoleRenderer itself), and the request line itself (`request_line`) skips structlog's
processor chain: it renders the same line straight from its fields.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any, TextIO

import structlog
from structlog.dev import ConsoleRenderer
from aiohttp import http_exceptions

from corsproxy.text import printable

LEVELS = ("debug", "info", "warning", "error")
READY_PREFIX = "corsproxy listening on "
_json = False


def json_mode() -> bool:
    return _json


def configure(log_format: str = "console", level: str = "info") -> None:
    global _json, request_line, info_line
    _json = log_format == "json"
    threshold = logging.getLevelName(level.upper())
    timestamp = UtcTimestamp()
    shared: list[structlog.typing.Processor] = [structlog.processors.add_log_level, timestamp]
    # JSON escapes control characters itself; the console shows values as they are, so a
    # hostile origin or path is escaped first (a terminal must not run what a request sent).
    renderer = JSONLine() if log_format == "json" else ConsoleLine(colors=sys.stderr.isatty())
    renderers: list[structlog.typing.Processor] = [renderer] if _json else [_printable_values, renderer]
    line = ConsoleRequestLine if isinstance(renderer, ConsoleLine) else JSONRequestLine
    request_line = line(sys.stderr, threshold, timestamp, renderer)
    info_line = request_line.info if threshold <= logging.INFO else None
    stderr = HeldLinesFirst(sys.stderr, request_line)
    structlog.configure(
        processors=[*shared, *renderers],
        # Filtered-out levels become no-op methods: a disabled debug line costs one call.
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.WriteLoggerFactory(stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(_MALFORMED_REQUEST)


def batch_lines(loop: asyncio.AbstractEventLoop | None) -> None:
    """Hold the request lines of each turn of `loop` and write them in one go at its end (one
    write(2) per line cost a preflight a fifth of its CPU time, issue #15); None writes what is
    held and goes back to a write per line. serve binds its loop while it runs."""
    if isinstance(request_line, RequestLine):
        request_line.bind(loop)


class HeldLinesFirst:
    """stderr as structlog's and logging's writers see it: the request lines held for the end of
    the loop's turn are written before anything else is, so the log keeps its order."""

    def __init__(self, stream: TextIO, lines: RequestLine) -> None:
        self._stream, self._lines = stream, lines

    def write(self, text: str) -> int:
        self._lines.flush()
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()


def _printable_values(_logger, _method, event_dict: dict) -> dict:
    return {key: printable(value) if isinstance(value, str) else value for key, value in event_dict.items()}


class _MalformedRequest(logging.Filter):
    """aiohttp logs a request its parser refused (answered 400) as an error with a traceback;
    it is the client's mistake, not the proxy's: one warning line that says what was wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, http_exceptions.BadHttpMessage):
            detail = " ".join(line.strip() for line in str(error.message).splitlines() if line.strip())
            record.msg, record.args = "malformed request refused (400): %s", (detail[:500],)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


_MALFORMED_REQUEST = _MalformedRequest()


def get_logger() -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger("corsproxy")


def ready_line(url: str, bound: str, workers: int = 1) -> str:
    """The one line `serve` prints on stdout when it is ready, naming the URL a page should call
    (`bound` is the socket's own address); with --log-format json, a JSON object like every
    other line (event `listening`, with `url`)."""
    if _json:
        return _json_line("info", "listening", url=url, bound=bound, workers=workers)
    return READY_PREFIX + url + (f" ({workers} workers)" if workers > 1 else "")


def intercept_line(url: str, hosts: list[str], spki: str) -> str:
    """The line `serve` prints after the ready line when it intercepts (CONTRACT: event
    `intercepting` with url, hosts and spki in JSON mode)."""
    if _json:
        return _json_line("info", "intercepting", url=url, hosts=hosts, spki=spki)
    return f"corsproxy intercepting {', '.join(hosts)} on {url} (CA SPKI sha256: {spki})"


def error_line(message: str) -> str:
    """A message for a user's mistake or a failure to start, as plain text or a JSON object."""
    return _json_line("error", "error", message=message) if _json else f"corsproxy: {message}"


def _json_line(level: str, event: str, **fields: object) -> str:
    stamp = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    return json.dumps({"event": event, **fields, "level": level, "timestamp": stamp})


def display_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    """Why the socket could not be bound, and the flag that gets past it."""
    why = os.strerror(exc.errno) if exc.errno else str(exc)   # uvloop words it differently
    text = f"cannot listen on {display_url(host, port)}: {why}"
    if exc.errno == errno.EADDRINUSE:
        return (text + f"; another program (perhaps another corsproxy) uses port {port}: stop it, "
                "or choose another port with --port N (--port 0 picks a free one)")
    if exc.errno == errno.EACCES and 0 < port < 1024:
        return text + "; ports below 1024 need privileges: choose one above, e.g. --port 8080"
    if exc.errno == errno.EADDRNOTAVAIL:
        return text + f"; {host} is not an address of this machine: choose another with --host"
    return text


def request_fields(method: str, path: str, route: str | None, source: str | None, origin: str | None,
                   status: int, upstream_status: int | None, duration_ns: int, cors: str | None,
                   intercepted: str | None = None, why: str | None = None) -> dict:
    """The request line's fields, in the JSON object's key order: `why` first on a refusal."""
    fields = {"why": why} if why is not None else {}
    fields.update(method=method, path=path, route=route, source=source, origin=origin, status=status,
                  upstream_status=upstream_status, duration_ms=hundredths(duration_ns) / 100, cors=cors)
    if intercepted:
        fields["intercepted"] = intercepted
    return fields


def hundredths(duration_ns: int) -> int:
    """A duration in hundredths of a millisecond, rounded half up: the line shows two decimals."""
    return (duration_ns + 5_000) // 10_000


def _structlog_line(level: str, event: str, *values, **named) -> None:
    getattr(get_logger(), level)(event, **request_fields(*values, **named))


def _structlog_info(*values) -> None:
    get_logger().info("request", **request_fields(*values))


# The per-request line's writers, made by `configure` (until then structlog's own call, so that
# capture_logs() sees it), as `get_logger().<level>(event, **request_fields(*values))` would log:
# request_line(level, event, *values) for any line, info_line(*values) for the info
# "request" line of an allowed request, which is None when info lines are filtered out (then the
# request path builds nothing). values: method, path, route, source, origin, status,
# upstream_status, duration_ns, cors, intercepted=None, why=None (request_fields's arguments;
# info_line's have no why).
request_line: Callable[..., None] = _structlog_line
info_line: Callable[..., None] | None = _structlog_info


# Text json.dumps writes as it is: printable ASCII but the quote and the backslash.
_JSON_BARE = re.compile(r'[ !#-\[\]-~]*')
# Text ConsoleRenderer writes bare and unescaped: printable ASCII but space, quotes and "=".
_BARE = re.compile(r"[!#-&(-<>-~]*")


class RequestLine:
    """The request line, written by what structlog's chain would run for it (add_log_level,
    UtcTimestamp, the printable values, ConsoleLine or JSONLine, WriteLogger's write and flush)
    but without the chain: no bound-logger call, context copy or processor loop (issue #15);
    the same bytes (tests/server/test_logs.py compares them). `ConsoleRequestLine` writes the
    console's info line without the fields dict too."""

    __slots__ = ("_stream", "_threshold", "_timestamp", "_renderer", "_fd", "_encoding", "_errors", "_loop",
                 "_pending")

    def __init__(self, stream: TextIO, threshold: int, timestamp: UtcTimestamp,
                 renderer: ConsoleLine | JSONLine) -> None:
        self._stream, self._threshold, self._timestamp, self._renderer = stream, threshold, timestamp, renderer
        self._fd, self._encoding, self._errors = _direct_fd(stream), stream.encoding, stream.errors
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[bytes] = []

    def __call__(self, level: str, event: str, *values, **named) -> None:
        if _LEVEL_NUMBERS[level] >= self._threshold:
            self._write(self._renderer.fields_line(self._timestamp.now(), level, event,
                                                   request_fields(*values, **named)) + "\n")

    # Text the renderer writes as it is: a line of only such values is `_render`'s one f-string.
    _BARE_TEXT: re.Pattern[str]

    def info(self, method: str, path: str, route: str | None, source: str | None, origin: str | None,
             status: int, upstream_status: int | None, duration_ns: int, cors: str | None,
             intercepted: str | None = None) -> None:
        """The info request line: `_render`'s when every text value is bare (nearly always; the
        numbers always are), else the renderer's, which escapes and quotes value by value."""
        if self._BARE_TEXT.fullmatch(f"{method}{path}{route}{source}{origin}{cors}{intercepted}") is None:
            self("info", "request", method, path, route, source, origin, status, upstream_status, duration_ns,
                 cors, intercepted)
        else:
            self._write(self._render(method, path, route, source, origin, status, upstream_status, duration_ns,
                                     cors, intercepted))

    def _write(self, line: str) -> None:
        """`line` as the stream would write it. A stream that holds nothing back (stderr, see
        `_direct_fd`) would write each line at once, and its other writers (structlog, logging)
        flush after each line, so the bytes go to the descriptor itself: the text layer's write
        and flush cost more than rendering the line does (issue #15). While a loop is bound
        (`batch_lines`), the lines of one turn of it go in one write at its end."""
        if self._fd is None:
            self._stream.write(line)
            self._stream.flush()
            return
        data = line.encode(self._encoding, self._errors)
        if self._loop is None:
            self._write_all(data)
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        """Write the lines held for the end of this turn of the loop, if any."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._write_all(data)

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.flush()
        self._loop = loop

    def _write_all(self, data: bytes) -> None:
        written = os.write(self._fd, data)
        while written < len(data):   # a blocking descriptor takes it all, but a signal may split it
            written += os.write(self._fd, data[written:])


def _direct_fd(stream: TextIO) -> int | None:
    """The descriptor under a text stream that holds nothing back, on a blocking descriptor:
    stderr as Python makes it (write-through to the raw file: every write is a write(2)) or a
    line-buffered file. None for anything else (a test's capture, a fully buffered file), which
    is written through the stream itself."""
    try:
        fd = stream.fileno()
        direct = stream.line_buffering or (stream.write_through and isinstance(stream.buffer, io.FileIO))
        return fd if direct and os.get_blocking(fd) else None
    except (AttributeError, OSError, ValueError):
        return None


class ConsoleRequestLine(RequestLine):
    """The console's info line from pieces made once: when its text values are all printable
    ASCII that ConsoleRenderer writes bare (nearly always), one f-string; otherwise through
    ConsoleLine.fields_line, which escapes and quotes value by value."""

    __slots__ = ("_pieces",)
    _BARE_TEXT = _BARE

    def __init__(self, stream: TextIO, threshold: int, timestamp: UtcTimestamp, renderer: ConsoleLine) -> None:
        super().__init__(stream, threshold, timestamp, renderer)
        self._pieces = renderer.request_pieces("info", "request")

    def _render(self, method: str, path: str, route: str | None, source: str | None, origin: str | None,
                status: int, upstream_status: int | None, duration_ns: int, cors: str | None,
                intercepted: str | None) -> str:
        # None is written "None" either way, as ConsoleRenderer writes it.
        (stamp_, cors_, duration_, intercepted_, method_, origin_, path_, route_, source_, status_, upstream_,
         end) = self._pieces
        whole, part = divmod((duration_ns + 5_000) // 10_000, 100)   # hundredths(), inline
        shown = f"{intercepted_}{intercepted}" if intercepted else ""
        return (f"{stamp_}{self._timestamp.now()}{cors_}{cors}{duration_}{whole}{_DECIMALS[part]}{shown}"
                f"{method_}{method}{origin_}{origin}{path_}{path}{route_}{route}{source_}{source}"
                f"{status_}{status}{upstream_}{upstream_status}{end}")


class JSONRequestLine(RequestLine):
    """JSONLine's info line as one f-string when its text values are all printable ASCII that
    json.dumps writes as they are (no quote, backslash or control character; nearly always);
    otherwise through the fields dict and the JSON encoder."""

    __slots__ = ()
    _BARE_TEXT = _JSON_BARE

    def _render(self, method: str, path: str, route: str | None, source: str | None, origin: str | None,
                status: int, upstream_status: int | None, duration_ns: int, cors: str | None,
                intercepted: str | None) -> str:
        whole, part = divmod((duration_ns + 5_000) // 10_000, 100)   # hundredths(), inline
        # None is null, a text is quoted: request_fields's keys in its order, then event, level and
        # timestamp, as JSONLine writes them.
        route_ = "null" if route is None else f'"{route}"'
        source_ = "null" if source is None else f'"{source}"'
        origin_ = "null" if origin is None else f'"{origin}"'
        cors_ = "null" if cors is None else f'"{cors}"'
        upstream_ = "null" if upstream_status is None else upstream_status
        shown = f', "intercepted": "{intercepted}"' if intercepted else ""
        return (f'{{"method": "{method}", "path": "{path}", "route": {route_}, "source": {source_}, '
                f'"origin": {origin_}, "status": {status}, "upstream_status": {upstream_}, '
                f'"duration_ms": {whole}{_DECIMALS[part]}, "cors": {cors_}{shown}, "event": "request", '
                f'"level": "info", "timestamp": "{self._timestamp.now()}"}}\n')


# What repr() writes of a float after its whole part when it has two decimals: .0 .01 ... .99
_DECIMALS = tuple("." + (f"{i:02d}".rstrip("0") or "0") for i in range(100))


_LEVEL_NUMBERS = {"info": logging.INFO, "warning": logging.WARNING}


class UtcTimestamp:
    """TimeStamper(fmt="iso", utc=True)'s value, `2026-12-01T09:31:13.019334Z`, with the date and
    time formatted once a second (datetime's isoformat costs a microsecond a line). The fraction
    always has six digits (isoformat drops it on the exact second)."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second, self._prefix = 0, ""   # the second's start in microseconds, its text

    def __call__(self, logger: Any, name: str, event_dict: dict) -> dict:
        event_dict["timestamp"] = self.now()
        return event_dict

    def now(self) -> str:
        micro = time.time_ns() // 1000 - self._second
        if not 0 <= micro < 1_000_000:
            micro = self._next_second(micro + self._second)
        high, low = divmod(micro, 1000)   # two look-ups cost less than a format spec
        return f"{self._prefix}{_THREE_DIGITS[high]}{_THREE_DIGITS[low]}Z"

    def _next_second(self, micro: int) -> int:
        second = micro // 1_000_000
        self._second, self._prefix = second * 1_000_000, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        return micro - self._second


_THREE_DIGITS = tuple(f"{i:03d}" for i in range(1000))
# ConsoleRenderer quotes (repr) a str value holding any of these, and writes other strs bare.
_QUOTED = frozenset(" \t=\r\n\"'")
# Keys ConsoleRenderer treats specially; a line with one of them is rendered by it.
_SPECIAL = frozenset({"stack", "exception", "exc_info", "logger", "logger_name"})


class ConsoleLine:
    """ConsoleRenderer(colors=...)'s exact line, from pieces computed once.

    `timestamp [level    ] event                          key=value ...`, keys sorted, colours
    as ConsoleRenderer's default styles.
    """

    def __init__(self, colors: bool) -> None:
        self._full = ConsoleRenderer(colors=colors)
        styles = ConsoleRenderer.get_default_column_styles(colors)
        levels = ConsoleRenderer.get_default_level_styles(colors)
        width = max(map(len, levels))
        reset = styles.reset
        self._levels = {name: f"[{style}{styles.bright}{name.ljust(width)}{reset}]"
                        for name, style in levels.items()}
        self._timestamp = (styles.timestamp, reset)
        self._event = (styles.bright, reset)
        self._key, self._value, self._reset = styles.kv_key, reset + "=" + styles.kv_value, reset
        self._padding = 30  # ConsoleRenderer's pad_event_to

    def request_pieces(self, level: str, event: str) -> tuple[str, ...]:
        """What `_line` writes around the request line's values (keys sorted) for this level and
        event: before the timestamp, before each value, and after the last one, the newline."""
        names = ("cors", "duration_ms", "intercepted", "method", "origin", "path", "route", "source", "status",
                 "upstream_status")
        first = (f"{self._timestamp[1]} {self._levels[level]} {self._event[0]}{event.ljust(self._padding)}"
                 f"{self._event[1]} {self._key}{names[0]}{self._value}")
        return (self._timestamp[0], first, *(f"{self._reset} {self._key}{name}{self._value}" for name in names[1:]),
                self._reset + "\n")

    def __call__(self, logger: Any, name: str, event_dict: dict) -> str:
        if event_dict.get("level") not in self._levels or not _SPECIAL.isdisjoint(event_dict):
            return self._full(logger, name, event_dict)
        return self._line(event_dict.pop("timestamp", None), event_dict.pop("level"), event_dict.pop("event", None),
                          event_dict, escape=False)

    def fields_line(self, timestamp: str, level: str, event: str, fields: dict) -> str:
        """The line for `fields` after `_printable_values` (a request line has no special key)."""
        return self._line(timestamp, level, event, fields, escape=True)

    def _line(self, timestamp: str | None, level: str, event: object, fields: dict, escape: bool) -> str:
        """`escape`: make each str value printable first. A str is written bare unless it holds
        a character ConsoleRenderer quotes; any other value as its repr. (Inline, not a helper
        per value: this runs for every field of every request line.)"""
        parts = []
        if timestamp is not None:
            parts.append(f"{self._timestamp[0]}{timestamp}{self._timestamp[1]}")
        parts.append(self._levels[level])
        if event is not None:
            parts.append(f"{self._event[0]}{str(event).ljust(self._padding)}{self._event[1]}")
        key, value, reset = self._key, self._value, self._reset
        for name_ in sorted(fields):
            shown = fields[name_]
            if isinstance(shown, str):
                if escape and not shown.isprintable():
                    shown = printable(shown)
                if not _QUOTED.isdisjoint(shown):
                    shown = repr(shown)
            else:
                shown = repr(shown)
            parts.append(f"{key}{name_}{value}{shown}{reset}")
        return " ".join(parts).rstrip(" ")


class JSONLine:
    """JSONRenderer's object (the same keys and values), from the C encoder made once."""

    def __init__(self) -> None:
        self._encode = json.JSONEncoder(default=repr).encode

    def __call__(self, logger: Any, name: str, event_dict: dict) -> str:
        return self._encode(event_dict)

    def fields_line(self, timestamp: str, level: str, event: str, fields: dict) -> str:
        """The object structlog's chain makes: the fields, then event, level and timestamp."""
        fields["event"], fields["level"], fields["timestamp"] = event, level, timestamp
        return self._encode(fields)
