"""`serve --workers N`: N processes, each with its own event loop, sharing one port.

The parent binds the address first with SO_REUSEPORT (so `--port 0` becomes one real port for
every worker), forks the workers, and prints the ready line once all of them listen. Each worker
binds the same port with SO_REUSEPORT and the kernel spreads new connections over them. The
parent only forwards signals (SIGTERM/SIGINT stop, SIGHUP reloads) and waits.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import socket
import sys

from corsproxy.model import Config
from corsproxy.server import logs, serve
from corsproxy.server.reload import ConfigSource

READY_TIMEOUT = 30.0


def run(config: Config, *, workers: int, grace: float, source: ConfigSource | None) -> int:
    placeholder = _reserve(config.server.host, config.server.port)
    port = placeholder.getsockname()[1]
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, port=port))
    ready_read, ready_write = os.pipe()
    children = [_fork_worker(config, grace, source, ready_write, ready_read) for _ in range(workers)]
    os.close(ready_write)
    try:
        started = _wait_ready(ready_read, workers)
    finally:
        os.close(ready_read)
        placeholder.close()  # bound but never listening: it took no connection
    if started < workers:
        _signal_all(children, signal.SIGTERM)
        _reap(children)
        print(logs.error_line(f"only {started} of {workers} workers started"), file=sys.stderr)
        return 1
    host = config.server.host
    print(logs.ready_line(serve.page_url(config.server, host, port), serve.display_url(host, port), workers),
          flush=True)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: _signal_all(children, signum))
    return max(_reap(children))


def _reserve(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        print(logs.error_line(serve.cannot_listen(host, port, exc)), file=sys.stderr)
        raise SystemExit(1) from None
    return sock


def _fork_worker(config: Config, grace: float, source: ConfigSource | None,
                 ready_write: int, ready_read: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    os.close(ready_read)
    code = 1
    try:
        code = serve.run(config, grace=grace, source=source, reuse_port=True,
                         ready=lambda _url, _bound: os.write(ready_write, b"."))
    finally:
        os._exit(code)  # never run the parent's cleanup in a child


def _wait_ready(ready_read: int, workers: int) -> int:
    started = 0
    while started < workers:
        readable, _, _ = select.select([ready_read], [], [], READY_TIMEOUT)
        chunk = os.read(ready_read, workers) if readable else b""
        if not chunk:  # timed out, or every worker exited before saying it was ready
            break
        started += len(chunk)
    return started


def _signal_all(children: list[int], signum: int) -> None:
    for pid in children:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _reap(children: list[int]) -> list[int]:
    codes = []
    for pid in children:
        _, status = os.waitpid(pid, 0)
        codes.append(os.waitstatus_to_exitcode(status))
    return [max(code, 0) if code >= 0 else 1 for code in codes]
