"""A partner hears of its own bookings: booking.created, booking.cancelled and booking.refunded, owed by the database
in the transaction that makes each change (bookings migration 0029) and sent afterwards by Celery
(ticketing.webhooks), to a real receiver on loopback (tests/webhook_receiver.py)."""

import json
import time
from decimal import Decimal

import pytest
from django.db import transaction

from bookings.models import Reservation
from bookings.providers import parse_card
from bookings.services import cancel_booking, hold_seats, pay_for_reservation, release_lapsed_holds
from bookings.services.gift_cards import issue_gift_card
from tests.bookings.helpers import GOOD_CARD, paid_booking, pay, reserve, seat_ids
from tests.conftest import celery_worker
from tests.factories import make_hall, make_show
from tests.webhook_receiver import Slow, webhook_receiver
from ticketing.buyers import Buyer
from ticketing.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from ticketing.services import create_api_key
from ticketing.webhooks import dispatch_due_webhooks, send_webhook, verify_signature


@pytest.fixture
def receiver():
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def partner(db, receiver):
    """A partner's API client whose key has an endpoint at the receiver for every event; `.key` is its ApiKey."""
    from rest_framework.test import APIClient

    api_key, raw_key = create_api_key(name="cinema-app", rate_per_minute=1000)
    WebhookEndpoint.objects.create(api_key=api_key, url=receiver.url, events=WebhookEvent.values)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw_key)
    client.key = api_key
    return client


def booked_through_api(api, show):
    reservation_id = reserve(api, show, seat_ids(show)[:2]).json()["reservation_id"]
    paid = pay(api, reservation_id)
    assert paid.status_code == 200
    return paid.json()


def sent(receiver, capture):
    """Beat's sweep runs once, and each due delivery's task with it; the events the receiver kept, parsed."""
    with capture(execute=True):
        dispatch_due_webhooks()
    return [json.loads(request.body) for request in receiver.events()]


def differences(sent, answered):
    """The fields where a webhook's data and an API answer differ, each as (sent, answered)."""
    return {
        key: (sent.get(key), answered.get(key))
        for key in sent.keys() | answered.keys()
        if sent.get(key) != answered.get(key)
    }


def test_a_partners_booking_is_told_to_its_endpoint_as_the_api_shows_it(
    partner, receiver, django_capture_on_commit_callbacks
):
    show = make_show(hall=make_hall())
    booked = booked_through_api(partner, show)

    (delivery,) = WebhookDelivery.objects.all()
    assert (delivery.event_type, delivery.endpoint.api_key) == ("booking.created", partner.key)
    (event,) = sent(receiver, django_capture_on_commit_callbacks)
    assert event["type"] == "booking.created"
    assert differences(event["data"], booked) == {}  # the reservation body the pay call answered, ticket and all
    assert event["data"]["status"] == "Booked" and event["data"]["booking_code"]
    delivery.refresh_from_db()
    assert delivery.payload == booked  # rendered once, on the first attempt: every retry sends the same bytes
    request = receiver.received[0]
    assert verify_signature(
        secret=delivery.endpoint.secret, header=request.headers["Webhook-Signature"], body=request.body
    )


def test_a_booking_paid_by_a_gift_card_alone_is_told_too(partner, receiver, django_capture_on_commit_callbacks):
    show = make_show(hall=make_hall())
    gift = issue_gift_card(currency="USD", value=Decimal("100.00"))
    reservation_id = reserve(partner, show, seat_ids(show)[:2]).json()["reservation_id"]
    paid = partner.post(
        f"/api/v1/reservations/{reservation_id}/pay",
        {"session_id": "alice", "gift_card": gift.code},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert paid.status_code == 200
    (event,) = sent(receiver, django_capture_on_commit_callbacks)
    assert event["type"] == "booking.created"
    assert differences(event["data"], paid.json()) == {}


def test_a_sale_never_waits_for_a_dead_endpoint_nor_calls_it(partner, receiver, django_capture_on_commit_callbacks):
    """The endpoint answers only after a minute: the sale goes through at its own speed, and nothing reaches the
    endpoint until the task that sends it runs."""
    receiver.answer_next(Slow(60))
    show = make_show(hall=make_hall())
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        booked_through_api(partner, show)
    assert time.monotonic() - started < 5
    assert receiver.received == []
    assert WebhookDelivery.objects.get().attempts == 0

    delivery = WebhookDelivery.objects.get()
    started = time.monotonic()
    assert send_webhook(delivery_id=delivery.pk) == WebhookDelivery.Status.QUEUED  # timed out: retried later
    assert time.monotonic() - started < 10  # the task's own timeout, in a worker, not in a request
    assert len(receiver.received) == 1


def test_the_websites_buyers_and_other_partners_bookings_go_to_nobody(partner, receiver):
    other_key, other_raw = create_api_key(name="other-app", rate_per_minute=1000)
    show = make_show(hall=make_hall())
    paid_booking(show=show)  # a website buyer's: no API key
    other = Buyer(api_key_id=other_key.pk, session_id="bob")
    hold = hold_seats(buyer=other, show=show, seat_ids=seat_ids(show)[4:6])
    pay_for_reservation(buyer=other, reservation_id=hold.pk, card=parse_card(GOOD_CARD))  # other has no endpoint
    assert not WebhookDelivery.objects.exists()

    booked_through_api(partner, make_show(hall=make_hall()))
    assert WebhookDelivery.objects.get().endpoint.api_key == partner.key


def test_holds_changes_of_seats_and_lapses_owe_nothing(partner, settings):
    show = make_show(hall=make_hall())
    reservation_id = reserve(partner, show, seat_ids(show)[:2]).json()["reservation_id"]
    partner.put(
        f"/api/v1/reservations/{reservation_id}",
        {"session_id": "alice", "seats_to_reserve": seat_ids(show)[2:4]},
        format="json",
    )
    partner.delete(f"/api/v1/reservations/{reservation_id}?session_id=alice")
    Reservation.objects.filter(pk=reserve(partner, show, seat_ids(show)[:1]).json()["reservation_id"]).update(
        expires_at="2000-01-01T00:00Z", held_until="2000-01-01T00:00Z"
    )
    release_lapsed_holds()
    assert Reservation.objects.filter(status="Expired").exists()
    assert not WebhookDelivery.objects.exists()


def test_a_partners_cancellation_and_its_refund_are_told_in_turn(partner, receiver, django_capture_on_commit_callbacks):
    show = make_show(hall=make_hall())
    booked = booked_through_api(partner, show)
    with django_capture_on_commit_callbacks(execute=True):  # the refund reaches the provider after commit
        cancelled = partner.post(
            f"/api/v1/reservations/{booked['reservation_id']}/cancel", {"session_id": "alice"}, format="json"
        )
    assert cancelled.status_code == 200

    events = {event["type"]: event for event in sent(receiver, django_capture_on_commit_callbacks)}
    assert set(events) == {"booking.created", "booking.cancelled", "booking.refunded"}
    assert events["booking.cancelled"]["data"]["status"] == "Cancelled"
    assert [seat["id"] for seat in events["booking.cancelled"]["data"]["seats"]] == seat_ids(show)[:2]
    refunded = events["booking.refunded"]["data"]
    assert refunded["reservation_id"] == booked["reservation_id"]
    assert refunded["refund"] == {
        "amount": cancelled.json()["refund"]["amount"],
        "currency": "USD",
        "status": "succeeded",
    }


def test_staff_cancelling_a_partners_booking_tells_the_partner(partner, receiver, django_capture_on_commit_callbacks):
    show = make_show(hall=make_hall())
    booked = booked_through_api(partner, show)
    with django_capture_on_commit_callbacks(execute=True):
        cancel_booking(reservation_id=booked["reservation_id"])
    types = sorted(delivery.event_type for delivery in WebhookDelivery.objects.all())
    assert types == ["booking.cancelled", "booking.created", "booking.refunded"]
    refund = WebhookDelivery.objects.get(event_type="booking.refunded")
    assert Decimal(refund.source["refund"]["amount"]) == Decimal(booked["amount"])


def test_an_event_is_owed_only_if_its_change_commits(partner):
    """The trigger writes the delivery in the change's own transaction: rolled back together (with a negative
    control that commits)."""
    show = make_show(hall=make_hall())
    booked = booked_through_api(partner, show)
    created = WebhookDelivery.objects.get()

    with pytest.raises(RuntimeError), transaction.atomic():
        Reservation.objects.filter(pk=booked["reservation_id"]).update(status="Cancelled")
        assert WebhookDelivery.objects.filter(event_type="booking.cancelled").exists()
        raise RuntimeError("the cancellation failed")
    assert list(WebhookDelivery.objects.all()) == [created]

    with transaction.atomic():
        Reservation.objects.filter(pk=booked["reservation_id"]).update(status="Cancelled")
    assert WebhookDelivery.objects.filter(event_type="booking.cancelled").count() == 1


# --- End to end: a real worker and beat ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_worker_delivers_a_booking_after_a_failure_and_a_timeout_with_one_event_id(
    settings, receiver, through_the_broker
):
    """The endpoint fails once (500), then answers too late (past the timeout) though it got the event, then takes
    it: three requests, one event for a receiver that dedupes, all sent by a real Celery worker and its beat."""
    api_key, _ = create_api_key(name="cinema-app", rate_per_minute=1000)
    endpoint = WebhookEndpoint.objects.create(api_key=api_key, url=receiver.url, events=["booking.created"])
    receiver.answer_next(500, Slow(3))
    environment = {
        "TICKETING_WEBHOOK_LOCAL_ADDRESSES": "1",  # the receiver is on loopback; the worker runs as in production
        "TICKETING_WEBHOOK_RETRY_SECONDS": "1",
        "TICKETING_WEBHOOK_TIMEOUT_SECONDS": "1",
        "TICKETING_WEBHOOK_SWEEP_SECONDS": "1",
    }
    with celery_worker(settings, beat=True, environment=environment):
        show = make_show(hall=make_hall())
        buyer = Buyer(api_key_id=api_key.pk, session_id="alice")
        hold = hold_seats(buyer=buyer, show=show, seat_ids=seat_ids(show)[:2])
        booking = pay_for_reservation(buyer=buyer, reservation_id=hold.pk, card=parse_card(GOOD_CARD))
        requests = receiver.wait_for(3, timeout=60)
        delivery = WebhookDelivery.objects.get()
        deadline = time.monotonic() + 30
        while delivery.status == WebhookDelivery.Status.QUEUED and time.monotonic() < deadline:
            time.sleep(0.1)
            delivery.refresh_from_db()

    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
    assert {request.event_id for request in requests} == {str(delivery.event_id)}
    (event,) = [json.loads(request.body) for request in receiver.events()]
    assert (event["type"], event["data"]["booking_code"]) == ("booking.created", booking.booking_code)
    for request in requests:
        assert verify_signature(secret=endpoint.secret, header=request.headers["Webhook-Signature"], body=request.body)
