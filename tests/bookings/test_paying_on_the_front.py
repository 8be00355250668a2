"""PayReservation on the lean front (ticketing.lean): async end to end, the same answers as through Django.

On the front the steps of paying run on the event loop (the async pool and the provider's async calls), never
the sync services on a thread; through Django (the API tests) the same steps run on Django's connection.
"""

import pytest

from bookings import services
from bookings.models import Payment, Reservation
from tests.bookings.helpers import DECLINED_CARD, GOOD_CARD
from tests.helpers import on_the_front
from tests.ticketing import test_lean_path
from tests.ticketing.test_lean_path import DjangoRequests, hold_body, seats_of

pytestmark = pytest.mark.django_db(transaction=True)

show, key = test_lean_path.show, test_lean_path.key  # the lean path tests' fixtures


@pytest.fixture(autouse=True)
def no_sync_paying(monkeypatch):
    """The sync services fail if the front reaches them: it must use the async ones."""

    def refused(**kwargs):
        raise AssertionError("the front ran a sync service on a thread")

    for name in ("begin_idempotent_request", "pay_for_reservation", "finish_idempotent_request"):
        monkeypatch.setattr(services, name, refused)


def held_on_the_front(show, key):
    (held,) = on_the_front(
        ("POST", "/api/v1/reservations", {"json": hold_body(show, seats_of(show)[:2]), "headers": {"X-API-Key": key}})
    )
    return held.json()["reservation_id"]


def payment(key, card, idempotency_key):
    return {
        "json": {"session_id": "alice", "payment": card},
        "headers": {"X-API-Key": key, "Idempotency-Key": idempotency_key},
    }


def test_a_payment_books_the_hold_on_the_event_loop_and_its_replay_answers_the_same_bytes(show, key):
    reservation_id = held_on_the_front(show, key)
    url = f"/api/v1/reservations/{reservation_id}/pay"
    with DjangoRequests() as django:
        first, replay = on_the_front(
            ("POST", url, payment(key, GOOD_CARD, "k-1")), ("POST", url, payment(key, GOOD_CARD, "k-1"))
        )

    assert django.count == 0
    assert first.status_code == 200 and first.json()["status"] == "Booked" and first.json()["ticket"]
    assert replay.content == first.content and replay.headers["idempotent-replayed"] == "true"
    reservation = Reservation.objects.get(pk=reservation_id)
    assert reservation.booking_code == first.json()["booking_code"]
    assert list(reservation.payments.values_list("kind", "status")) == [("charge", "succeeded")]
    assert set(reservation.claims.values_list("booked", flat=True)) == {True}


def test_a_declined_card_is_402_the_hold_stands_and_another_key_can_pay_it(show, key):
    reservation_id = held_on_the_front(show, key)
    url = f"/api/v1/reservations/{reservation_id}/pay"
    declined, replay, paid = on_the_front(
        ("POST", url, payment(key, DECLINED_CARD, "k-1")),
        ("POST", url, payment(key, DECLINED_CARD, "k-1")),
        ("POST", url, payment(key, GOOD_CARD, "k-2")),
    )

    assert declined.status_code == 402 and declined.json()["error"]["code"] == "card_declined"
    assert replay.content == declined.content and replay.headers["idempotent-replayed"] == "true"
    assert paid.status_code == 200 and paid.json()["status"] == "Booked"
    assert sorted(Payment.objects.values_list("status", flat=True)) == ["declined", "succeeded"]


def test_another_sessions_hold_is_404_and_its_key_is_not_spent(show, key):
    reservation_id = held_on_the_front(show, key)
    url = f"/api/v1/reservations/{reservation_id}/pay"
    body = payment(key, GOOD_CARD, "k-1")
    body["json"]["session_id"] = "bob"
    (answer,) = on_the_front(("POST", url, body))

    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert not Payment.objects.exists()
