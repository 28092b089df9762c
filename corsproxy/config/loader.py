"""The config schema: YAML files or command-line flags -> a validated, frozen Config.

Reading a file (line numbers, `${VAR}` interpolation) is yamldoc's; checking one value is
config_values'. Here: which keys each block holds, the cors defaults of a file merged into
each route's policy, and the files merged into one Config. `from_flags` builds the plain dict
a YAML file would give, so that files and flags share every rule.

A problem never stops the checking: each one becomes a `ConfigProblem(file, line, key,
message, hint)` and `ConfigError` carries all of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from corsproxy.config import values
from corsproxy.config.risks import with_risks
from corsproxy.config.values import CORS_KEYS, ITEM_FORMS
from corsproxy.config.yamldoc import Doc, PathKey, config_files, dotted, read_file, show
from corsproxy.errors import ConfigError, ConfigProblem
from corsproxy.model import (
    Config,
    CorsPolicy,
    FileDefaults,
    InterceptHost,
    InterceptSettings,
    Route,
    ServerSettings,
    Source,
)
from corsproxy.policy.cors import ordered_methods
from corsproxy.policy.intercept import host_routes
from corsproxy.policy.origins import matches_any_origin

FLAGS_FILE = "<command line>"

TOP_KEYS = ("server", "cors", "routes", "intercept")
SERVER_KEYS = ("host", "port", "allowed_hosts", "inspector_size", "websocket_max_message_size",
               "upstream_max_header_size", "upstream_max_headers")
# Server keys holding a whole number: key -> (lowest, highest).
_SERVER_LIMITS = {"websocket_max_message_size": (0, 1 << 40), "upstream_max_header_size": (1024, 1 << 30),
                  "upstream_max_headers": (16, 1 << 20)}
ROUTE_KEYS = ("prefix", "upstream", "strip_prefix", "change_origin", "timeout", "verify_tls",
              "isolate", "request_headers", "cors")
REQUEST_HEADER_KEYS = ("set", "remove")
# The inspector keeps this many request records (a few hundred bytes each, never bodies).
MAX_INSPECTOR_SIZE = 100_000
INTERCEPT_KEYS = ("listen", "ca", "hosts")
INTERCEPT_HOST_KEYS = ("host", "port", "paths", "cors", "connect_to", "ca_file", "verify_tls")
CA_KINDS = ("ephemeral", "persistent")
# Keys whose values are not interpolated: "$" and "{n}" are regex syntax.
_VERBATIM_KEYS = ("allow_origin_regex",)


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Load one YAML file, or every *.yaml/*.yml of a directory in name order, merged.

    `env` (default os.environ) supplies ${VAR}. Raises ConfigError listing every problem.
    """
    problems: list[ConfigProblem] = []
    env = os.environ if env is None else env
    docs = [doc for file in config_files(os.fspath(path), problems)
            if (doc := read_file(file, env, problems, _VERBATIM_KEYS)) is not None
            and _top_level_is_mapping(doc)]
    return _build(docs, problems)


def _top_level_is_mapping(doc: Doc) -> bool:
    """Whether the file can hold the top keys; an empty file is an empty mapping."""
    if doc.data is None:          # a document holding only "---" is empty too
        doc.data = {}
    if isinstance(doc.data, dict):
        return True
    doc.add((), f"the top level must be a mapping of {', '.join(TOP_KEYS)}, "
                f"not {show(doc.data)}", "start the file with 'routes:'")
    return False


# The flag a user changes for each cors key of `serve --upstream` (what a refusal cites).
FLAG_SOURCES = {
    "allow_origins": "--allow-origin", "allow_methods": "--allow-method",
    "allow_headers": "--allow-header", "expose_headers": "--expose-header",
    "allow_credentials": "--credentials",
}
QUICK_ORIGINS = ("http://localhost:3000", "http://localhost:5173")
# A dev page may send any header: the origins stay locked, so only the pages listed reach it.
QUICK_HEADERS = ("*",)


def from_flags(upstream: str, prefix: str = "/api", origins: Sequence[str] = QUICK_ORIGINS,
               credentials: bool = False, host: str | None = None, port: int | None = None,
               headers: Sequence[str] = QUICK_HEADERS, methods: Sequence[str] | None = None,
               expose: Sequence[str] = ()) -> Config:
    """The config of `corsproxy serve --upstream URL`: one route, no YAML, the same rules.

    The cors keys go into the file-level defaults, so a 404 outside the route is readable too;
    a refusal names the flag to change instead of a line.
    """
    problems: list[ConfigProblem] = []
    cors: dict[str, Any] = {"allow_origins": list(origins), "allow_credentials": credentials,
                            "allow_headers": list(headers), "expose_headers": list(expose)}
    if methods is not None:
        cors["allow_methods"] = list(methods)
    data: dict[str, Any] = {"cors": cors, "routes": [{"prefix": prefix, "upstream": upstream}]}
    server = {key: item for key, item in (("host", host), ("port", port)) if item is not None}
    if server:
        data["server"] = server
    return _cite_flags(_build([Doc(FLAGS_FILE, data, {}, problems)], problems))


def _cite_flags(config: Config) -> Config:
    def cited(policy: CorsPolicy) -> CorsPolicy:
        sources = tuple((key, FLAG_SOURCES.get(key, where)) for key, where in policy.key_sources)
        return dataclasses.replace(policy, key_sources=sources)

    return with_risks(dataclasses.replace(
        config, warnings=(),
        routes=tuple(dataclasses.replace(r, cors=cited(r.cors)) for r in config.routes),
        defaults=tuple(dataclasses.replace(d, cors=cited(d.cors)) for d in config.defaults)))


def route_rows(config: Config) -> list[dict[str, Any]]:
    """The route table for `check` and /__corsproxy/routes (JSON-ready).

    Only the NAMES of request_headers.set are shown: their values may be secrets.
    """
    return [_route_row(route) for route in config.routes]


def _route_row(route: Route) -> dict[str, Any]:
    cors = route.cors
    shown = policy_values(cors)
    return {
        "prefix": route.shown("prefix"),
        "upstream": route.upstream.shown,
        "strip_prefix": route.shown("strip_prefix"),
        "change_origin": route.shown("change_origin"),
        "timeout": route.shown("timeout"),
        "verify_tls": route.shown("verify_tls"),
        "isolate": route.shown("isolate"),
        "set_headers": [name for name, _ in route.set_headers],
        "remove_headers": sorted(route.remove_headers),
        "allow_origins": shown["allow_origins"],
        "allow_origin_regex": shown["allow_origin_regex"],
        "allow_credentials": cors.allow_credentials,
        "source": str(route.source),
        # The whole effective policy, each value with the file:line that sets it (or, for a
        # default, the line of the route or file where setting it would go).
        "cors": {key: {"value": value, "source": cors.source_of(key)} for key, value in shown.items()},
    }


def policy_values(policy: CorsPolicy) -> dict[str, Any]:
    """Each cors key's effective value, as it would be written in YAML (JSON-ready); a value
    read through ${VAR} is shown as that ${VAR} text."""
    regex = policy.allow_origin_regex
    held = {
        "allow_origins": ["*"] if policy.allow_any_origin else sorted(policy.allow_origins),
        "allow_origin_regex": regex.pattern if regex is not None else None,
        "allow_methods": (["*"] if policy.allow_any_method else []) + list(ordered_methods(policy.allow_methods)),
        "allow_headers": (["*"] if policy.allow_any_header else []) + sorted(policy.allow_headers),
        "expose_headers": list(policy.expose_headers),
        "allow_credentials": policy.allow_credentials,
        "max_age": policy.max_age,
        "allow_private_network": policy.allow_private_network,
    }
    return {key: [policy.shown(key, item) for item in value] if isinstance(value, list)
            else policy.shown(key, value) for key, value in held.items()}


# ---------------------------------------------------------------- cors blocks


@dataclasses.dataclass(frozen=True)
class _Setting:
    """One cors key as set in a file's defaults (level 1) or a route's cors (level 2)."""

    fields: dict[str, Any]
    path: PathKey
    where: str
    level: int
    written: tuple[tuple[str, Any, str], ...] = ()   # CorsPolicy.written's entries for this key


def _cors_settings(doc: Doc, path: PathKey, value: Any, level: int) -> dict[str, _Setting]:
    block = values.mapping(doc, path, value, tuple(CORS_KEYS)) or {}
    settings = {}
    for key, raw in block.items():
        fields = CORS_KEYS[key](doc, (*path, key), raw)
        if fields is not None:
            written = _written_values(doc, (*path, key), raw, fields)
            settings[key] = _Setting(fields, (*path, key), doc.where((*path, key)), level, written)
    return settings


def _written_values(doc: Doc, path: PathKey, raw: Any, fields: dict[str, Any]) -> tuple[tuple[str, Any, str], ...]:
    """(key, value as the policy holds it, text as written) for each of the key's ${VAR} values."""
    key = path[-1]
    found = []
    for where, text in doc.written_under(path):
        if where == path:                       # a flag or a number, read whole
            found.append((key, fields.get(key), text))
        elif key in ITEM_FORMS and (item := str(raw[where[len(path)]])) != "*":
            with contextlib.suppress(ValueError):
                found.append((key, ITEM_FORMS[key](item), text))
    return tuple(found)


def _policy(doc: Doc, settings: Mapping[str, _Setting], scope: str, fallback: str) -> CorsPolicy:
    """The effective policy: built-in defaults, overridden key by key by `settings`."""
    fields: dict[str, Any] = {}
    for setting in settings.values():
        fields.update(setting.fields)
    sources = tuple((key, settings[key].where if key in settings else fallback) for key in CORS_KEYS)
    written = tuple(entry for setting in settings.values() for entry in setting.written)
    policy = CorsPolicy(**fields, scope=scope, key_sources=sources, written=written)
    _refuse_credentialed_wildcard(doc, policy, settings)
    return policy


def _refuse_credentialed_wildcard(doc: Doc, policy: CorsPolicy,
                                  settings: Mapping[str, _Setting]) -> None:
    """Every origin plus credentials would let any site read a user's data with their cookies."""
    if not policy.allow_credentials:
        return
    regex = policy.allow_origin_regex
    if policy.allow_any_origin:
        culprit, hint = "allow_origins", ("list the origins in allow_origins, or match them with "
                                          "allow_origin_regex, or set allow_credentials: false")
    elif regex is not None and matches_any_origin(regex):
        culprit, hint = "allow_origin_regex", ("this regex matches every origin; anchor it to your "
                                               r"own, e.g. '^https://[a-z0-9-]+\.example\.com$'")
    else:
        return
    # Point at whichever of the two keys was set closer to the route (the later decision).
    setting = max(settings[culprit], settings["allow_credentials"], key=lambda s: s.level)
    doc.add(setting.path, "for security reasons, a route cannot allow every origin and send "
                          "credentials", hint)


# ---------------------------------------------------------------- routes


def _request_headers(doc: Doc, path: PathKey, value: Any) -> dict[str, Any]:
    block = values.mapping(doc, path, value, REQUEST_HEADER_KEYS) or {}
    fields: dict[str, Any] = {}
    if "set" in block:
        fields["set_headers"] = values.set_headers(doc, (*path, "set"), block["set"])
    if "remove" in block:
        items = values.string_list(doc, (*path, "remove"), block["remove"])
        names = None if items is None else values.tokens(doc, items, "header name")
        fields["remove_headers"] = frozenset(name.lower() for name in names or ())
    return fields


# Route keys checked one value at a time: key -> checker of its value.
ROUTE_OPTIONS: dict[str, Callable[[Doc, PathKey, Any], Any]] = {
    "strip_prefix": values.boolean, "change_origin": values.boolean, "verify_tls": values.boolean,
    "isolate": values.boolean, "timeout": values.timeout,
}


def _route(doc: Doc, path: PathKey, value: Any, defaults: Mapping[str, _Setting]) -> Route | None:
    entry = values.mapping(doc, path, value, ROUTE_KEYS)
    if entry is None:
        return None
    for key in ("prefix", "upstream"):
        if key not in entry:
            doc.add(path, f"missing required key '{key}'", "every route has a prefix and an upstream")
    prefix = (values.route_prefix(doc, (*path, "prefix"), entry["prefix"])
              if "prefix" in entry else None)
    upstream = (values.upstream(doc, (*path, "upstream"), entry["upstream"])
                if "upstream" in entry else None)
    options = {key: check(doc, (*path, key), entry[key])
               for key, check in ROUTE_OPTIONS.items() if key in entry}
    options.update(_request_headers(doc, (*path, "request_headers"), entry.get("request_headers")))
    own = _cors_settings(doc, (*path, "cors"), entry.get("cors"), level=2)
    written = tuple((where[-1], text) for where, text in doc.written_under(path)
                    if len(where) == len(path) + 1 and where[-1] != "upstream")
    scope = f"route {dict(written).get('prefix', prefix or '?')}"
    policy = _policy(doc, {**defaults, **own}, scope, doc.where(path))
    if prefix is None or upstream is None or None in options.values():
        return None
    return Route(prefix=prefix, upstream=upstream, cors=policy,
                 source=Source(doc.file, doc.line(path)), written=written, **options)


# ---------------------------------------------------------------- server


def _server_fields(doc: Doc, path: PathKey, value: Any) -> dict[str, Any]:
    """The server keys that are set and valid, as ServerSettings fields."""
    block = values.mapping(doc, path, value, SERVER_KEYS) or {}
    fields: dict[str, Any] = {}
    if "host" in block:
        fields["host"] = values.bind_host(doc, (*path, "host"), block["host"])
    if "port" in block:
        fields["port"] = values.integer(doc, (*path, "port"), block["port"], 0, 65535)
    if "allowed_hosts" in block:
        fields.update(values.allowed_hosts(doc, (*path, "allowed_hosts"), block["allowed_hosts"]))
    if "inspector_size" in block:
        fields["inspector_size"] = values.integer(doc, (*path, "inspector_size"), block["inspector_size"],
                                                  0, MAX_INSPECTOR_SIZE)
    for key, (low, high) in _SERVER_LIMITS.items():
        if key in block:
            fields[key] = values.integer(doc, (*path, key), block[key], low, high)
    return {key: item for key, item in fields.items() if item is not None}


def _server(server: tuple[Source, dict[str, Any]] | None) -> ServerSettings:
    """ServerSettings from the checked fields, the bind host admitted (ServerSettings.bound_to)."""
    source, fields = server if server is not None else (None, {})
    settings = ServerSettings(**fields, source=source)
    return settings.bound_to(settings.host, settings.port)


# ---------------------------------------------------------------- intercept


def _intercept(doc: Doc, value: Any, defaults: Mapping[str, _Setting]) -> InterceptSettings | None:
    path: PathKey = ("intercept",)
    block = values.mapping(doc, path, value, INTERCEPT_KEYS)
    if block is None:
        return None
    fields: dict[str, Any] = {}
    if "listen" in block:
        listen = values.host_port(doc, (*path, "listen"), block["listen"], "127.0.0.1:8081", low=0)
        if listen is not None:
            fields["listen_host"], fields["listen_port"] = listen
    if "ca" in block:
        if block["ca"] in CA_KINDS:
            fields["ca"] = block["ca"]
        else:
            doc.add((*path, "ca"), f"expected ephemeral or persistent, got {block['ca']!r}",
                    "ephemeral (the default) lives for this run; persistent is made by 'corsproxy ca init'")
    hosts = block.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        doc.add((*path, "hosts"), "expected a list of hosts to intercept",
                "write each as a '- host: api.thirdparty.com' item")
        hosts = []
    entries = [_intercept_host(doc, (*path, "hosts", i), item, defaults) for i, item in enumerate(hosts)]
    seen: dict[tuple[str, int], InterceptHost] = {}
    for i, entry in enumerate(entries):
        if entry is not None and (first := seen.setdefault((entry.host, entry.port), entry)) is not entry:
            doc.add((*path, "hosts", i, "host"), f"{entry.host}:{entry.port} is listed twice, also at {first.source}",
                    "list each host once, with all its paths")
    if len(hosts) != len([e for e in entries if e is not None]):
        return None
    return InterceptSettings(hosts=tuple(entries), source=Source(doc.file, doc.line(path)), **fields)


def _intercept_host(doc: Doc, path: PathKey, value: Any,
                    defaults: Mapping[str, _Setting]) -> InterceptHost | None:
    entry = values.mapping(doc, path, value, INTERCEPT_HOST_KEYS)
    if entry is None:
        return None
    if "host" not in entry:
        doc.add(path, "missing required key 'host'", "every intercepted host names its host: api.thirdparty.com")
        return None
    host = values.dns_name(doc, (*path, "host"), entry["host"])
    port = values.integer(doc, (*path, "port"), entry["port"], 1, 65535) if "port" in entry else 443
    paths = values.intercept_paths(doc, (*path, "paths"), entry["paths"]) if "paths" in entry else ["/"]
    connect_to = (values.host_port(doc, (*path, "connect_to"), entry["connect_to"], "127.0.0.1:9443")
                  if "connect_to" in entry else None)
    ca_file = values.ca_file(doc, (*path, "ca_file"), entry["ca_file"]) if "ca_file" in entry else None
    verify = values.boolean(doc, (*path, "verify_tls"), entry["verify_tls"]) if "verify_tls" in entry else True
    own = _cors_settings(doc, (*path, "cors"), entry.get("cors"), level=2)
    policy = _policy(doc, {**defaults, **own}, f"intercepted host {host or '?'}", doc.where(path))
    if (None in (host, port, paths, verify) or ("connect_to" in entry and connect_to is None)
            or ("ca_file" in entry and ca_file is None)):
        return None
    source = Source(doc.file, doc.line(path))
    return InterceptHost(host, port, host_routes(host, port, paths, policy, source, connect_to=connect_to,
                                                 ca_file=ca_file, verify_tls=verify), source)


# ---------------------------------------------------------------- assembling


@dataclasses.dataclass
class _FileResult:
    routes: list[tuple[PathKey, Route]]
    defaults: FileDefaults
    server: tuple[Source, dict[str, Any]] | None
    intercept: InterceptSettings | None = None


def _check_file(doc: Doc) -> _FileResult:
    data = values.mapping(doc, (), doc.data, TOP_KEYS) or {}
    defaults = _cors_settings(doc, ("cors",), data.get("cors"), level=1)
    policy = _policy(doc, defaults, f"the defaults of {doc.file}", f"{doc.file}:1")
    routes = data.get("routes")
    if routes is not None and not isinstance(routes, list):
        doc.add(("routes",), f"expected a list of routes, got {show(routes)}",
                "write each route as a '- prefix: ...' item")
        routes = []
    checked = [(("routes", i), _route(doc, ("routes", i), item, defaults))
               for i, item in enumerate(routes or [])]
    server = None
    if "server" in data:
        server = (Source(doc.file, doc.line(("server",))),
                  _server_fields(doc, ("server",), data["server"]))
    intercept = _intercept(doc, data["intercept"], defaults) if "intercept" in data else None
    return _FileResult([(p, r) for p, r in checked if r is not None],
                       FileDefaults(doc.file, policy), server, intercept)


def _build(docs: list[Doc], problems: list[ConfigProblem]) -> Config:
    """Check every document and assemble the Config; the documents share `problems`."""
    results = [_check_file(doc) for doc in docs]
    server = _one_server(results, problems)
    intercept = _one_block(results, problems)
    routes = [route for result in results for _, route in result.routes]
    _refuse_duplicate_prefixes(results, problems)
    if problems:
        raise ConfigError(_in_reading_order(problems))
    return with_risks(Config(
        server=_server(server),
        routes=tuple(routes),
        defaults=tuple(result.defaults for result in results),
        files=tuple(doc.file for doc in docs),
        intercept=intercept,
        variables=tuple((doc.file, doc.variables) for doc in docs if doc.variables),
    ))


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


def _one_block(results: Iterable[_FileResult], problems: list[ConfigProblem]) -> InterceptSettings | None:
    """The one intercept block of a directory (one listener); a second one names both."""
    first = None
    for result in results:
        block = result.intercept
        if block is None:
            continue
        if first is None:
            first = block
            continue
        problems.append(ConfigProblem(
            block.source.file, block.source.line, "intercept", f"the intercept block is also set in {first.source}",
            "at most one file of a directory may set intercept; move its hosts into one file"))
    return first


def _refuse_duplicate_prefixes(results: Iterable[_FileResult], problems: list[ConfigProblem]) -> None:
    seen: dict[str, Route] = {}
    for result in results:
        for path, route in result.routes:
            first = seen.setdefault(route.prefix, route)
            if first is not route:
                problems.append(ConfigProblem(
                    route.source.file, route.source.line, dotted((*path, "prefix")),
                    f"duplicate prefix '{route.prefix}', also used by the route at {first.source}",
                    "each prefix may appear once across all files; change or remove one"))

