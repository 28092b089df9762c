"""The fix for a request a browser blocks: each header value (or status) the server must send
(`Fix`), and configuration that sends them (`snippets`: corsproxy YAML, Express `cors()`, nginx
`add_header` lines answering the preflight and the actual response the way a browser accepts).

`corsproxy.judge.browser` attaches both to every verdict that blocks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from corsproxy.judge.fetch_headers import ACAC, ACAH, ACAM, ACAO
from corsproxy.judge.fetch_request import normalize_method
from corsproxy.policy.cors import SAFELISTED_METHODS


@dataclass(frozen=True, slots=True)
class Fix:
    """One thing the server must send: a header and its exact value, or (header None) a status."""

    header: str | None
    value: str

    def __str__(self) -> str:
        return f"{self.header}: {self.value}" if self.header else f"status {self.value}"


@dataclass(frozen=True, slots=True)
class Snippets:
    """Configuration that would make a server send the fixes."""

    corsproxy_yaml: str
    express: str
    nginx: str


def snippets(origin: str, credentials: bool, method: str, unsafe_names: Sequence[str],
             upstream: str | None = None) -> Snippets:
    """corsproxy YAML, Express `cors()` and nginx `add_header` lines that answer this request
    (preflight and actual response) the way a browser accepts."""
    method = normalize_method(method)
    names = sorted({name.lower() for name in unsafe_names})
    extra_method = method not in SAFELISTED_METHODS
    return Snippets(_yaml(origin, credentials, method, names, upstream),
                    _express(origin, credentials, method, names, extra_method),
                    _nginx(origin, credentials, method, names, extra_method))


_DEFAULT_YAML_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _yaml(origin: str, credentials: bool, method: str, names: list[str], upstream: str | None) -> str:
    if origin == "null":
        return ("# corsproxy refuses the origin 'null' (sandboxed iframes and file:// pages of every\n"
                "# site share it): serve the page from an http(s) origin and allow that origin.")
    lines = ["cors:", f"  allow_origins: [{origin}]"]
    if method not in _DEFAULT_YAML_METHODS and method not in SAFELISTED_METHODS:
        lines.append(f"  allow_methods: [{', '.join((*_DEFAULT_YAML_METHODS, method))}]")
    if names:
        lines.append(f"  allow_headers: [{', '.join(names)}]")
    if credentials:
        lines.append("  allow_credentials: true")
    lines += ["routes:", "  - prefix: /", f"    upstream: {upstream or 'http://127.0.0.1:9000'}",
              "# then point the page at the proxy (http://localhost:8080, the page's own host name)",
              "# instead of the server"]
    return "\n".join(lines)


def _express(origin: str, credentials: bool, method: str, names: list[str], extra_method: bool) -> str:
    options = [f"  origin: {json.dumps(origin)},"]
    if extra_method:
        options.append(f"  methods: {json.dumps(['GET', 'HEAD', 'POST', method])},")
    if names:
        options.append(f"  allowedHeaders: {json.dumps(names)},")
    if credentials:
        options.append("  credentials: true,")
    return "\n".join(['const cors = require("cors");', "app.use(cors({", *options, "}));"])


def _nginx(origin: str, credentials: bool, method: str, names: list[str], extra_method: bool) -> str:
    common = [f'add_header {ACAO} "{origin}" always;']
    if credentials:
        common.append(f'add_header {ACAC} "true" always;')
    common.append('add_header Vary "Origin" always;')
    preflight = list(common)
    methods = ("GET", "HEAD", "POST", method) if extra_method else ("GET", "HEAD", "POST")
    preflight.append(f'add_header {ACAM} "{", ".join(methods)}" always;')
    if names:
        preflight.append(f'add_header {ACAH} "{", ".join(names)}" always;')
    preflight.append('add_header Access-Control-Max-Age "600" always;')
    return "\n".join([
        "location / {",
        "    if ($request_method = OPTIONS) {",
        *(f"        {line}" for line in preflight),
        "        return 204;",
        "    }",
        *(f"    {line}" for line in common),
        "    # proxy_pass ... as before",
        "}",
    ])
