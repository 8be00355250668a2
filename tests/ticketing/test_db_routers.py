"""The replica router's decisions (ticketing.db_routers), on the test database: a "replica" alias is added that
reaches the test database itself, as DATABASE_REPLICA_URL would reach a standby, with the router installed.
It is not in recovery, so its measured lag is 0 and it is usable once measured (ticketing.replica_health).
Which database a query goes to is the queryset's `.db`, which is what the router answered; the end-to-end
tests with a real standby that lags are tests/ticketing/test_replica_router.py."""

import contextlib
import logging

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.db import OperationalError, close_old_connections, connection, connections, transaction
from django.test import override_settings

from bookings.models import Reservation
from cinemas.models import City, Movie, OnSale, Show, ShowPrice
from cinemas.services import CATALOG_GENERATION
from tests.factories import make_show
from tests.helpers import wait_until
from ticketing import replica_health
from ticketing.cached_reads import CACHE, Built, cached, mark_changed, recent_change_key
from ticketing.db_routers import (
    CatalogReplicaRouter,
    catalog_reads,
    pinned_to_the_primary,
    reading_the_primary,
    staleness_window_seconds,
)
from ticketing.middleware import PINNED_COOKIE
from ticketing.models import ApiKey

REPLICA_APPLICATION = "replica-alias-under-test"
# The alias is added as settings and connections at once, which is what Django warns against doing halfway.
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


@pytest.fixture(scope="module", autouse=True)
def replica():
    """The "replica" alias and the router, for the module (before pytest-django checks a test's databases); its
    connections carry REPLICA_APPLICATION as their name."""
    default = connections.settings["default"]
    entry = {**default, "OPTIONS": {**default["OPTIONS"], "application_name": REPLICA_APPLICATION}}
    connections.settings["replica"] = entry
    with override_settings(
        DATABASES={**django_settings.DATABASES, "replica": entry},
        DATABASE_ROUTERS=["ticketing.db_routers.CatalogReplicaRouter"],
    ):
        yield
    connections["replica"].close()
    connections["replica"].close_pool()
    del connections.settings["replica"]
    with contextlib.suppress(AttributeError):
        del connections._connections.replica


# Tests whose queries reach the replica: committed rows (it is another connection) and the alias allowed.
reaching_the_replica = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


@pytest.fixture
def measured():
    """The replica measured usable by this process's thread (lag 0: it is the primary itself)."""
    assert wait_until(replica_health.usable, 10)


def database_of(queryset):
    return queryset.db


# --- Catalog rows in a catalog read, everything else on the primary ----------------------------------------------


@reaching_the_replica
def test_in_a_catalog_read_catalog_rows_come_from_the_replica_and_every_other_row_from_the_primary(measured):
    @catalog_reads
    def read():
        models = (City, Movie, Show, ShowPrice, Reservation, OnSale, Session, ApiKey)
        return {model.__name__: database_of(model.objects.all()) for model in models}

    assert read() == {
        "City": "replica",
        "Movie": "replica",
        "Show": "replica",
        "ShowPrice": "replica",
        "Reservation": "default",  # who holds which seat: never a replica's answer
        "OnSale": "default",
        "Session": "default",
        "ApiKey": "default",
    }
    # Outside a catalog read, nothing goes to the replica.
    assert database_of(Movie.objects.all()) == "default"


@reaching_the_replica
def test_a_catalog_read_inside_a_transaction_on_the_primary_reads_the_primary(measured):
    @catalog_reads
    def read():
        with transaction.atomic():
            return database_of(Movie.objects.all())

    assert read() == "default"


@reaching_the_replica
def test_reading_the_primary_and_a_pinned_request_keep_a_catalog_read_on_the_primary(measured):
    @catalog_reads
    def read():
        return database_of(Movie.objects.all())

    assert read() == "replica"
    with reading_the_primary():
        assert read() == "default"
    with pinned_to_the_primary(True):
        assert read() == "default"


@reaching_the_replica
def test_a_catalog_object_read_on_the_replica_reads_its_relations_on_the_primary_outside_a_catalog_read(measured):
    show = make_show()
    show_from_replica = catalog_reads(lambda: Show.objects.get(pk=show.pk))()
    assert show_from_replica._state.db == "replica"
    # Django would read an object's relations where it came from when routers have no answer: ours always has.
    assert database_of(show_from_replica.prices.all()) == "default"


def test_migrations_run_on_the_primary_only():
    router = CatalogReplicaRouter()
    assert router.allow_migrate("default", "cinemas") is True
    assert router.allow_migrate("replica", "cinemas") is False
    assert router.db_for_write(Movie) == "default"


def test_without_a_measurement_that_says_it_answers_in_time_the_replica_is_left_out(settings):
    at = 1000.0
    settings.TICKETING_REPLICA_MAX_LAG_SECONDS, settings.TICKETING_REPLICA_CHECK_SECONDS = 5, 1
    assert replica_health.Measurement(at, lag=0.0).usable(now=at + 2)
    assert replica_health.Measurement(at, lag=5.0).usable(now=at)
    assert not replica_health.Measurement(at, lag=5.1).usable(now=at)  # lags past the limit
    assert not replica_health.Measurement(at, lag=None, problem="does not answer").usable(now=at)
    assert not replica_health.Measurement(at, lag=0.0).usable(now=at + 2.1)  # too old to tell
    # A commit older than the window is in any replica a read may use: the limit, the oldest measurement, 1 s.
    assert staleness_window_seconds() == 5 + 2 + 1


@reaching_the_replica
def test_the_replica_measured_is_the_primary_itself_with_no_lag():
    measurement = replica_health.measure()
    assert (measurement.lag, measurement.problem) == (0.0, "")


# --- A replica that fails mid-read ----------------------------------------------------------------------------


@reaching_the_replica
def test_a_catalog_read_whose_replica_connection_dies_is_read_again_on_the_primary_and_logged_once(measured, caplog):
    make_show()

    @catalog_reads
    def cities():
        return list(City.objects.values_list("name", flat=True))

    assert cities()  # read on the replica: its pooled connection is open now
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            [REPLICA_APPLICATION],
        )
        assert cursor.fetchone()[0] >= 1
    # Negative control: the same read straight on the replica fails, its connection is dead.
    with pytest.raises(OperationalError):
        list(City.objects.using("replica").values_list("name", flat=True))
    with caplog.at_level(logging.WARNING, logger="ticketing.replica_health"):
        assert cities() and cities()
    assert not replica_health.usable()  # left out until a measurement finds it answering
    failures = [record for record in caplog.records if "the replica failed a read" in record.getMessage()]
    assert len(failures) == 1, caplog.text
    assert wait_until(replica_health.usable, 10)  # the next measurement finds it answering
    close_old_connections()  # as a request's end does: the dead connection goes
    assert cities()


# --- Cache fills after a catalog change read the primary ----------------------------------------------------------


@reaching_the_replica
def test_a_cache_fill_reads_the_primary_within_the_window_after_a_catalog_change_and_the_replica_after(measured):
    def build():
        return Built(database_of(Movie.objects.all()))

    fill = catalog_reads(lambda kind: cached(kind, (CATALOG_GENERATION,), (), build, seconds=5))
    mark_changed(CATALOG_GENERATION)
    assert fill("router-test-in-window") == "default"
    caches[CACHE].delete(recent_change_key(CATALOG_GENERATION))  # as when the window has passed
    assert fill("router-test-after-window") == "replica"
    # A request pinned to the primary builds afresh there, whatever is cached.
    with pinned_to_the_primary(True):
        assert fill("router-test-after-window") == "default"


# --- Read-your-writes for staff ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_successful_change_by_staff_pins_the_browser_to_the_primary_and_one_by_a_visitor_does_not(
    client, django_user_model
):
    assert PINNED_COOKIE not in client.post("/i18n/setlang/", {"language": "es"}).cookies
    staff = django_user_model.objects.create_user("pinned-staff", password="x", is_staff=True)
    client.force_login(staff)
    assert PINNED_COOKIE not in client.get("/").cookies  # reading pins nothing
    pinned = client.post("/i18n/setlang/", {"language": "en"}).cookies[PINNED_COOKIE]
    assert pinned["max-age"] == 8 and pinned["httponly"]
