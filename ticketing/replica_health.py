"""Whether the replica may serve reads now: it answers, and it lags the primary by at most
TICKETING_REPLICA_MAX_LAG_SECONDS. Measured by a thread of each process once a TICKETING_REPLICA_CHECK_SECONDS,
started by the first catalog read that asks (ticketing.db_routers); a read only looks at the last measurement.

How far behind the replica is, from the primary's side first:
- the primary's WAL position now (`pg_current_wal_lsn()`, on Django's own connection to it), then the replica's
  replayed position: at or past it, the replica has every commit made before the measurement began (lag 0),
  however long the primary has been idle;
- else the replica's `now() - pg_last_xact_replay_timestamp()`: it has every commit up to the last one it
  replayed, so it lags by at most that (None, "too far", when it has replayed none since it started).
So when a measurement taken at `at` says `lag`, the replica holds every commit made before `at - lag`. A
measurement is used for 2 x TICKETING_REPLICA_CHECK_SECONDS at most (older, the replica is left out, as when
the thread is stuck on a replica that stopped answering): a read on the replica misses no commit older than
ticketing.db_routers.staleness_window_seconds().

A server that is not in recovery (the "replica" URL reaching a primary) has nothing to replay: lag 0.

The replica is reached on a connection of the thread's own, opened with a short timeout (a pooled one stays
open while new ones are refused); a connection error there, or one a request met (report_failure), leaves the
replica out until the next measurement that succeeds. Each change between usable and not is logged once.
"""

import logging
import os
import threading
import time
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import connections

from ticketing.db import libpq_parameters

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class Measurement:
    at: float  # time.monotonic() when it began
    lag: float | None  # seconds; None: the replica is out of reach, or too far behind to say
    problem: str = ""

    def usable(self, now):
        return (
            now - self.at <= 2 * settings.TICKETING_REPLICA_CHECK_SECONDS
            and self.lag is not None
            and self.lag <= settings.TICKETING_REPLICA_MAX_LAG_SECONDS
        )


class _Health:
    def __init__(self):
        self.lock = threading.Lock()
        self.measurement = None
        self.thread_pid = None  # the process whose thread measures (a forked child starts its own)
        self.was_usable = None
        self.replica = None  # the thread's own connection

    def usable(self):
        self._measuring()
        measurement = self.measurement
        usable = measurement is not None and measurement.usable(time.monotonic())
        if usable != self.was_usable and measurement is not None:
            self._note(usable, measurement)
        return usable

    def _note(self, usable, measurement):
        with self.lock:
            if usable == self.was_usable:
                return
            before, self.was_usable = self.was_usable, usable
        if usable:
            again = " again" if before is False else ""
            logger.warning("The replica serves catalog reads%s (lag %.1f s)", again, measurement.lag)
        else:
            why = measurement.problem or (
                f"lags {measurement.lag:.1f} s" if measurement.lag is not None else "lags too far to say"
            )
            if time.monotonic() - measurement.at > 2 * settings.TICKETING_REPLICA_CHECK_SECONDS:
                why = "was not measured in time"
            logger.warning("Catalog reads go to the primary: the replica %s", why)

    def report_failure(self, error):
        """A request's read on the replica failed: leave it out until a measurement says it answers again."""
        self.measurement = Measurement(time.monotonic(), None, f"failed a read ({type(error).__name__}: {error})")
        self._note(False, self.measurement)

    def _measuring(self):
        if self.thread_pid == os.getpid():
            return
        with self.lock:
            if self.thread_pid == os.getpid():
                return
            self.thread_pid = os.getpid()
            self.measurement, self.replica = None, None
        threading.Thread(target=self._measure_for_ever, name="replica-health", daemon=True).start()

    def _measure_for_ever(self):
        try:
            while "replica" in settings.DATABASES:  # (settings a test changed may take it away)
                started = time.monotonic()
                self.measurement = self.measure()
                self.usable()  # logs a change
                time.sleep(max(0.0, settings.TICKETING_REPLICA_CHECK_SECONDS - (time.monotonic() - started)))
        finally:
            self._forget_replica()
            self.thread_pid = None

    def measure(self):
        at = time.monotonic()
        try:
            primary_position = self._primary_position()
        except Exception as error:  # the primary's own trouble: the requests meet it too; the replica waits
            return Measurement(at, None, f"could not be compared with the primary ({type(error).__name__})")
        try:
            return Measurement(at, self._replica_lag(primary_position))
        except Exception as error:  # psycopg's errors, and whatever else keeps it from answering
            self._forget_replica()
            return Measurement(at, None, f"does not answer ({type(error).__name__}: {error})".strip())

    def _primary_position(self):
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_current_wal_lsn()::text")
                return cursor.fetchone()[0]
        finally:
            connections["default"].close()  # back to the pool

    def _replica_lag(self, primary_position):
        if self.replica is None or self.replica.closed:
            self.replica = psycopg.connect(
                **{
                    **libpq_parameters("replica"),
                    "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                    "application_name": f"replica-health {os.getpid()}",
                    "autocommit": True,
                }
            )
        in_recovery, caught_up, behind = self.replica.execute(
            "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= %s::pg_lsn,"
            " EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
            [primary_position],
        ).fetchone()
        if not in_recovery or caught_up:
            return 0.0
        return behind

    def _forget_replica(self):
        if self.replica is not None:
            self.replica.close()
            self.replica = None


_health = _Health()


def usable():
    """Whether catalog reads may go to the replica now (the last measurement, if recent enough, says so)."""
    return _health.usable()


def report_failure(error):
    """A read on the replica failed with `error`: catalog reads go to the primary until it answers again."""
    _health.report_failure(error)


def measure():
    """A measurement taken now, in the calling thread (for tests and tools): Measurement(at, lag, problem)."""
    return _health.measure()
