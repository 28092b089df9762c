"""Hot reload: notice config changes, load the new config, swap it in whole.

Change detection polls a stat signature (name, inode, mtime, size) of every config file rather
than using inotify: editors that save by rename-over (vim, JetBrains) replace the inode, and
Kubernetes/compose mounts swap a symlink or change files under a bind mount, where inotify
events are unreliable. A poll of a handful of stat calls every half second costs nothing.

In-flight requests and open WebSockets keep the State they started with; only new requests
see the new one. A config that does not load leaves the last good one serving.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from corsproxy.config.yamldoc import YAML_SUFFIXES
from corsproxy.errors import ConfigError, StoreError
from corsproxy.model import Config, ServerSettings
from corsproxy.server import memory
from corsproxy.server.app import State, StateHolder
from corsproxy.server.logs import cannot_listen, get_logger

POLL_SECONDS = 0.5

Signature = tuple[tuple[str, int, int, int], ...]


def signature(path: Path) -> Signature:
    """What changes when any config file is written, replaced, added or removed."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES)
    else:
        files = [path]
    stamps = []
    for file in files:
        try:
            st = os.stat(file)  # follows symlinks: a swapped ..data link changes the target
        except OSError:
            continue
        stamps.append((file.name, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(stamps)


@dataclass(frozen=True, slots=True)
class Changes:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    server_changed: bool          # the server: block
    defaults_changed: bool = False  # a file's cors: defaults (what unmatched paths get)
    listen: tuple[str, ...] = ()  # "host", "port": the listening keys the files changed

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.server_changed
                    or self.defaults_changed)


def changes(old: Config, new: Config) -> Changes:
    """What the files changed; compare the configs as loaded from the files, before flags and
    environment override the address."""
    before = {route.prefix: route for route in old.routes}
    after = {route.prefix: route for route in new.routes}
    return Changes(
        added=tuple(p for p in after if p not in before),
        removed=tuple(p for p in before if p not in after),
        changed=tuple(p for p in after if p in before and after[p] != before[p]),
        server_changed=_server_block(old) != _server_block(new),
        defaults_changed=old.defaults != new.defaults,
        listen=tuple(key for key in ("host", "port")
                     if getattr(old.server, key) != getattr(new.server, key)),
    )


def _server_block(config: Config) -> tuple:
    """The server: block's values (its line number moves with any edit above it)."""
    server = config.server
    return (server.host, server.port, server.allowed_hosts, server.allow_any_host,
            server.websocket_max_message_size, server.upstream_max_header_size, server.upstream_max_headers)


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """Where the config comes from: the path to watch, how to load the files, how flags and
    environment turn that into the config served (`resolve`, with `overrides` naming what each
    overridden server key comes from), and the files' signature taken before the first load.
    Watching from that baseline means a file written while the proxy was still starting is
    reloaded, not silently missed."""

    path: Path
    load: Callable[[], Config]
    baseline: Signature
    resolve: Callable[[Config], Config] = lambda config: config
    overrides: tuple[tuple[str, str], ...] = ()   # ("port", "--port 0"), ("host", "$CORSPROXY_HOST=0.0.0.0")
    first: Config | None = None                   # the files as first loaded (before resolve)

    @classmethod
    def at(cls, path: Path, load: Callable[[], Config], resolve: Callable[[Config], Config] | None = None,
           overrides: tuple[tuple[str, str], ...] = ()) -> ConfigSource:
        """Call before the first load (`start()` does both)."""
        return cls(path, load, signature(path), resolve or (lambda config: config), overrides)

    def start(self) -> tuple[ConfigSource, Config]:
        """The first load: (this source remembering the files as loaded, the config to serve)."""
        loaded = self.load()
        return replace(self, first=loaded), self.resolve(loaded)


# Re-binds the listener to (host, port); returns the new page URL, raises OSError.
Relisten = Callable[[str, int], Awaitable[str]]


class Reloader:
    """Owns the swap of `holder.current`; `watch()` polls, `reload()` is also SIGHUP's. With
    `relisten`, a changed server.host/port that no flag or variable overrides is applied by
    moving the listener."""

    def __init__(self, holder: StateHolder, source: ConfigSource, relisten: Relisten | None = None) -> None:
        self._holder, self._source, self._relisten = holder, source, relisten
        self._files = source.first or holder.current.config
        self._lock = asyncio.Lock()

    async def watch(self, interval: float = POLL_SECONDS) -> None:
        seen = self._source.baseline
        while True:
            now = signature(self._source.path)
            if now != seen:
                seen = now
                await self.reload("file change")
            await asyncio.sleep(interval)

    async def reload(self, why: str) -> bool:
        log = get_logger()
        async with self._lock:  # a SIGHUP during a file-change reload waits its turn
            try:
                files = await asyncio.to_thread(self._source.load)
                new = self._source.resolve(files)
            except ConfigError as exc:
                for problem in exc.problems:
                    log.error("reload refused", why=str(problem))
                log.warning("keeping the last good config", trigger=why, problems=len(exc.problems))
                return False
            previous = self._holder.current
            try:
                state = State.of(new, previous)
            except StoreError as exc:
                log.error("reload refused", why=str(exc))
                return False
            diff = changes(self._files, files)
            old_server, self._files = self._files.server, files
            self._holder.current = state
            log.info("config reloaded", trigger=why, added=list(diff.added), removed=list(diff.removed),
                     changed=list(diff.changed), server_changed=diff.server_changed,
                     defaults_changed=diff.defaults_changed)
            _log_intercept_change(previous, state)
            await self._apply_listen(diff, old_server, new)
            memory.settle()   # the new State joins the objects collections skip
        for warning in new.warnings:
            log.warning("config warning", why=warning)
        return True

    async def _apply_listen(self, diff: Changes, old: ServerSettings, new: Config) -> None:
        """Say, truthfully, what happens to a changed server.host/port: overridden (nothing to
        do), applied (the listener moved), or not applied (why, and the old address kept)."""
        log = get_logger()
        overrides = dict(self._source.overrides)
        moved = [key for key in diff.listen if key not in overrides]
        for key in diff.listen:
            if key in overrides:
                log.info(f"server.{key} changed in the file, but {overrides[key]} overrides it",
                         file_value=getattr(self._files.server, key), served=getattr(new.server, key))
        if not moved:
            return
        host, port = new.server.host, new.server.port
        if self._relisten is None:
            log.warning(f"server.{'/'.join(moved)} changed; restart corsproxy to listen on the new address")
            return
        try:
            url = await self._relisten(host, port)
        except OSError as exc:
            log.error("cannot move the listener; still listening on the old address",
                      why=cannot_listen(host, port, exc), old=f"{old.host}:{old.port}")
            return
        log.info("listening", url=url, trigger="reload", changed=[f"server.{key}" for key in moved])

def _log_intercept_change(old: State, new: State) -> None:
    """What a browser using the intercept listener must know after a reload."""
    log = get_logger()
    before, after = old.config.intercept, new.config.intercept
    if (before is None) != (after is None) or (
            before and after and (before.listen_host, before.listen_port) != (after.listen_host, after.listen_port)):
        log.warning("intercept listener changed; restart corsproxy to apply it")
    if old.intercept and new.intercept and old.intercept.authority is not new.intercept.authority:
        log.warning("intercepted hosts changed, so the ephemeral CA was made anew; restart the browser "
                    "with the new flags (corsproxy chrome-flags)", spki=new.intercept.authority.spki,
                    hosts=list(new.intercept.settings.names))
