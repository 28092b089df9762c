"""Bounded memos for the pure steps a request repeats (routing a path, a preflight's decision,
a request's facts): each belongs to one loaded config, so a reload replaces it whole."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar

V = TypeVar("V")
# What `entries.get(key, UNSEEN)` gives for a key not kept (None may be a kept answer).
UNSEEN = object()


def keep(entries: dict[Hashable, V], key: Hashable, value: V, size: int) -> V:
    """`entries[key] = value`, the oldest entry dropped first when `entries` holds `size`
    already (insertion order is age: nothing is moved on a hit). Returns `value`."""
    if len(entries) >= size:
        del entries[next(iter(entries))]
    entries[key] = value
    return value
