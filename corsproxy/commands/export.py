"""The `export` command's I/O: load the config, export it for one target, write the text, and
print each deviation as a `warning:` line on stderr (CONTRACT "corsproxy export")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from corsproxy import config
from corsproxy.errors import ConfigError, ConfigProblem
from corsproxy.export import TARGETS, export
from corsproxy.policy.origins import normalise_origin, parse_host


def add_arguments(parser: argparse.ArgumentParser, add_config_flag) -> None:
    parser.add_argument("--to", required=True, choices=TARGETS, help="the server that should own the policy")
    add_config_flag(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    parser.add_argument("--upstream", metavar="ORIGIN", dest="app_upstream",
                        help="express/starlette: export the routes of this upstream (scheme://host[:port])")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="nginx/caddy: the address to listen on (default: the config's server.host:port)")


def run(args: argparse.Namespace, path: Path) -> int:
    listen = _listen(args.listen) if args.listen else None
    upstream = _upstream(args.app_upstream) if args.app_upstream else None
    exported = export(config.load(path), args.to, listen=listen, upstream=upstream)
    for deviation in exported.deviations:
        print(f"warning: {args.to} differs: {deviation}", file=sys.stderr)
    if args.output:
        Path(args.output).write_text(exported.text)
    else:
        sys.stdout.write(exported.text)
    return 0


def _listen(text: str) -> tuple[str, int]:
    try:
        host, port = parse_host(text)
    except ValueError as exc:
        raise _usage("--listen", f"{text!r}: {exc}", "write HOST:PORT, e.g. 127.0.0.1:8080") from None
    if port is None:
        raise _usage("--listen", f"{text!r} has no port", "write HOST:PORT, e.g. 127.0.0.1:8080")
    return host, port


def _upstream(text: str) -> str:
    try:
        return normalise_origin(text)
    except ValueError as exc:
        raise _usage("--upstream", f"{text!r}: {exc}", "write the upstream's origin, e.g. http://127.0.0.1:9000") from None


def _usage(flag: str, message: str, hint: str) -> ConfigError:
    return ConfigError([ConfigProblem(flag, None, "", message, hint)])
