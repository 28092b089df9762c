"""Checkers of one located value each: plain YAML values -> typed fields of the model.

Each checker takes the document, the value's path (for its line) and the value, and returns
the typed value, or None after adding a problem to the document. Which key holds which value,
and how the fields become a Config, is the business of config.py.
"""

from __future__ import annotations

import difflib
import os
import re
import ssl
import urllib.parse
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from corsproxy.config.yamldoc import Doc, PathKey, show
from corsproxy.model import BUILTIN_PREFIX, Upstream
from corsproxy.policy.intercept import dns_name_problem
from corsproxy.policy.origins import normalise_origin, parse_host

UPSTREAM_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
UPSTREAM_HINT = "write scheme://host[:port][/base-path], e.g. https://api.example.com/v1"

# RFC 9110 §5.6.2: a header name (and a method) is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def mapping(doc: Doc, path: PathKey, value: Any, known: Sequence[str]) -> dict[str, Any] | None:
    """A mapping with only `known` keys (null is an empty mapping); None when not a mapping."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        doc.add(path, f"expected a mapping, got {show(value)}",
                f"write it as 'key: value' lines; valid keys: {', '.join(known)}")
        return None
    for key in value:
        if key not in known:
            doc.add((*path, key), "unknown key", _unknown_key_hint(key, known))
    return {key: item for key, item in value.items() if key in known}


def _unknown_key_hint(key: str, known: Sequence[str]) -> str:
    if key in CORS_KEYS:
        return f"'{key}' belongs in a cors: block"
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"valid keys here: {', '.join(known)}"


def boolean(doc: Doc, path: PathKey, value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    doc.add(path, f"expected true or false, got {show(value)}", "write true or false, without quotes")
    return None


def integer(doc: Doc, path: PathKey, value: Any, low: int, high: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    doc.add(path, f"expected a whole number from {low} to {high}, got {value!r}",
            "write a plain number, without quotes")
    return None


def timeout(doc: Doc, path: PathKey, value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf"):
        return float(value)
    doc.add(path, f"expected a number of seconds above 0, got {value!r}", "for example timeout: 30")
    return None


def _string(doc: Doc, path: PathKey, value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    doc.add(path, f"expected a non-empty string, got {show(value)}", "write the text, quoted if needed")
    return None


def string_list(doc: Doc, path: PathKey, value: Any) -> list[tuple[PathKey, str]] | None:
    """A list of strings, each with its own path (for its line); None when malformed."""
    if not isinstance(value, list):
        doc.add(path, f"expected a list, got {show(value)}", "write it as [a, b] or as '- a' lines")
        return None
    items = []
    for i, item in enumerate(value):
        text = _string(doc, (*path, i), item)
        if text is not None:
            items.append(((*path, i), text))
    return items if len(items) == len(value) else None


def _star(doc: Doc, path: PathKey, items: list[tuple[PathKey, str]], alone: bool) -> bool:
    """Whether the list holds '*'; when `alone`, '*' beside other entries is a problem."""
    texts = [text for _, text in items]
    if "*" in texts and alone and len(texts) > 1:
        doc.add(path, "'*' cannot be combined with other entries", 'write ["*"] alone, or only the names')
    return "*" in texts


def tokens(doc: Doc, items: list[tuple[PathKey, str]], what: str) -> list[str] | None:
    bad = [(path, text) for path, text in items if text != "*" and not _TOKEN.fullmatch(text)]
    for path, text in bad:
        doc.add(path, f"{text!r} is not a valid {what}",
                "use letters, digits and !#$%&'*+-.^_`|~ only, no spaces or colons")
    return None if bad else [text for _, text in items if text != "*"]


# ---------------------------------------------------------------- cors keys


def _cors_origins(doc: Doc, path: PathKey, value: Any) -> dict[str, Any] | None:
    items = string_list(doc, path, value)
    if items is None:
        return None
    if _star(doc, path, items, alone=True):
        return {"allow_origins": frozenset(), "allow_any_origin": len(items) == 1}
    origins = set()
    for item_path, text in items:
        try:
            origins.add(normalise_origin(text))
        except ValueError as exc:
            message, _, hint = str(exc).partition("; ")
            doc.add(item_path, message, hint)
    return {"allow_origins": frozenset(origins), "allow_any_origin": False}


REGEX_EXAMPLE = r"e.g. '^https://[a-z0-9-]+\.preview\.example\.com$'"


def _cors_regex(doc: Doc, path: PathKey, value: Any) -> dict[str, Any] | None:
    r"""An RE2 pattern: any site chooses its own Origin, and RE2 matches in time linear in its
    length, where Python's backtracking `re` can stall the event loop for seconds on a
    plausible pattern such as '^https://([a-z0-9]+-?)*\.example\.com$' (ReDoS)."""
    if value is None:
        return {"allow_origin_regex": None}
    text = _string(doc, path, value)
    if text is None:
        return None
    try:
        re2, options = _re2()
    except ImportError as exc:
        doc.add(path, f"the regex needs the 'google-re2' package, which does not import ({exc})",
                "reinstall corsproxy with its dependencies (pip install corsproxy), or list the origins "
                "in allow_origins instead")
        return None
    try:
        return {"allow_origin_regex": re2.compile(text, options)}
    except re2.error as exc:
        problem = _re2_message(exc)
    if _python_only(text):
        doc.add(path, f"this regex uses syntax RE2 does not have ({problem})",
                "allow_origin_regex is matched with RE2, in linear time: lookarounds (?=, (?!, "
                "(?<=, (?<!, backreferences (\\1, (?P=name)), atomic groups and possessive "
                "quantifiers are refused; write it without them, " + REGEX_EXAMPLE)
    else:
        doc.add(path, f"invalid regular expression: {problem}",
                "it is an RE2 regex matched against the whole origin, " + REGEX_EXAMPLE)
    return None


@cache
def _re2() -> tuple[Any, Any]:
    """google-re2 and its options, imported when a config first has a regex: the module and
    the C++ runtime it loads are ~2.5 MiB of memory that a config without one does not pay."""
    import re2

    options = re2.Options()
    # RE2 reports a bad pattern through its exception; without this it also logs it to stderr.
    options.log_errors = False
    return re2, options


def _re2_message(exc: Exception) -> str:
    first = exc.args[0] if exc.args else ""
    return first.decode(errors="replace") if isinstance(first, bytes) else str(first)


def _python_only(text: str) -> bool:
    """Whether Python's `re` accepts a pattern RE2 refused (a dialect difference, not a typo)."""
    try:
        re.compile(text)
    except re.error:
        return False
    return True


def _token_set(name: str, case: Callable[[str], str], any_key: str,
               what: str) -> Callable[[Doc, PathKey, Any], dict[str, Any] | None]:
    """A checker for a list of tokens where ["*"] means any (explicit names are kept too)."""
    def check(doc: Doc, path: PathKey, value: Any) -> dict[str, Any] | None:
        items = string_list(doc, path, value)
        names = None if items is None else tokens(doc, items, what)
        if items is None or names is None:
            return None
        return {name: frozenset(case(n) for n in names), any_key: _star(doc, path, items, False)}
    return check


def _cors_expose(doc: Doc, path: PathKey, value: Any) -> dict[str, Any] | None:
    items = string_list(doc, path, value)
    if items is None or tokens(doc, items, "header name") is None:
        return None
    return {"expose_headers": tuple(text for _, text in items)}


def _cors_flag(key: str) -> Callable[[Doc, PathKey, Any], dict[str, Any] | None]:
    def check(doc: Doc, path: PathKey, value: Any) -> dict[str, Any] | None:
        flag = boolean(doc, path, value)
        return None if flag is None else {key: flag}
    return check


def _cors_max_age(doc: Doc, path: PathKey, value: Any) -> dict[str, Any] | None:
    seconds = integer(doc, path, value, 0, 2**31 - 1)
    return None if seconds is None else {"max_age": seconds}


# How each list-valued cors key holds one of its items in the CorsPolicy (policy/origins.py
# serialises origins); the loader uses it again to find a ${VAR} item among the held values.
ITEM_FORMS: dict[str, Callable[[str], str]] = {
    "allow_origins": normalise_origin, "allow_methods": str.upper,
    "allow_headers": str.lower, "expose_headers": str,
}

# cors key -> checker returning the CorsPolicy fields that key sets (None: a problem was added).
CORS_KEYS: dict[str, Callable[[Doc, PathKey, Any], dict[str, Any] | None]] = {
    "allow_origins": _cors_origins,
    "allow_origin_regex": _cors_regex,
    "allow_methods": _token_set("allow_methods", ITEM_FORMS["allow_methods"], "allow_any_method", "method"),
    "allow_headers": _token_set("allow_headers", ITEM_FORMS["allow_headers"], "allow_any_header", "header name"),
    "expose_headers": _cors_expose,
    "allow_credentials": _cors_flag("allow_credentials"),
    "max_age": _cors_max_age,
    "allow_private_network": _cors_flag("allow_private_network"),
}


# ---------------------------------------------------------------- routes


def route_prefix(doc: Doc, path: PathKey, value: Any) -> str | None:
    text = _string(doc, path, value)
    if text is None:
        return None
    prefix = text.rstrip("/") or "/"
    problem = _prefix_problem(text, prefix)
    if problem is not None:
        doc.add(path, *problem)
        return None
    return prefix


def _prefix_problem(text: str, prefix: str) -> tuple[str, str] | None:
    """(message, hint) when a prefix cannot be used; `prefix` is `text` without trailing '/'."""
    if not text.startswith("/"):
        return f"prefix {text!r} must start with '/'", f"write /{text}"
    if prefix == BUILTIN_PREFIX or prefix.startswith(BUILTIN_PREFIX + "/"):
        return f"{BUILTIN_PREFIX} is reserved for the built-in endpoints", "choose another prefix"
    segments = prefix.split("/")[1:] if prefix != "/" else []
    if any(char in prefix for char in "?#%\\ \t") or any(s in ("", ".", "..") for s in segments):
        return (f"prefix {text!r} is not a plain path",
                "use /segment/segment without empty, '.' or '..' segments, spaces, ?, # or %")
    return None


def upstream(doc: Doc, path: PathKey, value: Any) -> Upstream | None:
    text = _string(doc, path, value)
    if text is None:
        return None
    try:
        parts = urllib.parse.urlsplit(text)
        problem = _upstream_problem(text, parts)
        port = parts.port if parts.port is not None else UPSTREAM_PORTS.get(parts.scheme.lower())
    except ValueError as exc:
        problem = f"bad upstream URL: {exc}", UPSTREAM_HINT
    if problem is not None:
        doc.add(path, *problem)
        return None
    written, masks = doc.written.get(path, ("", ()))
    return Upstream(text, parts.scheme.lower(), parts.hostname, port, parts.path.rstrip("/"), written, masks)


def _upstream_problem(text: str, parts: urllib.parse.SplitResult) -> tuple[str, str] | None:
    """(message, hint) when an upstream URL cannot be used."""
    if not text.isascii() or any(char <= " " or char == "\x7f" for char in text):
        # urlsplit drops tab, CR and LF silently; on the wire they would split the request line.
        # The value is not echoed: it may hold a ${VAR} secret.
        return ("upstream contains a space, a control character (CR, LF, tab) or a non-ASCII "
                "character, which would mangle the request line sent upstream",
                "percent-encode it (%20 for a space, xn-- for a host name) and check any ${VAR} it reads")
    if parts.scheme.lower() not in UPSTREAM_PORTS or not parts.hostname:
        return "upstream must be an absolute http(s) or ws(s) URL", UPSTREAM_HINT
    if "?" in text or "#" in text:
        return "upstream has no query or fragment", "remove the part from '?' or '#' on"
    if parts.username is not None:
        return ("upstream has no user info",
                "send credentials with request_headers: {set: {Authorization: ...}}")
    if parts.port == 0:
        return "port 0 cannot be connected to", UPSTREAM_HINT
    parse_host(parts.hostname)          # ValueError for characters no host name has
    return None


def set_headers(doc: Doc, path: PathKey, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        doc.add(path, f"expected a mapping of header names to values, got {show(value)}",
                'for example set: {Authorization: "Bearer ${API_TOKEN}"}')
        return ()
    headers: dict[str, tuple[str, str]] = {}        # lower-case name -> (name, value)
    for name, raw in value.items():
        item = (*path, name)
        if not _TOKEN.fullmatch(name):
            doc.add(item, f"{name!r} is not a valid header name",
                    "use letters, digits and !#$%&'*+-.^_`|~ only, no spaces or colons")
        elif name.lower() in headers:
            doc.add(item, "header set twice (names are case-insensitive)", "keep one of them")
        elif (text := _header_value(doc, item, raw)) is not None:
            headers[name.lower()] = (name, text)
    return tuple(headers.values())


def _header_value(doc: Doc, path: PathKey, value: Any) -> str | None:
    """A string, possibly empty (numbers are written out); never a line break or NUL."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        doc.add(path, f"expected a string, got {show(value)}", "write the value in quotes")
        return None
    if any(char in value for char in "\r\n\0"):
        # The value is not echoed: it may be a secret.
        doc.add(path, "header value contains a line break or NUL",
                "a header value is one line; check the variable it came from")
        return None
    return value


# ---------------------------------------------------------------- server


def bind_host(doc: Doc, path: PathKey, value: Any) -> str | None:
    text = _string(doc, path, value)
    if text is None:
        return None
    try:
        host, port = parse_host(text)
    except ValueError as exc:
        doc.add(path, f"bad host: {exc}", "an address or name to listen on, e.g. 127.0.0.1")
        return None
    if port is not None:
        doc.add(path, "host must not include a port", "set the port with port:")
        return None
    return host


def allowed_hosts(doc: Doc, path: PathKey, value: Any) -> dict[str, Any]:
    items = string_list(doc, path, value)
    if items is None:
        return {}
    if _star(doc, path, items, alone=True):
        return {"allowed_hosts": (), "allow_any_host": len(items) == 1}
    hosts = []
    for item_path, text in items:
        try:
            hosts.append(parse_host(text))
        except ValueError as exc:
            doc.add(item_path, f"bad host: {exc}",
                    'a host name or address with an optional port, e.g. localhost or "[::1]:8080"')
    return {"allowed_hosts": tuple(hosts), "allow_any_host": False}


# ---------------------------------------------------------------- intercept


def host_port(doc: Doc, path: PathKey, value: Any, example: str, low: int = 1) -> tuple[str, int] | None:
    """`host:port` (IPv6 in brackets), e.g. intercept.listen or a connect_to."""
    if isinstance(value, int) and not isinstance(value, bool):
        doc.add(path, f"{value} is a port without a host", f"write host:port, e.g. {example}")
        return None
    text = _string(doc, path, value)
    if text is None:
        return None
    try:
        # parse_host refuses port 0 (a Host header never has it); a listen address may.
        host, port = (parse_host(text[:-2])[0], 0) if low == 0 and text.endswith(":0") else parse_host(text)
    except ValueError as exc:
        doc.add(path, f"bad address: {exc}", f"write host:port, e.g. {example}")
        return None
    if port is None or port < low:
        doc.add(path, f"{text!r} has no usable port", f"write host:port, e.g. {example}")
        return None
    return host, port


def dns_name(doc: Doc, path: PathKey, value: Any) -> str | None:
    text = _string(doc, path, value)
    if text is None:
        return None
    problem = dns_name_problem(text)
    if problem is not None:
        doc.add(path, f"{text!r}: {problem}", "write the exact host name the page calls, e.g. api.thirdparty.com")
        return None
    return text.lower().rstrip(".")


def intercept_paths(doc: Doc, path: PathKey, value: Any) -> list[str] | None:
    items = string_list(doc, path, value)
    if items is None:
        return None
    paths = []
    for item_path, text in items:
        prefix = text.rstrip("/") or "/"
        problem = _prefix_problem(text, prefix)
        if problem is not None and text.startswith("/") and prefix.startswith(BUILTIN_PREFIX):
            problem = None  # /__corsproxy is only reserved on the proxy's own port
        if problem is not None:
            doc.add(item_path, *problem)
        else:
            paths.append(prefix)
    return paths if len(paths) == len(items) else None


def ca_file(doc: Doc, path: PathKey, value: Any) -> str | None:
    """A PEM file of CA certificates, relative to the config file's folder; absolute after."""
    text = _string(doc, path, value)
    if text is None:
        return None
    file = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(doc.file)), text))
    try:
        ssl.create_default_context(cafile=file)
    except (OSError, ssl.SSLError) as exc:
        doc.add(path, f"cannot use {file} as CA certificates: {exc}",
                "give a PEM file of CA certificates, relative to this config file's folder")
        return None
    return file
