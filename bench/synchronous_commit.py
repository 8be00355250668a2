"""What synchronous replication costs the hot path: the hold benchmark on a primary with a synchronous standby,
commits waiting for the standby (`synchronous_commit = on`, as the site runs) against commits that don't
(`local`), alternated in the same sitting.

    python -m bench.synchronous_commit [--rounds 3] [--duration 20] [--concurrency 100] [--json FILE]

A pg_auto_failover cluster of the run's own (bench/harness/failover.py: a monitor, a primary and its standby on
loopback ports, each on this machine's disk) holds the bench's database. Each round runs `python -m
bench.hold_path --balanced 2 --http-client aiohttp` against it twice, once per setting (set on the database, so
that the server's new sessions take it), in alternating order; the figures are each run's holds/s and hold
p99, their medians per setting and the ratio of the medians. The hold path's own checks (no seat held twice,
every hold the clients were told of is there) run in every run.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from bench.harness.failover import own_failover_cluster
from bench.harness.figures import alternated_sitting, medians_of, publish_report, ratios
from bench.harness.processes import ROOT

DATABASE = "ticketing_bench_holds"
SETTINGS = ("on", "local")


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.synchronous_commit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    with own_failover_cluster(DATABASE) as cluster:

        def run_one(setting):
            with psycopg.connect(cluster.url("postgres"), autocommit=True) as connection:
                connection.execute(f"ALTER DATABASE {DATABASE} SET synchronous_commit = '{setting}'")
                standbys = connection.execute("SHOW synchronous_standby_names").fetchone()[0]
            return {**hold_path(cluster.url(), options), "synchronous_standby_names": standbys}

        report = alternated_sitting("bench.synchronous_commit", SETTINGS, options.rounds, run_one, medians)
    report["ratio_on_to_local"] = ratios(report["medians"]["on"], report["medians"]["local"])
    publish_report(report, options)


def hold_path(database_url, options):
    """One run of bench.hold_path against the cluster: its holds/s, attempts/s and hold p50/p99 (ms)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as output:
        finished = subprocess.run(
            [sys.executable, "-m", "bench.hold_path", "--balanced", "2", "--http-client", "aiohttp"]
            + ["--duration", str(options.duration), "--concurrency", str(options.concurrency)]
            + ["--database-url", database_url, "--json", output.name],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        report = json.loads(Path(output.name).read_text() or "{}")
    if not report:
        return {"ok": False, "error": finished.stderr[-2000:]}
    return {
        "ok": finished.returncode == 0,
        "holds_per_s": report["throughput_per_s"]["holds"],
        "attempts_per_s": report["throughput_per_s"]["attempts"],
        "hold_p50_ms": report["latency_ms"]["hold_all"]["p50"],
        "hold_p99_ms": report["latency_ms"]["hold_all"]["p99"],
    }


def medians(runs):
    return medians_of(runs, ("holds_per_s", "attempts_per_s", "hold_p50_ms", "hold_p99_ms"))


if __name__ == "__main__":
    main()
