"""Origins and Host headers: parse once at load, compare strings on the request path.

A configured origin is normalised to the serialisation browsers send in the `Origin` header
(Fetch Standard §3.2.2 and the HTML Standard's "ASCII serialization of an origin": lower-case
scheme and host, default port omitted, IPv6 in brackets), so that the CORS decision compares
exact strings and never parses what a browser sent.

`Host` header values (RFC 9110 §7.2; RFC 3986 §3.2.2 for the host and its IP-literal brackets)
are parsed by splitting only; the character checks use patterns compiled once at import.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import urlsplit

from corsproxy.model import OriginPattern

# A DNS name is at most 253 characters (RFC 1035 §2.3.4, as text) and a port adds ":65535";
# 255 + 6 leaves room for brackets and a trailing dot. Anything longer is refused unparsed.
MAX_HOST_LENGTH = 255 + 6
MAX_ORIGIN_LENGTH = 1024

_DEFAULT_PORTS = {"http": 80, "https": 443}
# The scheme of the page a WebSocket handshake came from is http(s); see Upstream.origin.
_HTTP_SCHEME = {"http": "http", "https": "https", "ws": "http", "wss": "https"}

# reg-name characters we accept (RFC 3986 §3.2.2, without percent-encoding and sub-delims,
# which no browser puts in a Host it sends), and the characters of an IPv6 literal.
_NAME_CHARS = re.compile(r"[a-z0-9._-]+")
_IPV6_CHARS = re.compile(r"[0-9a-f:.]+")


def normalise_origin(text: str) -> str:
    """A configured origin ``scheme://host[:port]`` as browsers serialise it.

    Raises ``ValueError`` whose message says what is wrong and how to fix it.
    """
    if len(text) > MAX_ORIGIN_LENGTH:
        raise ValueError(f"an origin is at most {MAX_ORIGIN_LENGTH} characters long")
    if text.lower() == "null":
        raise ValueError(
            "'null' is the origin of sandboxed iframes and file:// pages of every site, so "
            "allowing it lets any site in; serve the page from an http(s) origin and list that"
        )
    if text == "*":
        raise ValueError("'*' must be the only entry: allow_origins: ['*']")
    if "://" not in text:
        raise ValueError("an origin is scheme://host[:port]; write it like http://localhost:3000")
    scheme, rest = text.split("://", 1)
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(
            f"scheme '{scheme}' is not http or https; a page's origin is http:// or https://"
        )
    authority, tail = _split_authority(rest)
    if "*" in rest:
        origin = f"{scheme}://{authority.lower()}"
        pattern = "^" + re.escape(origin).replace(r"\*", "[a-z0-9-]+") + "$"
        raise ValueError(
            f"wildcards are not allowed inside an origin; use allow_origin_regex: '{pattern}'"
        )
    if tail == "/":
        raise ValueError("an origin has no path; remove the trailing slash")
    if tail:
        part = {"/": "path", "?": "query", "#": "fragment"}[tail[0]]
        raise ValueError(f"an origin has no {part}; remove '{tail}'")
    if not authority or (authority[0] == ":" and authority.count(":") == 1):
        raise ValueError("an origin needs a host; write it like http://localhost:3000")
    if "@" in authority:
        user = authority.rsplit("@", 1)[0]
        raise ValueError(f"an origin has no user info; remove '{user}@'")
    try:
        host, port = parse_host(authority)
    except ValueError as exc:
        raise ValueError(f"bad host in origin: {exc}") from None
    if ":" in host:
        if not authority.startswith("["):
            raise ValueError(f"an IPv6 address needs brackets; write {scheme}://[{host}]")
        try:
            host = ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise ValueError(f"'{host}' is not an IPv6 address") from None
    return _serialise(scheme, host, port)


def parse_host(value: str) -> tuple[str, int | None]:
    """A ``Host`` header value or an ``allowed_hosts`` entry -> (host, port or None).

    ``[::1]:8080`` -> ("::1", 8080); bare ``::1`` -> ("::1", None); lower-cased.
    Raises ``ValueError`` for anything malformed.
    """
    if len(value) > MAX_HOST_LENGTH:
        raise ValueError(f"longer than {MAX_HOST_LENGTH} characters")
    if not value:
        raise ValueError("empty host")
    if not value.isascii():
        # str.lower() folds some non-ASCII letters into ASCII ones (KELVIN SIGN -> "k"), which
        # would let a look-alike name pass the allowlist; host names on the wire are ASCII (IDNA).
        raise ValueError(f"'{value}' is not ASCII; write an international name in its xn-- form")
    value = value.lower()
    if value.startswith("["):
        # RFC 3986 §3.2.2: IP-literal = "[" IPv6address "]", then an optional ":" port.
        end = value.find("]")
        if end < 0:
            raise ValueError(f"'{value}' has an unclosed '['")
        host, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(f"'{value}' has text after ']' that is not a port")
        port = _parse_port(rest[1:]) if rest else None
        if ":" not in host or not _IPV6_CHARS.fullmatch(host):
            raise ValueError(f"'{host}' inside brackets is not an IPv6 address")
        return host, port
    if value.count(":") > 1:
        # A bare IPv6 address: only meaningful in allowed_hosts, never with a port.
        if not _IPV6_CHARS.fullmatch(value):
            raise ValueError(f"'{value}' is not a host[:port]")
        return value, None
    host, colon, port_text = value.partition(":")
    if not _NAME_CHARS.fullmatch(host):
        raise ValueError(f"'{value}' is not a host[:port]")
    return host, (_parse_port(port_text) if colon else None)


def host_allowed(
    allowed: tuple[tuple[str, int | None], ...], allow_any: bool, host_header: str | None
) -> bool:
    """Whether a request's ``Host`` is on the allowlist (the DNS-rebinding guard).

    A missing or malformed Host is never allowed, even with ``allow_any``; an entry with
    port None matches any port.
    """
    parsed = _parse_host_header(host_header)
    if parsed is None:
        return False
    if allow_any:
        return True
    host, port = parsed
    return any(host == name and (want is None or want == port) for name, want in allowed)


def own_origin(scheme: str, host_header: str) -> str | None:
    """The proxy's own origin as a browser serialises it, from the request's scheme and Host.

    ``("http", "localhost:8080")`` -> ``http://localhost:8080``; None when Host is malformed.
    """
    parsed = _parse_host_header(host_header)
    if parsed is None:
        return None
    scheme = scheme.lower()
    return _serialise(_HTTP_SCHEME.get(scheme, scheme), *parsed)


def referer_origin(referer: str | None) -> str | None:
    """The origin of a ``Referer`` URL, serialised as an Origin header would be; None when
    absent, too long, not http(s) or malformed (Fetch §4.3 "determine request's Referrer":
    browsers send an absolute URL without credentials or fragment)."""
    if referer is None or len(referer) > MAX_ORIGIN_LENGTH * 8:
        return None
    scheme, sep, rest = referer.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        return None
    authority, _ = _split_authority(rest)
    parsed = None if "@" in authority else _parse_host_header(authority)
    return None if parsed is None else _serialise(scheme, *parsed)


def _parse_host_header(value: str | None) -> tuple[str, int | None] | None:
    """parse_host for a Host header: None when absent or malformed, or an unbracketed IPv6
    address (RFC 9110 §7.2 uses RFC 3986's uri-host, where an IPv6 literal is bracketed)."""
    if value is None or len(value) > MAX_HOST_LENGTH:
        return None
    return _parse_host_text(value)


# Every request reads its Host twice (the Host guard, the proxy's own origin) and a browser
# sends the same one over and over: the parse is remembered (bounded; a value is short).
@functools.lru_cache(maxsize=256)
def _parse_host_text(value: str) -> tuple[str, int | None] | None:
    try:
        host, port = parse_host(value)
    except ValueError:
        return None
    if ":" in host and not value.startswith("["):
        return None
    return host, port


def _parse_port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 5):
        raise ValueError(f"port '{text}' is not a number from 1 to 65535")
    port = int(text)
    if not 0 < port <= 65535:
        raise ValueError(f"port {port} is not from 1 to 65535")
    return port


def _split_authority(rest: str) -> tuple[str, str]:
    """``host:port/path?q`` -> (``host:port``, ``/path?q``): the authority ends at the first
    "/", "?" or "#" (RFC 3986 §3.2)."""
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return rest[:cut], rest[cut:]


def _serialise(scheme: str, host: str, port: int | None) -> str:
    """scheme://host[:port], IPv6 bracketed, the scheme's default port omitted."""
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


# Unrelated web origins: a regex that fully matches every one of them lets any website in
# (e.g. '.*' or 'https?://.*'), whether or not it also matches `null`.
_UNRELATED_ORIGINS = ("https://evil.invalid", "http://attacker.example:1234", "https://a.b",
                      "http://10.0.0.1")


def matches_any_origin(regex: OriginPattern) -> str | None:
    """An example origin when `regex` fully matches all the unrelated probes, else None."""
    if all(regex.fullmatch(origin) for origin in _UNRELATED_ORIGINS):
        return _UNRELATED_ORIGINS[0]
    return None


def loopback_origin(origin: str) -> bool:
    """Whether an http(s) origin is on this machine: localhost, *.localhost, 127.0.0.0/8 or [::1]
    (the HTML Standard's "potentially trustworthy" hosts besides https)."""
    return loopback_host(urlsplit(origin).hostname or "")


def loopback_host(host: str) -> bool:
    """Whether a host name or address (IPv6 with or without brackets) is this machine."""
    host = host.lower().strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Binds a browser on this machine reaches as `localhost` (0.0.0.0 and :: include loopback).
_LOCALHOST_BINDS = frozenset({"127.0.0.1", "0.0.0.0", "::", "localhost"})


def page_host(bind_host: str, port: int, allowed: tuple[tuple[str, int | None], ...],
              allow_any: bool) -> str:
    """The host name a page should call the proxy by: `localhost` for a loopback or wildcard bind
    (the name dev servers are opened with; 127.0.0.1 is another site and loses cookies), unless
    the Host allowlist would refuse it; else the bind host (IPv6 bracketed)."""
    if bind_host in _LOCALHOST_BINDS and host_allowed(allowed, allow_any, f"localhost:{port}"):
        return "localhost"
    return f"[{bind_host}]" if ":" in bind_host else bind_host


def same_host_advice(port: int) -> str:
    """What a user must know before their first cookie goes missing (Chromium, seen on 156)."""
    return (f"call the proxy with the page's own host name: a page on http://localhost:<port> must use "
            f"http://localhost:{port}, not http://127.0.0.1:{port}; the two are different sites to the "
            "browser, and cookies set through one never reach a page on the other")
