"""Preflight answers whose header block is serialised once (issue #15).

An allowed preflight is a 204 with the Decision's headers and no body, and a page sends the
same few preflights over and over: `DecisionCache` (policy/cors.py) already returns the same
Decision for them. aiohttp's Response would copy the headers into a multidict, decide on
Content-Length, Date, Server and Connection, and serialise the lot on every answer; a
`Head` holds the block serialised once for its Decision (by the same serializer, so
the bytes are the same, the checks for forbidden characters too) between the status line and
what changes per answer: Date, Server and, as aiohttp decides it, Connection.
"""

from __future__ import annotations

from aiohttp import HttpVersion, HttpVersion10, HttpVersion11, web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict, CIMultiDictProxy

from corsproxy.model import Decision
from corsproxy.policy.memo import keep
from corsproxy.server import headerbytes

_STATUS_204 = {HttpVersion11: b"HTTP/1.1 204 No Content\r\n", HttpVersion10: b"HTTP/1.0 204 No Content\r\n"}
_SERVER = f"\r\nServer: {SERVER_SOFTWARE}\r\n".encode()
# aiohttp's connection header for a response that keeps no body (web_response._prepare_headers).
_CONNECTION = {(True, HttpVersion10): b"Connection: keep-alive\r\n\r\n",
               (False, HttpVersion11): b"Connection: close\r\n\r\n"}


class Head:
    """An allowed preflight's answer, its header fields serialised once: what the log line and
    the inspector read of a response (status, headers: none beyond the serialised ones), the
    bytes the protocol writes for it (server/inline.py) and, for aiohttp's way, `response()`."""

    __slots__ = ("fields",)
    status = 204
    headers = CIMultiDictProxy(CIMultiDict())

    def __init__(self, fields: bytes) -> None:
        self.fields = fields

    def head(self, version: HttpVersion, keep_alive: bool) -> bytes:
        """The whole answer, as aiohttp's Response would write it for this request."""
        return b"".join((_STATUS_204[version], self.fields, b"Date: ", rfc822_formatted_time().encode(), _SERVER,
                         _CONNECTION.get((keep_alive, version), b"\r\n")))

    def response(self) -> EmptyAnswer:
        return EmptyAnswer(self)


class EmptyAnswer(web.StreamResponse):
    """A Head as aiohttp's StreamResponse: written in one piece."""

    def __init__(self, head: Head) -> None:
        super().__init__(status=204)
        self._head = head

    async def prepare(self, request: web.BaseRequest):
        if self._eof_sent or self._payload_writer is not None:
            return self._payload_writer
        self._req, self._keep_alive = request, request.keep_alive
        writer = self._payload_writer = request.writer
        await writer.write(self._head.head(request.version, request.keep_alive))
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        if self._eof_sent:
            return
        await self._payload_writer.write_eof()
        self._eof_sent = True


class HeadCache:
    """Each Decision's Head, kept as long as the Decision is (the entry holds it, so an id
    reused by another object never matches). Bounded like DecisionCache: when full, the oldest
    entry goes. Made with a State, so a reload replaces it whole."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: dict[int, tuple[Decision, Head]] = {}

    def head(self, decision: Decision) -> Head:
        entry = self._entries.get(id(decision))
        if entry is None or entry[0] is not decision:
            entry = keep(self._entries, id(decision), (decision, Head(_fields(decision.headers))), self._size)
        return entry[1]


def _fields(headers: tuple[tuple[str, str], ...]) -> bytes:
    """`Name: value\\r\\n` for each header, as aiohttp's writer (with headerbytes) writes them."""
    head = headerbytes.serialize("", CIMultiDict(headers))
    return head[2:-2]   # without the empty status line's CRLF and the blank line's
