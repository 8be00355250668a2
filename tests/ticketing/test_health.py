"""Readiness for a load balancer, and 503 with Retry-After (never 500) while a component is down."""

import pytest
from django.db import connection
from django.test import Client

from bookings.models import Reservation
from tests.bookings.helpers import seat_ids
from tests.factories import make_api_key, make_show
from ticketing.health import check_database

pytestmark = pytest.mark.django_db

NOTHING_LISTENS = "redis://127.0.0.1:1/0"  # port 1: refused at once


@pytest.fixture
def redis_down(settings):
    """Redis unreachable for this process: its URL and its cache point where nothing listens."""
    settings.REDIS_URL = NOTHING_LISTENS
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": NOTHING_LISTENS}}


def test_readiness_is_green_when_the_database_and_redis_answer(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
    assert "no-cache" in response["Cache-Control"]


def test_readiness_is_red_with_retry_after_and_says_why_when_redis_is_down(client, redis_down):
    response = client.get("/health/ready")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    body = response.json()
    assert body["status"] == "unavailable" and body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("ConnectionError")


def test_the_database_check_opens_a_fresh_connection_so_it_goes_red_while_an_open_one_still_works(monkeypatch):
    """A check on the process's open connection would stay green while new connections are refused."""
    monkeypatch.setitem(connection.settings_dict, "NAME", "no_such_database")
    problem = check_database()
    assert problem is not None and "no_such_database" in problem
    with connection.cursor() as cursor:  # the open connection is fine all along
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_an_api_call_while_redis_is_down_gets_503_with_retry_after_and_the_error_body_and_changes_nothing(
    redis_down,
):
    raw_key = make_api_key()
    show = make_show()
    client = Client(raise_request_exception=False)
    response = client.post(
        "/api/v1/reservations",
        {"show_id": show.pk, "session_id": "s1", "seat_ids": seat_ids(show)[:2]},
        content_type="application/json",
        HTTP_X_API_KEY=raw_key,
    )
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "service_unavailable"
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert not Reservation.objects.exists()


def test_a_read_while_redis_is_down_gets_503_too_as_every_call_counts_against_its_quota(redis_down):
    raw_key = make_api_key()
    response = Client(raise_request_exception=False).get("/api/v1/cities", HTTP_X_API_KEY=raw_key)
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "service_unavailable"
