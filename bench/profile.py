"""Where a request's CPU time goes inside corsproxy, in microseconds per request (py-spy).

    python bench/profile.py                    # small GET and preflight, default log level
    python bench/profile.py --seconds 20 --top 30 --flags --log-level warning

corsproxy runs on core 0 at the given flags, wrk loads it from core 1 (50 keep-alive
connections) while py-spy samples it (`pip install py-spy`). The CPU time corsproxy used,
divided by the requests it answered, is the cost of one request; each function's share of the
samples splits that cost. Inclusive: the function and all it calls; self: the function's own
lines. Sampling has its own overhead and noise: read the figures as proportions.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstats  # noqa: E402
import run  # noqa: E402
import upstreams  # noqa: E402

SCENARIOS = {
    "small GET": ("GET", {"Origin": run.ORIGIN}),
    "preflight": ("OPTIONS", {"Origin": run.ORIGIN, "Access-Control-Request-Method": "PUT"}),
}


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("bench/profile.py needs py-spy: pip install py-spy")
    return found


def profile(pid: int, url: str, method: str, headers: dict, seconds: int, out: Path) -> tuple[Counter, float]:
    """Folded stacks -> samples, and the microseconds of CPU one request cost."""
    recorder = subprocess.Popen(pinned_load([py_spy(), "record", "--pid", str(pid), "--rate", "500", "--format", "raw",
                                             "--duration", str(seconds + 1), "--output", str(out), "--nonblocking"]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        before = procstats.cpu_seconds([pid])
        result = run.wrk(url, run.Plan(seconds, 1, 50, 1, 1), headers, method)
        cpu = procstats.cpu_seconds([pid]) - before
    finally:
        recorder.wait(timeout=seconds + 60)
    stacks: Counter = Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks[stack] += int(count)
    return stacks, cpu / result["requests"] * 1e6


def pinned_load(argv: list[str]) -> list[str]:
    return run.pinned(run.LOAD_CORE, argv)


def frame_name(frame: str) -> str:
    """`handle (corsproxy/server/app.py:96)` -> `handle (server/app.py)`: a function, not a line."""
    name, _, where = frame.partition(" (")
    path = where.split(":")[0]
    for marker in ("site-packages/", "corsproxy/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def table(stacks: Counter, per_request_us: float, top: int) -> str:
    total = sum(stacks.values())
    inclusive: Counter = Counter()
    own: Counter = Counter()
    for stack, count in stacks.items():
        frames = [frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        for name in set(frames):
            inclusive[name] += count
        if frames:
            own[frames[-1]] += count
    lines = [f"  one request: {per_request_us:.1f} µs of CPU; {total} samples"]
    for title, counts in (("inclusive", inclusive), ("self", own)):
        lines.append(f"  {title:<9} µs/request  share  function")
        for name, count in counts.most_common(top):
            lines.append(f"  {'':<9} {count / total * per_request_us:>10.1f}  {count / total:>5.0%}  {name}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--flags", nargs=argparse.REMAINDER, default=[], help="more `corsproxy serve` flags")
    args = parser.parse_args()
    run.ensure_tools()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="corsproxy-profile-")))
        lab = run.Lab(workdir, stack)
        data = upstreams.write_static(workdir, 1)
        upstream_port, port = run.free_port(), run.free_port()
        lab.nginx("upstream", upstreams.nginx_upstream_conf(workdir, data, upstream_port), upstream_port,
                  run.LOAD_CORE)
        config = run.corsproxy_config(workdir, upstream_port, run.free_port())
        proxy = lab.start(run.pinned(run.PROXY_CORE, [sys.executable, "-m", "corsproxy", "serve", "-c", str(config),
                                                      "--port", str(port), *args.flags]), port, "corsproxy")
        for name, (method, headers) in SCENARIOS.items():
            stacks, per_request = profile(proxy.pid, f"http://127.0.0.1:{port}/api/small", method, headers,
                                          args.seconds, workdir / f"{method}.txt")
            print(f"{name}:")
            print(table(stacks, per_request, args.top), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
