"""structlog set-up: configured once, console or JSON, to stderr.

stdout is kept for the ready line and command output, so a script can read the address
without parsing logs. aiohttp's own messages (stdlib logging) go through the same renderer,
so a JSON log stays one JSON object per line.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from datetime import datetime, timezone

import structlog

LEVELS = ("debug", "info", "warning", "error")
READY_PREFIX = "corsproxy listening on "
_info_enabled = True
_json = False


def json_mode() -> bool:
    return _json


def info_enabled() -> bool:
    """Whether info lines are written; lets the request path skip building a filtered line."""
    return _info_enabled


def configure(log_format: str = "console", level: str = "info") -> None:
    global _info_enabled, _json
    _json = log_format == "json"
    _info_enabled = logging.getLevelName(level.upper()) <= logging.INFO
    _json = log_format == "json"
    shared: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, renderer],
        # Filtered-out levels become no-op methods: a disabled debug line costs one call.
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


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
