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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from corsproxy.config.yamldoc import YAML_SUFFIXES
from corsproxy.errors import ConfigError
from corsproxy.model import Config
from corsproxy.server.app import State, StateHolder
from corsproxy.server.logs import get_logger

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
    server_changed: bool

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.server_changed)


def changes(old: Config, new: Config) -> Changes:
    before = {route.prefix: route for route in old.routes}
    after = {route.prefix: route for route in new.routes}
    return Changes(
        added=tuple(p for p in after if p not in before),
        removed=tuple(p for p in before if p not in after),
        changed=tuple(p for p in after if p in before and after[p] != before[p]),
        server_changed=old.server != new.server or old.defaults != new.defaults,
    )


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """Where the config comes from: the path to watch, how to load it, and the files' signature
    taken before the first load. Watching from that baseline means a file written while the
    proxy was still starting is reloaded, not silently missed."""

    path: Path
    load: Callable[[], Config]
    baseline: Signature

    @classmethod
    def at(cls, path: Path, load: Callable[[], Config]) -> ConfigSource:
        """Call before the first `load()`."""
        return cls(path, load, signature(path))


class Reloader:
    """Owns the swap of `holder.current`; `watch()` polls, `reload()` is also SIGHUP's."""

    def __init__(self, holder: StateHolder, source: ConfigSource) -> None:
        self._holder, self._source = holder, source
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
                new = await asyncio.to_thread(self._source.load)
            except ConfigError as exc:
                for problem in exc.problems:
                    log.error("reload refused", why=str(problem))
                log.warning("keeping the last good config", trigger=why, problems=len(exc.problems))
                return False
            old = self._holder.current.config
            diff = changes(old, new)
            self._holder.current = State.of(new)
        if old.server.host != new.server.host or old.server.port != new.server.port:
            log.warning("server.host/port changed; restart corsproxy to listen on the new address")
        log.info("config reloaded", trigger=why, added=list(diff.added), removed=list(diff.removed),
                 changed=list(diff.changed), server_changed=diff.server_changed)
        for warning in new.warnings:
            log.warning("config warning", why=warning)
        return True
