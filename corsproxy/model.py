"""Frozen values that flow between the layers.

Everything here is built once (config load, or once per request for RequestFacts) and never
mutated afterwards; the request path only reads these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

# Built-in endpoints live under this prefix; it is never forwarded and no route may claim it.
BUILTIN_PREFIX = "/__corsproxy"


class OriginPattern(Protocol):
    """A compiled allow_origin_regex (an RE2 object from config; anything with these two)."""

    pattern: str

    def fullmatch(self, text: str) -> object | None: ...


@dataclass(frozen=True, slots=True)
class Source:
    """Where a config value came from, for messages: ``config/orders.yaml:7``."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """The compiled `cors` block in force for one route (file defaults merged with the route's own).

    Origins are stored serialised the way browsers send them (lower-case scheme and host,
    default port omitted), so the request path compares strings and never parses.
    """

    allow_origins: frozenset[str] = frozenset()
    allow_any_origin: bool = False                 # allow_origins: ["*"]
    allow_origin_regex: OriginPattern | None = None
    allow_methods: frozenset[str] = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
    allow_any_method: bool = False                 # allow_methods: ["*"]
    allow_headers: frozenset[str] = frozenset()    # lower-case names
    allow_any_header: bool = False                 # allow_headers: ["*"]
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int = 600
    allow_private_network: bool = False
    # What the refusal sentences point at: "route /api" or "the defaults of config/a.yaml".
    scope: str = "route /"
    # cors key -> "file:line" of the line to change for that key (where it is set, or the
    # route/file line when it is left at its default).
    key_sources: tuple[tuple[str, str], ...] = ()
    # (cors key, value as held above, its text as written) for each value read through ${VAR}:
    # what any table, banner, warning or refusal shows instead of the value (it may be a secret).
    written: tuple[tuple[str, object, str], ...] = ()

    def source_of(self, key: str) -> str:
        for name, where in self.key_sources:
            if name == key:
                return where
        return "?"

    def shown(self, key: str, value: object) -> object:
        """`value` of `key` as it may be displayed: its ${VAR} text when it was read through one."""
        for name, held, text in self.written:
            if name == key and held == value:
                return text
        return value


@dataclass(frozen=True, slots=True)
class Upstream:
    """A parsed `upstream:` URL. ``base_path`` has no trailing slash ("" for the root)."""

    url: str          # with ${VAR} interpolated: what is dialled
    scheme: str       # http, https, ws or wss
    host: str         # without IPv6 brackets
    port: int
    base_path: str
    written: str = ""                              # as written, ${VAR} kept: what is displayed
    masks: tuple[tuple[str, str], ...] = ()        # (value, "${NAME}") of each ${VAR} in it
    # Derived once here, read on every request (issue #15): never recomputed per request.
    origin: str = field(init=False, repr=False, compare=False)        # scheme://host[:port], http(s)
    host_header: str = field(init=False, repr=False, compare=False)   # Host sent when change_origin
    base_url: str = field(init=False, repr=False, compare=False)      # http(s)://host:port, to dial

    @property
    def shown(self) -> str:
        """The URL for any message, table or page: its ${VAR}s never show their values."""
        return self.written or self.url

    def mask(self, text: str) -> str:
        """`text` (an error, a URL) with every ${VAR} value of this upstream put back as ${VAR}."""
        for value, name in self.masks:
            if value:
                text = text.replace(value, name)
        return text

    def __post_init__(self) -> None:
        scheme = {"ws": "http", "wss": "https"}.get(self.scheme, self.scheme)
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if scheme == "https" else 80
        authority = host if self.port == default else f"{host}:{self.port}"
        object.__setattr__(self, "origin", f"{scheme}://{authority}")
        object.__setattr__(self, "host_header", authority)
        object.__setattr__(self, "base_url", f"{scheme}://{host}:{self.port}")


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str                                   # "/api" ("/" matches everything), no trailing slash
    upstream: Upstream
    cors: CorsPolicy
    source: Source                                # the line of the route's "- prefix:" item
    strip_prefix: bool = True
    change_origin: bool = True
    timeout: float = 30.0
    verify_tls: bool = True
    isolate: bool = True                          # sandbox the upstream's documents (own origin)
    set_headers: tuple[tuple[str, str], ...] = ()  # request_headers.set, interpolated
    remove_headers: frozenset[str] = frozenset()   # request_headers.remove, lower-case
    # An intercepted host's path (issue #14): the request keeps its URL, Host, cookies and
    # redirects (no X-Forwarded-*, no Location or Set-Cookie rewrite; Alt-Svc is dropped).
    transparent: bool = False
    # False for an intercepted host's unlisted paths: no CORS decision, headers untouched.
    applies_cors: bool = True
    connect_to: tuple[str, int] | None = None     # dial here instead of upstream.host:port
    ca_file: str | None = None                    # absolute path: extra trust for the upstream
    # (route key, its text as written) of each of prefix/strip_prefix/... read through ${VAR}.
    written: tuple[tuple[str, str], ...] = ()
    # remove_headers + the set names, lower-case: what the client may not send up as it is.
    replaced_headers: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = self.remove_headers | {name.lower() for name, _ in self.set_headers}
        object.__setattr__(self, "replaced_headers", names)

    def shown(self, key: str) -> object:
        """The route key's value as it may be displayed (its ${VAR} text when read through one)."""
        return dict(self.written).get(key, getattr(self, key))


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # (host lower-case without brackets, port or None for any port); empty + allow_any_host for ["*"]
    allowed_hosts: tuple[tuple[str, int | None], ...] = (
        ("localhost", None), ("127.0.0.1", None), ("::1", None),
    )
    allow_any_host: bool = False
    inspector_size: int = 500                     # requests the inspector keeps; 0 = off
    source: Source | None = None
    # Limits on what the relay accepts from either end. They are far above what real APIs send
    # (Chromium takes a response head of up to 256 KiB), so the two ends, not the proxy, decide.
    websocket_max_message_size: int = 1 << 30      # bytes; 0 = no limit
    upstream_max_header_size: int = 256 * 1024     # bytes of one response header line
    upstream_max_headers: int = 4096               # response header lines

    def bound_to(self, host: str, port: int) -> ServerSettings:
        """These settings listening on host:port. The allowlist always admits the bind host: the
        user chose that address, so a request naming it is not a rebinding attempt."""
        host = host.strip("[]")
        bind = (host.lower(), None)
        if self.allow_any_host or bind in self.allowed_hosts:
            return replace(self, host=host, port=port)
        return replace(self, host=host, port=port, allowed_hosts=(*self.allowed_hosts, bind))


@dataclass(frozen=True, slots=True)
class FileDefaults:
    """One file's `cors` defaults, used for paths no route matches (404s and their preflights)."""

    file: str
    cors: CorsPolicy


@dataclass(frozen=True, slots=True)
class InterceptHost:
    """One `intercept.hosts` entry: a third-party host the browser reaches through the listener."""

    host: str                                     # an exact DNS name, lower-case
    port: int
    routes: tuple[Route, ...]                     # one per listed path, + "/" passing the rest through
    source: Source

    @property
    def authority(self) -> str:
        return self.host if self.port == 443 else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class InterceptSettings:
    """The `intercept:` block: the second listener and the hosts it terminates TLS for."""

    hosts: tuple[InterceptHost, ...]
    source: Source
    listen_host: str = "127.0.0.1"
    listen_port: int = 8081
    ca: str = "ephemeral"                         # or "persistent" (`corsproxy ca init`)

    @property
    def names(self) -> tuple[str, ...]:
        """The host names, sorted and unique: what the CA's name constraints permit."""
        return tuple(sorted({entry.host for entry in self.hosts}))

    def find(self, host: str, port: int) -> InterceptHost | None:
        for entry in self.hosts:
            if entry.host == host and entry.port == port:
                return entry
        return None


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerSettings
    routes: tuple[Route, ...]                     # in file order, then order within a file
    defaults: tuple[FileDefaults, ...]            # one per file, files in name order
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()                # legal but risky setups, for `check` and the banner
    intercept: InterceptSettings | None = None    # absent: no second listener
    variables: tuple[tuple[str, tuple[str, ...]], ...] = ()   # (file, the ${VAR} names it reads)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the CORS decision needs from a request, already extracted from the wire."""

    method: str                                   # upper-case
    origin: str | None                            # the Origin header as sent, None when absent
    request_method: str | None = None             # Access-Control-Request-Method
    request_headers: tuple[str, ...] = ()         # Access-Control-Request-Headers, lower-case, as listed
    request_private_network: bool = False         # Access-Control-Request-Private-Network: true
    proxy_origin: str | None = None               # "http://" + Host of the request, for same-origin
    fetch_site: str | None = None                 # Sec-Fetch-Site, lower-case; None when absent
    referer_origin: str | None = None             # the origin of the Referer, None when absent/unusable

    @property
    def is_preflight(self) -> bool:
        return self.method == "OPTIONS" and self.origin is not None and self.request_method is not None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a CORS decision.

    ``allowed`` False means: never forward; answer ``status`` (403, or 204 for a preflight
    from an allowed origin that asks for too much) with ``reasons`` as the body.
    ``headers`` are the response headers to add (CORS headers and Vary); a refused origin gets
    no Access-Control-Allow-* header at all.
    """

    allowed: bool
    kind: str                                     # preflight | cors | same-origin | no-origin | refused
    headers: tuple[tuple[str, str], ...] = ()
    reasons: tuple[str, ...] = field(default=())
    status: int | None = None                     # preflights: 204 or 403; actual: None or 403
    change: tuple[str, ...] = ()                  # refusals: file:line of each key to change
