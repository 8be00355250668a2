"""Helpers every test module may use: API answers, and many clients at the same moment."""

import contextlib
import os
import signal
import subprocess
import threading
import time

from django.db import connection, connections


def wait_until(condition, seconds):
    """Ask `condition` every quarter second until it answers something true or `seconds` pass; its last answer."""
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        if time.monotonic() > deadline:
            return found
        time.sleep(0.25)
    return found


def get_ok(api, url, **parameters):
    """GET and return the JSON body, asserting a 200."""
    response = api.get(url, parameters)
    assert response.status_code == 200, response.content
    return response.json()


def assert_api_error(response, status, code, field=None):
    """The answer is API.md's error body with this status and machine word (and names `field`, if given)."""
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error
    assert isinstance(error["fields"], dict)
    if field:
        assert field in error["fields"], error
    return response.json()


def clear_of_a_quota_windows_end(seconds=10):
    """Wait, if need be, until at least `seconds` are left of the current quota window (ticketing.api_keys counts
    a key's calls in fixed one-minute windows): for calls to a real server that must fall in one window, whose
    clock no test can move. In-process tests freeze the clock instead (time_machine)."""
    from ticketing.api_keys import QUOTA_WINDOW_SECONDS

    left = QUOTA_WINDOW_SECONDS - time.time() % QUOTA_WINDOW_SECONDS
    if left < seconds:
        time.sleep(left + 0.05)


def run_at_once(actions):
    """Run each callable in its own thread, all released at the same moment; return their results in order.

    Each thread has its own database connection (Django's are per thread), closed when it ends.
    """
    start = threading.Barrier(len(actions))
    results = [None] * len(actions)

    def run(index, action):
        start.wait()
        try:
            results[index] = action()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index, action)) for index, action in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def on_the_front(*calls, app=None, at_once=False):
    """Send each (method, url, options) to the ASGI application as uvicorn serves it (`app`: another ASGI app,
    e.g. ticketing.asgi.django_asgi_app, Django alone); returns the httpx responses, in order. In turn, or
    `at_once`: all sent together on one event loop (the lean path's calls then really overlap)."""
    import asyncio

    import httpx

    from ticketing.asgi import application
    from ticketing.lean import close_connections

    async def send_all():
        transport = httpx.ASGITransport(app=app or application, client=("203.0.113.9", 4000))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                requests = [client.request(method, url, **options) for method, url, options in calls]
                if at_once:
                    return await asyncio.gather(*requests)
                return [await request for request in requests]
        finally:
            await close_connections()

    return asyncio.run(send_all())


def make_environment(**overrides):
    """This process's environment for running `make`, without what an outer `make test` passes down.

    An outer make hands its command-line variables (make test TEST_DATABASE_URL=...) to every make below it
    through MAKEFLAGS; the make a test runs must see only what the test gives it.
    """
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "TEST_DATABASE_URL", "TEST_REDIS_URL"}
    }
    return {**environment, **overrides}


def stack_environment(**overrides):
    """The environment of bench.harness.balancer's processes in a test: production settings on the test database
    and Redis, small pools. Fails the test, saying how to install it, where HAProxy is missing."""
    import pytest
    from django.conf import settings

    from bench.harness.haproxy import HaproxyMissing, haproxy_executable
    from bench.harness.site import server_environment
    from tests.conftest import test_database_url

    try:
        haproxy_executable()
    except HaproxyMissing as missing:
        pytest.fail(str(missing))
    return server_environment(
        database_url=test_database_url(),
        redis_url=settings.REDIS_URL,
        pool_max=3,
        secret_key=settings.SECRET_KEY,
        **overrides,
    )


def ctrl_c_as_in_a_terminal():
    """preexec_fn of a command a test stops with Ctrl-C (SIGINT): SIGINT and SIGQUIT handled by default, as a
    shell in a terminal starts its commands. A test run started in the background (`make test &`, nohup) has
    them ignored, its children inherit that, and a shell that starts with a signal ignored can't trap it: the
    script would never hear the Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@contextlib.contextmanager
def make_serve_running(**overrides):
    """`make serve` itself (scripts/run.sh: uvicorn workers, a Celery worker and beat) on a free port, the test
    database and Redis, production settings, and `overrides`; yields (its Popen, the banner it printed, its URL)
    once it says it serves. Ctrl-C to scripts/run.sh stops it, as in a terminal, when the block ends."""
    import time

    from django.conf import settings

    from bench.harness.processes import ROOT, free_port, process_tree
    from tests.conftest import test_database_url

    port = free_port()
    environment = {
        **os.environ,
        "TICKETING_PORT": str(port),
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_DEBUG": "0",
        **overrides,
    }
    serve = subprocess.Popen(
        ["make", "-s", "serve"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    try:
        banner = []
        deadline = time.monotonic() + 120
        while not any("Stop with Ctrl-C" in line for line in banner):
            line = serve.stdout.readline()
            assert line or serve.poll() is None, "make serve exited:\n" + "".join(banner)
            banner.append(line)
            assert time.monotonic() < deadline, "make serve did not start:\n" + "".join(banner)
        yield serve, banner, f"http://127.0.0.1:{port}"
    finally:
        for pid in process_tree(serve.pid):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"scripts/run.sh" in cmdline.read():
                    os.kill(pid, signal.SIGINT)
        serve.communicate(timeout=60)


def sql_function_with(name, old, new):
    """The SQL function `name`'s definition as it is now, with `old` replaced by `new` (`old` must be in it
    once): a negative control's variant for sql_function_replaced."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef(%s::regproc)", [name])
        (definition,) = cursor.fetchone()
    assert definition.count(old) == 1
    return definition.replace(old, new)


@contextlib.contextmanager
def sql_function_replaced(name, definition):
    """Run the block with the SQL function `name` replaced by `definition` (a CREATE OR REPLACE FUNCTION), for
    negative controls: afterwards the function is as its migration made it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef(%s::regproc)", [name])
        (original,) = cursor.fetchone()
        cursor.execute(definition)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(original)
