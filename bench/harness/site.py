"""The project's own processes as production runs them, for bench/, chaos/ and the tests: uvicorn with the site,
Celery workers and beat, the payment sandbox as its own HTTP service; and the environment they share.

One command line for each, so that a server in a benchmark, a fault scenario and a test is the same server:

    environment = server_environment(database_url=..., redis_url=..., pool_max=8)
    with server_running(workers=2, port=free_port(), environment=environment, log=log) as server: ...
    worker = start_process(celery_worker_command(pool="solo", beat_schedule=path), environment=environment)
"""

import contextlib
import os
import sys

from bench.harness.processes import start_process, stop_process, stop_processes
from ticketing.proxies import uvicorn_options

SECRET_KEY = "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def server_environment(
    *, database_url, redis_url, pool_max=None, secret_key=SECRET_KEY, allowed_hosts="127.0.0.1", base=None, **more
):
    """Production settings (DJANGO_DEBUG=0) on this database and Redis, over `base` (default os.environ).

    pool_max: the database connections per process (DATABASE_POOL_MAX), when given. more: further variables.
    Celery's processes get CELERY_TASK_ALWAYS_EAGER=0 from celery_environment.
    """
    pool = {"DATABASE_POOL_MIN": str(min(2, pool_max)), "DATABASE_POOL_MAX": str(pool_max)} if pool_max else {}
    return {
        **(os.environ if base is None else base),
        "DJANGO_SETTINGS_MODULE": "ticketing.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secret_key,
        "DJANGO_ALLOWED_HOSTS": allowed_hosts,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        **pool,
        **more,
    }


def celery_environment(environment):
    """`environment` for Celery's processes and whatever sends them tasks: tasks go through the broker to the
    workers, never run inside the sender (pytest's own environment says CELERY_TASK_ALWAYS_EAGER=1)."""
    return {**environment, "CELERY_TASK_ALWAYS_EAGER": "0"}


def uvicorn_command(*, port, workers, environment, options=()):
    """uvicorn serving the site on loopback `port` with `workers` processes (1: served by uvicorn's own process,
    no supervisor), believing forwarding headers only from TICKETING_TRUSTED_PROXIES in `environment`."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "ticketing.asgi:application",
        "--workers",
        str(workers),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",  # Django's ASGI handler has no lifespan support; "auto" only logs that
        "--no-access-log",  # a log line per request would cost the shared cores more than the app's logging
        *options,
        *uvicorn_options(environment),
    ]


def start_server(*, workers, port, environment, log=None, options=()):
    """uvicorn_command started (start_process): a Popen whose session holds its workers."""
    command = uvicorn_command(port=port, workers=workers, environment=environment, options=options)
    return start_process(command, environment=environment, log=log)


@contextlib.contextmanager
def server_running(*, workers, port, environment, log=None, options=()):
    """start_server, stopped (stop_process) when the block ends, also when it fails."""
    server = start_server(workers=workers, port=port, environment=environment, log=log, options=options)
    try:
        yield server
    finally:
        stop_process(server)


def celery_command(*arguments, loglevel="warning"):
    return [sys.executable, "-m", "celery", "-A", "ticketing", *arguments, "--loglevel", loglevel]


def celery_worker_command(*, name=None, pool="solo", concurrency=1, beat_schedule=None, loglevel="warning"):
    """A Celery worker as scripts/run.sh starts one: `pool` with `concurrency` processes, named `name`@host;
    with beat_schedule (a file's path), beat runs inside it (`-B`), as in `make run`."""
    arguments = ["worker", "--pool", pool, "--concurrency", str(concurrency), "--without-mingle", "--without-gossip"]
    if name:
        arguments += ["--hostname", f"{name}@%h"]
    if beat_schedule:
        arguments += ["-B", "--schedule-filename", str(beat_schedule)]
    return celery_command(*arguments, loglevel=loglevel)


def celery_beat_command(*, schedule, loglevel="warning"):
    """Celery beat on its own, as `make serve` runs it; `schedule`: the file where it keeps the last runs."""
    return celery_command("beat", "--schedule", str(schedule), loglevel=loglevel)


@contextlib.contextmanager
def celery_running(*, environment, schedule, workers=1, pool="prefork", concurrency=2, log=None, name="celery"):
    """`workers` Celery workers (`pool` of `concurrency` each, named name1..) and a separate beat, as `make serve`
    runs them; all stopped when the block ends. Yields (the workers' Popens, beat's)."""
    environment = celery_environment(environment)
    started = [
        start_process(
            celery_worker_command(name=f"{name}{number}", pool=pool, concurrency=concurrency),
            environment=environment,
            log=log,
        )
        for number in range(1, workers + 1)
    ]
    started.append(start_process(celery_beat_command(schedule=schedule), environment=environment, log=log))
    try:
        yield started[:-1], started[-1]
    finally:
        stop_processes(started, seconds=20)


def payment_sandbox_command(*, port):
    """The sandbox payment provider as its own HTTP service (sandbox/payment_service.py) on loopback `port`."""
    return [sys.executable, "-m", "sandbox.payment_service", "--port", str(port)]
