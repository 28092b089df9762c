"""Header lists as a browser reads them (Fetch Standard §2.2.2, https://fetch.spec.whatwg.org/):
the Access-Control-* names, "get" and "extract header list values".

Headers are sequences of ``(name, value)`` pairs as received (order and duplicates kept). The
request rules (`fetch_request`), the judge (`browser`) and the fixes (`remedies`) all
read headers through this one module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Headers = Sequence[tuple[str, str]]

ACAO = "Access-Control-Allow-Origin"
ACAC = "Access-Control-Allow-Credentials"
ACAM = "Access-Control-Allow-Methods"
ACAH = "Access-Control-Allow-Headers"
ACEH = "Access-Control-Expose-Headers"

# RFC 9110 §5.6.2 token: a method, a header name.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def is_token(text: str) -> bool:
    """RFC 9110 §5.6.2 token: what a method or a header name must be."""
    return _TOKEN.fullmatch(text) is not None


def header_values(headers: Headers, name: str) -> list[str]:
    """Every value of `name` (case-insensitive), outer spaces and tabs stripped, in order."""
    lower = name.lower()
    return [value.strip(" \t") for key, value in headers if key.lower() == lower]


def get_header(headers: Headers, name: str) -> str | None:
    """§2.2.2 "get": every value of `name` joined by ", ", None when absent."""
    values = header_values(headers, name)
    return ", ".join(values) if values else None


def extract_header_list(headers: Headers, name: str, what: str) -> tuple[list[str] | None, str | None]:
    """§2.2.2 "extract header list values" for a `#token` header: (values or None when
    absent, problem sentence when a value does not parse)."""
    values = header_values(headers, name)
    if not values:
        return None, None
    items: list[str] = []
    for value in values:
        for item in (part.strip(" \t") for part in value.split(",")):
            if not item:
                continue  # RFC 9110 §5.6.1: empty list elements are ignored
            if not is_token(item):
                return None, (f"{name} '{value}' is not a comma-separated list of {what} "
                              f"('{item}' is not a token); a browser fails the preflight")
            items.append(item)
    return items, None
