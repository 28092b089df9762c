"""The intercept listener on the wire: CONNECT, TLS, the pipeline inside the tunnel, the PAC and
the CA, against a real HTTPS third party on loopback (tests/intercept_env.py)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from structlog.testing import capture_logs

from tests.intercept_env import (
    FOREIGN,
    LISTED_PATH,
    PAGE_ORIGIN,
    THIRD_PARTY,
    intercept_yaml,
    open_tls_tunnel,
    open_tunnel,
    proxied_session,
    raw_exchange,
    start_proxy,
    start_third_party,
)

URL = f"https://{THIRD_PARTY}{LISTED_PATH}"


@pytest.fixture
async def party(tmp_path, aiohttp_server):
    return await start_third_party(tmp_path, aiohttp_server)


@pytest.fixture
async def proxy(tmp_path, party):
    (tmp_path / "c.yaml").write_text(intercept_yaml(party))
    proxy = await start_proxy(tmp_path / "c.yaml")
    yield proxy
    await proxy.stop()


async def fetch(proxy, url=URL, method="GET", **headers):
    async with proxied_session() as session:
        async with session.request(method, url, proxy=proxy.url, ssl=proxy.client_context(),
                                   headers=headers, allow_redirects=False) as response:
            return response.status, response.headers, await response.read()


async def test_listed_path_gets_the_policy_and_keeps_url_host_and_cookies(proxy, party) -> None:
    """A listed path is forwarded with its URL, Host, Origin and Cookie as sent; the answer gets
    the policy's CORS headers in place of the upstream's, and loses Alt-Svc."""
    status, headers, body = await fetch(proxy, URL + "/items?q=1", Origin=PAGE_ORIGIN, Cookie="sid=abc",
                                        **{"X-Custom": "yes"})
    assert status == 200
    assert headers.getall("Access-Control-Allow-Origin") == [PAGE_ORIGIN]
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "Alt-Svc" not in headers
    assert json.loads(body) == {"method": "GET", "path": f"{LISTED_PATH}/items?q=1", "origin": PAGE_ORIGIN,
                                "cookie": "sid=abc", "custom": "yes"}
    seen = party.seen[-1]
    assert seen["host"] == THIRD_PARTY
    assert not any(name.lower().startswith("x-forwarded") for name in seen["headers"])


async def test_redirects_and_cookie_domains_are_not_rewritten(proxy) -> None:
    """The browser talks to the real host: Location and Set-Cookie Domain come back as sent."""
    status, headers, _ = await fetch(proxy, URL + "/redirect", Origin=PAGE_ORIGIN)
    assert status == 302
    assert headers["Location"] == f"https://{THIRD_PARTY}/v1/widget/data"
    assert f"Domain={THIRD_PARTY}" in headers["Set-Cookie"]


async def test_unlisted_path_of_a_listed_host_passes_through_untouched(proxy, party) -> None:
    """Another path of the host is forwarded with its headers as the upstream sent them."""
    status, headers, _ = await fetch(proxy, f"https://{THIRD_PARTY}/v2/other", Origin=FOREIGN)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://someone.else"
    assert headers["Alt-Svc"] == 'h3=":443"; ma=86400'
    assert party.methods["GET"] == 1


async def test_preflight_is_answered_and_never_forwarded(proxy, party) -> None:
    """A preflight for a listed path is answered by the policy; the third party sees no OPTIONS."""
    status, headers, _ = await fetch(proxy, method="OPTIONS", Origin=PAGE_ORIGIN,
                                     **{"Access-Control-Request-Method": "PUT",
                                        "Access-Control-Request-Headers": "x-custom"})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
    assert party.methods["OPTIONS"] == 0


async def test_foreign_origin_in_the_tunnel_is_refused_and_not_forwarded(proxy, party) -> None:
    """An origin the policy does not allow gets 403 inside the tunnel; nothing reaches the host."""
    status, headers, body = await fetch(proxy, Origin=FOREIGN)
    assert status == 403
    assert not any(name.lower().startswith("access-control-allow") for name in headers)
    assert b"not in allow_origins" in body
    assert sum(party.methods.values()) == 0


async def test_websocket_in_the_tunnel_passes_the_origin_gate(proxy, party) -> None:
    """An allowed origin's WebSocket is relayed; a foreign one is refused 403 and never opened."""
    async with proxied_session() as session:
        async with session.ws_connect(f"wss://{THIRD_PARTY}{LISTED_PATH}/ws", proxy=proxy.url,
                                      ssl=proxy.client_context(), origin=PAGE_ORIGIN) as ws:
            await ws.send_str("hi")
            assert (await ws.receive(timeout=5)).data == "echo:hi"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"wss://{THIRD_PARTY}{LISTED_PATH}/ws", proxy=proxy.url,
                                     ssl=proxy.client_context(), origin=FOREIGN)
    assert refused.value.status == 403
    assert party.methods["GET"] == 1


@pytest.mark.parametrize("target", [
    pytest.param("unlisted.test:443", id="unlisted-host"),
    pytest.param(f"{THIRD_PARTY}:8443", id="listed-host-other-port"),
    pytest.param("127.0.0.1:{port}", id="ipv4-literal"),
    pytest.param("[::1]:{port}", id="ipv6-literal"),
    pytest.param("localhost:{port}", id="loopback-name"),
    pytest.param(THIRD_PARTY, id="no-port"),
])
async def test_connect_to_anything_unlisted_is_refused_and_never_dialled(proxy, bystander, target) -> None:
    """CONNECT to an unlisted host, another port, an IP literal or a name of this machine: 403."""
    port, accepted = bystander
    answer = await raw_exchange(proxy.listen_port, f"CONNECT {target.format(port=port)} HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert accepted == []


@pytest.mark.parametrize("port_of", ["listener", "main"])
async def test_connect_to_the_proxy_itself_is_refused(proxy, port_of) -> None:
    """CONNECT naming the listener's or the main port's own address is refused."""
    port = proxy.listen_port if port_of == "listener" else proxy.port
    answer = await raw_exchange(proxy.listen_port, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403 ")


async def test_absolute_form_request_on_the_listener_is_refused_and_never_dialled(proxy, bystander) -> None:
    """A plain proxy request (absolute-form) is 403: the listener forwards only CONNECTs."""
    port, accepted = bystander
    request = f"GET http://127.0.0.1:{port}/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    answer = await raw_exchange(proxy.listen_port, request)
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert accepted == []


@pytest.mark.parametrize("sni", ["other.test", None], ids=["other-name", "no-sni"])
async def test_sni_that_does_not_name_the_connect_host_fails_the_handshake(proxy, sni) -> None:
    """The TLS handshake in a tunnel to one host fails for another SNI, or none."""
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await open_tls_tunnel(proxy, sni, verify=False)


async def test_host_that_does_not_name_the_connect_host_is_refused(proxy, party) -> None:
    """Inside a tunnel to one host, a request naming another Host is 403, never forwarded."""
    reader, writer = await open_tls_tunnel(proxy, THIRD_PARTY)
    writer.write(b"GET /v1/widget HTTP/1.1\r\nHost: unlisted.test\r\nOrigin: " + PAGE_ORIGIN.encode() + b"\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 403 ")
    assert sum(party.methods.values()) == 0


async def test_a_second_hop_inside_the_tunnel_is_refused(proxy, party) -> None:
    """CONNECT or an absolute-form target inside a tunnel is 403, never dialled."""
    reader, writer = await open_tls_tunnel(proxy, THIRD_PARTY)
    writer.write(f"CONNECT other.test:443 HTTP/1.1\r\nHost: {THIRD_PARTY}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 403 ")
    assert sum(party.methods.values()) == 0


async def test_the_tunnel_speaks_http11_only(proxy) -> None:
    """ALPN offers of h2 and http/1.1 select http/1.1."""
    reader, writer, _ = await open_tunnel(proxy.listen_port, f"{THIRD_PARTY}:443")
    context = proxy.client_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    await writer.start_tls(context, server_hostname=THIRD_PARTY)
    assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
    writer.close()


def served_chain(proxy) -> list[x509.Certificate]:
    """The certificates the listener sends in a tunnel, read by openssl (no trust involved)."""
    out = subprocess.run(
        ["openssl", "s_client", "-proxy", f"127.0.0.1:{proxy.listen_port}", "-connect", f"{THIRD_PARTY}:443",
         "-servername", THIRD_PARTY, "-showcerts"],
        input=b"", capture_output=True, timeout=20).stdout
    blocks = out.split(b"-----BEGIN CERTIFICATE-----")[1:]
    return [x509.load_pem_x509_certificate(b"-----BEGIN CERTIFICATE-----" + b.split(b"-----END CERTIFICATE-----")[0]
                                           + b"-----END CERTIFICATE-----\n") for b in blocks]


async def test_leaf_is_p256_for_the_host_and_served_with_the_ca(proxy) -> None:
    """The chain is [leaf for the host (ECDSA P-256), corsproxy's CA]."""
    chain = await asyncio.to_thread(served_chain, proxy)
    ca = x509.load_pem_x509_certificate(proxy.ca_pem)
    assert len(chain) == 2 and chain[1] == ca
    leaf = chain[0]
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp256r1"
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == [THIRD_PARTY]
    again = await asyncio.to_thread(served_chain, proxy)
    assert again[0] == leaf  # cached per host


async def test_ca_name_constraints_are_critical_and_permit_only_the_listed_hosts(proxy) -> None:
    """/ca.pem carries critical name constraints: the listed hosts permitted, every IP excluded."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/ca.pem") as response:
            assert response.status == 200
            ca = x509.load_pem_x509_certificate(await response.read())
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert [s.value for s in constraints.value.permitted_subtrees] == [THIRD_PARTY]
    assert sorted(str(s.value) for s in constraints.value.excluded_subtrees) == ["0.0.0.0/0", "::/0"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


async def test_pac_sends_only_listed_hosts_to_the_listener(proxy) -> None:
    """/proxy.pac to a loopback Host, evaluated by node: listed https/wss -> the listener, else DIRECT."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/proxy.pac") as response:
            assert response.headers["Content-Type"].startswith("application/x-ns-proxy-autoconfig")
            pac = await response.text()
    cases = {f"https://{THIRD_PARTY}/v1/widget": THIRD_PARTY, f"wss://{THIRD_PARTY}/ws": THIRD_PARTY,
             f"http://{THIRD_PARTY}/": THIRD_PARTY, f"https://{THIRD_PARTY}:8443/": THIRD_PARTY,
             "https://example.com/": "example.com", "http://localhost:3000/": "localhost"}
    script = pac + "".join(f"console.log(FindProxyForURL({json.dumps(u)}, {json.dumps(h)}));\n"
                           for u, h in cases.items())
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=20, check=True)
    proxy_line = f"PROXY 127.0.0.1:{proxy.listen_port}"
    assert out.stdout.split("\n")[:-1] == [proxy_line, proxy_line, "DIRECT", "DIRECT", "DIRECT", "DIRECT"]


@pytest.mark.parametrize("path", ["/proxy.pac", "/ca.pem"])
async def test_pac_and_ca_refuse_a_foreign_host(proxy, path) -> None:
    """A page reaching the listener under its own DNS name (rebinding) gets 403."""
    answer = await raw_exchange(proxy.listen_port, f"GET {path} HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403 ")


async def test_main_port_refuses_connect_and_never_dials(proxy, bystander) -> None:
    """The main port answers CONNECT with a 4xx from its own gate and dials nothing."""
    port, accepted = bystander
    answer = await raw_exchange(proxy.port, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"is not served: corsproxy forwards only to the upstreams of its config" in answer
    assert accepted == []


async def test_main_port_connect_meets_the_host_guard_first(proxy) -> None:
    """The gates, not aiohttp's router, answer CONNECT: a foreign Host is refused as such (403)."""
    answer = await raw_exchange(proxy.port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403 ") and b"allowed_hosts" in answer


async def test_intercepted_credentials_never_reach_the_log(proxy) -> None:
    """Authorization, Cookie and Set-Cookie values of intercepted traffic are not logged."""
    with capture_logs() as lines:
        await fetch(proxy, Origin=PAGE_ORIGIN, Cookie="sid=cookie-secret", Authorization="Bearer token-secret")
        await fetch(proxy, f"https://{THIRD_PARTY}/other", Cookie="sid=cookie-secret")
    text = json.dumps(lines, default=str)
    assert "request" in text
    assert "cookie-secret" not in text and "token-secret" not in text and "sid=1" not in text


async def test_the_inspector_shows_intercepted_requests_like_proxied_ones(proxy) -> None:
    """/__corsproxy/events on the main port lists tunnel requests with the third party's origin,
    their decision, and what the third party's own headers would have meant to a browser."""
    await fetch(proxy, URL + "/data", Origin=PAGE_ORIGIN)
    await fetch(proxy, f"https://{THIRD_PARTY}/v2/other", Origin=PAGE_ORIGIN)
    await fetch(proxy, Origin=FOREIGN)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{proxy.port}/__corsproxy/events") as response:
            events = (await response.json())["events"]
    seen = [(e["intercepted"], e["path"], e["decision"], e["route"]) for e in events]
    origin = f"https://{THIRD_PARTY}"
    assert seen == [(origin, f"{LISTED_PATH}/data", "cors", LISTED_PATH), (origin, "/v2/other", "pass-through", "/"),
                    (origin, LISTED_PATH, "refused", LISTED_PATH)]
    listed, passed, refused = events
    assert listed["upstream_cors"]["browser_would_allow"] is False   # the third party's own ACAO
    assert passed["upstream_cors"]["browser_would_allow"] is False   # so the path stays blocked
    assert refused["upstream_cors"] is None and refused["status"] == 403


async def test_probe_judges_an_intercepted_url_through_the_listener(proxy) -> None:
    """probe --intercept sends the preflight and the request through the tunnel: the listed
    path is allowed, an unlisted one is blocked with the third party's own header as the cause."""
    from corsproxy.cli import main

    def run(url: str) -> int:
        return main(["probe", url, "--origin", PAGE_ORIGIN, "-H", "X-Custom: 1", "--credentials",
                     "--intercept", proxy.url])

    assert await asyncio.to_thread(run, URL + "/data") == 0
    assert await asyncio.to_thread(run, f"https://{THIRD_PARTY}/v2/other") == 1
