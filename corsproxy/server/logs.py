"""structlog set-up: configured once, console or JSON, to stderr.

stdout is kept for the ready line and command output, so a script can read the address
without parsing logs. aiohttp's own messages (stdlib logging) go through the same renderer,
so a JSON log stays one JSON object per line.
"""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = ("debug", "info", "warning", "error")
_info_enabled = True


def info_enabled() -> bool:
    """Whether info lines are written; lets the request path skip building a filtered line."""
    return _info_enabled


def configure(log_format: str = "console", level: str = "info") -> None:
    global _info_enabled
    _info_enabled = logging.getLevelName(level.upper()) <= logging.INFO
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
