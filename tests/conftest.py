import contextlib
import os
import shutil
import tempfile
import uuid

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection
from django.utils import translation
from rest_framework.test import APIClient

from bench.harness.processes import free_port, process_running, wait_until_url_answers
from bench.harness.site import (
    celery_environment,
    celery_worker_command,
    payment_sandbox_command,
    server_environment,
    server_running,
)
from tests.factories import make_api_key
from ticketing.cached_reads import CACHE as HOT_READS_CACHE


@pytest.fixture(scope="session", autouse=True)
def _media_in_a_temporary_folder(tmp_path_factory):
    """Posters the tests upload, draw or seed go to a folder of this run (the servers it starts too), never to the
    checkout's media/."""
    from django.test import override_settings

    media_root = tmp_path_factory.mktemp("media")
    previous = os.environ.get("TICKETING_MEDIA_ROOT")
    os.environ["TICKETING_MEDIA_ROOT"] = str(media_root)
    with override_settings(MEDIA_ROOT=media_root):
        yield media_root
    if previous is None:
        del os.environ["TICKETING_MEDIA_ROOT"]
    else:
        os.environ["TICKETING_MEDIA_ROOT"] = previous


@pytest.fixture(autouse=True)
def _own_cache_namespace(settings):
    """Quota counters live in the shared cache (Redis): each test counts under its own key prefix.

    A prefix instead of a flush, so tests never wipe what other processes keep in the same Redis. Not the hot
    reads' cache: the servers and workers a test starts must see the same seat maps and catalog answers as the
    test itself (see _hot_reads_afresh).
    """
    caches = {alias: dict(config) for alias, config in settings.CACHES.items()}
    for alias, config in caches.items():
        if alias != HOT_READS_CACHE:
            config["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    settings.CACHES = caches


@pytest.fixture(autouse=True)
def _hot_reads_afresh():
    """No test reads a seat map or catalog answer cached by an earlier one, whose rows are gone (or, in an earlier
    run's database, had the same ids): a new catalog generation, which every such answer is keyed by."""
    from cinemas.services import CATALOG_GENERATION
    from ticketing.cached_reads import mark_changed

    mark_changed(CATALOG_GENERATION)


@pytest.fixture(autouse=True)
def _api_keys_read_afresh():
    """Each test's keys are its own rows (rolled back after it): no process-wide memory of another test's key."""
    from ticketing.api_keys import forget_api_key

    forget_api_key()
    yield
    forget_api_key()


@pytest.fixture(autouse=True)
def _rooms_in_force_read_afresh():
    """Each test's on-sales are its own rows: no process-wide copy of another test's rooms (cinemas.on_sales)."""
    from cinemas.on_sales import forget_gates

    forget_gates()
    yield
    forget_gates()


@pytest.fixture(autouse=True)
def _site_language_afterwards():
    """Each test starts in the site's language: a request in Spanish leaves Spanish active in its thread (Django's
    LocaleMiddleware activates a request's language and never puts it back), which a later test's English
    messages would be read in."""
    yield
    translation.activate(django_settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Staff logins in tests need no slow, brute-force-resistant hash (the default still checks older ones)."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]


@pytest.fixture
def scene(db):
    """The small fixed catalog of tests/cinemas/scene.py, built with the clock at its NOW (and kept there)."""
    from tests.cinemas.scene import NOW, build_scene

    with time_machine.travel(NOW, tick=False):
        yield build_scene()


@pytest.fixture
def show(db):
    """A show tomorrow in a 13-seat hall (see tests.factories.SMALL_PLAN)."""
    from tests.factories import make_hall, make_show

    return make_show(hall=make_hall())


@pytest.fixture
def alice():
    from ticketing.buyers import Buyer

    return Buyer(api_key_id=None, session_id="alice")


@pytest.fixture
def bob():
    from ticketing.buyers import Buyer

    return Buyer(api_key_id=None, session_id="bob")


@pytest.fixture
def api(db):
    """A partner's API client, sending its key in the X-API-Key header."""
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_api_key())
    return client


@contextlib.contextmanager
def serving(settings, *, workers=2, environment=None):
    """The site served by a real uvicorn on loopback against the test database; yields (url, process).

    For tests that need real HTTP clients in their hundreds (Django's own live server keeps a listen
    backlog of ten) or a real process to kill. The test's data must be committed (transactional tests).
    The server is the benchmarks' (bench.harness.site): like every server we start, it believes forwarding
    headers only from TICKETING_TRUSTED_PROXIES (none unless `environment` names some).
    """
    port = free_port()
    environment = {
        **server_environment(
            database_url=test_database_url(),
            redis_url=settings.REDIS_URL,
            pool_max=8,
            secret_key=settings.SECRET_KEY,
            allowed_hosts="127.0.0.1,localhost",
        ),
        **(environment or {}),
    }
    url = f"http://127.0.0.1:{port}"
    with server_running(
        workers=workers, port=port, environment=environment, options=["--log-level", "warning"]
    ) as server:
        wait_until_url_answers(f"{url}/api/v1/cities", server, "uvicorn")
        yield url, server


def redis_keys_of_its_own():
    """The environment that gives processes a Redis keyspace of their own (cache, channel layer, Celery's queues)
    in the run's Redis database: a test's workers see exactly the tasks its own processes send."""
    return {"TICKETING_REDIS_PREFIX": f"test-{uuid.uuid4().hex}:"}


@contextlib.contextmanager
def payment_sandbox(settings, environment=None):
    """The sandbox payment provider as its own HTTP service on loopback (`python -m sandbox.payment_service`).

    Yields (url, process). Its ledger is in the tests' Redis, under the sandbox's own keys; payments' ids are
    UUIDs, so every test's charges are its own. Its output is kept, so tests can read what it wrote.
    """
    port = free_port()
    environment = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "REDIS_URL": settings.REDIS_URL,
        **(environment or {}),
    }
    with tempfile.TemporaryFile() as log:
        url = f"http://127.0.0.1:{port}"
        with process_running(
            payment_sandbox_command(port=port), environment={**os.environ, **environment}, log=log
        ) as service:
            wait_until_url_answers(f"{url}/v1/health", service, "the payment sandbox")
            service.log = log
            yield url, service


def test_database_url():
    database = connection.settings_dict
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


@contextlib.contextmanager
def celery_worker(settings, *, beat=True, environment=None):
    """A real Celery worker (with beat inside it) on the test database, as `make run` starts it (the command
    line is bench.harness.site's); yields the process."""
    schedule_dir = tempfile.mkdtemp(prefix="celerybeat-")
    worker_environment = {
        **celery_environment(
            server_environment(
                database_url=test_database_url(), redis_url=settings.REDIS_URL, secret_key=settings.SECRET_KEY
            )
        ),
        **(environment or {}),
    }
    schedule = os.path.join(schedule_dir, "schedule") if beat else None
    try:
        with process_running(celery_worker_command(beat_schedule=schedule), environment=worker_environment) as worker:
            yield worker
    finally:
        shutil.rmtree(schedule_dir, ignore_errors=True)


@pytest.fixture
def through_the_broker(settings):
    """This process queues tasks in Redis for a real worker (celery_worker), instead of running them itself."""
    from ticketing.celery import app as celery_app

    eager = celery_app.conf.task_always_eager  # read before the setting changes: Celery reads it lazily
    celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER = False
    yield
    celery_app.conf.task_always_eager = eager


@pytest.fixture
def asgi_server(transactional_db, settings):
    """The URL of the site served by a real uvicorn with two worker processes (see `serving`)."""
    with serving(settings) as (url, _):
        yield url


# Browser-test fixtures (Chromium through Playwright): see tests/browser.py.
pytest_plugins = ["tests.browser"]
