"""config.py: YAML -> validated Config, every problem reported with file:line, key and hint."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from corsproxy import config
from corsproxy.config import loader
from corsproxy.errors import ConfigError
from corsproxy.model import CorsPolicy, Upstream

REPO = Path(__file__).resolve().parents[2]
ROUTE = "routes:\n  - prefix: /api\n    upstream: http://127.0.0.1:9000\n"


def write(base: Path, name: str, text: str) -> Path:
    """Write dedented YAML to base/name (the first line of `text` is line 1)."""
    path = base / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(path: str, env: dict[str, str] | None = None) -> list[str]:
    """The problem lines a load reports (empty when it loads)."""
    try:
        config.load(path, env={} if env is None else env)
    except ConfigError as exc:
        return [str(problem) for problem in exc.problems]
    return []


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in tmp_path, so messages name files as the user gave them: config/c.yaml."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# Each row: a one-file config and one exact problem line it must produce.
RULES = [
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            cors:
              alow_origins: [http://localhost:3000]
        """,
        "config/c.yaml:5: routes[0].cors.alow_origins: unknown key (did you mean 'allow_origins'?)",
        id="unknown-key-suggested",
    ),
    pytest.param(
        "rutes: []\n",
        "config/c.yaml:1: rutes: unknown key (did you mean 'routes'?)",
        id="unknown-top-level-key",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            allow_origins: [http://localhost:3000]
        """,
        "config/c.yaml:4: routes[0].allow_origins: unknown key ('allow_origins' belongs in a cors: block)",
        id="cors-key-outside-cors-block",
    ),
    pytest.param(
        """
        cors:
          allow_origins: ["*"]
          allow_credentials: true
        """,
        "config/c.yaml:2: cors.allow_origins: for security reasons, a route cannot allow every origin "
        "and send credentials (list the origins in allow_origins, or match them with "
        "allow_origin_regex, or set allow_credentials: false)",
        id="wildcard-credentials-in-file-defaults",
    ),
    pytest.param(
        """
        cors:
          allow_origins: ["*"]
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            cors: {allow_credentials: true}
        """,
        "config/c.yaml:6: routes[0].cors.allow_credentials: for security reasons, a route cannot "
        "allow every origin and send credentials (list the origins in allow_origins, or match them "
        "with allow_origin_regex, or set allow_credentials: false)",
        id="wildcard-default-credentials-route-override",
    ),
    pytest.param(
        """
        cors:
          allow_credentials: true
          allow_origins: [http://localhost:3000]
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            cors:
              allow_origins: ["*"]
        """,
        "config/c.yaml:8: routes[0].cors.allow_origins: for security reasons, a route cannot allow "
        "every origin and send credentials (list the origins in allow_origins, or match them with "
        "allow_origin_regex, or set allow_credentials: false)",
        id="credentials-default-wildcard-route-override",
    ),
    pytest.param(
        """
        cors:
          allow_origin_regex: '.*'
          allow_credentials: true
        """,
        "config/c.yaml:2: cors.allow_origin_regex: for security reasons, a route cannot allow every "
        "origin and send credentials (this regex matches every origin; anchor it to your own, "
        r"e.g. '^https://[a-z0-9-]+\.example\.com$')",
        id="regex-matching-everything-with-credentials",
    ),
    pytest.param(
        """
        cors:
          allow_origin_regex: 'https?://.*'
          allow_credentials: true
        """,
        "config/c.yaml:2: cors.allow_origin_regex: for security reasons, a route cannot allow every "
        "origin and send credentials (this regex matches every origin; anchor it to your own, "
        r"e.g. '^https://[a-z0-9-]+\.example\.com$')",
        id="regex-matching-every-web-origin-but-null-with-credentials",
    ),
    pytest.param(
        """
        cors:
          allow_origins: [http://localhost:3000/app]
        """,
        "config/c.yaml:2: cors.allow_origins[0]: an origin has no path (remove '/app')",
        id="origin-with-path",
    ),
    pytest.param(
        """
        cors:
          allow_origins:
            - http://localhost:3000
            - http://localhost:5173/
        """,
        "config/c.yaml:4: cors.allow_origins[1]: an origin has no path (remove the trailing slash)",
        id="origin-with-trailing-slash",
    ),
    pytest.param(
        """
        cors:
          allow_origins: [https://*.example.com]
        """,
        "config/c.yaml:2: cors.allow_origins[0]: wildcards are not allowed inside an origin "
        r"(use allow_origin_regex: '^https://[a-z0-9-]+\.example\.com$')",
        id="origin-with-wildcard",
    ),
    pytest.param(
        """
        cors:
          allow_origins: ["null"]
        """,
        "config/c.yaml:2: cors.allow_origins[0]: 'null' is the origin of sandboxed iframes and "
        "file:// pages of every site, so allowing it lets any site in (serve the page from an "
        "http(s) origin and list that)",
        id="origin-null",
    ),
    pytest.param(
        """
        cors:
          allow_origins: ["*", http://localhost:3000]
        """,
        "config/c.yaml:2: cors.allow_origins: '*' cannot be combined with other entries "
        '(write ["*"] alone, or only the names)',
        id="origin-star-mixed",
    ),
    pytest.param(
        """
        cors:
          allow_origin_regex: '^https://(foo$'
        """,
        "config/c.yaml:2: cors.allow_origin_regex: invalid regular expression: missing ): "
        "^https://(foo$ (it is an RE2 regex matched against the whole "
        r"origin, e.g. '^https://[a-z0-9-]+\.preview\.example\.com$')",
        id="bad-regex",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            request_headers:
              set: {Authorization: "Bearer ${ORDERS_TOKEN}"}
        """,
        "config/c.yaml:5: routes[0].request_headers.set.Authorization: undefined variable "
        "${ORDERS_TOKEN} (set ORDERS_TOKEN in the environment, or give a default: "
        "${ORDERS_TOKEN:-value})",
        id="undefined-variable",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: ftp://files.example.com
        """,
        "config/c.yaml:3: routes[0].upstream: upstream must be an absolute http(s) or ws(s) URL "
        "(write scheme://host[:port][/base-path], e.g. https://api.example.com/v1)",
        id="upstream-bad-scheme",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: /v1/orders
        """,
        "config/c.yaml:3: routes[0].upstream: upstream must be an absolute http(s) or ws(s) URL "
        "(write scheme://host[:port][/base-path], e.g. https://api.example.com/v1)",
        id="upstream-relative",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: https://api.example.com/v1?key=1
        """,
        "config/c.yaml:3: routes[0].upstream: upstream has no query or fragment "
        "(remove the part from '?' or '#' on)",
        id="upstream-with-query",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:99999
        """,
        "config/c.yaml:3: routes[0].upstream: bad upstream URL: Port out of range 0-65535 "
        "(write scheme://host[:port][/base-path], e.g. https://api.example.com/v1)",
        id="upstream-bad-port",
    ),
    pytest.param(
        """
        routes:
          - prefix: /__corsproxy/admin
            upstream: http://127.0.0.1:9000
        """,
        "config/c.yaml:2: routes[0].prefix: /__corsproxy is reserved for the built-in endpoints "
        "(choose another prefix)",
        id="builtin-prefix",
    ),
    pytest.param(
        """
        routes:
          - prefix: api
            upstream: http://127.0.0.1:9000
        """,
        "config/c.yaml:2: routes[0].prefix: prefix 'api' must start with '/' (write /api)",
        id="prefix-without-slash",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api/../admin
            upstream: http://127.0.0.1:9000
        """,
        "config/c.yaml:2: routes[0].prefix: prefix '/api/../admin' is not a plain path (use "
        "/segment/segment without empty, '.' or '..' segments, spaces, ?, # or %)",
        id="prefix-dot-segment",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
        """,
        "config/c.yaml:2: routes[0]: missing required key 'upstream' "
        "(every route has a prefix and an upstream)",
        id="missing-upstream",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            strip_prefix: "false"
        """,
        "config/c.yaml:4: routes[0].strip_prefix: expected true or false, got a string "
        "(write true or false, without quotes)",
        id="bool-as-string",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            timeout: 0
        """,
        "config/c.yaml:4: routes[0].timeout: expected a number of seconds above 0, got 0 "
        "(for example timeout: 30)",
        id="timeout-not-positive",
    ),
    pytest.param(
        """
        server:
          port: 70000
        """,
        "config/c.yaml:2: server.port: expected a whole number from 0 to 65535, got 70000 "
        "(write a plain number, without quotes)",
        id="port-out-of-range",
    ),
    pytest.param(
        """
        server:
          host: 127.0.0.1:8080
        """,
        "config/c.yaml:2: server.host: host must not include a port (set the port with port:)",
        id="host-with-port",
    ),
    pytest.param(
        """
        server:
          allowed_hosts: [localhost, "bad host"]
        """,
        "config/c.yaml:2: server.allowed_hosts[1]: bad host: 'bad host' is not a host[:port] "
        """(a host name or address with an optional port, e.g. localhost or "[::1]:8080")""",
        id="allowed-host-malformed",
    ),
    pytest.param(
        """
        cors:
          allow_methods: GET
        """,
        "config/c.yaml:2: cors.allow_methods: expected a list, got a string "
        "(write it as [a, b] or as '- a' lines)",
        id="list-expected",
    ),
    pytest.param(
        """
        cors:
          max_age: ten
        """,
        "config/c.yaml:2: cors.max_age: expected a whole number from 0 to 2147483647, got 'ten' "
        "(write a plain number, without quotes)",
        id="max-age-not-a-number",
    ),
    pytest.param(
        """
        cors:
          allow_headers: [Content-Type, "X Bad"]
        """,
        "config/c.yaml:2: cors.allow_headers[1]: 'X Bad' is not a valid header name "
        "(use letters, digits and !#$%&'*+-.^_`|~ only, no spaces or colons)",
        id="header-name-not-a-token",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            request_headers:
              set:
                "Bad Name": x
        """,
        "config/c.yaml:6: routes[0].request_headers.set.Bad Name: 'Bad Name' is not a valid header "
        "name (use letters, digits and !#$%&'*+-.^_`|~ only, no spaces or colons)",
        id="set-header-name-not-a-token",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            request_headers:
              set: {X-Multi: "a\\r\\nInjected: yes"}
        """,
        "config/c.yaml:5: routes[0].request_headers.set.X-Multi: header value contains a line break "
        "or NUL (a header value is one line; check the variable it came from)",
        id="set-header-value-crlf",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            cors: [http://localhost:3000]
        """,
        "config/c.yaml:4: routes[0].cors: expected a mapping, got a list (write it as 'key: value' "
        "lines; valid keys: allow_origins, allow_origin_regex, allow_methods, allow_headers, "
        "expose_headers, allow_credentials, max_age, allow_private_network)",
        id="mapping-expected",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            timeout: 5
            timeout: 10
        """,
        "config/c.yaml:5: routes[0].timeout: duplicate key (keep only one of them)",
        id="duplicate-key",
    ),
    pytest.param(
        """
        routes:
          - prefix: /api
          upstream: http://127.0.0.1:9000
        """,
        "config/c.yaml:3: YAML syntax error: expected <block end>, but found '?' "
        "(check the indentation and quoting of this line and the one before)",
        id="yaml-syntax-error",
    ),
    pytest.param(
        "- prefix: /api\n",
        "config/c.yaml:1: the top level must be a mapping of server, cors, routes, intercept, not a list "
        "(start the file with 'routes:')",
        id="top-level-not-a-mapping",
    ),
]


@pytest.mark.parametrize(("text", "expected"), RULES)
def test_loader_rule_reports_file_line_key_and_hint(in_tmp: Path, text: str, expected: str) -> None:
    """Each loader rule refuses its violation with file:line, the dotted key and the hint."""
    write(in_tmp, "config/c.yaml", text)
    assert expected in problems("config/c.yaml")


def test_duplicate_prefixes_across_files_name_both(in_tmp: Path) -> None:
    """Two files of a directory routing the same prefix are refused, naming both file:lines."""
    write(in_tmp, "config/a.yaml", ROUTE)
    write(in_tmp, "config/b.yaml", "# orders team\n" + ROUTE.replace("/api", "/api/"))
    assert problems("config") == [
        "config/b.yaml:3: routes[0].prefix: duplicate prefix '/api', also used by the route at "
        "config/a.yaml:2 (each prefix may appear once across all files; change or remove one)"
    ]


def test_two_server_blocks_are_refused_naming_both(in_tmp: Path) -> None:
    """At most one file of a directory sets `server`; the second names the first's file:line."""
    write(in_tmp, "config/a.yaml", "server:\n  port: 8080\n")
    write(in_tmp, "config/b.yaml", "routes: []\n\nserver:\n  port: 8081\n")
    assert problems("config") == [
        "config/b.yaml:3: server: the server block is also set in config/a.yaml:1 "
        "(at most one file of a directory may set server; keep one of them)"
    ]


def test_all_problems_of_a_file_are_reported_at_once(in_tmp: Path) -> None:
    """A file with three problems yields exactly three problem lines, in line order."""
    write(in_tmp, "c.yaml", """
        cors:
          alow_origins: []
        routes:
          - prefix: /api
            upstream: ftp://x
            timeout: -1
    """)
    assert [line.split(": ")[0:2] for line in problems("c.yaml")] == [
        ["c.yaml:2", "cors.alow_origins"],
        ["c.yaml:5", "routes[0].upstream"],
        ["c.yaml:6", "routes[0].timeout"],
    ]


def test_file_default_problem_shared_by_routes_is_reported_once(in_tmp: Path) -> None:
    """A bad default inherited by several routes is one problem, at the default's line."""
    write(in_tmp, "c.yaml", """
        cors:
          allow_origins: ["*"]
          allow_credentials: true
        routes:
          - {prefix: /a, upstream: "http://127.0.0.1:9000"}
          - {prefix: /b, upstream: "http://127.0.0.1:9000"}
    """)
    assert len(problems("c.yaml")) == 1


@pytest.mark.parametrize(("env", "expected"), [
    pytest.param({}, "Bearer dev-token", id="unset-uses-default"),
    pytest.param({"TOKEN": ""}, "Bearer dev-token", id="empty-uses-default"),
    pytest.param({"TOKEN": "s3cret"}, "Bearer s3cret", id="set-value-wins"),
])
def test_variable_default_applies_when_unset_or_empty(in_tmp: Path, env: dict, expected: str) -> None:
    """${VAR:-default} takes the default when VAR is unset or empty, else VAR's value."""
    write(in_tmp, "c.yaml", ROUTE + '    request_headers: {set: {Authorization: "Bearer ${TOKEN:-dev-token}"}}\n')
    route = config.load("c.yaml", env=env).routes[0]
    assert route.set_headers == (("Authorization", expected),)


def test_interpolation_covers_strings_but_not_the_origin_regex(in_tmp: Path) -> None:
    """${VAR} is expanded in upstream and origins; allow_origin_regex is taken literally."""
    write(in_tmp, "c.yaml", """
        cors:
          allow_origins: ["${APP_ORIGIN}"]
          allow_origin_regex: '^https://\\${[a-z]+}$'
        routes:
          - prefix: /api
            upstream: http://${API_HOST:-127.0.0.1}:${API_PORT}
    """)
    loaded = config.load("c.yaml", env={"APP_ORIGIN": "http://localhost:3000", "API_PORT": "9000"})
    policy = loaded.routes[0].cors
    assert loaded.routes[0].upstream.url == "http://127.0.0.1:9000"
    assert policy.allow_origins == frozenset({"http://localhost:3000"})
    assert policy.allow_origin_regex.pattern == "^https://\\${[a-z]+}$"


def test_unquoted_variable_takes_the_type_of_its_value(in_tmp: Path) -> None:
    """port: ${PORT:-8080} unquoted is a number, as if the value had been written there."""
    write(in_tmp, "c.yaml", "server:\n  port: ${PORT:-8080}\n")
    assert config.load("c.yaml", env={"PORT": "9999"}).server.port == 9999
    assert config.load("c.yaml", env={}).server.port == 8080


@pytest.mark.parametrize(("written", "prefix"), [
    pytest.param("/api/", "/api", id="trailing-slash"),
    pytest.param("/a/b//", "/a/b", id="several-trailing-slashes"),
    pytest.param("/", "/", id="root-stays"),
    pytest.param("/api", "/api", id="already-plain"),
])
def test_prefix_loses_its_trailing_slash(in_tmp: Path, written: str, prefix: str) -> None:
    """A route prefix is stored without a trailing slash; / stays /."""
    write(in_tmp, "c.yaml", ROUTE.replace("/api", written))
    assert config.load("c.yaml", env={}).routes[0].prefix == prefix


@pytest.mark.parametrize(("url", "expected"), [
    pytest.param("https://api.example.com/v1/", Upstream("https://api.example.com/v1/", "https", "api.example.com", 443, "/v1"), id="https-default-port"),
    pytest.param("http://127.0.0.1:9000", Upstream("http://127.0.0.1:9000", "http", "127.0.0.1", 9000, ""), id="http-explicit-port"),
    pytest.param("WSS://Chat.Example.com/ws", Upstream("WSS://Chat.Example.com/ws", "wss", "chat.example.com", 443, "/ws"), id="wss-lower-cased"),
    pytest.param("http://[::1]:8000/", Upstream("http://[::1]:8000/", "http", "::1", 8000, ""), id="ipv6"),
])
def test_upstream_is_parsed(in_tmp: Path, url: str, expected: Upstream) -> None:
    """upstream becomes scheme, host, port (defaulted by scheme) and base path without '/'."""
    write(in_tmp, "c.yaml", ROUTE.replace("http://127.0.0.1:9000", f'"{url}"'))
    assert config.load("c.yaml", env={}).routes[0].upstream == expected


def test_route_cors_overrides_file_defaults_key_by_key(in_tmp: Path) -> None:
    """A route's cors replaces only the keys it sets; the rest come from the file's cors."""
    write(in_tmp, "c.yaml", """
        cors:
          allow_origins: [http://localhost:3000]
          allow_headers: [Content-Type]
          max_age: 60
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            cors:
              allow_origins: [https://app.example.com, "HTTPS://Admin.Example.com:443"]
              allow_credentials: true
          - prefix: /other
            upstream: http://127.0.0.1:9001
    """)
    api, other = config.load("c.yaml", env={}).routes
    assert api.cors.allow_origins == frozenset({"https://app.example.com", "https://admin.example.com"})
    assert api.cors.allow_credentials is True
    assert (api.cors.allow_headers, api.cors.max_age) == (frozenset({"content-type"}), 60)
    assert other.cors.allow_origins == frozenset({"http://localhost:3000"})
    assert other.cors.allow_credentials is False


def test_key_sources_point_at_the_line_in_force(in_tmp: Path) -> None:
    """key_sources: the route's cors line, else the file default's line, else the route's line."""
    write(in_tmp, "c.yaml", """
        cors:
          allow_origins: [http://localhost:3000]
          max_age: 60
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            cors:
              max_age: 5
    """)
    policy = config.load("c.yaml", env={}).routes[0].cors
    assert policy.scope == "route /api"
    assert policy.source_of("max_age") == "c.yaml:8"
    assert policy.source_of("allow_origins") == "c.yaml:2"
    assert policy.source_of("allow_credentials") == "c.yaml:5"
    assert {key for key, _ in policy.key_sources} == set(loader.CORS_KEYS)


def test_file_defaults_one_per_file_in_name_order(in_tmp: Path) -> None:
    """Each file's cors defaults become a FileDefaults, sources at its cors lines or line 1."""
    write(in_tmp, "config/b.yml", "cors:\n  allow_origins: [http://localhost:5173]\n")
    write(in_tmp, "config/a.yaml", ROUTE)
    defaults = config.load("config", env={}).defaults
    assert [d.file for d in defaults] == ["config/a.yaml", "config/b.yml"]
    assert [d.cors.scope for d in defaults] == ["the defaults of config/a.yaml", "the defaults of config/b.yml"]
    assert defaults[0].cors.source_of("allow_origins") == "config/a.yaml:1"
    assert defaults[1].cors.source_of("allow_origins") == "config/b.yml:2"
    assert defaults[1].cors.allow_origins == frozenset({"http://localhost:5173"})


def test_directory_merges_yaml_and_yml_in_name_order(in_tmp: Path) -> None:
    """A directory loads every *.yaml/*.yml by name (other files ignored), routes in that order."""
    write(in_tmp, "config/20-orders.yml", ROUTE.replace("/api", "/orders"))
    write(in_tmp, "config/10-users.yaml", ROUTE.replace("/api", "/users") + "  - {prefix: /u2, upstream: 'http://127.0.0.1:1'}\n")
    write(in_tmp, "config/README.md", "not yaml: [")
    write(in_tmp, "config/30-empty.yaml", "")
    loaded = config.load("config", env={})
    assert loaded.files == ("config/10-users.yaml", "config/20-orders.yml", "config/30-empty.yaml")
    assert [r.prefix for r in loaded.routes] == ["/users", "/u2", "/orders"]
    assert [str(r.source) for r in loaded.routes] == ["config/10-users.yaml:2", "config/10-users.yaml:4", "config/20-orders.yml:2"]


def test_empty_file_loads_with_defaults(in_tmp: Path) -> None:
    """An empty file is a valid config: no routes, default server settings."""
    write(in_tmp, "c.yaml", "# nothing yet\n")
    loaded = config.load("c.yaml", env={})
    assert (loaded.routes, loaded.server.host, loaded.server.port) == ((), "127.0.0.1", 8080)
    assert loaded.defaults[0].cors == CorsPolicy(scope="the defaults of c.yaml", key_sources=loaded.defaults[0].cors.key_sources)


@pytest.mark.parametrize(("server", "hosts", "any_host"), [
    pytest.param("{}", (("localhost", None), ("127.0.0.1", None), ("::1", None)), False, id="default"),
    pytest.param("{host: 0.0.0.0}", (("localhost", None), ("127.0.0.1", None), ("::1", None), ("0.0.0.0", None)), False, id="bind-host-added"),
    pytest.param("{allowed_hosts: [Dev.Local, '[::1]:8080']}", (("dev.local", None), ("::1", 8080), ("127.0.0.1", None)), False, id="explicit-list"),
    pytest.param("{allowed_hosts: ['*']}", (), True, id="star-disables"),
])
def test_allowed_hosts(in_tmp: Path, server: str, hosts: tuple, any_host: bool) -> None:
    """allowed_hosts: defaults plus the bind host, parsed entries, or ["*"] for any host."""
    write(in_tmp, "c.yaml", f"server: {server}\n")
    settings = config.load("c.yaml", env={}).server
    assert (settings.allowed_hosts, settings.allow_any_host) == (hosts, any_host)


def test_methods_upper_headers_lower_and_star(in_tmp: Path) -> None:
    """Methods are upper-cased, header names lower-cased; "*" sets allow_any_* beside the names."""
    write(in_tmp, "c.yaml", """
        cors:
          allow_methods: [get, Post]
          allow_headers: ["*", Authorization]
          expose_headers: [X-Total-Count]
    """)
    policy = config.load("c.yaml", env={}).defaults[0].cors
    assert (policy.allow_methods, policy.allow_any_method) == (frozenset({"GET", "POST"}), False)
    assert (policy.allow_headers, policy.allow_any_header) == (frozenset({"authorization"}), True)
    assert policy.expose_headers == ("X-Total-Count",)


def test_anchored_regex_with_credentials_is_accepted(in_tmp: Path) -> None:
    """A regex that does not match every origin may be used with credentials."""
    write(in_tmp, "c.yaml", """
        cors:
          allow_origin_regex: '^https://[a-z0-9-]+\\.preview\\.example\\.com$'
          allow_credentials: true
    """)
    policy = config.load("c.yaml", env={}).defaults[0].cors
    assert policy.allow_origin_regex.fullmatch("https://pr-1.preview.example.com")


def test_missing_path_is_a_problem_not_a_traceback(in_tmp: Path) -> None:
    """A config path that does not exist is reported as a ConfigError."""
    assert problems("nope.yaml") == [
        "nope.yaml: cannot read: No such file or directory "
        "(check the path given with -c or $CORSPROXY_CONFIG)"
    ]


def test_from_flags_builds_one_route() -> None:
    """from_flags gives one route with the origins as file defaults, validated like YAML."""
    loaded = config.from_flags("http://localhost:9000/v1/", prefix="/api/", host="0.0.0.0", port=0)
    (route,) = loaded.routes
    assert (route.prefix, route.upstream.base_path, str(route.source)) == ("/api", "/v1", "<command line>:1")
    assert route.cors.allow_origins == frozenset({"http://localhost:3000", "http://localhost:5173"})
    assert loaded.defaults[0].cors.allow_origins == route.cors.allow_origins
    assert (loaded.server.host, loaded.server.port, loaded.files) == ("0.0.0.0", 0, ("<command line>",))


@pytest.mark.parametrize(("kwargs", "expected"), [
    pytest.param({"upstream": "localhost:9000"}, "<command line>:1: routes[0].upstream: upstream must be an absolute http(s) or ws(s) URL", id="bad-upstream"),
    pytest.param({"upstream": "http://x", "origins": ("*",), "credentials": True}, "<command line>:1: cors.allow_origins: for security reasons", id="wildcard-credentials"),
    pytest.param({"upstream": "http://x", "origins": ("http://localhost:3000/",)}, "cors.allow_origins[0]: an origin has no path", id="bad-origin"),
])
def test_from_flags_refuses_like_yaml(kwargs: dict, expected: str) -> None:
    """from_flags goes through the same rules as a YAML file, naming the <command line>."""
    with pytest.raises(ConfigError) as caught:
        config.from_flags(**kwargs)
    assert any(expected in str(problem) for problem in caught.value.problems)


def test_route_rows_never_contain_secret_values(in_tmp: Path) -> None:
    """route_rows lists set-header names only, never their (secret) values, and each source."""
    write(in_tmp, "c.yaml", ROUTE + """\
    request_headers:
      set: {Authorization: "Bearer ${TOKEN}", X-Api-Key: "${KEY}"}
      remove: [Cookie]
""")
    rows = config.route_rows(config.load("c.yaml", env={"TOKEN": "s3cret-token", "KEY": "k3y-value"}))
    text = json.dumps(rows)
    assert "s3cret-token" not in text and "k3y-value" not in text
    assert rows == [{
        "prefix": "/api", "upstream": "http://127.0.0.1:9000", "strip_prefix": True,
        "change_origin": True, "timeout": 30.0, "verify_tls": True, "isolate": True,
        "set_headers": ["Authorization", "X-Api-Key"], "remove_headers": ["cookie"],
        "allow_origins": [], "allow_origin_regex": None, "allow_credentials": False,
        "source": "c.yaml:2", "cors": rows[0]["cors"],
    }]


def test_route_rows_show_the_whole_effective_policy_with_sources(in_tmp: Path) -> None:
    """Each route row holds every cors key's effective value and the file:line that sets it (a
    file default's line, the route's own line, or the route's line for a built-in default)."""
    write(in_tmp, "c.yaml", """        cors:
          allow_origins: [http://localhost:5173]
          allow_headers: [Authorization]
        routes:
          - prefix: /api
            upstream: http://127.0.0.1:9000
            cors:
              allow_methods: [GET, PURGE]
              expose_headers: [X-Total-Count]
              max_age: 60
    """)
    (row,) = config.route_rows(config.load("c.yaml", env={}))
    assert row["cors"] == {
        "allow_origins": {"value": ["http://localhost:5173"], "source": "c.yaml:2"},
        "allow_origin_regex": {"value": None, "source": "c.yaml:5"},
        "allow_methods": {"value": ["GET", "PURGE"], "source": "c.yaml:8"},
        "allow_headers": {"value": ["authorization"], "source": "c.yaml:3"},
        "expose_headers": {"value": ["X-Total-Count"], "source": "c.yaml:9"},
        "allow_credentials": {"value": False, "source": "c.yaml:5"},
        "max_age": {"value": 60, "source": "c.yaml:10"},
        "allow_private_network": {"value": False, "source": "c.yaml:5"},
    }


def test_bundled_config_loads_without_environment() -> None:
    """config/corsproxy.yaml loads offline with no environment variables set."""
    loaded = config.load(REPO / "config" / "corsproxy.yaml", env={})
    assert [route.prefix for route in loaded.routes] == ["/api", "/github"]
    assert loaded.routes[0].upstream.origin == "http://127.0.0.1:9000"


def test_bundled_config_uses_every_key() -> None:
    """The bundled config documents every key the loader accepts."""
    text = (REPO / "config" / "corsproxy.yaml").read_text()
    keys = (*loader.TOP_KEYS, *loader.SERVER_KEYS, *loader.ROUTE_KEYS, *loader.CORS_KEYS,
            *loader.REQUEST_HEADER_KEYS, *loader.INTERCEPT_KEYS, *loader.INTERCEPT_HOST_KEYS)
    assert [key for key in keys if f"{key}:" not in text] == []


def test_config_module_imports_no_async_stack() -> None:
    """config.py stays below the aiohttp layer: importing it loads no aiohttp/structlog/asyncio."""
    code = ("import sys, corsproxy.config.loader; "
            "print([m for m in ('aiohttp', 'structlog', 'asyncio') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
