"""corsproxy against the ceiling (a direct call) and the practical limit (nginx as a CORS proxy).

    python bench/run.py                 # the full run: ~3 minutes, prints the ratio table
    python bench/run.py --smoke         # a few seconds: keeps this script working in CI
    python bench/run.py --workers 2     # corsproxy with two worker processes (SO_REUSEPORT)

It installs what it needs (Debian's nginx, wrk and curl, with apt-get, when missing), starts an
nginx upstream on 127.0.0.1, and measures each contender in turn, scenario by scenario
(interleaved, so a noisy minute hurts all columns alike). The proxy under test runs on core 0;
the load generator and the upstream share core 1 (`taskset`). Every process is stopped by its
pid. Results: a table on stdout (each figure also as a ratio to the nginx proxy) and JSON in
bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstats  # noqa: E402  (bench/procstats.py)
import upstreams  # noqa: E402  (bench/upstreams.py)

ORIGIN = "http://localhost:3000"
PROXY_CORE, LOAD_CORE = "0", "1"
TOOLS = {"nginx": "nginx", "wrk": "wrk", "curl": "curl", "taskset": "util-linux"}


@dataclass(frozen=True)
class Plan:
    seconds: int          # each wrk run
    rounds: int           # small GET / preflight: interleaved rounds, the median is reported
    connections: int      # small GET / preflight concurrency
    transfer_mib: int     # download / upload size
    idle_connections: int


FULL = Plan(seconds=5, rounds=3, connections=50, transfer_mib=100, idle_connections=1000)
SMOKE = Plan(seconds=1, rounds=1, connections=10, transfer_mib=8, idle_connections=50)


def ensure_tools() -> None:
    missing = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"bench needs {', '.join(missing)}: apt-get install -y {' '.join(missing)}")
    print(f"installing {', '.join(missing)} with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv]


def wait_listening(port: int, process: subprocess.Popen, what: str, seconds: float = 6) -> None:
    for _ in range(int(seconds / 0.02)):
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{what} did not listen on {port} within {seconds:g} s")


@dataclass
class Contender:
    name: str
    url: str                       # base URL of a proxy; paths below are /api/...
    pids: Callable[[], list[int]]  # processes whose CPU and RSS count (empty: nothing to measure)
    # how a proxy path becomes this contender's URL (None: the proxy's URL + the path)
    route: Callable[[str], str] | None = None
    only: frozenset[str] | None = None     # the scenarios this contender is measured in (None: all)

    def target(self, path: str) -> str:
        return self.url + path if self.route is None else self.route(path)


def upstream_of(path: str, upstream: dict[str, str]) -> str:
    """A proxy path (/api/small, /api/aux/sse) as the upstream's own URL."""
    prefix = next(p for p in upstream if path.startswith(p + "/"))
    return upstream[prefix] + path.removeprefix(prefix)


class Lab:
    """The processes of one run; everything is stopped by pid when the run ends."""

    def __init__(self, workdir: Path, stack: ExitStack) -> None:
        self.workdir, self.stack = workdir, stack

    def start(self, argv: list[str], port: int, what: str, seconds: float = 6, **kwargs) -> subprocess.Popen:
        log = open(self.workdir / f"{what}.log", "w")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **kwargs)
        self.stack.callback(self._stop, process, log)
        wait_listening(port, process, what, seconds)
        return process

    @staticmethod
    def _stop(process: subprocess.Popen, log) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()

    def nginx(self, name: str, conf: str, port: int, core: str) -> subprocess.Popen:
        path = self.workdir / f"{name}.conf"
        path.write_text(conf)
        return self.start(pinned(core, ["nginx", "-p", str(self.workdir), "-c", str(path)]), port, name)


def corsproxy_config(workdir: Path, upstream_port: int, aux_port: int, inspector_size: int | None = None) -> Path:
    """The bench's config; `inspector_size` None leaves the server block out (the default size,
    and a config an older corsproxy, one without the key, also loads)."""
    path = workdir / f"corsproxy-{inspector_size}.yaml"
    server = "" if inspector_size is None else f"server:\n  inspector_size: {inspector_size}\n"
    path.write_text(server + f"""\
cors:
  allow_origins: [{ORIGIN}]
  allow_headers: [Content-Type, Authorization]
routes:
  - prefix: /api/aux
    upstream: http://127.0.0.1:{aux_port}
  - prefix: /api
    upstream: http://127.0.0.1:{upstream_port}
""")
    return path


REQUESTS_ONLY = frozenset({"small_get", "preflight"})
NODE_DIR = Path(__file__).with_name("node")


def cors_anywhere(lab: Lab, upstream: dict[str, str]) -> Contender | None:
    """cors-anywhere (npm), installed from bench/node/package-lock.json into bench/node/node_modules
    on first use; None, said on stdout, when node, npm or the registry is not there."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        print("  cors-anywhere left out: node and npm are not installed", flush=True)
        return None
    if not (NODE_DIR / "node_modules" / "cors-anywhere").is_dir():
        print("  installing cors-anywhere with npm ci (bench/node/package-lock.json)", flush=True)
        try:
            done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel", "error", "--fetch-retries", "1"],
                                  cwd=NODE_DIR, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            done = None
        if done is None or done.returncode != 0:
            why = "timed out" if done is None else _npm_error(done.stderr)
            print(f"  cors-anywhere left out: npm could not install it ({why})", flush=True)
            return None
    port = free_port()
    process = lab.start(pinned(PROXY_CORE, ["node", str(NODE_DIR / "cors-anywhere.js"), str(port), ORIGIN]),
                        port, "cors-anywhere")
    base = f"http://127.0.0.1:{port}/"
    return Contender("cors-anywhere", base, lambda: [process.pid], lambda path: base + upstream_of(path, upstream),
                     only=REQUESTS_ONLY)


def _npm_error(stderr: str) -> str:
    lines = [line.removeprefix("npm error").strip() for line in stderr.splitlines()]
    return next((line for line in lines if "Error" in line), next((line for line in lines if line), "failed"))


def start_lab(lab: Lab, plan: Plan, workers: int, compare: list[Path]) -> tuple[list[Contender], dict]:
    data = upstreams.write_static(lab.workdir, plan.transfer_mib)
    upstream_port, nginx_proxy_port, corsproxy_port, quiet_port, aux_port, naive_port, bare_port = (
        free_port() for _ in range(7))
    lab.nginx("upstream", upstreams.nginx_upstream_conf(lab.workdir, data, upstream_port), upstream_port, LOAD_CORE)
    lab.start(pinned(LOAD_CORE, [sys.executable, str(Path(__file__).with_name("upstreams.py")), "aux",
                                 str(aux_port)]), aux_port, "aux-upstream")
    nginx_proxy = lab.nginx("nginx-proxy", upstreams.nginx_cors_proxy_conf(
        lab.workdir, upstream_port, aux_port, nginx_proxy_port, ORIGIN), nginx_proxy_port, PROXY_CORE)
    naive = lab.start(pinned(PROXY_CORE, [sys.executable, str(Path(__file__).with_name("upstreams.py")), "naive",
                                          str(naive_port), f"http://127.0.0.1:{upstream_port}"]), naive_port, "naive")
    cores = PROXY_CORE if workers == 1 else f"{PROXY_CORE},{LOAD_CORE}"

    def corsproxy(port: int, what: str, *flags: str, inspector_size: int | None = None,
                  checkout: Path | None = None) -> subprocess.Popen:
        config = corsproxy_config(lab.workdir, upstream_port, aux_port, inspector_size)
        argv = [sys.executable, "-m", "corsproxy", "serve", "-c", str(config), "--port", str(port),
                "--workers", str(workers), *flags]
        # `python -m` imports from its working directory first: another checkout's corsproxy.
        return lab.start(pinned(cores, argv), port, what, cwd=checkout)

    # At the default log level, as users run it (one console line per request, to a file here).
    default = corsproxy(corsproxy_port, "corsproxy")
    quiet = corsproxy(quiet_port, "corsproxy-no-log", "--log-level", "warning")
    bare = corsproxy(bare_port, "corsproxy-no-inspector", inspector_size=0)
    upstream = {"/api/aux": f"http://127.0.0.1:{aux_port}", "/api": f"http://127.0.0.1:{upstream_port}"}
    name = f"corsproxy{'' if workers == 1 else f' x{workers}'}"
    contenders = [
        Contender("direct", "", lambda: [], lambda path: upstream_of(path, upstream)),
        Contender("nginx-proxy", f"http://127.0.0.1:{nginx_proxy_port}", lambda: [nginx_proxy.pid]),
        Contender(name, f"http://127.0.0.1:{corsproxy_port}", lambda: procstats.process_tree(default.pid)),
        # The same without its request log line: what the line costs.
        Contender(f"{name} no-log", f"http://127.0.0.1:{quiet_port}", lambda: procstats.process_tree(quiet.pid),
                  only=REQUESTS_ONLY),
        # The same with the inspector off: what keeping a record of every request costs.
        Contender("no-inspector", f"http://127.0.0.1:{bare_port}", lambda: procstats.process_tree(bare.pid),
                  only=REQUESTS_ONLY),
        # The least an aiohttp proxy does (no gates, no rewriting, no log line).
        Contender("naive-aiohttp", f"http://127.0.0.1:{naive_port}", lambda: [naive.pid], only=REQUESTS_ONLY),
    ]
    for checkout in compare:  # another version of corsproxy, at its default log level
        port = free_port()
        other = corsproxy(port, f"corsproxy-{checkout.name}", checkout=checkout)
        contenders.append(Contender(f"corsproxy@{checkout.name}", f"http://127.0.0.1:{port}",
                                    lambda other=other: procstats.process_tree(other.pid), only=REQUESTS_ONLY))
    node = cors_anywhere(lab, upstream)
    if node is not None:
        contenders.append(node)
    # Idle RSS is read before any load: after it, the allocator keeps some of what it used.
    startup = {c.name: round(procstats.rss_mib(c.pids()), 1) for c in contenders if c.pids()}
    return contenders, {"transfer_file": data["big"], "startup_rss": startup, "corsproxy": name}


def wrk(url: str, plan: Plan, headers: dict[str, str], method: str = "GET") -> dict:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(f'wrk.method = "{method}"\n')
    argv = ["wrk", "-t1", f"-c{plan.connections}", f"-d{plan.seconds}s", "--latency", "-s", str(script)]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run(pinned(LOAD_CORE, [*argv, url]), capture_output=True, text=True,
                         timeout=plan.seconds + 60, check=True).stdout
    script.unlink()
    return procstats.parse_wrk(out)


def measure_requests(contender: Contender, plan: Plan, path: str, headers: dict, method: str = "GET") -> dict:
    pids = contender.pids()
    before = procstats.cpu_seconds(pids)
    result = wrk(contender.target(path), plan, headers, method)
    cpu = procstats.cpu_seconds(pids) - before
    if cpu > 0:
        result["req_per_cpu_s"] = round(result["requests"] / cpu)
    return result


def measure_transfer(contender: Contender, plan: Plan, direction: str, extra: dict) -> dict:
    pids = contender.pids()
    procstats.reset_peak_rss(pids)
    if direction == "download":
        url = contender.target("/api/big")
        argv = ["curl", "-s", "-o", "/dev/null", "-H", f"Origin: {ORIGIN}", "-w", "%{speed_download} %{http_code}", url]
    else:
        url = contender.target("/api/aux/upload")
        argv = ["curl", "-s", "-o", "/dev/null", "-H", f"Origin: {ORIGIN}", "-H", "Expect:",
                "-T", str(extra["transfer_file"]), "-X", "POST", "-w", "%{speed_upload} %{http_code}", url]
    out = subprocess.run(pinned(LOAD_CORE, argv), capture_output=True, text=True, timeout=600, check=True).stdout
    speed, code = out.split()
    if not code.startswith("2"):
        raise SystemExit(f"{contender.name} {direction}: HTTP {code}")
    result = {"MB_per_s": round(float(speed) / 1e6, 1)}
    if pids:
        result["peak_rss_MiB"] = round(procstats.peak_rss_mib(pids), 1)
    return result


def measure_idle(contender: Contender, plan: Plan, extra: dict) -> dict:
    pids = contender.pids()
    if not pids:
        return {}
    after_load = procstats.rss_mib(pids)
    port = int(contender.url.rsplit(":", 1)[1])
    held, loaded = asyncio.run(upstreams.hold_connections(
        port, plan.idle_connections, ORIGIN, lambda: procstats.rss_mib(pids)))
    return {"idle_rss_MiB": extra["startup_rss"][contender.name], "rss_after_load_MiB": round(after_load, 1),
            "KiB_per_idle_conn": round((loaded - after_load) * 1024 / held, 2)}


def measure_sse(contender: Contender) -> dict:
    return {"sse_first_event_ms": asyncio.run(upstreams.sse_first_event_ms(contender.target("/api/aux/sse"), ORIGIN))}


def run(plan: Plan, workers: int, compare: list[Path]) -> tuple[dict, str]:
    ensure_tools()
    results: dict[str, dict] = {}
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="corsproxy-bench-")))
        contenders, extra = start_lab(Lab(workdir, stack), plan, workers, compare)
        for c in contenders:
            results[c.name] = {}
        scenarios = [
            ("small_get", lambda c: measure_requests(c, plan, "/api/small", {"Origin": ORIGIN})),
            ("preflight", lambda c: measure_requests(
                c, plan, "/api/small", {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}, "OPTIONS")),
            ("download", lambda c: measure_transfer(c, plan, "download", extra)),
            ("upload", lambda c: measure_transfer(c, plan, "upload", extra)),
            ("sse", measure_sse),
            ("idle", lambda c: measure_idle(c, plan, extra)),
        ]
        for scenario, measure in scenarios:
            rounds = plan.rounds if scenario in REQUESTS_ONLY else 1
            runs: dict[str, list[dict]] = {c.name: [] for c in contenders}
            for number in range(rounds):
                for contender in contenders:
                    if scenario == "preflight" and contender.name == "direct":
                        continue  # the upstream knows nothing of CORS; there is no ceiling to measure
                    if contender.only is not None and scenario not in contender.only:
                        continue
                    print(f"  {scenario:<10} {contender.name}" + (f" ({number + 1}/{rounds})" if rounds > 1 else ""),
                          flush=True)
                    runs[contender.name].append(measure(contender))
            for name, measured in runs.items():
                if measured:
                    results[name][scenario] = procstats.median_run(measured)
    return results, extra["corsproxy"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="seconds, not minutes: for CI")
    parser.add_argument("--workers", type=int, default=1, help="corsproxy worker processes (default 1)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results"))
    parser.add_argument("--compare", type=Path, action="append", default=[], metavar="CHECKOUT",
                        help="also measure the corsproxy of another checkout (small GET, preflight); repeatable")
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    results, corsproxy = run(plan, args.workers, [path.resolve() for path in args.compare])
    print(procstats.ratio_table(results, baseline="nginx-proxy"))
    print()
    print(procstats.target_table(results, corsproxy, baseline="nginx-proxy"))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = args.out / f"bench-{stamp}{'-smoke' if args.smoke else ''}.json"
    path.write_text(json.dumps({"plan": plan.__dict__, "workers": args.workers, "results": results,
                                "targets": procstats.targets(results, corsproxy, "nginx-proxy")}, indent=2))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
