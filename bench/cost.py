"""CPU instructions per request inside corsproxy, counted by valgrind's callgrind.

    python bench/cost.py                     # preflight, small GET: default log, JSON log, no log line
    python bench/cost.py --requests 200      # fewer requests (each costs ~0.1 s under valgrind)

Wall-clock figures on a shared machine move with everyone else's load; an instruction count
does not. corsproxy runs under callgrind with instrumentation off until it is ready, then, per
scenario: 50 warm-up requests, counters zeroed, N requests on one keep-alive connection, a dump;
the dump's total divided by N is the figure. The upstream is bench's nginx. Every process is
stopped by its pid. Instructions are not time (a cache miss costs more than an add), but two
counts of the same code path compare honestly, which is what a before/after needs.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (bench/run.py: the lab, the tools, the config)
import upstreams  # noqa: E402

WARM_UP = 50
VARIANTS = {
    "default (console line)": (),
    "--log-format json": ("--log-format", "json"),
    "--log-level warning (no line)": ("--log-level", "warning"),
}
SCENARIOS = {
    "preflight": ("OPTIONS", {"Origin": run.ORIGIN, "Access-Control-Request-Method": "PUT"}),
    "small GET": ("GET", {"Origin": run.ORIGIN}),
}


def callgrind(pid: int, command: str, *args: str) -> None:
    subprocess.run(["callgrind_control", command, *args, str(pid)], check=True, capture_output=True, timeout=60)


def send(port: int, method: str, headers: dict[str, str], count: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(count):
            connection.request(method, "/api/small", headers={"Host": "localhost", **headers})
            response = connection.getresponse()
            response.read()
            if response.status >= 300:
                raise SystemExit(f"{method} answered {response.status}")
    finally:
        connection.close()


def instructions(lab: run.Lab, config: Path, flags: tuple[str, ...], requests: int) -> dict[str, float]:
    port = run.free_port()
    out = lab.workdir / f"callgrind.{port}"
    process = lab.start(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                         sys.executable, "-m", "corsproxy", "serve", "-c", str(config), "--port", str(port), *flags],
                        port, f"corsproxy-callgrind-{port}", seconds=120)  # valgrind starts slowly
    time.sleep(1)  # the ready line comes before the last banner lines are written
    callgrind(process.pid, "-i", "on")
    counts = {}
    for name, (method, headers) in SCENARIOS.items():
        send(port, method, headers, WARM_UP)
        callgrind(process.pid, "-z")
        send(port, method, headers, requests)
        callgrind(process.pid, "-d")
        newest = max(lab.workdir.glob(f"callgrind.{port}.*"), key=lambda p: int(p.suffix[1:]))
        summary = next(line for line in newest.read_text().splitlines() if line.startswith("summary:"))
        counts[name] = int(summary.split()[1]) / requests
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500, help="requests counted per scenario (default 500)")
    args = parser.parse_args()
    run.ensure_tools()
    if shutil.which("callgrind_control") is None:
        raise SystemExit("bench/cost.py needs valgrind: apt-get install -y valgrind")
    rows = {}
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="corsproxy-cost-")))
        lab = run.Lab(workdir, stack)
        data = upstreams.write_static(workdir, 1)
        upstream_port = run.free_port()
        lab.nginx("upstream", upstreams.nginx_upstream_conf(workdir, data, upstream_port), upstream_port,
                  run.LOAD_CORE)
        config = run.corsproxy_config(workdir, upstream_port, run.free_port())
        for variant, flags in VARIANTS.items():
            print(f"  {variant}", flush=True)
            rows[variant] = instructions(lab, config, flags, args.requests)
    width = max(map(len, rows))
    print(f"{'thousand instructions per request':<{width}}  " + "  ".join(f"{s:>10}" for s in SCENARIOS))
    for variant, counts in rows.items():
        print(f"{variant:<{width}}  " + "  ".join(f"{counts[s] / 1000:>10.1f}" for s in SCENARIOS))
    quiet = rows["--log-level warning (no line)"]
    for variant in ("default (console line)", "--log-format json"):
        share = "  ".join(f"{s} {1 - quiet[s] / rows[variant][s]:.0%}" for s in SCENARIOS)
        print(f"the log line's share, {variant}: {share}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
