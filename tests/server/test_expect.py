"""Expect: 100-continue is answered by corsproxy's own dispatch, and only once every gate said yes."""

from __future__ import annotations

import asyncio

from tests.conftest import ALLOWED, FOREIGN, raw_http, status_of

BODY = b"x" * 5000


def head(origin: str, expect: str = "100-continue") -> bytes:
    return (f"POST /api/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {origin}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(BODY)}\r\nExpect: {expect}\r\nConnection: close\r\n\r\n").encode()


async def test_an_allowed_request_gets_100_continue_then_its_answer(proxy, received):
    """An allowed POST with Expect: 100-continue is told to go on, and its body reaches the upstream whole."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(head(ALLOWED))
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(BODY)
        answer = await asyncio.wait_for(reader.read(1 << 20), 5)
    finally:
        writer.close()
    assert status_of(answer) == 200
    [seen] = received
    assert seen["body_length"] == len(BODY)
    assert not any(name.lower() == "expect" for name, _ in seen["headers"])


async def test_a_refused_request_is_not_invited_to_send_its_body(proxy, received):
    """A foreign origin's POST with Expect: 100-continue gets its 403 at once, never a 100 Continue."""
    answer = await raw_http(proxy.port, head(FOREIGN))
    assert answer.startswith(b"HTTP/1.1 403 ") and b"100 Continue" not in answer
    assert received == []


async def test_an_expectation_other_than_100_continue_is_refused_417(proxy, received):
    """Expect: something-else is answered 417 (RFC 9110 §10.1.1) and nothing is forwarded."""
    answer = await raw_http(proxy.port, head(ALLOWED, "teapot"))
    assert status_of(answer) == 417 and b"only 100-continue" in answer
    assert received == []
