"""YAML -> a validated, frozen Config, with every problem reported at once.

Two stages, so that YAML files and command-line flags share every rule:

1. reading (`_read_file`): a file is composed into YAML nodes, which carry line numbers, and
   turned into plain Python values plus a table `path -> line`. `${VAR}` interpolation
   happens here, on every string value except `allow_origin_regex`.
2. checking (`_build`): the plain values are validated and compiled into the model's frozen
   objects. `from_flags` builds the plain dict a YAML file would give and enters here.

A problem never stops the checking: each one becomes a `ConfigProblem(file, line, key,
message, hint)` and `ConfigError` carries all of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from corsproxy.errors import ConfigError, ConfigProblem
from corsproxy.model import (
    Config, CorsPolicy, FileDefaults, Route, ServerSettings, Source, Upstream,
)
from corsproxy.origins import normalise_origin, parse_host

FLAGS_FILE = "<command line>"
BUILTIN_PREFIX = "/__corsproxy"
YAML_SUFFIXES = (".yaml", ".yml")
MAX_DEPTH = 32

TOP_KEYS = ("server", "cors", "routes")
SERVER_KEYS = ("host", "port", "allowed_hosts")
ROUTE_KEYS = ("prefix", "upstream", "strip_prefix", "change_origin", "timeout", "verify_tls",
              "request_headers", "cors")
REQUEST_HEADER_KEYS = ("set", "remove")
UPSTREAM_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}

# RFC 9110 §5.6.2: a header name (and a method) is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Unrelated origins a regex must not all match when credentials are on: one that matches all
# of them effectively allows every origin (e.g. '.*' or 'https?://.*|null').
_UNRELATED_ORIGINS = ("https://evil.invalid", "http://attacker.example:1234", "null",
                      "https://a.b", "http://10.0.0.1")

UPSTREAM_HINT = "write scheme://host[:port][/base-path], e.g. https://api.example.com/v1"

PathKey = tuple[str | int, ...]


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Load one YAML file, or every *.yaml/*.yml of a directory in name order, merged.

    `env` (default os.environ) supplies ${VAR}. Raises ConfigError listing every problem.
    """
    problems: list[ConfigProblem] = []
    env = os.environ if env is None else env
    docs = [doc for file in _config_files(os.fspath(path), problems)
            if (doc := _read_file(file, env, problems)) is not None]
    return _build(docs, problems)


def from_flags(upstream: str, prefix: str = "/api",
               origins: Sequence[str] = ("http://localhost:3000", "http://localhost:5173"),
               credentials: bool = False, host: str | None = None,
               port: int | None = None) -> Config:
    """The config of `corsproxy serve --upstream URL`: one route, no YAML, the same rules.

    The origins go into the file-level defaults, so a 404 outside the route is readable too.
    """
    problems: list[ConfigProblem] = []
    data: dict[str, Any] = {
        "cors": {"allow_origins": list(origins), "allow_credentials": credentials},
        "routes": [{"prefix": prefix, "upstream": upstream}],
    }
    server = {key: item for key, item in (("host", host), ("port", port)) if item is not None}
    if server:
        data["server"] = server
    return _build([_Doc(FLAGS_FILE, data, {}, problems)], problems)


def route_rows(config: Config) -> list[dict[str, Any]]:
    """The route table for `check` and /__corsproxy/routes (JSON-ready).

    Only the NAMES of request_headers.set are shown: their values may be secrets.
    """
    return [_route_row(route) for route in config.routes]


def _route_row(route: Route) -> dict[str, Any]:
    cors = route.cors
    regex = cors.allow_origin_regex
    return {
        "prefix": route.prefix,
        "upstream": route.upstream.url,
        "strip_prefix": route.strip_prefix,
        "change_origin": route.change_origin,
        "timeout": route.timeout,
        "verify_tls": route.verify_tls,
        "set_headers": [name for name, _ in route.set_headers],
        "remove_headers": sorted(route.remove_headers),
        "allow_origins": ["*"] if cors.allow_any_origin else sorted(cors.allow_origins),
        "allow_origin_regex": regex.pattern if regex is not None else None,
        "allow_credentials": cors.allow_credentials,
        "source": str(route.source),
    }


# ---------------------------------------------------------------- locating problems


@dataclasses.dataclass
class _Doc:
    """One file as plain values, with the 1-based line of each path (key or list item)."""

    file: str
    data: Any
    lines: dict[PathKey, int]
    problems: list[ConfigProblem]      # shared by every document of one load

    def line(self, path: PathKey) -> int:
        """The line of `path`, else of its nearest located parent, else line 1."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def where(self, path: PathKey) -> str:
        return f"{self.file}:{self.line(path)}"

    def add(self, path: PathKey, message: str, hint: str = "") -> None:
        self.problems.append(ConfigProblem(self.file, self.line(path), _dotted(path), message, hint))


def _dotted(path: PathKey) -> str:
    """("routes", 0, "cors", "alow_origins") -> "routes[0].cors.alow_origins"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _show(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "a mapping", type(None): "nothing (null)"}
    return names.get(type(value), type(value).__name__)


# ---------------------------------------------------------------- stage 1: reading YAML


def _config_files(path: str, problems: list[ConfigProblem]) -> list[str]:
    """The file itself, or a directory's *.yaml/*.yml files in name order."""
    if not os.path.isdir(path):
        return [path]
    names = sorted(name for name in os.listdir(path)
                   if name.endswith(YAML_SUFFIXES) and os.path.isfile(os.path.join(path, name)))
    if not names:
        problems.append(ConfigProblem(path, None, "", "no *.yaml or *.yml file in this directory",
                                      "add a config file, or point -c at one"))
    return [os.path.join(path, name) for name in names]


def _read_file(file: str, env: Mapping[str, str], problems: list[ConfigProblem]) -> _Doc | None:
    """Parse one file into a _Doc; None (with a problem) when it cannot be read or parsed."""
    doc = _Doc(file, {}, {}, problems)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        doc.add((), "not UTF-8 text", "save the file as UTF-8")
        return None
    except OSError as exc:
        problems.append(ConfigProblem(file, None, "", f"cannot read: {exc.strerror or exc}",
                                      "check the path given with -c or $CORSPROXY_CONFIG"))
        return None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.data = _Reader(doc, loader, env).plain(node, (), 0)
        if doc.data is None:          # a document holding only "---" is empty too
            doc.data = {}
    except yaml.YAMLError as exc:
        _syntax_problem(doc, exc)
        return None
    finally:
        loader.dispose()
    if not isinstance(doc.data, dict):
        doc.add((), f"the top level must be a mapping of {', '.join(TOP_KEYS)}, "
                    f"not {_show(doc.data)}", "start the file with 'routes:'")
        return None
    return doc


def _syntax_problem(doc: _Doc, exc: yaml.YAMLError) -> None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    message = getattr(exc, "problem", None) or str(exc)
    problem = ConfigProblem(doc.file, mark.line + 1 if mark else None, "",
                            f"YAML syntax error: {message}",
                            "check the indentation and quoting of this line and the one before")
    doc.problems.append(problem)


class _Reader:
    """YAML nodes -> plain values, recording each path's line and interpolating ${VAR}."""

    def __init__(self, doc: _Doc, loader: yaml.SafeLoader, env: Mapping[str, str]) -> None:
        self.doc, self.loader, self.env = doc, loader, env

    def plain(self, node: yaml.Node, path: PathKey, depth: int) -> Any:
        if depth > MAX_DEPTH:
            self.doc.add(path, f"nested more than {MAX_DEPTH} levels deep",
                         "a recursive YAML alias (*name inside &name) cannot be used")
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self._located(item, (*path, i), item, depth)
                    for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _located(self, mark_node: yaml.Node, path: PathKey, node: yaml.Node, depth: int) -> Any:
        self.doc.lines[path] = mark_node.start_mark.line + 1
        return self.plain(node, path, depth + 1)

    def _mapping(self, node: yaml.MappingNode, path: PathKey, depth: int) -> dict[str, Any]:
        self.loader.flatten_mapping(node)            # YAML merge keys (<<: *defaults)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(self._construct(key_node, path)) if isinstance(key_node, yaml.ScalarNode) else "?"
            duplicate = key in result
            result[key] = self._located(key_node, (*path, key), value_node, depth)
            if duplicate:
                self.doc.add((*path, key), "duplicate key", "keep only one of them")
        return result

    def _construct(self, node: yaml.Node, path: PathKey) -> Any:
        try:
            return self.loader.construct_object(node)
        except ValueError:         # e.g. 2024-13-45 looks like a date but is none: keep the text
            return node.value
        except yaml.YAMLError as exc:
            self.doc.add(path, f"cannot read this value: {getattr(exc, 'problem', exc)}",
                         "remove the !tag, or quote the value")
            return None

    def _scalar(self, node: yaml.Node, path: PathKey) -> Any:
        value = self._construct(node, path)
        if not isinstance(value, str) or path[-1:] == ("allow_origin_regex",):
            return value
        text = _VARIABLE.sub(lambda m: self._variable(m, path), value)
        if text == value or node.style is not None:
            return text
        # An unquoted ${VAR} takes the type its value spells (port: ${PORT:-8080} is a number).
        tag = self.loader.resolve(yaml.ScalarNode, text, (True, False))
        try:
            return self.loader.construct_object(yaml.ScalarNode(tag, text))
        except (ValueError, yaml.YAMLError):
            return text

    def _variable(self, match: re.Match[str], path: PathKey) -> str:
        name, default = match.group(1), match.group(2)
        value = self.env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            self.doc.add(path, f"undefined variable ${{{name}}}",
                         f"set {name} in the environment, or give a default: ${{{name}:-value}}")
            return ""
        return value


# ---------------------------------------------------------------- stage 2: checking values


def _mapping(doc: _Doc, path: PathKey, value: Any, known: Sequence[str]) -> dict[str, Any] | None:
    """A mapping with only `known` keys (null is an empty mapping); None when not a mapping."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        doc.add(path, f"expected a mapping, got {_show(value)}",
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


def _bool(doc: _Doc, path: PathKey, value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    doc.add(path, f"expected true or false, got {_show(value)}", "write true or false, without quotes")
    return None


def _int(doc: _Doc, path: PathKey, value: Any, low: int, high: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    doc.add(path, f"expected a whole number from {low} to {high}, got {value!r}",
            "write a plain number, without quotes")
    return None


def _timeout(doc: _Doc, path: PathKey, value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf"):
        return float(value)
    doc.add(path, f"expected a number of seconds above 0, got {value!r}", "for example timeout: 30")
    return None


def _string(doc: _Doc, path: PathKey, value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    doc.add(path, f"expected a non-empty string, got {_show(value)}", "write the text, quoted if needed")
    return None


def _string_list(doc: _Doc, path: PathKey, value: Any) -> list[tuple[PathKey, str]] | None:
    """A list of strings, each with its own path (for its line); None when malformed."""
    if not isinstance(value, list):
        doc.add(path, f"expected a list, got {_show(value)}", "write it as [a, b] or as '- a' lines")
        return None
    items = []
    for i, item in enumerate(value):
        text = _string(doc, (*path, i), item)
        if text is not None:
            items.append(((*path, i), text))
    return items if len(items) == len(value) else None


def _star(doc: _Doc, path: PathKey, items: list[tuple[PathKey, str]], alone: bool) -> bool:
    """Whether the list holds '*'; when `alone`, '*' beside other entries is a problem."""
    texts = [text for _, text in items]
    if "*" in texts and alone and len(texts) > 1:
        doc.add(path, "'*' cannot be combined with other entries", 'write ["*"] alone, or only the names')
    return "*" in texts


def _tokens(doc: _Doc, items: list[tuple[PathKey, str]], what: str) -> list[str] | None:
    bad = [(path, text) for path, text in items if text != "*" and not _TOKEN.fullmatch(text)]
    for path, text in bad:
        doc.add(path, f"{text!r} is not a valid {what}",
                "use letters, digits and !#$%&'*+-.^_`|~ only, no spaces or colons")
    return None if bad else [text for _, text in items if text != "*"]


# ---------------------------------------------------------------- cors blocks


def _cors_origins(doc: _Doc, path: PathKey, value: Any) -> dict[str, Any] | None:
    items = _string_list(doc, path, value)
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


def _cors_regex(doc: _Doc, path: PathKey, value: Any) -> dict[str, Any] | None:
    if value is None:
        return {"allow_origin_regex": None}
    text = _string(doc, path, value)
    if text is None:
        return None
    try:
        return {"allow_origin_regex": re.compile(text)}
    except re.error as exc:
        doc.add(path, f"invalid regular expression: {exc}",
                "it is a Python regex matched against the whole origin, "
                r"e.g. '^https://[a-z0-9-]+\.preview\.example\.com$'")
        return None


def _token_set(name: str, case: Callable[[str], str], any_key: str,
               what: str) -> Callable[[_Doc, PathKey, Any], dict[str, Any] | None]:
    """A checker for a list of tokens where ["*"] means any (explicit names are kept too)."""
    def check(doc: _Doc, path: PathKey, value: Any) -> dict[str, Any] | None:
        items = _string_list(doc, path, value)
        names = None if items is None else _tokens(doc, items, what)
        if items is None or names is None:
            return None
        return {name: frozenset(case(n) for n in names), any_key: _star(doc, path, items, False)}
    return check


def _cors_expose(doc: _Doc, path: PathKey, value: Any) -> dict[str, Any] | None:
    items = _string_list(doc, path, value)
    if items is None or _tokens(doc, items, "header name") is None:
        return None
    return {"expose_headers": tuple(text for _, text in items)}


def _cors_flag(key: str) -> Callable[[_Doc, PathKey, Any], dict[str, Any] | None]:
    def check(doc: _Doc, path: PathKey, value: Any) -> dict[str, Any] | None:
        flag = _bool(doc, path, value)
        return None if flag is None else {key: flag}
    return check


def _cors_max_age(doc: _Doc, path: PathKey, value: Any) -> dict[str, Any] | None:
    seconds = _int(doc, path, value, 0, 2**31 - 1)
    return None if seconds is None else {"max_age": seconds}


# cors key -> checker returning the CorsPolicy fields that key sets (None: a problem was added).
CORS_KEYS: dict[str, Callable[[_Doc, PathKey, Any], dict[str, Any] | None]] = {
    "allow_origins": _cors_origins,
    "allow_origin_regex": _cors_regex,
    "allow_methods": _token_set("allow_methods", str.upper, "allow_any_method", "method"),
    "allow_headers": _token_set("allow_headers", str.lower, "allow_any_header", "header name"),
    "expose_headers": _cors_expose,
    "allow_credentials": _cors_flag("allow_credentials"),
    "max_age": _cors_max_age,
    "allow_private_network": _cors_flag("allow_private_network"),
}


@dataclasses.dataclass(frozen=True)
class _Setting:
    """One cors key as set in a file's defaults (level 1) or a route's cors (level 2)."""

    fields: dict[str, Any]
    path: PathKey
    where: str
    level: int


def _cors_settings(doc: _Doc, path: PathKey, value: Any, level: int) -> dict[str, _Setting]:
    block = _mapping(doc, path, value, tuple(CORS_KEYS)) or {}
    settings = {}
    for key, raw in block.items():
        fields = CORS_KEYS[key](doc, (*path, key), raw)
        if fields is not None:
            settings[key] = _Setting(fields, (*path, key), doc.where((*path, key)), level)
    return settings


def _policy(doc: _Doc, settings: Mapping[str, _Setting], scope: str, fallback: str) -> CorsPolicy:
    """The effective policy: built-in defaults, overridden key by key by `settings`."""
    fields: dict[str, Any] = {}
    for setting in settings.values():
        fields.update(setting.fields)
    sources = tuple((key, settings[key].where if key in settings else fallback) for key in CORS_KEYS)
    policy = CorsPolicy(**fields, scope=scope, key_sources=sources)
    _refuse_credentialed_wildcard(doc, policy, settings)
    return policy


def _refuse_credentialed_wildcard(doc: _Doc, policy: CorsPolicy,
                                  settings: Mapping[str, _Setting]) -> None:
    """Every origin plus credentials would let any site read a user's data with their cookies."""
    if not policy.allow_credentials:
        return
    regex = policy.allow_origin_regex
    if policy.allow_any_origin:
        culprit, hint = "allow_origins", ("list the origins in allow_origins, or match them with "
                                          "allow_origin_regex, or set allow_credentials: false")
    elif regex is not None and all(regex.fullmatch(o) for o in _UNRELATED_ORIGINS):
        culprit, hint = "allow_origin_regex", ("this regex matches every origin; anchor it to your "
                                               r"own, e.g. '^https://[a-z0-9-]+\.example\.com$'")
    else:
        return
    # Point at whichever of the two keys was set closer to the route (the later decision).
    setting = max(settings[culprit], settings["allow_credentials"], key=lambda s: s.level)
    doc.add(setting.path, "for security reasons, a route cannot allow every origin and send "
                          "credentials", hint)


# ---------------------------------------------------------------- routes


def _prefix(doc: _Doc, path: PathKey, value: Any) -> str | None:
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


def _upstream(doc: _Doc, path: PathKey, value: Any) -> Upstream | None:
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
    return Upstream(text, parts.scheme.lower(), parts.hostname, port, parts.path.rstrip("/"))


def _upstream_problem(text: str, parts: urllib.parse.SplitResult) -> tuple[str, str] | None:
    """(message, hint) when an upstream URL cannot be used."""
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


def _request_headers(doc: _Doc, path: PathKey, value: Any) -> dict[str, Any]:
    block = _mapping(doc, path, value, REQUEST_HEADER_KEYS) or {}
    fields: dict[str, Any] = {}
    if "set" in block:
        fields["set_headers"] = _set_headers(doc, (*path, "set"), block["set"])
    if "remove" in block:
        items = _string_list(doc, (*path, "remove"), block["remove"])
        names = None if items is None else _tokens(doc, items, "header name")
        fields["remove_headers"] = frozenset(name.lower() for name in names or ())
    return fields


def _set_headers(doc: _Doc, path: PathKey, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        doc.add(path, f"expected a mapping of header names to values, got {_show(value)}",
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


def _header_value(doc: _Doc, path: PathKey, value: Any) -> str | None:
    """A string, possibly empty (numbers are written out); never a line break or NUL."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        doc.add(path, f"expected a string, got {_show(value)}", "write the value in quotes")
        return None
    if any(char in value for char in "\r\n\0"):
        # The value is not echoed: it may be a secret.
        doc.add(path, "header value contains a line break or NUL",
                "a header value is one line; check the variable it came from")
        return None
    return value


# Route keys checked one value at a time: key -> checker of its value.
ROUTE_OPTIONS: dict[str, Callable[[_Doc, PathKey, Any], Any]] = {
    "strip_prefix": _bool, "change_origin": _bool, "verify_tls": _bool, "timeout": _timeout,
}


def _route(doc: _Doc, path: PathKey, value: Any, defaults: Mapping[str, _Setting]) -> Route | None:
    entry = _mapping(doc, path, value, ROUTE_KEYS)
    if entry is None:
        return None
    for key in ("prefix", "upstream"):
        if key not in entry:
            doc.add(path, f"missing required key '{key}'", "every route has a prefix and an upstream")
    prefix = _prefix(doc, (*path, "prefix"), entry["prefix"]) if "prefix" in entry else None
    upstream = _upstream(doc, (*path, "upstream"), entry["upstream"]) if "upstream" in entry else None
    options = {key: check(doc, (*path, key), entry[key])
               for key, check in ROUTE_OPTIONS.items() if key in entry}
    options.update(_request_headers(doc, (*path, "request_headers"), entry.get("request_headers")))
    own = _cors_settings(doc, (*path, "cors"), entry.get("cors"), level=2)
    policy = _policy(doc, {**defaults, **own}, f"route {prefix or '?'}", doc.where(path))
    if prefix is None or upstream is None or None in options.values():
        return None
    return Route(prefix=prefix, upstream=upstream, cors=policy,
                 source=Source(doc.file, doc.line(path)), **options)


# ---------------------------------------------------------------- server


def _server_fields(doc: _Doc, path: PathKey, value: Any) -> dict[str, Any]:
    """The server keys that are set and valid, as ServerSettings fields."""
    block = _mapping(doc, path, value, SERVER_KEYS) or {}
    fields: dict[str, Any] = {}
    if "host" in block:
        fields["host"] = _bind_host(doc, (*path, "host"), block["host"])
    if "port" in block:
        fields["port"] = _int(doc, (*path, "port"), block["port"], 0, 65535)
    if "allowed_hosts" in block:
        fields.update(_allowed_hosts(doc, (*path, "allowed_hosts"), block["allowed_hosts"]))
    return {key: item for key, item in fields.items() if item is not None}


def _bind_host(doc: _Doc, path: PathKey, value: Any) -> str | None:
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


def _allowed_hosts(doc: _Doc, path: PathKey, value: Any) -> dict[str, Any]:
    items = _string_list(doc, path, value)
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


def _server(server: tuple[Source, dict[str, Any]] | None) -> ServerSettings:
    """ServerSettings from the checked fields. The allowlist always admits the bind host:
    the user chose that address, so a request naming it is not a rebinding attempt."""
    source, fields = server if server is not None else (None, {})
    settings = ServerSettings(**fields, source=source)
    bind = (settings.host, None)
    if settings.allow_any_host or bind in settings.allowed_hosts:
        return settings
    return dataclasses.replace(settings, allowed_hosts=(*settings.allowed_hosts, bind))


# ---------------------------------------------------------------- assembling


@dataclasses.dataclass
class _FileResult:
    routes: list[tuple[PathKey, Route]]
    defaults: FileDefaults
    server: tuple[Source, dict[str, Any]] | None


def _check_file(doc: _Doc) -> _FileResult:
    data = _mapping(doc, (), doc.data, TOP_KEYS) or {}
    defaults = _cors_settings(doc, ("cors",), data.get("cors"), level=1)
    policy = _policy(doc, defaults, f"the defaults of {doc.file}", f"{doc.file}:1")
    routes = data.get("routes")
    if routes is not None and not isinstance(routes, list):
        doc.add(("routes",), f"expected a list of routes, got {_show(routes)}",
                "write each route as a '- prefix: ...' item")
        routes = []
    checked = [(("routes", i), _route(doc, ("routes", i), item, defaults))
               for i, item in enumerate(routes or [])]
    server = None
    if "server" in data:
        server = (Source(doc.file, doc.line(("server",))),
                  _server_fields(doc, ("server",), data["server"]))
    return _FileResult([(p, r) for p, r in checked if r is not None],
                       FileDefaults(doc.file, policy), server)


def _build(docs: list[_Doc], problems: list[ConfigProblem]) -> Config:
    """Check every document and assemble the Config; the documents share `problems`."""
    results = [_check_file(doc) for doc in docs]
    server = _one_server(results, problems)
    routes = [route for result in results for _, route in result.routes]
    _refuse_duplicate_prefixes(results, problems)
    if problems:
        raise ConfigError(_in_reading_order(problems))
    return Config(
        server=_server(server),
        routes=tuple(routes),
        defaults=tuple(result.defaults for result in results),
        files=tuple(doc.file for doc in docs),
        warnings=_warnings(routes),
    )


def _in_reading_order(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """Each problem once (a file default shared by routes reports once), by file then line."""
    unique = list(dict.fromkeys(problems))
    files = list(dict.fromkeys(problem.file for problem in unique))
    return sorted(unique, key=lambda p: (files.index(p.file), p.line or 0))


def _one_server(results: Iterable[_FileResult],
                problems: list[ConfigProblem]) -> tuple[Source, dict[str, Any]] | None:
    """The one server block of a directory; a second one is a problem naming both."""
    first = None
    for result in results:
        if result.server is None:
            continue
        if first is None:
            first = result.server
            continue
        where = result.server[0]
        problems.append(ConfigProblem(
            where.file, where.line, "server", f"the server block is also set in {first[0]}",
            "at most one file of a directory may set server; keep one of them"))
    return first


def _refuse_duplicate_prefixes(results: Iterable[_FileResult], problems: list[ConfigProblem]) -> None:
    seen: dict[str, Route] = {}
    for result in results:
        for path, route in result.routes:
            first = seen.setdefault(route.prefix, route)
            if first is not route:
                problems.append(ConfigProblem(
                    route.source.file, route.source.line, _dotted((*path, "prefix")),
                    f"duplicate prefix '{route.prefix}', also used by the route at {first.source}",
                    "each prefix may appear once across all files; change or remove one"))


def _warnings(routes: Sequence[Route]) -> tuple[str, ...]:
    """Legal but risky setups, shown by `check` and the serve banner.

    The checks themselves are added by a separate change; this is where they belong.
    """
    return ()
