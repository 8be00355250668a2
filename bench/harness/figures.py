"""What a run's figures are made of: where the CPU went (CpuSnapshot, cpu_report), percentiles (percentile,
summary_ms), the JSON report (publish_report) and the commit the figures belong to (code_version).
"""

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.harness.processes import ROOT, TICKS, process_table


def percentile(values, share):
    """The value `share` (0.95 for p95) of the way up `values`: the sorted values at index round(share * (n - 1))."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def summary_ms(values):
    """n, p50, p95, p99 and max of `values` (milliseconds), rounded to 0.1; {"n": 0} when there are none."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 1),
        "p95": round(percentile(values, 0.95), 1),
        "p99": round(percentile(values, 0.99), 1),
        "max": round(max(values), 1),
    }


def responses_by_process(server):
    """HAProxy's count of the responses each web process sent (the load was spread, or not); None without it.

    Ask while the server runs: the count comes from HAProxy's stats socket.
    """
    return server.responses_by_process() if hasattr(server, "responses_by_process") else None


def take_cpu_snapshot(server, database_url):
    """A CpuSnapshot of server_running's uvicorn or of balanced_server_running's stack (every web process)."""
    return CpuSnapshot.take(
        server.pid,
        database_url,
        web_pids=getattr(server, "web_pids", None),
        balancer_pid=getattr(server, "balancer_pid", None),
    )


def server_workers(server_pid):
    """The processes that serve: uvicorn's workers (not multiprocessing's resource tracker, also a child).

    With --workers 1 uvicorn spawns none and serves from its own process (no supervisor): [server_pid].
    """
    workers = []
    for entry in Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{entry}/cmdline").read_bytes():
                workers.append(int(entry))
        except OSError:
            continue
    return workers or [server_pid]


def machine_ticks():
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class CpuSnapshot:
    table: dict
    busy: int
    total: int
    client: float
    workers: list
    backends: set
    balancer: int | None = None  # HAProxy's pid, with --balanced

    @classmethod
    def take(cls, server_pid, database_url, *, web_pids=None, balancer_pid=None):
        """web_pids: the web processes when they are not uvicorn's workers of server_pid (--balanced)."""
        with psycopg.connect(database_url) as connection:
            backends = {
                pid
                for (pid,) in connection.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            }
        busy, total = machine_ticks()
        workers = list(web_pids) if web_pids is not None else server_workers(server_pid)
        return cls(process_table(), busy, total, time.process_time(), workers, backends, balancer_pid)


def cpu_report(before, after, server_pid, elapsed):
    """CPU seconds each part of the run used, and what everything else on the machine took meanwhile."""

    def spent(pid):
        return after.table[pid][2] - before.table.get(pid, (0, "", 0.0))[2]

    # Processes that exited during the run are not counted by name; their time lands in "everything else".
    workers = [spent(pid) for pid in after.workers if pid in after.table]
    backends = sum(spent(pid) for pid in after.backends if pid in after.table)
    postgres = sum(spent(pid) for pid, (_, name, _) in after.table.items() if name.startswith("postgres"))
    redis_server = sum(spent(pid) for pid, (_, name, _) in after.table.items() if name.startswith("redis"))
    balancer = spent(after.balancer) if after.balancer in after.table else 0.0
    client = after.client - before.client
    busy = (after.busy - before.busy) / TICKS
    cores = os.cpu_count()
    return {
        "note": (
            f"The load generator, the server, PostgreSQL and Redis all share this machine's {cores} cores. "
            "postgres_other is PostgreSQL's background processes and other databases' sessions; "
            "everything_else is whatever else ran meanwhile (e.g. someone's test run)."
        ),
        "cores": cores,
        "machine_busy_percent": round(100 * (after.busy - before.busy) / max(1, after.total - before.total), 1),
        "cpu_seconds": {
            "wall_clock": round(elapsed, 1),
            "machine_busy": round(busy, 1),
            "load_generator": round(client, 1),
            "server_workers": [round(seconds, 1) for seconds in sorted(workers, reverse=True)],
            "postgres_backends_of_this_run": round(backends, 1),
            "postgres_other": round(postgres - backends, 1),
            "redis": round(redis_server, 1),
            **({"load_balancer": round(balancer, 1)} if after.balancer is not None else {}),
            "everything_else": round(busy - client - sum(workers) - postgres - redis_server - balancer, 1),
        },
    }


def publish_report(report, options, *, log=None, server_log="", summary=None):
    """Print the report (JSON, on stdout), then `summary` (stderr), and write the report to --json if given.

    When report["ok"] is false: the end of the server's log (`log`, a named file, kept) and exit status 1; else
    the log's file is removed. A report without "ok" is a measurement with nothing to fail.
    """
    print(json.dumps(report, indent=2))
    if summary:
        print(summary, file=sys.stderr)
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(report, indent=2))
    if not report.get("ok", True):
        where = f" The server's log ({log.name}) ends with:\n{server_log[-3000:]}" if log else ""
        print(f"\nFAILED.{where}", file=sys.stderr)
        sys.exit(1)
    if log is not None:
        os.unlink(log.name)


def code_version():
    """The commit the server ran, marked when the working tree differs from it (figures belong to code)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=ROOT, capture_output=True)
    except OSError:
        return None
    return commit.stdout.strip() + ("+changes" if changed.returncode else "")


def alternated_sitting(program, setups, rounds, run_one, figures_of):
    """A sitting that compares `setups` (two or more names) on this machine: `rounds` rounds, each running
    `run_one(setup)` for every setup, in an order reversed every other round so that neither always goes first;
    each run's figures printed as they come. Returns the report: the commit, the command (`program` and this
    process's arguments), when, every run, the medians of each setup's runs (`figures_of(runs)`: those that
    passed), and ok when every run passed."""
    runs = {setup: [] for setup in setups}
    for number in range(rounds):
        for setup in setups if number % 2 == 0 else tuple(reversed(setups)):
            figures = run_one(setup)
            runs[setup].append(figures)
            print(f"round {number + 1}, {setup}: {json.dumps(figures)}", file=sys.stderr, flush=True)
    return {
        "code": code_version(),
        "command": " ".join([f"python -m {program}", *sys.argv[1:]]),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": runs,
        "medians": {setup: figures_of([run for run in runs[setup] if run.get("ok")]) for setup in setups},
        "ok": all(run.get("ok") for figures in runs.values() for run in figures),
    }


def ratios(numerator, denominator):
    """{name: numerator's / denominator's} of two medians' figures, where both are there."""
    return {
        name: round(numerator[name] / denominator[name], 3)
        for name in denominator
        if denominator.get(name) and numerator.get(name) is not None
    }


def medians_of(runs, names):
    """{name: the median of the runs' figure `name`, rounded to 0.001} (None without runs)."""
    return {name: round(statistics.median(run[name] for run in runs), 3) if runs else None for name in names}
