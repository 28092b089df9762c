"""Reading a process's CPU time and memory from /proc, wrk's output, and the ratio table."""

from __future__ import annotations

import os
import re
import statistics

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


def median_run(runs: list[dict]) -> dict:
    """Rounds of one scenario as one result: the median of each figure, every error kept, and
    the requests per CPU-second of each round (the spread says how noisy the run was)."""
    merged: dict = {}
    for key in runs[0]:
        values = [run[key] for run in runs if isinstance(run.get(key), (int, float))]
        if values:
            merged[key] = round(statistics.median(values), 3)
    errors = [run["errors"] for run in runs if "errors" in run]
    if errors:
        merged["errors"] = "; ".join(errors)
    if len(runs) > 1 and "req_per_cpu_s" in runs[0]:
        merged["rounds_req_per_cpu_s"] = [run.get("req_per_cpu_s") for run in runs]
    return merged


# figure -> (label, higher is better)
FIGURES = {
    ("small_get", "req_per_s"): ("small GET req/s", True),
    ("small_get", "p50_ms"): ("small GET p50 ms", False),
    ("small_get", "p99_ms"): ("small GET p99 ms", False),
    ("small_get", "req_per_cpu_s"): ("small GET req per proxy CPU-s", True),
    ("preflight", "req_per_s"): ("preflight req/s", True),
    ("preflight", "p99_ms"): ("preflight p99 ms", False),
    ("preflight", "req_per_cpu_s"): ("preflight req per proxy CPU-s", True),
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
    """One column per contender; each figure followed by its ratio to the baseline's."""
    names = list(results)
    rows = [[f"figure (ratio to {baseline})", *names]]
    for (scenario, key), (label, _) in FIGURES.items():
        values = [results[n].get(scenario, {}).get(key) for n in names]
        if all(v is None for v in values):
            continue
        base = results[baseline].get(scenario, {}).get(key)
        cells = []
        for name, value in zip(names, values):
            cell = "-" if value is None else f"{value:g}"
            if value is not None and base and name != baseline:
                cell += f" ({value / base:.2f}x)"
            cells.append(cell)
        rows.append([label, *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


# Issue #15's targets: (label, scenario, figure, kind, bound). "ratio": corsproxy / nginx >= bound;
# "ratio_max": corsproxy / nginx <= bound; "max": corsproxy's figure < bound.
TARGETS = (
    ("preflight req per CPU-s >= 0.2x nginx", "preflight", "req_per_cpu_s", "ratio", 0.2),
    ("small GET req per CPU-s >= 0.12x nginx", "small_get", "req_per_cpu_s", "ratio", 0.12),
    ("small GET p99 <= 5x nginx's", "small_get", "p99_ms", "ratio_max", 5.0),
    ("download MB/s >= 0.9x nginx", "download", "MB_per_s", "ratio", 0.9),
    ("upload MB/s >= 0.9x nginx", "upload", "MB_per_s", "ratio", 0.9),
    ("download peak RSS < 50 MiB", "download", "peak_rss_MiB", "max", 50),
    ("upload peak RSS < 50 MiB", "upload", "peak_rss_MiB", "max", 50),
    ("SSE first event < 5 ms", "sse", "sse_first_event_ms", "max", 5),
    ("idle RSS < 40 MiB", "idle", "idle_rss_MiB", "max", 40),
)


def _figure(results: dict, name: str, scenario: str, key: str) -> float | None:
    return results.get(name, {}).get(scenario, {}).get(key)


def targets(results: dict, corsproxy: str, baseline: str) -> list[dict]:
    """Each target with corsproxy's value (a ratio to the baseline where the target is one) and
    whether it holds; plus the log line's share of a GET's CPU, from the no-log column."""
    rows = []
    for label, scenario, key, kind, bound in TARGETS:
        value = _figure(results, corsproxy, scenario, key)
        if kind != "max":
            base = _figure(results, baseline, scenario, key)
            value = value / base if value is not None and base else None
        met = None if value is None else (value <= bound if kind == "ratio_max" else
                                          value >= bound if kind == "ratio" else value < bound)
        rows.append({"target": label, "value": value, "met": met, "unit": "x" if kind != "max" else ""})
    with_log = _figure(results, corsproxy, "small_get", "req_per_cpu_s")
    without = _figure(results, f"{corsproxy} no-log", "small_get", "req_per_cpu_s")
    # CPU per request is 1 / (requests per CPU-second): the line's share is 1 - without/with.
    share = 1 - with_log / without if with_log and without else None
    rows.append({"target": "log line <= 10% of a small GET's CPU", "value": share and share * 100,
                 "met": None if share is None else share <= 0.10, "unit": "%"})
    return rows


def target_table(results: dict, corsproxy: str, baseline: str) -> str:
    lines = [f"targets (issue #15), {corsproxy} against {baseline} in this run:"]
    for row in targets(results, corsproxy, baseline):
        value = "-" if row["value"] is None else f"{row['value']:.2f}{row['unit']}"
        verdict = {True: "met", False: "NOT MET", None: "not measured"}[row["met"]]
        lines.append(f"  {row['target']:<42} {value:>9}  {verdict}")
    return "\n".join(lines)
