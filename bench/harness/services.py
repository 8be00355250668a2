"""A PostgreSQL cluster and a Redis server of a run's own, on free loopback ports, so that restarting or killing
them (TEST-PLAN.md's faults, chaos/) touches nothing else on the machine.

PostgreSQL comes from Debian's postgresql-15 (initdb and pg_ctl run as the `postgres` user, which owns the
data folder; PostgreSQL refuses to run as root); Redis from redis-server. Both keep everything in a temporary
folder that is removed at the end. Nothing here is started or stopped except by the process ids it holds.
"""

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from bench.harness.processes import free_port, start_process

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


def as_postgres_user(command):
    """`command` as the `postgres` user runs it (PostgreSQL's programs refuse to run as root)."""
    command = [str(part) for part in command]
    return command if os.getuid() == pwd.getpwnam("postgres").pw_uid else ["runuser", "-u", "postgres", "--", *command]


def _as_postgres(command, **kwargs):
    return subprocess.run(as_postgres_user(command), check=True, capture_output=True, **kwargs)


class OwnPostgres:
    """initdb'd into a temporary folder; start(), restart(mode), url(database)."""

    def __init__(self, folder, *, max_connections=100, settings=None):
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = free_port()
        self.max_connections = max_connections
        self.settings = settings or {}  # more of postgres's -c options, e.g. {"wal_level": "logical"}
        user = pwd.getpwnam("postgres")
        os.chown(self.folder, user.pw_uid, user.pw_gid)
        _as_postgres([POSTGRES_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync"])

    def _options(self):
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c max_connections={self.max_connections}"
            " -c fsync=on -c shared_buffers=128MB"
        ) + "".join(f" -c {name}={value}" for name, value in self.settings.items())

    def start(self):
        _as_postgres([POSTGRES_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-o", self._options(), "-w", "start"])

    def stop(self, mode="fast"):
        _as_postgres([POSTGRES_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"])

    def restart(self, mode):
        """pg_ctl restart -m fast|immediate: every session is cut; immediate skips the checkpoint (a crash)."""
        _as_postgres(
            [POSTGRES_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-m", mode, "-o", self._options(), "-w"]
            + ["restart"]
        )

    def url(self, database="postgres"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name):
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

    def answers(self):
        try:
            with psycopg.connect(self.url(), connect_timeout=1) as connection:
                connection.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False


class OwnStandby(OwnPostgres):
    """A hot standby of an OwnPostgres (streaming replication, asynchronous), in a folder of its own on its own
    port: `pg_basebackup -R` copies the primary and writes its primary_conninfo and standby.signal; hot_standby is
    PostgreSQL's default. start(), stop(mode), pause_replay() / resume_replay() (its WAL keeps arriving, unapplied:
    a lag made at will), caught_up(), lag_seconds()."""

    def __init__(self, primary, folder):  # not OwnPostgres.__init__, which would initdb a cluster of its own
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = free_port()
        self.max_connections = primary.max_connections
        self.settings = primary.settings
        self.primary = primary
        user = pwd.getpwnam("postgres")
        os.chown(self.folder, user.pw_uid, user.pw_gid)
        _as_postgres(
            [POSTGRES_BIN / "pg_basebackup", "-D", self.data, "-h", "127.0.0.1", "-p", primary.port, "-U", "postgres"]
            + ["-R", "-X", "stream", "-c", "fast", "--no-sync"]
        )

    def _ask(self, sql, *parameters):
        with psycopg.connect(self.url(), autocommit=True) as connection:
            return connection.execute(sql, parameters).fetchone()

    def pause_replay(self):
        """Replay stops (WAL still arrives): from the next commit on the primary, the standby lags it."""
        self._ask("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 10
        while self._ask("SELECT pg_get_wal_replay_pause_state()")[0] != "paused":
            if time.monotonic() > deadline:
                raise RuntimeError("the standby's replay did not pause")
            time.sleep(0.05)

    def resume_replay(self):
        self._ask("SELECT pg_wal_replay_resume()")

    def caught_up(self):
        """Whether the standby has replayed all the primary has written up to now."""
        with psycopg.connect(self.primary.url(), autocommit=True) as connection:
            (position,) = connection.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        return self._ask("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", position)[0]

    def lag_seconds(self):
        """now() - pg_last_xact_replay_timestamp() on the standby (how old its newest replayed commit is)."""
        (seconds,) = self._ask("SELECT EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp())::float8")
        return seconds


# Scans of the catalog's tables a node has made since it started (a hot standby counts its own): which node served
# the catalog's reads.
CATALOG_SCANS = (
    "SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0)::bigint FROM pg_stat_user_tables"
    " WHERE relname LIKE 'cinemas\\_%%'"
)


def catalog_scans(primary, standby, database):
    """{"primary": scans, "standby": scans} of the catalog's tables in `database` so far, on each node (None for
    a node that does not answer)."""
    counts = {}
    for node, server in (("primary", primary), ("standby", standby)):
        try:
            with psycopg.connect(server.url(database), connect_timeout=2) as connection:
                counts[node] = connection.execute(CATALOG_SCANS).fetchone()[0]
        except psycopg.OperationalError:
            counts[node] = None
    return counts


@contextlib.contextmanager
def standby_running(primary):
    """An OwnStandby of `primary`, started and caught up, in a folder beside the primary's; stopped (immediate)
    and removed when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="standby-", dir=primary.folder.parent))
    folder.chmod(0o755)
    standby = None
    try:
        standby = OwnStandby(primary, folder)
        standby.start()
        deadline = time.monotonic() + 30
        while not standby.caught_up():
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not catch up with its primary")
            time.sleep(0.05)
        yield standby
    finally:
        if standby is not None:
            with contextlib.suppress(subprocess.CalledProcessError):
                standby.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


class OwnRedis:
    """redis-server on a free port with nothing saved to disk; shutdown_nosave() and start() again."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.port = free_port()
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 (the process writes to it until it stops)
        self.process = start_process(
            ["redis-server", "--port", self.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", self.folder, "--maxclients", "10000"],
            log=log,
        )
        deadline = time.monotonic() + 10
        while not self.answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def shutdown_nosave(self):
        """SHUTDOWN NOSAVE: the server exits at once and every key (queued tasks, groups, quotas) is gone."""
        with contextlib.suppress(redis.exceptions.ConnectionError):
            redis.Redis(port=self.port).shutdown(nosave=True)
        self.process.wait(timeout=10)

    def answers(self):
        try:
            return redis.Redis(port=self.port, socket_timeout=1).ping()
        except redis.exceptions.RedisError:
            return False

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.shutdown_nosave()


@contextlib.contextmanager
def own_services(*, max_connections=100):
    """(OwnPostgres, OwnRedis), started; both stopped and their folder removed when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="chaos-"))
    folder.chmod(0o755)  # the postgres user must reach its data folder inside
    (folder / "pg").mkdir()
    (folder / "redis").mkdir()
    postgres = redis_server = None
    try:
        postgres = OwnPostgres(folder / "pg", max_connections=max_connections)
        postgres.start()
        redis_server = OwnRedis(folder / "redis")
        redis_server.start()
        yield postgres, redis_server
    finally:
        if redis_server is not None:
            redis_server.stop()
        if postgres is not None:
            with contextlib.suppress(subprocess.CalledProcessError):
                postgres.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def started_in_a_temporary_folder(prefix, make):
    """`make(folder)`'s service (with start() and stop()) in a new temporary folder, started; stopped and the
    folder removed when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)  # the postgres user must reach the data folders inside
    service = make(folder)
    try:
        service.start()
        yield service
    finally:
        service.stop()
        shutil.rmtree(folder, ignore_errors=True)


def own_redis():
    """An OwnRedis alone, started; stopped and its folder removed when the block ends."""
    return started_in_a_temporary_folder("chaos-redis-", OwnRedis)
