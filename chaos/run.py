"""`make chaos`: faults during a sale, against real processes this script starts and stops by process id.

    python -m chaos.run [--only F1,F3] [--json FILE]

Everything runs on a PostgreSQL cluster and a Redis server of the run's own (bench/harness/services.py), so restarting
or killing them touches nothing else on the machine. The site runs as `make serve` runs it: two uvicorn
processes behind HAProxy (bench/harness/balancer.py), Celery workers and a separate beat, production settings, and the
sandbox payment provider as its own HTTP service. Each scenario (TEST-PLAN.md's F-items) starts from a fresh
show of 2,000 seats, makes its fault, and then checks, in SQL:

- no seat claimed twice, no partial hold (a live reservation with a released claim, or one without claims),
  no hold blocking seats past its expiry plus grace and the sweep's period (P4's 10 s);
- every booking has exactly one succeeded charge and the provider's ledger has exactly those charges;
- the waiting line: every waiter served at most once, in order of place (each wants one seat), none lost;
- clients were told 503 with Retry-After while a component was down, never 500.

and measures how long the site took to recover. The report (JSON) has a verdict per scenario;
docs/reliability/README.md's table quotes it. Exit status 1 if any scenario failed.

F8 runs on a cluster of its own instead of the one PostgreSQL: a primary, its synchronous standby and
pg_auto_failover's monitor (bench/harness/failover.py), DATABASE_URL naming both nodes; it kills the primary
and checks, besides the above, that no hold or payment a client was told of is lost.

This module starts the run and gives the verdicts; the scenarios are chaos/sweep.py's (F1, F2),
chaos/under_load.py's (F3, F5, F6, F7), chaos/failover.py's (F8) and chaos/replica.py's (R1: the catalog's replica
lagging, then down), on chaos/show.py (the show, its lapsing holds and line), chaos/load.py (the buyers),
chaos/watchers.py (the seat map's sockets) and chaos/invariants.py (the checks).
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from bench.harness.balancer import Process, stack_running
from bench.harness.failover import own_failover_cluster
from bench.harness.figures import code_version, publish_report
from bench.harness.processes import ROOT, free_port, kill_now, start_process, stop_processes
from bench.harness.services import own_redis, own_services
from bench.harness.shards import own_home_and_a_failover_shard, prepare_shards
from bench.harness.site import (
    celery_beat_command,
    celery_environment,
    celery_worker_command,
    payment_sandbox_command,
    server_environment,
)
from chaos import failover, replica, shards, sweep, under_load
from chaos.invariants import invariants
from chaos.show import GRACE_SECONDS, HOLD_SECONDS, fresh_show, wait_until

SCENARIOS = {
    "F1": (
        "kill -9 a Celery worker 20 times during the sweep of 994 lapsing holds",
        sweep.worker_killed_during_the_sweep,
    ),
    "F2a": ("beat stopped for two minutes while 994 holds lapse", sweep.beat_stopped_for_two_minutes),
    "F2b": ("two beats (and two workers) at once while 994 holds lapse", sweep.two_beats_at_once),
    "F3": (
        "Redis SHUTDOWN NOSAVE for 5 s with 300 WebSockets and 4 buyers",
        under_load.redis_restarted_with_websockets_connected,
    ),
    "F5": ("PostgreSQL restarted (fast, then immediate) under 30 buyers", under_load.postgres_restarted_under_load),
    "F6": (
        "database connections exhausted (an outside client takes every free one) under 200 buyers",
        under_load.database_connections_exhausted,
    ),
    "F7": ("a web process frozen (SIGSTOP) for 20 s under 40 buyers of a hot corner", under_load.web_process_frozen),
    "F8": (
        "kill -9 of the database primary (pg_auto_failover node) under 200 buyers holding and paying",
        failover.primary_killed_during_an_on_sale,
    ),
    "S1": (
        "kill -9 of shard2's primary (pg_auto_failover node) under 200 buyers of two shows, one on each shard",
        shards.shard_primary_killed_during_an_on_sale,
    ),
    "R1": (
        "the catalog's replica lagging (replay paused 20 s), then down (stopped 15 s), under catalog browsing",
        replica.replica_lagging_then_down,
    ),
}
# Scenarios on a primary with a synchronous standby and pg_auto_failover's monitor (bench/harness/failover.py)
# instead of one PostgreSQL; and on the sales split by show id over two shards, the home one PostgreSQL and shard2
# such a cluster (bench/harness/shards.py).
ON_A_FAILOVER_CLUSTER = {"F8"}
ON_SHARDS = {"S1"}


class Processes:
    """Celery workers, beats and the payment sandbox, each started by the harness in a session of its own,
    logging to a file of the run's folder; stopped or killed by their pids."""

    def __init__(self, folder, environment):
        self.folder = Path(folder)
        self.environment = environment
        self.running = {}

    def start(self, name, command):
        log_path = self.folder / f"{name}.log"
        with open(log_path, "ab") as log:
            popen = start_process(command, environment=self.environment, log=log)
        self.running[name] = Process(name=name, popen=popen, log_path=log_path)
        return self.running[name]

    def worker(self, name):
        return self.start(name, celery_worker_command(name=name, pool="prefork", concurrency=2))

    def beat(self, name):
        return self.start(name, celery_beat_command(schedule=self.folder / f"{name}-schedule"))

    def kill_9(self, name):
        kill_now(self.running.pop(name))

    def stop_all(self):
        stop_processes(list(self.running.values()))
        self.running.clear()


class Run:
    """The run's database, the site's environment, its Celery processes and the payment sandbox; what every
    scenario (chaos/sweep.py, chaos/under_load.py) is given to make its fault and get its verdict."""

    def __init__(self, postgres, redis_server, folder, args, more_environment=None):
        self.postgres, self.redis, self.folder, self.args = postgres, redis_server, Path(folder), args
        self.database_url = postgres.url("ticketing_chaos")
        self.sandbox_port = free_port()
        environment = server_environment(
            database_url=self.database_url,
            redis_url=redis_server.url,
            pool_max=8,
            TICKETING_HOLD_SECONDS=str(HOLD_SECONDS),
            TICKETING_HOLD_GRACE_SECONDS=str(GRACE_SECONDS),
            TICKETING_PAYMENT_PROVIDER="bookings.providers.sandbox_http.SandboxHttpProvider",
            TICKETING_PAYMENT_SANDBOX_URL=f"http://127.0.0.1:{self.sandbox_port}",
            **(more_environment or {}),
        )
        self.environment = celery_environment(environment)
        self.processes = Processes(self.folder, {**self.environment})
        # The provider is external: its ledger is in the machine's Redis, not the one this run restarts.
        sandbox_environment = {**self.environment, "REDIS_URL": "redis://127.0.0.1:6379/9"}
        self.sandbox = Processes(self.folder, sandbox_environment)
        self.sandbox.start("sandbox", payment_sandbox_command(port=self.sandbox_port))

    def stack_log(self):
        return open(self.folder / "stack.log", "a")

    def unsettled_payments(self, database_url=None):
        """How many payments are pending or unknown (a fault caught them mid-way) now (in `database_url`, a shard's;
        the run's database by default)."""
        with psycopg.connect(database_url or self.database_url) as connection:
            return connection.execute(
                "SELECT count(*) FROM bookings_payment WHERE status IN ('pending', 'unknown')"
            ).fetchone()[0]

    def payments_settled(self):
        """Seconds until no payment is pending or unknown (the reconciler settles what the fault left), or None."""
        return wait_until(lambda: not self.unsettled_payments(), seconds=90)

    def ledger(self):
        return httpx.get(f"http://127.0.0.1:{self.sandbox_port}/v1/charges", timeout=30).json()["charges"]

    def show(self):
        return fresh_show(self.database_url, self.redis.url)

    def under_load(self, fault, *, target, passed, environment=None):
        """Run the coroutine `fault(run, stack, show_id, seats)` on a fresh show, with a Celery worker and beat and
        two web processes behind HAProxy; then let the reconciler settle what the fault left, and give the verdict:
        the fault's result, the seconds the payments took to settle and the target; ok if no answer was a 5xx but a 503
        with Retry-After, passed(result) and the invariants hold, with the provider's ledger."""
        show_id, seats = self.show()
        self.processes.worker("worker")
        self.processes.beat("beat")
        with stack_running(web_processes=2, environment=environment or self.environment, log=self.stack_log()) as stack:
            result = asyncio.run(fault(self, stack, show_id, seats))
        result["payments_settled_after_the_load_s"] = self.payments_settled()
        result["target"] = target
        # Whatever the fault, a client is told 503 with Retry-After while a component is down, never 500.
        no_500 = result["load"]["5xx_other_than_503_with_retry_after"] == 0
        return self.checked(show_id, result, no_500 and passed(result), with_ledger=True)

    def checked(self, show_id, measured, passed, *, with_ledger=False):
        """Stop the Celery processes and check the invariants: the scenario's verdict on what it measured."""
        self.processes.stop_all()
        checks = invariants(self.database_url, show_id, self.ledger() if with_ledger else None)
        failed = {name: value for name, value in checks.items() if value}
        return {"invariants": checks, **measured, "ok": passed and not failed}


def run_scenarios(run, names, report):
    """Each scenario in turn on `run`, its outcome in report["scenarios"]; a scenario that breaks has failed."""
    try:
        for name in names:
            title, scenario = SCENARIOS[name]
            print(f"{name}: {title} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                outcome = scenario(run)
            except Exception as error:  # a scenario that breaks is a failed scenario, and the run goes on
                outcome = {"ok": False, "error": f"{type(error).__name__}: {error}"}
                run.processes.stop_all()
            outcome = {"fault": title, **outcome, "seconds": round(time.monotonic() - started, 1)}
            report["scenarios"][name] = outcome
            print(f"{name}: {'ok' if outcome['ok'] else 'FAILED'} {json.dumps(outcome)}", file=sys.stderr, flush=True)
    finally:
        run.processes.stop_all()
        run.sandbox.stop_all()


def main():
    parser = argparse.ArgumentParser(
        prog="python -m chaos.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated scenario ids, e.g. F1,F3 (default: all)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep-logs", action="store_true", help=argparse.SUPPRESS)  # a run's own child (below)
    args = parser.parse_args()
    wanted = [name for name in SCENARIOS if not args.only or name in args.only.split(",")]
    report = {"code": code_version(), "scenarios": {}}
    # Every process's log is kept for reading after the run (bench/results is not committed).
    folder = ROOT / "bench" / "results" / "chaos-logs"
    if not args.keep_logs:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    groups = {}
    for name in wanted:
        groups.setdefault(_setup_of(name), []).append(name)
    for number, (setup, names) in enumerate(groups.items()):
        if number == 0:
            _run_on_its_setup(setup, names, folder, args, report)
        else:
            # Django is set up once a process, on the first setup's database: each other setup gets a process of
            # its own, whose Django knows its databases.
            report["scenarios"].update(_in_a_process_of_its_own(names))
    report["ok"] = all(outcome["ok"] for outcome in report["scenarios"].values())
    publish_report(report, args)


def _setup_of(name):
    return "failover" if name in ON_A_FAILOVER_CLUSTER else "shards" if name in ON_SHARDS else "one postgres"


def _run_on_its_setup(setup, names, folder, args, report):
    """Run scenarios `names` on the databases of `setup` ("one postgres", "failover", "shards"), made here."""
    if setup == "one postgres":
        with own_services() as (postgres, redis_server):
            postgres.create_database("ticketing_chaos")
            run_scenarios(Run(postgres, redis_server, folder, args), names, report)
    elif setup == "failover":
        with own_failover_cluster("ticketing_chaos") as cluster, own_redis() as redis_server:
            run_scenarios(Run(cluster, redis_server, folder, args), names, report)
    else:
        with own_home_and_a_failover_shard("ticketing_chaos") as (home, shard2), own_redis() as redis_server:
            sharded = {"DATABASE_SHARD_URLS": f"shard2={shard2.url()}"}
            os.environ.update(sharded)  # for this process's Django too (the shows are scheduled here)
            run = Run(home, redis_server, folder, args, more_environment=sharded)
            run.shard2 = shard2
            prepare_shards(run.environment, ["default", "shard2"])
            run_scenarios(run, names, report)


def _in_a_process_of_its_own(names):
    """The outcomes of scenarios `names`, run by `python -m chaos.run --only ...` (its progress on our stderr)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as output:
        subprocess.run(
            [sys.executable, "-m", "chaos.run", "--only", ",".join(names), "--json", output.name, "--keep-logs"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        text = Path(output.name).read_text()
    if not text:
        failed = {"ok": False, "error": "its process wrote no report"}
        return {name: {"fault": SCENARIOS[name][0], **failed} for name in names}
    return json.loads(text)["scenarios"]


if __name__ == "__main__":
    main()
