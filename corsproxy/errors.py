"""The exceptions corsproxy raises on purpose.

    CorsproxyError
    ├── ConfigError          one or more config problems; exit 2, never a traceback
    ├── StoreError           the intercept CA cannot be made, read or used; said, never a traceback
    ├── RequestRejected      a request the proxy refuses to forward (status 4xx)
    │   └── PathEscape       the decoded path leaves its prefix or is malformed (400)
    └── UpstreamError        the upstream could not answer (status 5xx, JSON body)
        ├── UpstreamUnreachable   502
        ├── UpstreamHeadTooLarge  502 (a limit of server.upstream_max_* was hit)
        ├── UpstreamMisbehaved    502 (an answer the proxy cannot pass on)
        └── UpstreamTimeout       504
"""

from __future__ import annotations

from dataclasses import dataclass


class CorsproxyError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One config problem, printed as ``file:line: key: message (hint)``."""

    file: str
    line: int | None
    key: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(CorsproxyError):
    """Every problem found in a config, reported together."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class StoreError(CorsproxyError):
    """The intercept CA cannot be made, read or used; the message says what to do."""


class RequestRejected(CorsproxyError):
    status = 400

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status


class PathEscape(RequestRejected):
    status = 400


class UpstreamError(CorsproxyError):
    status = 502
    error = "upstream error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UpstreamUnreachable(UpstreamError):
    status = 502
    error = "upstream unreachable"


class UpstreamHeadTooLarge(UpstreamError):
    status = 502
    error = "upstream response head too large"


class UpstreamMisbehaved(UpstreamError):
    status = 502
    error = "bad upstream response"


class UpstreamTimeout(UpstreamError):
    status = 504
    error = "upstream timeout"
