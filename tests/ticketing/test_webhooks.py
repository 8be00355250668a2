"""Partners' webhooks (ticketing.webhooks, docs/webhooks.md), against a real HTTP receiver on loopback that fails,
times out and gets an event twice (tests/webhook_receiver.py)."""

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from tests.helpers import assert_api_error
from tests.webhook_receiver import Slow, webhook_receiver
from ticketing.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from ticketing.services import create_api_key, revoke_api_key
from ticketing.webhooks import (
    dispatch_due_webhooks,
    record_webhook_event,
    refuse_private_address,
    send_webhook,
    send_webhook_again,
    verify_signature,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
QUEUED, DELIVERED, FAILED = (
    WebhookDelivery.Status.QUEUED,
    WebhookDelivery.Status.DELIVERED,
    WebhookDelivery.Status.FAILED,
)


@pytest.fixture
def receiver():
    with webhook_receiver() as receiver:
        yield receiver


def partner_with_endpoint(url, events=tuple(WebhookEvent.values), name=None):
    api_key, raw_key = create_api_key(name=name or f"partner-{url[-12:]}-{len(events)}-{id(events)}")
    endpoint = WebhookEndpoint.objects.create(api_key=api_key, url=url, events=list(events))
    return api_key, raw_key, endpoint


def owe(api_key, data=None, event_type=WebhookEvent.BOOKING_CREATED):
    """Owe an event in a transaction of its own, its tasks not run (as if the process died at commit)."""
    with transaction.atomic():
        return record_webhook_event(api_key_id=api_key.pk, event_type=event_type, data=data or {"n": 1})


@pytest.fixture
def owed(db, receiver):
    """An event owed to a partner's endpoint at the receiver; yields its one delivery."""
    api_key, _, endpoint = partner_with_endpoint(receiver.url)
    with time_machine.travel(NOW, tick=False):
        owe(api_key, {"reservation_id": "r-1"})
    yield WebhookDelivery.objects.get()


# --- The signature --------------------------------------------------------------------------------------------


def test_a_delivery_is_signed_as_documented_and_a_tampered_body_fails(owed, receiver):
    with time_machine.travel(NOW, tick=False):
        assert send_webhook(delivery_id=owed.pk) == DELIVERED

    (request,) = receiver.received
    secret = owed.endpoint.secret
    timestamp = request.headers["Webhook-Timestamp"]
    signature = dict(part.split("=", 1) for part in request.headers["Webhook-Signature"].split(","))
    # The scheme as docs/webhooks.md tells partners to check it, written out here rather than imported.
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert signature == {"t": timestamp, "v1": expected}
    assert int(timestamp) == int(NOW.timestamp())
    assert request.headers["Webhook-Id"] == str(owed.event_id)
    assert json.loads(request.body) == {
        "id": str(owed.event_id),
        "type": "booking.created",
        "created_at": "2026-01-05T12:00:00Z",
        "data": {"reservation_id": "r-1"},
    }
    header = request.headers["Webhook-Signature"]
    assert verify_signature(secret=secret, header=header, body=request.body, now=NOW.timestamp())
    tampered = request.body.replace(b"r-1", b"r-2")
    assert not verify_signature(secret=secret, header=header, body=tampered, now=NOW.timestamp())
    assert not verify_signature(secret="whsec_other", header=header, body=request.body, now=NOW.timestamp())
    # A replayed request, an hour later, is refused by its timestamp.
    assert not verify_signature(secret=secret, header=header, body=request.body, now=NOW.timestamp() + 3600)


# --- Retries ----------------------------------------------------------------------------------------------------


def test_a_failed_attempt_is_retried_after_a_doubling_wait_with_the_same_event_id(owed, receiver, settings):
    settings.TICKETING_WEBHOOK_RETRY_SECONDS = 30
    receiver.answer_next(500, 503)
    with time_machine.travel(NOW, tick=False) as clock:
        assert send_webhook(delivery_id=owed.pk) == QUEUED
        owed.refresh_from_db()
        first_wait = owed.next_attempt_at - NOW
        assert timedelta(seconds=30) <= first_wait <= timedelta(seconds=37.5)  # 30 s and up to a quarter more
        assert (owed.attempts, owed.last_status_code, owed.last_response) == (1, 500, "answered 500")

        clock.shift(timedelta(seconds=20))  # not due yet: neither the task nor beat's sweep sends it
        assert send_webhook(delivery_id=owed.pk) is None
        assert dispatch_due_webhooks() == 0
        assert len(receiver.received) == 1

        clock.move_to(owed.next_attempt_at)
        assert send_webhook(delivery_id=owed.pk) == QUEUED
        owed.refresh_from_db()
        second_wait = owed.next_attempt_at - timezone.now()
        assert timedelta(seconds=60) <= second_wait <= timedelta(seconds=75)  # doubled

        clock.move_to(owed.next_attempt_at)
        assert send_webhook(delivery_id=owed.pk) == DELIVERED

    owed.refresh_from_db()
    assert (owed.status, owed.attempts, owed.last_status_code) == (DELIVERED, 3, 200)
    assert {request.event_id for request in receiver.received} == {str(owed.event_id)}
    assert len(receiver.received) == 3


def test_a_timeout_is_retried_and_a_receiver_that_dedupes_keeps_the_event_once(owed, receiver, settings):
    """The first attempt reaches the receiver but answers after the timeout: the sender can't know it arrived, so
    it sends again, and the receiver gets the event twice."""
    settings.TICKETING_WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.answer_next(Slow(2))
    started = timezone.now()
    assert send_webhook(delivery_id=owed.pk) == QUEUED
    assert timezone.now() - started < timedelta(seconds=1.9)  # the sender gave up at its timeout
    owed.refresh_from_db()
    assert "Timeout" in owed.last_error and owed.last_status_code is None

    with time_machine.travel(owed.next_attempt_at, tick=False):
        assert send_webhook(delivery_id=owed.pk) == DELIVERED

    assert [request.event_id for request in receiver.received] == [str(owed.event_id)] * 2
    assert [json.loads(request.body)["id"] for request in receiver.events()] == [str(owed.event_id)]


@pytest.mark.parametrize("status", [301, 400, 404, 500])
def test_only_a_2xx_answer_delivers(owed, receiver, status):
    receiver.answer_next(status)
    assert send_webhook(delivery_id=owed.pk) == QUEUED
    owed.refresh_from_db()
    assert (owed.status, owed.last_status_code) == (QUEUED, status)


def test_after_the_last_attempt_the_delivery_is_failed_and_staff_see_the_answer(owed, receiver, settings):
    settings.TICKETING_WEBHOOK_MAX_ATTEMPTS = 2
    receiver.answer_next(500, 500)
    with time_machine.travel(NOW, tick=False) as clock:
        send_webhook(delivery_id=owed.pk)
        owed.refresh_from_db()
        clock.move_to(owed.next_attempt_at)
        assert send_webhook(delivery_id=owed.pk) == FAILED
        clock.shift(timedelta(days=1))
        assert dispatch_due_webhooks() == 0  # given up: nothing more is sent

    owed.refresh_from_db()
    assert (owed.status, owed.attempts, owed.last_response) == (FAILED, 2, "answered 500")
    assert len(receiver.received) == 2


def test_a_refused_connection_is_an_attempt_that_failed(db, settings):
    with webhook_receiver() as gone:
        url = gone.url
    api_key, _, _ = partner_with_endpoint(url)  # nothing listens there any more
    owe(api_key)
    delivery = WebhookDelivery.objects.get()
    assert send_webhook(delivery_id=delivery.pk) == QUEUED
    delivery.refresh_from_db()
    assert "ConnectError" in delivery.last_error


def test_a_payload_that_cant_be_made_is_an_attempt_that_failed_for_staff_to_see(owed, receiver):
    WebhookDelivery.objects.filter(pk=owed.pk).update(payload=None, renderer="no-such-renderer", source={})
    assert send_webhook(delivery_id=owed.pk) == QUEUED
    owed.refresh_from_db()
    assert "KeyError" in owed.last_error and owed.attempts == 1
    assert receiver.received == []


# --- The outbox -------------------------------------------------------------------------------------------------


def test_an_event_rolled_back_with_its_change_is_never_owed(db, receiver, django_capture_on_commit_callbacks):
    api_key, _, _ = partner_with_endpoint(receiver.url)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        record_webhook_event(api_key_id=api_key.pk, event_type=WebhookEvent.BOOKING_CREATED, data={})
        raise RuntimeError("the change failed")
    assert not WebhookDelivery.objects.exists()
    assert callbacks == []
    dispatch_due_webhooks()
    assert receiver.received == []


def test_an_event_is_sent_once_its_transaction_commits(db, receiver, django_capture_on_commit_callbacks):
    api_key, _, _ = partner_with_endpoint(receiver.url)
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        event_id = record_webhook_event(api_key_id=api_key.pk, event_type=WebhookEvent.BOOKING_CREATED, data={})
        assert receiver.received == []
    assert receiver.received == []  # committed, its task not yet run
    for callback in callbacks:
        callback()  # the task, eager in tests
    assert [request.event_id for request in receiver.wait_for(1)] == [str(event_id)]
    assert WebhookDelivery.objects.get().status == DELIVERED


def test_beats_sweep_sends_what_a_lost_task_left_behind(owed, receiver, django_capture_on_commit_callbacks):
    """The process died between commit and queueing the task (its on-commit callbacks never ran)."""
    with time_machine.travel(NOW + timedelta(seconds=1), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert dispatch_due_webhooks() == 1  # its task runs on commit (eager in tests)
        assert dispatch_due_webhooks() == 0
    assert [request.event_id for request in receiver.received] == [str(owed.event_id)]
    owed.refresh_from_db()
    assert owed.status == DELIVERED


def test_an_attempt_whose_worker_died_is_sent_again_once_its_lease_runs_out(
    owed, receiver, django_capture_on_commit_callbacks
):
    from ticketing.webhooks import ATTEMPT_LEASE

    claimed_at = NOW + timedelta(seconds=1)
    WebhookDelivery.objects.filter(pk=owed.pk).update(attempts=1, next_attempt_at=claimed_at + ATTEMPT_LEASE)
    with time_machine.travel(claimed_at + ATTEMPT_LEASE - timedelta(seconds=1), tick=False):
        assert dispatch_due_webhooks() == 0  # the attempt may still be running
    with time_machine.travel(claimed_at + ATTEMPT_LEASE, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert dispatch_due_webhooks() == 1
    owed.refresh_from_db()
    assert (owed.status, owed.attempts) == (DELIVERED, 2)


# --- Who hears of what ------------------------------------------------------------------------------------------


def test_an_event_goes_to_the_keys_active_endpoints_that_asked_for_it_and_no_others(db):
    api_key, _, wants = partner_with_endpoint("https://a.example/hooks", events=["booking.created"])
    WebhookEndpoint.objects.create(api_key=api_key, url="https://a.example/other", events=["show.changed"])
    WebhookEndpoint.objects.create(
        api_key=api_key, url="https://a.example/off", events=["booking.created"], is_active=False
    )
    other_key, _, _ = partner_with_endpoint("https://b.example/hooks", events=["booking.created"], name="other")
    revoked_key, _, _ = partner_with_endpoint("https://c.example/hooks", events=["show.changed"], name="revoked")
    revoke_api_key(api_key=revoked_key)

    owe(api_key)
    assert [delivery.endpoint for delivery in WebhookDelivery.objects.all()] == [wants]
    with transaction.atomic():
        everyone = record_webhook_event(api_key_id=None, event_type=WebhookEvent.SHOW_CHANGED, data={})
    assert [row.endpoint.url for row in WebhookDelivery.objects.filter(event_id=everyone)] == [
        "https://a.example/other"
    ]
    with transaction.atomic():
        assert record_webhook_event(api_key_id=other_key.pk, event_type=WebhookEvent.WAITER_SERVED, data={}) is None


# --- Staff sending again ----------------------------------------------------------------------------------------


def test_staff_send_a_failed_delivery_again_with_the_same_event_id(
    owed, receiver, admin_client, settings, django_capture_on_commit_callbacks
):
    settings.TICKETING_WEBHOOK_MAX_ATTEMPTS = 1
    receiver.answer_next(500)
    assert send_webhook(delivery_id=owed.pk) == FAILED
    listed = admin_client.get(reverse("admin:ticketing_webhookdelivery_changelist"), {"status__exact": "failed"})
    assert [row.pk for row in listed.context["cl"].result_list] == [owed.pk]
    assert "answered 500" in admin_client.get(reverse("admin:ticketing_webhookdelivery_change", args=[owed.pk])).text

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:ticketing_webhookdelivery_changelist"),
            {"action": "send_again", "_selected_action": [owed.pk]},
            follow=True,
        )
    assert "queued again" in response.text
    owed.refresh_from_db()
    assert (owed.status, owed.attempts) == (DELIVERED, 1)
    assert [request.event_id for request in receiver.received] == [str(owed.event_id)] * 2
    assert receiver.received[0].body == receiver.received[1].body

    with django_capture_on_commit_callbacks(execute=True):
        send_webhook_again(delivery_id=owed.pk)  # a delivered one too: the partner lost it
    assert len(receiver.received) == 3


def test_staff_are_told_a_queued_delivery_is_already_on_its_way(owed, admin_client):
    response = admin_client.post(
        reverse("admin:ticketing_webhookdelivery_changelist"),
        {"action": "send_again", "_selected_action": [owed.pk]},
        follow=True,
    )
    assert "already queued" in response.text


def test_staff_add_an_endpoint_for_a_partner_and_read_its_secret(db, admin_client):
    api_key, _ = create_api_key(name="cinema-app")
    response = admin_client.post(
        reverse("admin:ticketing_webhookendpoint_add"),
        {"api_key": api_key.pk, "url": "https://partner.example/hooks", "events": ["booking.created"]},
    )
    assert response.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.events, endpoint.is_active) == (["booking.created"], False)  # the box left unticked
    page = admin_client.get(reverse("admin:ticketing_webhookendpoint_change", args=[endpoint.pk])).text
    assert endpoint.secret in page and endpoint.secret.startswith("whsec_")
    refused = admin_client.post(
        reverse("admin:ticketing_webhookendpoint_add"),
        {"api_key": api_key.pk, "url": "ftp://partner.example/hooks", "events": ["booking.created"]},
    )
    assert refused.status_code == 200 and WebhookEndpoint.objects.count() == 1


# --- The API: a key's own endpoints ------------------------------------------------------------------------------


def test_a_partner_registers_lists_and_removes_its_endpoints(api):
    created = api.post(
        "/api/v1/webhooks",
        {"url": "https://partner.example/hooks", "events": ["booking.created", "waiter.served"]},
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert body["url"] == "https://partner.example/hooks"
    assert body["events"] == ["booking.created", "waiter.served"]
    assert body["secret"].startswith("whsec_") and body["is_active"] is True
    assert api.get("/api/v1/webhooks").json() == [body]
    assert api.get(f"/api/v1/webhooks/{body['id']}").json() == body

    assert api.delete(f"/api/v1/webhooks/{body['id']}").status_code == 204
    assert api.get("/api/v1/webhooks").json() == []
    assert_api_error(api.delete(f"/api/v1/webhooks/{body['id']}"), 404, "not_found")


def test_another_keys_endpoints_are_not_there_for_a_partner(api, db):
    other_key, _, theirs = partner_with_endpoint("https://other.example/hooks", name="other")
    assert api.get("/api/v1/webhooks").json() == []
    assert_api_error(api.get(f"/api/v1/webhooks/{theirs.pk}"), 404, "not_found")
    assert_api_error(api.delete(f"/api/v1/webhooks/{theirs.pk}"), 404, "not_found")
    assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists()
    assert_api_error(api.get(f"/api/v1/webhooks/{2**63}"), 404, "not_found")
    assert_api_error(api.get("/api/v1/webhooks", {"pagee": 2}), 400, "invalid_request", "pagee")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://partner.example/hooks", "events": ["booking.created"]}, "url"),
        ({"url": "javascript:alert(1)", "events": ["booking.created"]}, "url"),
        ({"url": "not a url", "events": ["booking.created"]}, "url"),
        ({"url": "https://partner.example/hooks", "events": ["booking.exploded"]}, "events"),
        ({"url": "https://partner.example/hooks", "events": []}, "events"),
        ({"url": "https://partner.example/hooks", "events": "booking.created"}, "events"),
        ({"url": "https://partner.example/hooks", "events": ["booking.created"], "secret": "mine"}, "secret"),
    ],
)
def test_a_bad_endpoint_is_refused_with_the_field_to_fix(api, body, field):
    assert_api_error(api.post("/api/v1/webhooks", body, format="json"), 400, "invalid_request", field)
    assert not WebhookEndpoint.objects.exists()


def test_the_webhooks_and_their_signature_are_in_the_openapi_schema(api):
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    assert {"/api/v1/webhooks", "/api/v1/webhooks/{endpoint_id}"} <= set(schema["paths"])
    assert set(schema["webhooks"]) == set(WebhookEvent.values)
    created = schema["webhooks"]["booking.created"]["post"]
    for header in ("Webhook-Id", "Webhook-Timestamp", "Webhook-Signature: t=<timestamp>,v1=<hex>", "HMAC-SHA256"):
        assert header in created["description"]
    envelope = created["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][envelope]["properties"]) == {"id", "type", "created_at", "data"}


# --- Never inside our own network ---------------------------------------------------------------------------------

INSIDE = [
    "http://127.0.0.1:6379/",  # this machine's Redis
    "http://localhost/hooks",
    "http://10.1.2.3/hooks",
    "http://192.168.0.10/hooks",
    "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
    "http://[::1]/hooks",
    "http://0.0.0.0/hooks",
]


@pytest.mark.parametrize("url", INSIDE)
def test_in_production_an_endpoint_inside_our_network_is_refused_by_the_api_and_the_admin(
    api, admin_client, settings, url
):
    settings.TICKETING_WEBHOOK_LOCAL_ADDRESSES = False
    refused = api.post("/api/v1/webhooks", {"url": url, "events": ["booking.created"]}, format="json")
    assert_api_error(refused, 400, "invalid_request", "url")
    api_key, _ = create_api_key(name="cinema-app")
    form = {"api_key": api_key.pk, "url": url, "events": ["booking.created"], "is_active": "on"}
    page = admin_client.post(reverse("admin:ticketing_webhookendpoint_add"), form)
    assert page.status_code == 200 and "not an address on the public internet" in page.text
    assert not WebhookEndpoint.objects.exists()


def test_a_name_that_leads_inside_by_the_time_of_sending_is_not_called_and_staff_see_why(owed, receiver, settings):
    settings.TICKETING_WEBHOOK_LOCAL_ADDRESSES = False  # registered while allowed, sent when not

    with time_machine.travel(NOW, tick=False):
        assert send_webhook(delivery_id=owed.pk) == QUEUED

    assert receiver.received == []
    owed.refresh_from_db()
    assert "127.0.0.1, not an address on the public internet" in owed.last_error


def test_an_address_on_the_public_internet_is_accepted(settings):
    settings.TICKETING_WEBHOOK_LOCAL_ADDRESSES = False
    refuse_private_address("https://93.184.216.34/hooks")  # an address needs no lookup: no network here
