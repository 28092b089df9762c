"""The cookie doctor: will the browser keep a cookie the proxy hands on, and if not, why?

A browser drops a `Set-Cookie` it will not store without telling the page's script; the user
only notices that the login "does not stick". This judges one `Set-Cookie` value, as the proxy
sends it to the browser, for the request that got it, and names every reason the browser
would drop it (RFC 6265bis and Chromium's rules, which the browser suite checks):

- the page and the proxy are different sites (`localhost` page, `127.0.0.1` proxy): a cookie in
  a cross-site response is refused unless it is `SameSite=None; Secure`;
- the route does not allow credentials: a page can only read the response of a fetch without
  credentials, and a browser ignores `Set-Cookie` in answer to such a request;
- `SameSite=None` without `Secure` is always refused;
- `Secure`, `__Secure-` and `__Host-` need a secure origin: https, or plain-http localhost and
  loopback addresses; `__Host-` also needs `Path=/` and no `Domain`.

Pure (stdlib only): `judge_set_cookie(value, context) -> CookieFinding | None`, plain frozen
values with one reason sentence each, for the log line and the inspector.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from corsproxy.policy.origins import loopback_origin


@dataclass(frozen=True, slots=True)
class CookieContext:
    """The request a `Set-Cookie` answers, as far as cookies care."""

    proxy_origin: str              # the origin the browser called: scheme://host[:port]
    page_origin: str | None        # the request's Origin; None when it sent none (a navigation)
    allow_credentials: bool        # the route's allow_credentials
    credentials_source: str = "?"  # file:line of allow_credentials, for the fix
    scope: str = "the route"       # "route /api"


@dataclass(frozen=True, slots=True)
class CookieFinding:
    """A cookie the browser will drop: its name and why, one sentence per reason."""

    name: str
    reasons: tuple[str, ...]


def judge_set_cookie(value: str, context: CookieContext) -> CookieFinding | None:
    """Every reason the browser would drop this `Set-Cookie`; None when it keeps it."""
    name, attributes = parse_set_cookie(value)
    if not name:
        return None
    reasons = [reason for check in _CHECKS if (reason := check(name, attributes, context)) is not None]
    return CookieFinding(name, tuple(reasons)) if reasons else None


def parse_set_cookie(value: str) -> tuple[str, dict[str, str]]:
    """(cookie name, {lower-case attribute name: value}) of a Set-Cookie value (RFC 6265bis §5.6)."""
    pair, *parts = value.split(";")
    name = pair.partition("=")[0].strip() if "=" in pair else ""
    attributes = {}
    for part in parts:
        key, _, item = part.partition("=")
        attributes[key.strip().lower()] = item.strip()
    return name, attributes


# --- one check each: the reason sentence, or None ----------------------------------------------

def _cross_origin(context: CookieContext) -> bool:
    return context.page_origin is not None and context.page_origin != context.proxy_origin


def _without_credentials(name: str, attributes: dict[str, str], context: CookieContext) -> str | None:
    if not _cross_origin(context) or context.allow_credentials:
        return None
    return (f"{context.scope} does not allow credentials ({context.credentials_source}), so the page "
            "can read this response only from a fetch without credentials, and a browser ignores "
            "Set-Cookie in answer to such a request; set allow_credentials: true there and fetch "
            "with credentials: 'include'")


def _cross_site(name: str, attributes: dict[str, str], context: CookieContext) -> str | None:
    if not _cross_origin(context) or not _different_sites(context.page_origin or "", context.proxy_origin):
        return None
    if attributes.get("samesite", "lax").lower() == "none" and "secure" in attributes:
        return None  # a third-party cookie: kept unless the user blocks those
    same_host = _with_host(context.proxy_origin, _host(context.page_origin or ""))
    return (f"the page ({context.page_origin}) and the proxy ({context.proxy_origin}) are different "
            f"sites, and a browser refuses a SameSite={attributes.get('samesite') or 'Lax (the default)'} "
            f"cookie from a cross-site response; call the proxy with the page's host name, "
            f"{same_host}")


def _none_without_secure(name: str, attributes: dict[str, str], context: CookieContext) -> str | None:
    if attributes.get("samesite", "").lower() != "none" or "secure" in attributes:
        return None
    return "it has SameSite=None without Secure, which browsers refuse; add Secure"


def _needs_a_secure_origin(name: str, attributes: dict[str, str], context: CookieContext) -> str | None:
    wants = ("__Host- prefix" if name.startswith("__Host-") else "__Secure- prefix"
             if name.startswith("__Secure-") else "Secure attribute" if "secure" in attributes else None)
    if wants is None or _secure_origin(context.proxy_origin):
        return None
    return (f"its {wants} needs a secure origin, and {context.proxy_origin} is plain http on a host "
            "that is neither localhost nor a loopback address; reach the proxy as localhost, or "
            "over https")


def _prefix_rules(name: str, attributes: dict[str, str], context: CookieContext) -> str | None:
    # RFC 6265bis §4.1.3: the prefixes promise what the attributes must then deliver.
    if not name.startswith(("__Secure-", "__Host-")):
        return None
    missing = [] if "secure" in attributes else ["Secure"]
    if name.startswith("__Host-"):
        if attributes.get("path") != "/":
            missing.append("Path=/")
        if "domain" in attributes:
            missing.append("no Domain")
    if not missing:
        return None
    return f"its {name.split('-')[0]}- prefix requires {', '.join(missing)}, which it lacks"


_CHECKS = (_without_credentials, _cross_site, _none_without_secure, _needs_a_secure_origin, _prefix_rules)


# --- sites and origins ------------------------------------------------------------------------

def _host(origin: str) -> str:
    return (urlsplit(origin).hostname or "").lower()


def _with_host(origin: str, host: str) -> str:
    """`origin` with another host name (its scheme and port kept)."""
    parts = urlsplit(origin)
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}" + (f":{parts.port}" if parts.port else "")


def _secure_origin(origin: str) -> bool:
    """https, or http on this machine (HTML "potentially trustworthy origin")."""
    return urlsplit(origin).scheme == "https" or loopback_origin(origin)


def _different_sites(first: str, second: str) -> bool:
    """Whether two origins are certainly different sites (schemeful same-site, HTML §7.1).

    Without the Public Suffix List a registrable domain is not known, so this answers True only
    when it is certain: another scheme, an IP address or `localhost` on either side with
    another host, or names whose last two labels differ (a registrable domain has at least two).
    """
    a, b = urlsplit(first), urlsplit(second)
    if a.scheme != b.scheme:
        return True
    host_a, host_b = (a.hostname or "").lower(), (b.hostname or "").lower()
    if host_a == host_b:
        return False
    if _is_ip_or_localhost(host_a) or _is_ip_or_localhost(host_b):
        return True
    return host_a.split(".")[-2:] != host_b.split(".")[-2:]


def _is_ip_or_localhost(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
