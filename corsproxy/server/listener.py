"""The intercept listener: an HTTP proxy on loopback for the listed host:ports only.

aiohttp's server has no CONNECT tunnelling, so each accepted connection starts in `Handshake`,
a small asyncio protocol that reads the first request head (bounded) and then hands the
connection on:

    accept -> Handshake
      CONNECT host:port, listed  -> "200 Connection Established" -> loop.start_tls (the host's
                                    leaf, SNI must name the host, ALPN http/1.1) -> the TLS
                                    stream goes to an aiohttp `web.Server` whose handler is
                                    app.respond() with the host's TunnelTargets: the main port's
                                    gates, CORS engine and forwarding, for this host's paths
      CONNECT anything else      -> 403 (an unlisted host, an IP literal, the proxy itself),
                                    never dialled
      any other request          -> the plain `web.Server` below: GET /proxy.pac and
                                    GET /ca.pem to a loopback Host; absolute-form (a proxy
                                    request for http://...) 403; the connection then closes,
                                    so every CONNECT is the first request of its connection

Which CONNECT is listed, which Host fits a tunnel and the PAC text are decided in
policy/intercept.py; the CA and leaves are server/ca.py's; the targets server/intercept.py's.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from aiohttp import web

from corsproxy.model import InterceptSettings
from corsproxy.policy import origins
from corsproxy.policy.intercept import connect_refusal, connect_target
from corsproxy.server.app import PARSER_LIMITS, STATE, State, respond
from corsproxy.server.logs import get_logger

MAX_HEAD = 16 * 1024
HANDSHAKE_TIMEOUT = 10.0
LOOPBACK_HOSTS = (("localhost", None), ("127.0.0.1", None), ("::1", None))
PAC_TYPE = "application/x-ns-proxy-autoconfig"


def _refusal(status: int, reason: str) -> bytes:
    body = (reason + "\n").encode()
    phrase = {400: "Bad Request", 403: "Forbidden"}[status]
    return (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class Handshake(asyncio.Protocol):
    """The first bytes of a connection: a CONNECT to tunnel, or a plain request to hand on."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        line, found, _ = self._buffer.partition(b"\r\n")
        if found and not line.upper().startswith(b"CONNECT "):
            self._hand_on_plain()
        elif b"\r\n\r\n" in self._buffer:
            head, _, rest = self._buffer.partition(b"\r\n\r\n")
            self._connect(head, rest)
        elif len(self._buffer) > MAX_HEAD:
            self._refuse(400, f"the request head is longer than {MAX_HEAD} bytes")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refuse(self, status: int, reason: str) -> None:
        get_logger().warning("refused", where="intercept listener", status=status, why=reason)
        self._cancel_timer()
        assert self._transport is not None
        self._transport.write(_refusal(status, reason))
        self._transport.close()

    def _hand_on_plain(self) -> None:
        self._cancel_timer()
        self._listener.hand_on(self._transport, self._listener.plain, self._buffer)

    def _connect(self, head: bytes, rest: bytes) -> None:
        self._cancel_timer()
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
            return self._refuse(400, "a CONNECT request line is 'CONNECT host:port HTTP/1.1'")
        settings = self._listener.settings()
        if settings is None:
            return self._refuse(403, "intercept is off in the config now; restart corsproxy to turn it on")
        if (reason := connect_refusal(settings, parts[1])) is not None:
            return self._refuse(403, reason)
        if rest:
            return self._refuse(400, "data was sent before the CONNECT was answered")
        host, port = connect_target(parts[1])  # type: ignore[misc]
        assert self._transport is not None
        self._transport.pause_reading()  # nothing more is read until TLS is in place
        self._transport.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        self._listener.start_tunnel(self._transport, host, port)


class _Held(asyncio.Protocol):
    """Holds what arrives between the end of the TLS handshake and aiohttp taking over
    (start_tls may deliver the first request before it returns)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = False

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def eof_received(self) -> bool:
        self.closed = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True


@dataclass
class Listener:
    """The listening socket, the plain server and one tunnel server per intercepted host."""

    app: web.Application
    url: str = ""
    plain: web.Server = field(init=False)
    _tunnels: dict[tuple[str, int], web.Server] = field(default_factory=dict)
    _server: asyncio.AbstractServer | None = None
    _tasks: set[asyncio.Task] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.plain = web.Server(self._answer_plain, access_log=None, **PARSER_LIMITS)

    def state(self) -> State:
        return self.app[STATE].current

    def settings(self) -> InterceptSettings | None:
        return self.state().config.intercept

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Handshake(self), host, port, backlog=256)
        bound = self._server.sockets[0].getsockname()
        return bound[0], bound[1]

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for server in (self.plain, *self._tunnels.values()):
            await server.shutdown(grace)

    def hand_on(self, transport: asyncio.Transport, server: web.Server, data: bytes) -> None:
        """Give an open connection, and the bytes already read from it, to an aiohttp server."""
        handler = server()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if data:
            handler.data_received(data)

    def start_tunnel(self, transport: asyncio.Transport, host: str, port: int) -> None:
        task = asyncio.create_task(self._tunnel(transport, host, port))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tunnel(self, transport: asyncio.Transport, host: str, port: int) -> None:
        intercept = self.state().intercept
        assert intercept is not None
        held = _Held()
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(transport, held, intercept.authority.context_for(host),
                                       server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            get_logger().warning("tunnel refused", host=f"{host}:{port}",
                                 why=f"TLS handshake failed: {type(exc).__name__}: {exc}")
            transport.close()
            return
        if held.closed:
            tls.close()
            return
        self.hand_on(tls, self._tunnel_server(host, port), b"".join(held.chunks))

    def _tunnel_server(self, host: str, port: int) -> web.Server:
        server = self._tunnels.get((host, port))
        if server is None:
            async def answer(request: web.BaseRequest) -> web.StreamResponse:
                return await self._answer_tunnel(request, host, port)
            server = self._tunnels[(host, port)] = web.Server(
                answer, access_log=None, handler_cancellation=True, **PARSER_LIMITS)
        return server

    async def _answer_tunnel(self, request: web.BaseRequest, host: str, port: int) -> web.StreamResponse:
        state = self.state()
        targets = state.intercept.targets(host, port) if state.intercept else None
        if targets is None:
            response = web.Response(status=403, text=f"{host}:{port} is no longer intercepted (the config was "
                                                      "reloaded); this tunnel closes\n")
            response.force_close()
            return response
        return await respond(request, self.app, state, targets)

    async def _answer_plain(self, request: web.BaseRequest) -> web.StreamResponse:
        response = self._plain_response(request)
        response.force_close()  # a CONNECT must start its own connection (see Handshake)
        return response

    def _plain_response(self, request: web.BaseRequest) -> web.Response:
        if not request.raw_path.startswith("/"):
            return _text(403, f"{request.raw_path[:200]!r}: corsproxy's intercept listener forwards "
                              "nothing but CONNECT to the hosts of intercept.hosts")
        if not origins.host_allowed(LOOPBACK_HOSTS, False, request.headers.get("Host")):
            return _text(403, "the intercept listener answers only a loopback Host (localhost, 127.0.0.1, ::1): "
                              "no website may read its PAC or CA through a DNS name of its own")
        intercept = self.state().intercept
        if request.method not in ("GET", "HEAD") or request.path not in ("/proxy.pac", "/ca.pem"):
            return _text(404, "the intercept listener serves GET /proxy.pac and GET /ca.pem")
        if intercept is None:
            return _text(404, "intercept is off in the config now")
        if request.path == "/proxy.pac":
            return web.Response(text=intercept.pac(self.url.removeprefix("http://")), content_type=PAC_TYPE)
        return web.Response(body=intercept.authority.cert_pem, content_type="application/x-pem-file")


def _text(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body + "\n")
