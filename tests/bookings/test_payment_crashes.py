"""Payments exactly once when the web process dies at each step of paying (TEST-PLAN.md E2).

The site runs as a real uvicorn process paying through the sandbox provider's own HTTP service; a crash
point (ticketing/faults.py) kills it outright: before the charge, after the charge but before our commit,
or after our commit but before the answer is stored. Then the Celery worker's reconciler settles what was
left (on clocks shortened through their settings), the buyer retries with the same Idempotency-Key, and the
provider's ledger and our database must agree: one charge, one booking.
"""

import time

import httpx
import pytest

from bookings.models import Payment, Reservation
from bookings.providers.sandbox_http import SandboxHttpProvider
from tests.bookings.helpers import GOOD_CARD, seat_ids
from tests.conftest import celery_worker, payment_sandbox, redis_keys_of_its_own, serving
from tests.factories import make_api_key
from tests.helpers import wait_until

SETTLE_SECONDS = 2
CLOCKS = {
    "TICKETING_PAYMENT_SETTLE_SECONDS": str(SETTLE_SECONDS),
    "TICKETING_RECONCILE_SECONDS": "1",
    "TICKETING_IDEMPOTENCY_TAKEOVER_SECONDS": "3",
    "CELERY_TASK_ALWAYS_EAGER": "0",
}


@pytest.fixture
def stack(settings, show):
    """A payment sandbox and the environment that points the site's processes at it, with Redis keys of their own
    (the sandbox's ledger starts empty; the worker sees only these processes' tasks)."""
    keys = redis_keys_of_its_own()
    with payment_sandbox(settings, environment=keys) as (sandbox_url, _):
        environment = {
            **CLOCKS,
            **keys,
            "TICKETING_PAYMENT_PROVIDER": "bookings.providers.sandbox_http.SandboxHttpProvider",
            "TICKETING_PAYMENT_SANDBOX_URL": sandbox_url,
        }
        yield environment, SandboxHttpProvider(base_url=sandbox_url, timeout=5)


def hold_two_seats(client, show):
    body = {
        "session_id": "buyer",
        "movie_id": show.movie_id,
        "show_id": show.pk,
        "seats_to_reserve": seat_ids(show)[:2],
    }
    response = client.post("/api/v1/reservations", json=body)
    assert response.status_code == 201
    return response.json()["reservation_id"]


def pay(client, reservation_id):
    return client.post(
        f"/api/v1/reservations/{reservation_id}/pay",
        json={"session_id": "buyer", "payment": GOOD_CARD},
        headers={"Idempotency-Key": "pay-once"},
    )


def charges_for(provider, reservation_id):
    keys = {str(pk) for pk in Payment.objects.filter(reservation_id=reservation_id).values_list("pk", flat=True)}
    return [charge for charge in provider.charges() if charge.idempotency_key in keys]


def assert_one_charge_one_booking(provider, reservation_id):
    reservation = Reservation.objects.get(pk=reservation_id)
    charges = charges_for(provider, reservation_id)
    succeeded = Payment.objects.filter(reservation_id=reservation_id, kind="charge", status="succeeded")
    assert reservation.status == Reservation.Status.BOOKED
    assert len(charges) == 1 and not charges[0].refunded
    assert [payment.provider_reference for payment in succeeded] == [charges[0].charge_id]
    assert not Payment.objects.filter(reservation_id=reservation_id, status__in=["pending", "unknown"]).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("crash_at", "reconciler_leaves"),
    [
        ("before_charge", Reservation.Status.RESERVED),  # nothing charged: the payment fails, the hold stands
        ("after_charge", Reservation.Status.BOOKED),  # charged, not recorded: the reconciler books it
        ("after_commit", Reservation.Status.BOOKED),  # booked, not answered: nothing to settle
    ],
)
def test_a_crash_at_each_step_of_paying_is_settled_and_a_retry_answers_booked_with_one_charge(
    settings, show, stack, crash_at, reconciler_leaves
):
    environment, provider = stack
    headers = {"X-API-Key": make_api_key()}

    with celery_worker(settings, environment=environment):
        with serving(settings, workers=1, environment={**environment, "TICKETING_CRASH_AT": crash_at}) as (url, web):
            with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
                reservation_id = hold_two_seats(client, show)
                with pytest.raises(httpx.TransportError):
                    pay(client, reservation_id)
            assert web.wait(timeout=10) == 137
        crashed_at = time.monotonic()

        def settled():
            return not Payment.objects.filter(reservation_id=reservation_id, status__in=["pending", "unknown"]).exists()

        assert wait_until(settled, seconds=30)
        settled_after = time.monotonic() - crashed_at
        assert Reservation.objects.get(pk=reservation_id).status == reconciler_leaves
        assert len(charges_for(provider, reservation_id)) == (0 if crash_at == "before_charge" else 1)

        with (
            serving(settings, workers=1, environment=environment) as (url, _),
            httpx.Client(base_url=url, headers=headers, timeout=10) as client,
        ):
            retried = wait_until(lambda: (answer := pay(client, reservation_id)).status_code != 409 and answer, 30)
            replayed = pay(client, reservation_id)

    assert settled_after < SETTLE_SECONDS + 10
    assert retried.status_code == 200 and retried.json()["status"] == "Booked"
    assert replayed.content == retried.content
    assert_one_charge_one_booking(provider, reservation_id)


@pytest.mark.django_db(transaction=True)
def test_a_charge_answered_too_late_is_504_then_booked_by_the_reconciler_and_the_retry_says_booked(
    settings, show, stack
):
    environment, provider = stack
    environment = {**environment, "TICKETING_PAYMENT_TIMEOUT_SECONDS": "1"}
    headers = {"X-API-Key": make_api_key()}
    provider.client.post("/v1/faults", json={"faults": [{"on": "charge", "do": "late", "seconds": 2}]})

    with (
        celery_worker(settings, environment=environment),
        serving(settings, workers=1, environment=environment) as (url, _),
        httpx.Client(base_url=url, headers=headers, timeout=10) as client,
    ):
        reservation_id = hold_two_seats(client, show)
        timed_out = pay(client, reservation_id)
        booked = wait_until(lambda: Reservation.objects.get(pk=reservation_id).status == Reservation.Status.BOOKED, 30)
        retried = pay(client, reservation_id)

    assert timed_out.status_code == 504 and timed_out.json()["error"]["code"] == "payment_timeout"
    assert timed_out.headers["Retry-After"]
    assert booked
    assert retried.status_code == 200 and retried.json()["status"] == "Booked"
    assert_one_charge_one_booking(provider, reservation_id)


@pytest.mark.django_db(transaction=True)
def test_a_provider_that_fails_then_recovers_is_retried_to_one_booking(settings, show, stack):
    environment, provider = stack
    headers = {"X-API-Key": make_api_key()}
    provider.client.post(
        "/v1/faults", json={"faults": [{"on": "charge", "do": "fail"}, {"on": "charge", "do": "drop"}]}
    )

    with (
        serving(settings, workers=1, environment=environment) as (url, _),
        httpx.Client(base_url=url, headers=headers, timeout=10) as client,
    ):
        reservation_id = hold_two_seats(client, show)
        answers = [pay(client, reservation_id) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [504, 504, 200]
    assert answers[2].json()["status"] == "Booked"
    assert_one_charge_one_booking(provider, reservation_id)
