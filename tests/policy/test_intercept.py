"""The pure part of intercept: names, CONNECT targets, the Host and SNI of a tunnel."""

from __future__ import annotations

import pytest

from corsproxy.model import InterceptHost, InterceptSettings, Source
from corsproxy.policy.intercept import (
    connect_refusal,
    dns_name_problem,
    sni_matches,
    tunnel_host_matches,
)
from corsproxy.policy.origins import loopback_host

SETTINGS = InterceptSettings(hosts=(InterceptHost("api.thirdparty.test", 443, (), Source("c.yaml", 7)),
                                    InterceptHost("ws.thirdparty.test", 8443, (), Source("c.yaml", 9))),
                             source=Source("c.yaml", 4))


@pytest.mark.parametrize(("name", "problem"), [
    pytest.param("api.thirdparty.com", None, id="dns-name"),
    pytest.param("API.Example.COM.", None, id="upper-case-and-root-dot"),
    pytest.param("localhost", None, id="single-label"),
    pytest.param("*.example.com", "a wildcard", id="wildcard"),
    pytest.param("10.1.2.3", "an IP address", id="ipv4"),
    pytest.param("::1", "an IP address", id="ipv6"),
    pytest.param("[::1]", "an IP address", id="bracketed-ipv6"),
    pytest.param("-bad.example", "not a DNS host name", id="leading-hyphen"),
    pytest.param("a..b", "not a DNS host name", id="empty-label"),
    pytest.param("a_b.example", "not a DNS host name", id="underscore"),
    pytest.param("x" * 64 + ".example", "not a DNS host name", id="label-too-long"),
    pytest.param("1.2.3.999", "does not end in a number", id="numeric-tld"),
])
def test_dns_name_problem(name, problem) -> None:
    """Only exact DNS names may be intercepted."""
    found = dns_name_problem(name)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize(("target", "refused"), [
    pytest.param("api.thirdparty.test:443", None, id="listed"),
    pytest.param("API.thirdparty.test:443", None, id="listed-any-case"),
    pytest.param("ws.thirdparty.test:8443", None, id="listed-other-port"),
    pytest.param("ws.thirdparty.test:443", "not in intercept.hosts (c.yaml:4)", id="listed-host-wrong-port"),
    pytest.param("api.thirdparty.test", "is not host:port", id="no-port"),
    pytest.param("evil.test:443", "not in intercept.hosts", id="unlisted"),
    pytest.param("127.0.0.1:443", "IP address", id="ipv4"),
    pytest.param("[::1]:443", "IP address", id="ipv6"),
    pytest.param("user@api.thirdparty.test:443", "is not host:port", id="userinfo"),
    pytest.param("http://api.thirdparty.test:443/", "is not host:port", id="url"),
])
def test_connect_refusal(target, refused) -> None:
    """CONNECT is served for a listed host:port only."""
    found = connect_refusal(SETTINGS, target)
    assert (found is None) if refused is None else (refused in found)


@pytest.mark.parametrize(("header", "port", "matches"), [
    ("api.thirdparty.test", 443, True), ("api.thirdparty.test:443", 443, True),
    ("API.THIRDPARTY.TEST", 443, True), ("api.thirdparty.test:8443", 443, False),
    ("api.thirdparty.test", 8443, False), ("api.thirdparty.test:8443", 8443, True),
    ("other.test", 443, False), (None, 443, False), ("api.thirdparty.test:x", 443, False),
])
def test_tunnel_host_matches(header, port, matches) -> None:
    """A Host inside a tunnel must name the CONNECT host (port optional for 443)."""
    assert tunnel_host_matches(header, "api.thirdparty.test", port) is matches


@pytest.mark.parametrize(("sni", "matches"), [("api.thirdparty.test", True), ("API.thirdparty.test.", True),
                                              ("other.test", False), (None, False)])
def test_sni_matches(sni, matches) -> None:
    """The SNI must name the CONNECT host; a missing SNI does not."""
    assert sni_matches(sni, "api.thirdparty.test") is matches


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                                ("127.8.8.8", True), ("0.0.0.0", False), ("192.168.1.2", False),
                                                ("example.com", False)])
def test_loopback_host(host, loopback) -> None:
    """A listener on any of these is reachable from this machine only."""
    assert loopback_host(host) is loopback
