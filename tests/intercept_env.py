"""A fake third party on loopback and corsproxy's intercept listener in front of it.

The third party is an HTTPS aiohttp app on 127.0.0.1 with a test certificate for
`api.thirdparty.test` (made here, signed by a throwaway test CA), sending no CORS headers of its
own on /v1 and a foreign `Access-Control-Allow-Origin` plus `Alt-Svc` everywhere, and counting
the requests it gets by method. The proxy reaches it with `connect_to` and trusts its CA
with `ca_file`, as a user would for a staging copy.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import ssl
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from corsproxy import config as config_module
from corsproxy.server.app import STATE, ProxyRunner, build_app
from corsproxy.server.listener import Listener

THIRD_PARTY = "api.thirdparty.test"
PAGE_ORIGIN = "http://localhost:3000"
FOREIGN = "https://evil.example"
LISTED_PATH = "/v1/widget"


def write_test_pki(folder: Path, name: str = THIRD_PARTY) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server-key.pem): a test CA and a leaf for `name` it signed."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, issuer, key, sign_key, ca: bool, extensions=()):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=7))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(sign_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "third-party test CA")])
    ca_cert = cert(ca_name, ca_name, ca_key, ca_key, True)
    leaf = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca_name, key, ca_key, False,
                [x509.SubjectAlternativeName([x509.DNSName(name)])])
    paths = folder / "third-party-ca.pem", folder / "third-party.pem", folder / "third-party-key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class ThirdParty:
    port: int
    ca_file: Path
    methods: collections.Counter = field(default_factory=collections.Counter)
    seen: list[dict] = field(default_factory=list)


def third_party_app(party: ThirdParty) -> web.Application:
    async def echo(request: web.Request) -> web.StreamResponse:
        party.methods[request.method] += 1
        party.seen.append({"method": request.method, "path": request.path_qs, "host": request.host,
                           "headers": dict(request.headers)})
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for message in ws:
                await ws.send_str("echo:" + message.data)
            return ws
        headers = {"Alt-Svc": 'h3=":443"; ma=86400', "Access-Control-Allow-Origin": "https://someone.else",
                   "Set-Cookie": f"sid=1; Domain={THIRD_PARTY}; Path=/; Secure; SameSite=None"}
        if request.path == "/v1/widget/redirect":
            headers["Location"] = f"https://{THIRD_PARTY}/v1/widget/data"
            return web.Response(status=302, headers=headers)
        return web.json_response({"method": request.method, "path": request.path_qs,
                                  "origin": request.headers.get("Origin"),
                                  "cookie": request.headers.get("Cookie"),
                                  "custom": request.headers.get("X-Custom")}, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


async def start_third_party(folder: Path, aiohttp_server) -> ThirdParty:
    ca_file, cert_file, key_file = write_test_pki(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    party = ThirdParty(0, ca_file)
    server = await aiohttp_server(third_party_app(party), ssl=context)
    party.port = server.port
    return party


def intercept_yaml(party: ThirdParty, extra_hosts: str = "", listen: str = "127.0.0.1:0") -> str:
    return textwrap.dedent(f"""\
        cors:
          allow_origins: [{PAGE_ORIGIN}]
        routes: []
        intercept:
          listen: {listen}
          hosts:
            - host: {THIRD_PARTY}
              paths: [{LISTED_PATH}]
              cors: {{allow_credentials: true, allow_headers: [X-Custom]}}
              connect_to: 127.0.0.1:{party.port}
              ca_file: {party.ca_file.name}
        """) + extra_hosts


@dataclass
class Proxy:
    app: web.Application
    runner: ProxyRunner
    listener: Listener
    port: int          # the main port
    listen_port: int   # the intercept listener

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    @property
    def ca_pem(self) -> bytes:
        return self.app[STATE].current.intercept.authority.cert_pem

    def client_context(self) -> ssl.SSLContext:
        """A client that trusts corsproxy's CA only (and checks names, constraints included)."""
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        return context

    async def stop(self) -> None:
        await self.listener.stop(1.0)
        await self.runner.cleanup()


async def start_proxy(config_file: Path) -> Proxy:
    app = build_app(config_module.load(config_file))
    runner = ProxyRunner(app, shutdown_timeout=1.0)   # the main port as serve runs it
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    listener = Listener(app)
    settings = app[STATE].current.config.intercept
    _, listen_port = await listener.start(settings.listen_host, settings.listen_port)
    listener.url = f"http://127.0.0.1:{listen_port}"
    return Proxy(app, runner, listener, port, listen_port)


async def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data` to 127.0.0.1:port and read until the server closes or answers a head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()


async def open_tunnel(port: int, authority: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """CONNECT through the listener; the reader/writer and the head of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
    return reader, writer, head


async def open_tls_tunnel(proxy: Proxy, server_hostname: str | None = THIRD_PARTY, verify: bool = True):
    """A TLS stream through a CONNECT to the third party (verify False: only the server may fail
    the handshake)."""
    reader, writer, head = await open_tunnel(proxy.listen_port, f"{THIRD_PARTY}:443")
    assert head.startswith(b"HTTP/1.1 200 ")
    context = proxy.client_context()
    if not verify:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    await writer.start_tls(context, server_hostname=server_hostname)
    return reader, writer


async def tunnel_request(reader, writer, path: str = LISTED_PATH, host: str = THIRD_PARTY,
                         origin: str = PAGE_ORIGIN) -> bytes:
    """One keep-alive GET in an open tunnel; the head of the answer (the body is read too)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), b"0"))
    await asyncio.wait_for(reader.readexactly(length), 5)
    return head


def proxied_session() -> aiohttp.ClientSession:
    """A client session for requests through the listener (no cookie jar: headers as set)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)
