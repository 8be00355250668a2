"""A PostgreSQL primary with a synchronous hot standby and automatic failover, of a run's own, on loopback ports:
pg_auto_failover (Debian's pg-auto-failover-cli and postgresql-15-auto-failover) with its monitor and two nodes.

    with own_failover_cluster("ticketing_chaos") as cluster:
        cluster.url()              # postgres://...@127.0.0.1:P1,127.0.0.1:P2/ticketing_chaos?target_session_attrs=read-write
        cluster.primary()          # "node1"
        cluster.kill_node("node1") # kill -9 of its keeper and its PostgreSQL, as a machine's death would
        cluster.wait_for_primary(other_than="node1")

The monitor decides failovers; each node's keeper (`pg_autoctl run`) drives its own PostgreSQL. With one standby,
pg_auto_failover makes the primary's commits wait for it (`synchronous_standby_names = 'ANY 1 (...)'`,
`synchronous_commit = on`): a commit a client was told of is on both nodes. While the standby is away the primary
goes on alone (`wait_primary`, commits no longer wait), which is pg_auto_failover's choice of availability over a
second copy; docs/scaling.md says what that means.

The timings are shortened from pg_auto_failover's defaults (a failover in ~35 s) to a few seconds: the monitor
checks each node every second and calls one unhealthy after 3 s; a keeper that has lost the monitor and its
standby for 3 s demotes its own PostgreSQL, so the monitor need wait only 5 s (not 30) before it promotes the
standby without a split brain. Everything runs as the `postgres` user, in a temporary folder removed at the end;
nothing is started or stopped except by the process groups held here.
"""

import contextlib
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from bench.harness.processes import free_port, start_process
from bench.harness.services import POSTGRES_BIN, as_postgres_user, started_in_a_temporary_folder

# The monitor's health checks, shortened (milliseconds; pg_auto_failover's defaults in the comments).
MONITOR_SETTINGS = {
    "pgautofailover.health_check_period": 1000,  # 5000
    "pgautofailover.health_check_retry_delay": 500,  # 2000
    "pgautofailover.health_check_timeout": 1000,  # 5000
    "pgautofailover.health_check_max_retries": 1,  # 2
    "pgautofailover.node_considered_unhealthy_timeout": 3000,  # 20000
    "pgautofailover.primary_demote_timeout": 5000,  # 30000
}
# A keeper cut off from the monitor and its standby demotes its PostgreSQL after this many seconds (20); it must
# be below the monitor's primary_demote_timeout, or two primaries could accept writes at once.
NETWORK_PARTITION_SECONDS = 3


class OwnFailoverCluster:
    """A monitor and `nodes` PostgreSQL nodes (the first the primary, the others its standbys) in `folder`."""

    def __init__(self, folder, database, *, nodes=2, max_connections=100):
        self.folder = Path(folder)
        self.database = database
        self.max_connections = max_connections
        self.environment = {
            **os.environ,
            "XDG_CONFIG_HOME": str(self.folder / "config"),
            "XDG_DATA_HOME": str(self.folder / "share"),
        }
        self.monitor_port = free_port()
        self.ports = {f"node{number}": free_port() for number in range(1, nodes + 1)}
        self.running = {}  # name -> Popen of its `pg_autoctl run` (the leader of its process group)
        user = pwd.getpwnam("postgres")
        os.chown(self.folder, user.pw_uid, user.pw_gid)

    # --- Starting ---------------------------------------------------------------------------------------

    def start(self, *, seconds=120):
        """The monitor, then the primary, then each standby, each once the one before is in place."""
        self._autoctl("create", "monitor", "--pgdata", self.folder / "monitor", "--pgport", self.monitor_port)
        self._run("monitor")
        self.wait_until(self._monitor_answers, seconds=seconds, what="the monitor to answer")
        with psycopg.connect(self._monitor_url("postgres"), autocommit=True) as connection:
            for name, value in MONITOR_SETTINGS.items():
                connection.execute(f"ALTER SYSTEM SET {name} = {int(value)}")
            connection.execute("SELECT pg_reload_conf()")
        for number, name in enumerate(self.ports, start=1):
            self._create_node(name)
            self._run(name)
            wanted = "single" if number == 1 else "secondary"  # a node alone is "single"
            settled = lambda name=name, wanted=wanted: self._settled(name, wanted)  # noqa: E731
            self.wait_until(settled, seconds=seconds, what=f"{name} as {wanted}")
        # Only now is the primary's sync standby in place: the first's state was wait_primary (alone) till then.
        self.wait_until(
            lambda: self.state().get("node1") == ("primary", "primary"), seconds=seconds, what="node1 as primary"
        )

    def _create_node(self, name):
        node = self.folder / name
        self._autoctl(
            "create", "postgres", "--pgdata", node, "--pgport", self.ports[name], "--name", name,
            "--dbname", self.database, "--monitor", self._monitor_url("pg_auto_failover", user="autoctl_node"),
        )  # fmt: skip
        self._autoctl("config", "set", "--pgdata", node, "timeout.network_partition_timeout", NETWORK_PARTITION_SECONDS)
        if name == "node1":  # the standbys copy it with the rest of the data folder
            with open(node / "postgresql.auto.conf", "a") as settings:
                settings.write(f"max_connections = {self.max_connections}\nfsync = on\n")

    def _settled(self, name, wanted):
        if name != "node1":
            self._checkpoint_primary()  # the standby's base backup waits for a checkpoint: a fast one
        return self.state().get(name) == (wanted, wanted)

    def _checkpoint_primary(self):
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.node_url("node1"), autocommit=True, connect_timeout=1) as connection,
        ):
            connection.execute("CHECKPOINT")

    # --- Reading --------------------------------------------------------------------------------------

    def url(self, database=None):
        """libpq's URL of every node, keeping the one that accepts writes (the site's DATABASE_URL)."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports.values())
        return f"postgres://postgres@{hosts}/{database or self.database}?target_session_attrs=read-write"

    def node_url(self, name, database=None):
        return f"postgres://postgres@127.0.0.1:{self.ports[name]}/{database or self.database}"

    def state(self):
        """{node name: (reported state, goal state)} as the monitor has it."""
        with psycopg.connect(self._monitor_url("pg_auto_failover"), connect_timeout=2) as connection:
            rows = connection.execute("SELECT nodename, reportedstate, goalstate FROM pgautofailover.node").fetchall()
        return {name: (str(reported), str(goal)) for name, reported, goal in rows}

    def primary(self):
        """The node the monitor has as the primary, settled, or None."""
        for name, (reported, goal) in self.state().items():
            if reported == goal and reported in {"primary", "wait_primary", "single"}:
                return name
        return None

    def synchronous_standby_names(self):
        """The primary's synchronous_standby_names: whom its commits wait for ('' when none)."""
        with psycopg.connect(self.url("postgres"), connect_timeout=2) as connection:
            return connection.execute("SHOW synchronous_standby_names").fetchone()[0]

    def events(self, since_id=0):
        """The monitor's events after `since_id`: (id, time, node, text)."""
        with psycopg.connect(self._monitor_url("pg_auto_failover"), connect_timeout=2) as connection:
            return connection.execute(
                "SELECT eventid, eventtime, nodename, description FROM pgautofailover.event "
                "WHERE eventid > %s ORDER BY eventid",
                (since_id,),
            ).fetchall()

    # --- Faults -----------------------------------------------------------------------------------------

    def kill_node(self, name):
        """kill -9 of the node's whole process group (its keeper, its PostgreSQL and every backend), at once."""
        popen = self.running.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()

    def restart_node(self, name):
        """The node's keeper again: it rejoins as a standby of whichever node is the primary now."""
        self._run(name)

    def wait_for_primary(self, *, other_than=None, seconds=60):
        """Seconds until a node other than `other_than` is the settled primary, or None."""
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            self.wait_until(lambda: self._primary_other_than(other_than), seconds=seconds, what="a new primary")
            return round(time.monotonic() - started, 2)
        return None

    def _primary_other_than(self, name):
        with contextlib.suppress(psycopg.Error):
            primary = self.primary()
            return primary is not None and primary != name
        return False

    # --- Stopping ---------------------------------------------------------------------------------------

    def stop(self):
        """Every keeper and the monitor: SIGTERM (each stops its PostgreSQL), then SIGKILL to whatever is left."""
        for popen in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for popen in self.running.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
        self.running.clear()

    # --- pg_autoctl -------------------------------------------------------------------------------------

    def _autoctl(self, *arguments):
        command = ["pg_autoctl", *[str(part) for part in arguments]]
        if arguments[0] == "create":
            command += ["--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl", "--pgctl", POSTGRES_BIN / "pg_ctl"]
        subprocess.run(
            as_postgres_user(command),
            check=True,
            capture_output=True,
            env=self.environment,
            cwd=self.folder,
        )

    def _run(self, name):
        command = ["pg_autoctl", "run", "--pgdata", str(self.folder / name)]
        with open(self.folder / f"{name}.log", "ab") as log:
            self.running[name] = start_process(
                as_postgres_user(command), environment=self.environment, log=log, cwd=self.folder
            )

    def _monitor_url(self, database, user="postgres"):
        return f"postgres://{user}@127.0.0.1:{self.monitor_port}/{database}?sslmode=disable"

    def _monitor_answers(self):
        with contextlib.suppress(psycopg.Error):
            with psycopg.connect(self._monitor_url("pg_auto_failover"), connect_timeout=1) as connection:
                connection.execute("SELECT 1 FROM pgautofailover.node LIMIT 1")
            return True
        return False

    def wait_until(self, condition, *, seconds, what="the cluster"):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        raise TimeoutError(f"waited {seconds} s for {what}; the logs are in {self.folder}")


def own_failover_cluster(database, *, nodes=2, max_connections=100):
    """An OwnFailoverCluster, started; stopped and its folder removed when the block ends."""
    return started_in_a_temporary_folder(
        "failover-", lambda folder: OwnFailoverCluster(folder, database, nodes=nodes, max_connections=max_connections)
    )
