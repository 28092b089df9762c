"""What a tunnel's requests are checked against, derived once per config (and per reload).

`InterceptState` holds the CA, the PAC text and one `TunnelTargets` per intercepted host;
`TunnelTargets` is the `Targets` (server/app.py) of a tunnel: the Host must name the CONNECT
host, the host's listed paths carry its CORS policy, every other path passes through, and
nothing under /__corsproxy/ is answered (it is the third party's path). The gates, the CORS
engine and forwarding are the main port's; server/listener.py carries the bytes.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from corsproxy.errors import StoreError
from corsproxy.model import CorsPolicy, InterceptHost, InterceptSettings, Route
from corsproxy.policy import routing
from corsproxy.policy.intercept import pac_script, tunnel_host_matches

if TYPE_CHECKING:
    from corsproxy.server.ca import Authority


def load_ca() -> ModuleType:
    """server/ca.py, imported when a CA is first needed: `cryptography` is ~8 MiB of a proxy's
    memory, which a config without an intercept block does not pay. StoreError (a message,
    never a traceback) when it does not import."""
    try:
        from corsproxy.server import ca
    except ImportError as exc:
        raise StoreError(f"the intercept CA needs the 'cryptography' package, which does not import ({exc}); "
                         "reinstall corsproxy with its dependencies (pip install corsproxy)") from exc
    return ca


@dataclass(frozen=True, slots=True)
class TunnelTargets:
    entry: InterceptHost
    table: routing.RouteTable
    trusted: ssl.SSLContext | None      # the entry's ca_file added to the system's trust

    builtins = False

    @property
    def intercepted(self) -> str:
        return self.entry.routes[0].upstream.origin
    # CONNECT or an absolute-form target inside a tunnel asks for a second hop: refused as on
    # the listener itself.
    foreign_target_status = 403

    @classmethod
    def of(cls, entry: InterceptHost) -> TunnelTargets:
        ca_file = entry.routes[0].ca_file
        trusted = None
        if ca_file is not None:
            trusted = ssl.create_default_context()
            trusted.load_verify_locations(cafile=ca_file)
        return cls(entry, routing.RouteTable(entry.routes), trusted)

    def host_refusal(self, host: str | None) -> str | None:
        if tunnel_host_matches(host, self.entry.host, self.entry.port):
            return None
        return (f"Host {(host or '')[:200]!r} does not name {self.entry.authority}, the host this "
                "tunnel was opened for; one tunnel carries requests for one host only")

    def resolve(self, path: str) -> routing.Match | None:
        return routing.resolve(self.table, path)

    def policy_for_unmatched(self, origin: str | None) -> CorsPolicy:
        return self.entry.routes[0].cors   # never asked: "/" always matches in a tunnel

    def no_route(self, path: str) -> dict:
        return {"error": "no route", "path": path}

    def trust(self, route: Route) -> ssl.SSLContext | None:
        return self.trusted


@dataclass(frozen=True, slots=True)
class InterceptState:
    settings: InterceptSettings
    authority: Authority
    tunnels: dict[tuple[str, int], TunnelTargets]

    @classmethod
    def of(cls, settings: InterceptSettings, previous: InterceptState | None = None) -> InterceptState:
        """A persistent CA is read from the user's store (StoreError when it cannot be); an
        ephemeral one is made anew only when the host names change, because its name
        constraints list them (a browser pinned to the old SPKI must then be restarted)."""
        ca = load_ca()
        if settings.ca == "persistent":
            authority = ca.Store.for_user().load()
        elif previous is not None and previous.authority.origin == "ephemeral" \
                and previous.settings.names == settings.names:
            authority = previous.authority
        else:
            authority = ca.Authority.ephemeral(settings.names)
        tunnels = {(entry.host, entry.port): TunnelTargets.of(entry) for entry in settings.hosts}
        return cls(settings, authority, tunnels)

    def targets(self, host: str, port: int) -> TunnelTargets | None:
        """None when a reload removed the host: its open tunnels are closed."""
        return self.tunnels.get((host, port))

    def pac(self, listener: str) -> str:
        return pac_script(self.settings, listener)
