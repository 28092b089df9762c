"""The command line: `main(argv) -> exit code`. A user's mistake is a message, never a traceback.

Exit codes (CONTRACT): 0 ok; 2 bad config or bad arguments; 1 any other failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from corsproxy import __version__, config
from corsproxy.errors import ConfigError
from corsproxy.model import Config, ServerSettings
from corsproxy.policy import origins
from corsproxy.server import logs

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SUBCOMMANDS = ("serve", "check", "health", "probe", "demo", "browser", "chrome-flags", "ca", "export")
# `--workers auto` stops here: past a few cores a dev proxy gains nothing but memory (~40 MiB each).
MAX_AUTO_WORKERS = 8


class UsageError(Exception):
    """A bad argument or environment value; printed and exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # `corsproxy` alone, or with serve's flags only, is `corsproxy serve`.
    if not args_list or (args_list[0] not in SUBCOMMANDS and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "serve")
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:  # argparse has printed its message already
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        return args.run(args)
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_USAGE
    except UsageError as exc:
        print(logs.error_line(str(exc)), file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corsproxy", description="A local CORS dev proxy.")
    parser.add_argument("--version", action="version", version=f"corsproxy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the proxy (the default command)")
    _add_config_flag(serve)
    serve.add_argument("--host", help="address to bind (default: config, $CORSPROXY_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind; 0 picks a free one (default: config, $CORSPROXY_PORT, 8080)")
    serve.add_argument("--log-format", choices=("console", "json"), help="default: $CORSPROXY_LOG_FORMAT, console")
    serve.add_argument("--log-level", choices=logs.LEVELS, help="default: $CORSPROXY_LOG_LEVEL, info")
    serve.add_argument("--workers", default="1", metavar="N|auto",
                       help="worker processes sharing the port with SO_REUSEPORT, one event loop each; auto: one "
                            f"per core this process may run on, at most {MAX_AUTO_WORKERS} (default 1: the "
                            "inspector shows one process's requests)")
    serve.add_argument("--grace", type=float, default=None,
                       help="seconds in-flight requests get to finish on SIGTERM/SIGINT (default 10)")
    quick = serve.add_argument_group("quick start without YAML")
    quick.add_argument("--upstream", metavar="URL", help="forward PREFIX to this upstream instead of reading a config")
    quick.add_argument("--prefix", default="/api", help="route prefix for --upstream (default /api)")
    quick.add_argument("--allow-origin", action="append", metavar="ORIGIN",
                       help="origin allowed to read responses; repeat for more "
                            "(default http://localhost:3000 and http://localhost:5173)")
    quick.add_argument("--credentials", action="store_true", help="send Access-Control-Allow-Credentials: true")
    quick.add_argument("--allow-header", action="append", metavar="NAME",
                       help="request header a page may send; repeat for more (default: any, "
                            "the origins stay locked)")
    quick.add_argument("--allow-method", action="append", metavar="METHOD",
                       help="method a page may use; repeat for more (default GET, HEAD, POST, PUT, PATCH, DELETE)")
    quick.add_argument("--expose-header", action="append", metavar="NAME",
                       help="response header a page's script may read; repeat for more (default none)")
    serve.set_defaults(run=_run_serve)

    check = sub.add_parser("check", help="validate the config and print the route table")
    _add_config_flag(check)
    check.set_defaults(run=_run_check)

    health = sub.add_parser("health", help="exit 0 when the proxy on this machine answers /__corsproxy/health")
    _add_config_flag(health)
    health.add_argument("--port", type=int, help="default: found as serve finds it ($CORSPROXY_PORT, the config, 8080)")
    health.add_argument("--url", help="default: the address serve would listen on, found as serve finds it "
                                      "(-c/$CORSPROXY_CONFIG/./corsproxy.yaml/./config/, then $CORSPROXY_HOST/PORT)")
    health.add_argument("--timeout", type=float, default=3.0)
    health.set_defaults(run=_run_health)

    # probe and demo own their arguments, each in its own module.
    from corsproxy.commands import demo, probe
    from corsproxy.commands import export as export_command
    probe.add_arguments(sub.add_parser("probe", help="replay a request as a browser would and say whether CORS lets the page read it"))
    demo.add_arguments(sub.add_parser("demo", help="start a demo API, the proxy and a page that shows the CORS problem and the fix"))
    _add_intercept_commands(sub)
    export = sub.add_parser("export", help="write the policy as nginx, Caddy, Express or Starlette configuration")
    export_command.add_arguments(export, _add_config_flag)
    export.set_defaults(run=_run_export)
    return parser


def _add_intercept_commands(sub) -> None:
    """browser, chrome-flags and ca: each reads the config, so cli loads it for them."""
    from corsproxy.commands import browser, ca

    for name, help_text, add, run in (
        ("browser", "run the proxy and a throwaway Chromium profile that reaches the intercepted hosts through it",
         browser.add_browser_arguments, browser.run_browser),
        ("chrome-flags", "print the Chromium flags for a running intercept listener",
         browser.add_flags_arguments, browser.run_flags),
        ("ca", "manage the persistent intercept CA ($XDG_DATA_HOME/corsproxy/)", ca.add_arguments, ca.run),
    ):
        parser = sub.add_parser(name, help=help_text)
        _add_config_flag(parser)
        add(parser)
        parser.set_defaults(run=_with_config(run))


def _with_config(run):
    """A command run with the loaded config and its path (None when none is found: `ca show`,
    `ca remove` and `chrome-flags --url` work without one)."""
    def wrapper(args: argparse.Namespace) -> int:
        try:
            path = _config_path(args)
        except UsageError:
            if args.config:
                raise
            path = None
        return run(args, _load(args, path) if path else None, path)
    return wrapper


def _add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="PATH",
                        help="a YAML file or a directory of them (default: $CORSPROXY_CONFIG, ./corsproxy.yaml, ./config/)")


def resolve_config_path(flag: str | None, env: Mapping[str, str], cwd: Path) -> Path:
    """-c wins, then $CORSPROXY_CONFIG, then ./corsproxy.yaml, then ./config/."""
    if flag:
        return Path(flag)
    if env.get("CORSPROXY_CONFIG"):
        return Path(env["CORSPROXY_CONFIG"])
    for candidate in (Path("corsproxy.yaml"), Path("config")):
        if (cwd / candidate).exists():
            return candidate
    raise UsageError("no config found: pass -c PATH, set $CORSPROXY_CONFIG, create ./corsproxy.yaml or ./config/, "
                     "or start without YAML: corsproxy serve --upstream http://127.0.0.1:9000")


def resolve_listen(flag_host: str | None, flag_port: int | None, env: Mapping[str, str],
                   server: ServerSettings) -> ServerSettings:
    """Flags win over $CORSPROXY_HOST/$CORSPROXY_PORT, which win over the file."""
    host = flag_host or env.get("CORSPROXY_HOST") or server.host
    port = flag_port if flag_port is not None else _env_port(env) if env.get("CORSPROXY_PORT") else server.port
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port} is out of range (0-65535)")
    return server.bound_to(host, port)


def listen_overrides(flag_host: str | None, flag_port: int | None,
                     env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Which of server.host/port a flag or variable overrides, and with what (for the reload log)."""
    found = []
    for key, flag, variable in (("host", flag_host, "CORSPROXY_HOST"), ("port", flag_port, "CORSPROXY_PORT")):
        if flag is not None:
            found.append((key, f"--{key} {flag}"))
        elif env.get(variable):
            found.append((key, f"${variable}={env[variable]}"))
    return tuple(found)


def _env_port(env: Mapping[str, str]) -> int:
    try:
        return int(env["CORSPROXY_PORT"])
    except ValueError:
        raise UsageError(f"$CORSPROXY_PORT is {env['CORSPROXY_PORT']!r}, not a port number") from None


def _config_path(args: argparse.Namespace) -> Path | None:
    """The YAML to read, or None for `serve --upstream` (no YAML)."""
    if getattr(args, "upstream", None):
        return None
    path = resolve_config_path(args.config, os.environ, Path.cwd())
    if not path.exists():
        raise UsageError(f"config {str(path)!r} does not exist")
    return path


def _load(args: argparse.Namespace, path: Path | None) -> Config:
    if path is None:
        return config.from_flags(
            args.upstream, prefix=args.prefix,
            origins=tuple(args.allow_origin or config.QUICK_ORIGINS),
            credentials=args.credentials,
            headers=tuple(args.allow_header or config.QUICK_HEADERS),
            methods=tuple(args.allow_method) if args.allow_method else None,
            expose=tuple(args.expose_header or ()),
        )
    return config.load(path)


def _run_serve(args: argparse.Namespace) -> int:
    from corsproxy.server import (
        serve,  # imports aiohttp: keep `check` and `--help` fast
    )
    from corsproxy.server.reload import ConfigSource

    env = os.environ
    logs.configure(args.log_format or env.get("CORSPROXY_LOG_FORMAT", "console"),
                   args.log_level or env.get("CORSPROXY_LOG_LEVEL", "info"))
    path = _config_path(args)

    def resolve(loaded: Config) -> Config:
        return dataclasses.replace(loaded, server=resolve_listen(args.host, args.port, env, loaded.server))

    if path is not None:
        source, first = ConfigSource.at(path, lambda: _load(args, path), resolve,
                                        listen_overrides(args.host, args.port, env)).start()
    else:
        source, first = None, resolve(_load(args, path))
    grace = args.grace if args.grace is not None else serve.DEFAULT_GRACE
    # auto: one per core, but one process when it owns the intercept listener and its CA.
    count = worker_count(args.workers, len(os.sched_getaffinity(0)) if first.intercept is None else 1)
    if count > 1:
        if first.intercept is not None:
            raise UsageError("--workers cannot be used with an intercept block: one process owns the "
                             "intercept listener and its CA")
        from corsproxy.server import workers
        return workers.run(first, workers=count, grace=grace, source=source)
    return serve.run(first, grace=grace, source=source)


def worker_count(text: str, cores: int) -> int:
    """`--workers`: a whole number from 1, or `auto`: one per core, at most MAX_AUTO_WORKERS."""
    if text == "auto":
        return max(1, min(cores, MAX_AUTO_WORKERS))
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise UsageError(f"--workers must be a whole number from 1, or auto, not {text!r}")
    return int(text)


def _run_check(args: argparse.Namespace) -> int:
    loaded = _load(args, _config_path(args))
    rows = config.route_rows(loaded)
    print(format_route_table(rows))
    for row in rows:
        print(f"\n{format_policy(row)}")
    if loaded.intercept is not None:
        print(f"\n{format_intercept_table(loaded)}")
    for file, names in loaded.variables:
        print(f"variables: {file} reads {', '.join(f'${{{name}}}' for name in names)}")
    for warning in loaded.warnings:
        print(f"warning: {warning}")
    if loaded.intercept is not None:
        from corsproxy.commands.ca import store_warnings
        for warning in store_warnings(loaded):
            print(f"warning: {warning}")
    print(f"ok: {len(rows)} route(s) from {len(loaded.files)} file(s)")
    print(f"note: {origins.same_host_advice(loaded.server.port)}")
    return EXIT_OK


def _run_export(args: argparse.Namespace) -> int:
    from corsproxy.commands import export as export_command
    return export_command.run(args, _config_path(args))


def _run_health(args: argparse.Namespace) -> int:
    """The container HEALTHCHECK: stdlib only, so the image needs no curl."""
    import urllib.request

    url, host_header = _health_target(args)
    request = urllib.request.Request(url, headers={"Host": host_header})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            healthy = response.status == 200 and b'"ok"' in response.read(200)
    except OSError as exc:
        print(f"corsproxy health: {url}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"corsproxy health: {url}: {'ok' if healthy else 'unhealthy'}")
    return EXIT_OK if healthy else EXIT_FAILURE


# A wildcard bind is reached on the loopback address of its family.
_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def _health_target(args: argparse.Namespace) -> tuple[str, str]:
    """(URL, Host header) of the health endpoint of the proxy `serve` would start here: the same
    config lookup and the same flag > environment > file order for the address."""
    if args.url:
        return args.url, "localhost"
    server = ServerSettings()
    try:
        server = config.load(resolve_config_path(args.config, os.environ, Path.cwd())).server
    except (UsageError, ConfigError) as exc:
        # The proxy may still be serving its last good config; the port is then env or default.
        print(f"corsproxy health: no config to read the address from ({_first_line(exc)}); "
              "using $CORSPROXY_HOST/$CORSPROXY_PORT or the defaults", file=sys.stderr)
    server = resolve_listen(None, args.port, os.environ, server)
    host = _WILDCARD_TO_LOOPBACK.get(server.host, server.host)
    name = origins.page_host(host, server.port, server.allowed_hosts, server.allow_any_host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{server.port}/__corsproxy/health", f"{name}:{server.port}"


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ConfigError):
        return str(exc.problems[0]) if exc.problems else "invalid config"
    return str(exc)


def format_route_table(rows: list[dict]) -> str:
    return _table(rows, ("prefix", "upstream", "allow_origins", "allow_credentials", "source"))


def format_intercept_table(loaded: Config) -> str:
    """The intercepted hosts, one row per listed path, under the route table."""
    intercept = loaded.intercept
    rows = [{"intercept": f"{entry.host}:{entry.port}", "path": route.prefix,
             "allow_origins": config.policy_values(route.cors)["allow_origins"],
             "allow_credentials": route.cors.allow_credentials,
             "connect_to": ":".join(map(str, route.connect_to)) if route.connect_to else None,
             "source": str(entry.source)}
            for entry in intercept.hosts for route in entry.routes if route.applies_cors]
    head = (f"intercept listener {intercept.listen_host}:{intercept.listen_port}, CA {intercept.ca} "
            f"({intercept.source}); other paths of these hosts pass through untouched")
    return head + "\n" + _table(rows, ("intercept", "path", "allow_origins", "allow_credentials", "connect_to",
                                       "source"))


def _table(rows: list[dict], columns: tuple[str, ...]) -> str:
    table = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in table]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(lines)


def format_policy(row: dict) -> str:
    """A route's whole effective cors policy, one key a line, each with the file:line to change."""
    lines = [f"route {row['prefix']} -> {row['upstream']} ({row['source']}):"]
    width = max(len(key) for key in row["cors"])
    values = {key: _cell(item["value"]) for key, item in row["cors"].items()}
    value_width = max(len(value) for value in values.values())
    for key, item in row["cors"].items():
        lines.append(f"  {key.ljust(width)}  {values[key].ljust(value_width)}  {item['source']}")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _print_problems(exc: ConfigError) -> None:
    if logs.json_mode():  # serve --log-format json: one JSON object per problem
        for problem in exc.problems:
            print(logs.error_line(str(problem)), file=sys.stderr)
        return
    count = len(exc.problems)
    print(f"corsproxy: the config has {count} problem{'s' if count != 1 else ''}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
