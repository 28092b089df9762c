"""The serve process fixes glibc's malloc thresholds (server/memory.py): a test machine is glibc."""

from __future__ import annotations

from corsproxy.server import memory, serve


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
