"""A small Fetch Standard oracle: would a browser let the page go on, given a server's answer?

Deliberately separate from corsproxy.judge (the code under test shares generators with it), and
small enough to read against https://fetch.spec.whatwg.org/ "CORS check" and "CORS-preflight
fetch" in one sitting.
"""

from __future__ import annotations

from collections.abc import Mapping

SAFELISTED_METHODS = {"GET", "HEAD", "POST"}


def _list(headers: Mapping[str, list[str]], name: str) -> list[str]:
    values = headers.get(name.lower(), [])
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _single(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name.lower(), [])
    return values[0] if len(values) == 1 else None


def cors_check(headers: Mapping[str, list[str]], origin: str, credentials: bool) -> bool:
    """Fetch "CORS check": ACAO is the origin, or `*` without credentials; with credentials
    ACAC is exactly `true`. Two ACAO values are a failure."""
    allow_origin = _single(headers, "Access-Control-Allow-Origin")
    if allow_origin is None:
        return False
    if not (allow_origin == origin or (allow_origin == "*" and not credentials)):
        return False
    return not credentials or _single(headers, "Access-Control-Allow-Credentials") == "true"


def preflight_ok(status: int, headers: Mapping[str, list[str]], origin: str, credentials: bool,
                 method: str, names: list[str], private_network: bool) -> bool:
    """Fetch "CORS-preflight fetch": an ok status, the CORS check, the method and every asked
    header covered (`*` only without credentials, never for Authorization)."""
    if not 200 <= status <= 299 or not cors_check(headers, origin, credentials):
        return False
    methods = _list(headers, "Access-Control-Allow-Methods")
    if not (method in methods or method in SAFELISTED_METHODS or ("*" in methods and not credentials)):
        return False
    allowed = {name.lower() for name in _list(headers, "Access-Control-Allow-Headers")}
    for name in names:
        name = name.lower()
        wildcard = "*" in allowed and not credentials and name != "authorization"
        if name not in allowed and not wildcard:
            return False
    if private_network and _single(headers, "Access-Control-Allow-Private-Network") != "true":
        return False
    return True
