"""The serve process fixes glibc's malloc thresholds (server/memory.py): a test machine is glibc."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys

from corsproxy import config as config_module
from corsproxy.server import memory, serve
from corsproxy.server.app import State, StateHolder
from corsproxy.server.reload import ConfigSource, Reloader


def test_glibc_takes_the_thresholds_that_keep_an_upload_s_buffers() -> None:
    """mallopt is found and accepts both values (a lookup that broke would be a silent no-op)."""
    assert memory.keep_stream_buffers() is True


def test_serve_sets_them_before_its_event_loop_starts(monkeypatch) -> None:
    """serve.run calls keep_stream_buffers first, for one process and for each worker alike."""
    calls: list[str] = []
    monkeypatch.setattr(memory, "keep_stream_buffers", lambda: calls.append("mallopt") or True)

    class Stop(Exception):
        pass

    def no_loop() -> None:
        calls.append("loop")
        raise Stop

    monkeypatch.setattr(serve, "new_event_loop", no_loop)
    try:
        serve.run(None)   # stops where the loop would be made
    except Stop:
        pass
    assert calls == ["mallopt", "loop"]


SETTLED = """
import gc, weakref
from corsproxy.server import memory

class Node:
    pass

def cycle():
    node = Node()
    node.self = node
    return node

gc.disable()   # only settle() collects here
before = weakref.ref(cycle())          # garbage already when the proxy settles
kept = cycle()                         # alive at the first settle, let go after it
kept_ref = weakref.ref(kept)
memory.settle()
frozen = gc.get_freeze_count()
del kept
gc.collect()                           # a full pass does not see what settle froze
still_there = kept_ref() is not None
memory.settle()                        # the next one (a reload's) does
print(before() is None, frozen > 1000, still_there, kept_ref() is None)
"""


def test_settle_freezes_what_is_alive_and_the_next_one_collects_what_was_let_go() -> None:
    """The start-up's objects stay out of the collector's full passes (no 25-30 ms pause under
    load), and a frozen object that became garbage, such as a State a reload replaced in a
    cycle, is collected by the next settle (a reload's) instead of kept for good."""
    out = subprocess.run([sys.executable, "-c", SETTLED], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["True", "True", "True", "True"], out


IN_FLIGHT = """
import gc
from corsproxy.server import memory
memory.settle()
passes = []
gc.callbacks.append(lambda phase, info: phase == "start" and passes.append(info["generation"]))
in_flight = [[] for _ in range(3_000)]   # the live containers of ~50 requests in flight
print(len(passes))
"""


def test_the_objects_of_requests_in_flight_set_off_no_collection() -> None:
    """After settle, a few thousand young objects that are all alive (what requests in flight
    hold) do not make the collector scan them again and again: it waits for more."""
    out = subprocess.run([sys.executable, "-c", IN_FLIGHT], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["0"], out


ONE_ROUTE = "routes:\n  - prefix: /api\n    upstream: http://127.0.0.1:9\n"


async def test_serve_settles_before_its_ready_line(tmp_path) -> None:
    """By the ready line the start-up's objects are frozen (a request never waits for a full
    pass over them)."""
    path = tmp_path / "corsproxy.yaml"
    path.write_text("server:\n  port: 0\n" + ONE_ROUTE)
    frozen = []

    def ready(url: str, bound: str) -> None:
        frozen.append(gc.get_freeze_count())
        os.kill(os.getpid(), signal.SIGTERM)   # serve's own handler stops it, as on Ctrl-C

    gc.unfreeze()
    try:
        assert await serve.serve(config_module.load(path), grace=0.1, source=None, ready=ready) == 0
    finally:
        gc.unfreeze()
    assert frozen and frozen[0] > 1000


async def test_a_reload_settles_with_the_new_state(tmp_path) -> None:
    """After a reload the new State is among the frozen objects too (and the old one's cycles,
    if any, were collected: see the test above)."""
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "a.yaml").write_text(ONE_ROUTE)
    source = ConfigSource.at(directory, lambda: config_module.load(directory))
    holder = StateHolder(State.of(source.load()))
    (directory / "a.yaml").write_text(ONE_ROUTE.replace("/api", "/v2"))
    gc.unfreeze()
    try:
        assert await Reloader(holder, source).reload("test")
        state = holder.current
        # Frozen: in no generation a collection scans.
        assert gc.is_tracked(state) and all(kept is not state for kept in gc.get_objects())
    finally:
        gc.unfreeze()
