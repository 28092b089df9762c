"""Preflights answered from the protocol: no task, no request object, no response (issue #15).

aiohttp's RequestHandler puts every parsed message in a queue, wakes its handler task, makes
a task per request, a BaseRequest, a StreamWriter and runs `finish_response`: for a preflight
whose 204 is already serialised (server/heads.py) that is most of what it costs. An
`InlineHandler` is aiohttp's RequestHandler, but a message that arrives while the connection
is idle (the handler task waits for one, nothing is queued, in flight or paused) and that is a
bodiless, keep-alive, non-upgrade request is first offered to `answer`: the same gates,
log line and inspector record as every request (app.answer_inline), reading a `MessageView`
instead of a BaseRequest. When it gives bytes, they are written here, in order, and the
keep-alive timer restarts as aiohttp's loop would restart it; when it gives None (anything that
is not a cached allowed preflight), the message and every one after it take aiohttp's own way.

"Idle" also covers the moment between two requests the handler task answered: its request is
finished (response written, keep-alive, body read, nothing queued) but start() has not yet
resumed to wait for the next one. On uvloop the next request's bytes often arrive first;
without this, a client that keeps pace would take aiohttp's way for a whole connection.
`_between` marks that moment (and a new connection's, before its task first runs): set when
`finish_response` (the end of `_handle_request`) returns such an answer with the queue empty,
cleared whenever a message is left in the queue (the task's only source of work). While it
holds, the task has nothing to answer and will either wait or, if the connection is closing,
stop (`_close` and `_force_close` are checked too); a cancelled task stops after the answer
was written whole.

It reads RequestHandler's private state (there is no public hook between parsing and the
handler): the names are in `HANDLER_STATE`, which tests/server/test_inline.py checks against
the installed aiohttp, whose version pyproject.toml bounds.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD

from corsproxy.server import coalesce

# RequestHandler's (and its BaseProtocol's) private attributes and methods this module uses
# (and finish_response, whose place in _handle_request it relies on).
HANDLER_STATE = ("_waiter", "_messages", "_parser", "_paused", "_payload_parser", "_upgraded", "_close",
                 "_force_close", "_keepalive", "_keepalive_timeout", "_next_keepalive_close_time",
                 "_keepalive_handle", "_process_keepalive", "_buffer_paused", "_max_msg_queue_size",
                 "_resume_reading_for_buffer", "_loop", "finish_response")


class MessageView:
    """What the gates, the log line and the inspector read of a request, by BaseRequest's
    names, straight from the parsed message (origin-form only: the gates refuse the rest)."""

    __slots__ = ("_message", "method", "version", "headers", "raw_path", "keep_alive", "scheme")

    def __init__(self, message: RawRequestMessage, scheme: str) -> None:
        self._message = message
        self.method, self.version, self.headers = message.method, message.version, message.headers
        self.raw_path, self.keep_alive, self.scheme = message.path, not message.should_close, scheme

    @property
    def path_qs(self) -> str:
        return str(self._message.url)   # BaseRequest's rel_url is the message's URL in origin-form


Answer = Callable[[MessageView], "bytes | None"]


class InlineServer(web.Server):
    """aiohttp's low-level server whose connections are `InlineHandler`s offering to `answer`."""

    def __init__(self, handler, answer: Answer, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.answer = answer
        self.turn = coalesce.Turn(self._loop)

    def __call__(self) -> InlineHandler:
        return InlineHandler(self, loop=self._loop, **self._kwargs)


class InlineHandler(web.RequestHandler):
    def __init__(self, manager: InlineServer, **kwargs) -> None:
        super().__init__(manager, **kwargs)
        self._server, self._answer, self._scheme = manager, manager.answer, "http"
        self._between = True   # a new connection's handler task has nothing to answer yet

    def connection_made(self, transport) -> None:
        # Every answer on this connection, inline or aiohttp's, leaves at the end of the turn.
        super().connection_made(coalesce.HeldWrites(transport, self._server.turn))
        self._scheme = "https" if self.ssl_context else "http"

    def data_received(self, data: bytes) -> None:
        if self._idle():
            self._offer(data)
        else:
            super().data_received(data)
        if self._messages:
            self._between = False   # the handler task has work again

    def _idle(self) -> bool:
        """Whether the handler task has nothing to answer and will wait for the next message."""
        waiter = self._waiter
        ready = self._between if waiter is None else not waiter.done() and self._keepalive
        return ready and not (self._messages or self._paused or self._close or self._force_close
                              or self._payload_parser is not None or self._upgraded)

    def _offer(self, data: bytes) -> None:
        """aiohttp's parsing and queueing; the leading answerable messages answered here, the
        rest left in order for the handler task (woken if it waits)."""
        waiter = self._waiter
        self._waiter = None   # aiohttp's own parsing and queueing, without waking the handler yet
        try:
            super().data_received(data)
            while self._answered_all() and self._buffer_paused:
                # A full queue paused reading and is drained now: what start()'s
                # _resume_reading_if_drained does, without re-entering this method through it.
                super().data_received(b"")   # the parser's buffered pipelined requests
                if len(self._messages) < self._max_msg_queue_size:
                    self._resume_reading_for_buffer()
        finally:
            self._waiter = waiter
        if self._messages and waiter is not None:
            waiter.set_result(None)   # the rest, in order, the way aiohttp answers them

    def _answered_all(self) -> bool:
        """Answer the leading messages this can; whether none is left for the handler task."""
        messages = self._messages
        while messages and self._answered(*messages[0]):
            messages.popleft()
            self._parser.message_consumed()
        return not messages

    async def finish_response(self, request, resp, start_time):
        # The last step of _handle_request (wrapping that instead costs a GET ~10k instructions:
        # every await of the handler passes one more frame). What start() checks before it
        # loops back to wait, known here one loop turn earlier.
        resp, reset = await super().finish_response(request, resp, start_time)
        self._between = not reset and resp.keep_alive and request.content.is_eof() and not self._messages
        return resp, reset

    def _answered(self, message, payload) -> bool:
        """Whether `answer` answered this message (written, counted, keep-alive timer restarted)."""
        # Only a preflight can be answered here: any other method is not offered at all.
        if (type(message) is not RawRequestMessage or message.method != "OPTIONS" or payload is not EMPTY_PAYLOAD
                or message.should_close
                or message.upgrade or self.transport is None or self._paused):
            return False
        head = self._answer(MessageView(message, self._scheme))
        if head is None:
            return False
        self.transport.write(head)
        self._server.requests_count += 1
        # What RequestHandler.start() does after each answer that keeps the connection.
        loop = self._loop
        self._next_keepalive_close_time = close_time = loop.time() + self._keepalive_timeout
        if self._keepalive_handle is None:
            self._keepalive_handle = loop.call_at(close_time, self._process_keepalive)
        return True
