"""Reading a process's CPU time and memory from /proc, wrk's output, and the ratio table."""

from __future__ import annotations

import os
import re

TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (the worker processes of `--workers N`)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])   # utime + stime
    return total / TICKS


def _status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    raise RuntimeError(f"{key} missing from /proc/{pid}/status")


def rss_mib(pids: list[int]) -> float:
    return sum(_status_kib(pid, "VmRSS:") for pid in pids) / 1024


def peak_rss_mib(pids: list[int]) -> float:
    return sum(_status_kib(pid, "VmHWM:") for pid in pids) / 1024


def reset_peak_rss(pids: list[int]) -> None:
    """Start VmHWM over from the current RSS (Linux: writing 5 to clear_refs)."""
    for pid in pids:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return round(float(number) * _UNITS[unit], 3)


def parse_wrk(out: str) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    result = {"req_per_s": round(rps), "requests": requests,
              "p50_ms": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
              "p99_ms": _ms(re.search(r"\s99%\s+(\S+)", out).group(1))}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if errors or socket_errors:
        result["errors"] = (errors.group(0) if errors else "") + (socket_errors.group(0) if socket_errors else "")
    return result


# figure -> (label, higher is better)
FIGURES = {
    ("small_get", "req_per_s"): ("small GET req/s", True),
    ("small_get", "p50_ms"): ("small GET p50 ms", False),
    ("small_get", "p99_ms"): ("small GET p99 ms", False),
    ("small_get", "req_per_cpu_s"): ("small GET req per proxy CPU-s", True),
    ("preflight", "req_per_s"): ("preflight req/s", True),
    ("preflight", "p99_ms"): ("preflight p99 ms", False),
    ("download", "MB_per_s"): ("download MB/s", True),
    ("download", "peak_rss_MiB"): ("download peak RSS MiB", False),
    ("upload", "MB_per_s"): ("upload MB/s", True),
    ("upload", "peak_rss_MiB"): ("upload peak RSS MiB", False),
    ("sse", "sse_first_event_ms"): ("SSE first event ms after sent", False),
    ("idle", "idle_rss_MiB"): ("idle RSS MiB (at start)", False),
    ("idle", "rss_after_load_MiB"): ("RSS MiB after the load above", False),
    ("idle", "KiB_per_idle_conn"): ("KiB per idle keep-alive conn", False),
}


def ratio_table(results: dict[str, dict], baseline: str) -> str:
    names = list(results)
    rows = [["figure", *names, *(f"{n} / {baseline}" for n in names if n != baseline)]]
    for (scenario, key), (label, _) in FIGURES.items():
        values = [results[n].get(scenario, {}).get(key) for n in names]
        if all(v is None for v in values):
            continue
        base = results[baseline].get(scenario, {}).get(key)
        ratios = [f"{v / base:.2f}x" if v is not None and base else "-"
                  for n, v in zip(names, values) if n != baseline]
        rows.append([label, *("-" if v is None else f"{v:g}" for v in values), *ratios])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
