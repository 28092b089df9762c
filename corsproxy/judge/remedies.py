"""The fix for a request a browser blocks, as values: each header value (or status) the server
must send (`Fix`), and the policy that would send them (`Remedy`: the origin, credentials,
method and header names to allow).

`corsproxy.judge.browser` attaches both to every verdict that blocks. The configuration text
for a remedy (corsproxy YAML, nginx, Express) is written by the exporters, above this layer
(`corsproxy.export.snippets`), so what `probe` suggests is what `corsproxy export` writes and
its engine suites prove.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from corsproxy.judge.fetch_request import normalize_method


@dataclass(frozen=True, slots=True)
class Fix:
    """One thing the server must send: a header and its exact value, or (header None) a status."""

    header: str | None
    value: str

    def __str__(self) -> str:
        return f"{self.header}: {self.value}" if self.header else f"status {self.value}"


@dataclass(frozen=True, slots=True)
class Remedy:
    """The policy that answers this request (preflight and actual response) the way a browser
    accepts: allow `origin`, with credentials when the page sends them, the method and the
    request-header names it asks for, for the server at `upstream`."""

    origin: str
    credentials: bool
    method: str
    header_names: tuple[str, ...]
    upstream: str | None = None


def remedy(origin: str, credentials: bool, method: str, unsafe_names: Sequence[str],
           upstream: str | None = None) -> Remedy:
    return Remedy(origin, credentials, normalize_method(method),
                  tuple(sorted({name.lower() for name in unsafe_names})), upstream)
