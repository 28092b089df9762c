"""Header bytes pass through as bytes, both ways (RFC 9110 §5.5: obs-text is legal in a value).

aiohttp's parsers decode a header value as UTF-8 with ``surrogateescape``, so a byte such as
0xE9 in ``filename="caf\\xe9.txt"`` becomes a lone surrogate; its writer then drops every
surrogate, and the byte is gone. aiohttp has no hook for how a head is written, so `install`
wraps the one function its StreamWriter calls for it (module-global, looked up per call): a head
with such a value is written with ``surrogateescape``, giving back the bytes that came in; any
other head goes to aiohttp's own writer, unchanged.
"""

from __future__ import annotations

import re

from aiohttp import http_writer

_ORIGINAL = http_writer._serialize_headers
# What aiohttp's writer refuses too (RFC 9110 §5.5, RFC 9112 §4): a control character but HTAB.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def serialize(status_line: str, headers) -> bytes:
    """The head as bytes: aiohttp's own, unless a value carries escaped bytes."""
    if "".join(headers.values()).isascii():   # one C pass: this runs for every head
        return _ORIGINAL(status_line, headers)
    lines = [status_line, *(f"{name}: {value}" for name, value in headers.items())]
    if any(_FORBIDDEN.search(line) for line in lines):
        raise ValueError("Forbidden control character detected in headers.")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def install() -> None:
    """Make every head this process writes keep its bytes (idempotent)."""
    http_writer._serialize_headers = serialize
