"""Real concurrent refunds of one charge against PostgreSQL: bookings_record_refund (bookings 0022) never lets a
charge's refunds pass what was charged, however many arrive at once; and a buyer's booking is cancelled and
refunded once, however many times at once they press Cancel."""

import threading
import time
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, connections
from django.utils import timezone

from bookings.models import Payment
from bookings.services import BookingError, cancel_own_booking
from bookings.services.holds import call_function
from cinemas.models import RefundPolicy
from tests.bookings.helpers import paid_booking
from tests.bookings.test_self_cancellation import cinema_with
from tests.helpers import run_at_once, sql_function_replaced

pytestmark = pytest.mark.django_db(transaction=True)

REFUNDERS = 8
REFUND = Decimal("10.00")  # of a 30.00 charge: three fit


def refunds_at_once(charge):
    """REFUNDERS calls of bookings_record_refund for REFUND, each its own transaction on its own connection, made
    to start together: the charge's row is locked elsewhere until every call waits for it. Returns each call's
    outcome ("refunded" or the refusal's code)."""
    database = connection.settings_dict
    holder = psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=database["NAME"]
    )
    outcomes = []

    def refund():
        try:
            call_function("bookings_record_refund", charge.pk, timezone.now(), REFUND)
            outcomes.append("refunded")
        except BookingError as refusal:
            outcomes.append(refusal.code)
        finally:
            connections.close_all()

    try:
        holder.execute("SELECT id FROM bookings_payment WHERE id = %s FOR UPDATE", [charge.pk])
        threads = [threading.Thread(target=refund) for _ in range(REFUNDERS)]
        for thread in threads:
            thread.start()
        wait_until_waiting_for_a_lock(holder, REFUNDERS)
        holder.rollback()  # every call goes at once
        for thread in threads:
            thread.join(timeout=30)
    finally:
        holder.close()
    return sorted(outcomes)


def wait_until_waiting_for_a_lock(holder, count, seconds=10):
    deadline = time.monotonic() + seconds  # a bound for a broken test, not a clock the test depends on
    while time.monotonic() < deadline:
        holder.execute("SELECT pg_stat_clear_snapshot()")  # else the holder's transaction sees its first look again
        (waiting,) = holder.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()
        if waiting >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"only {waiting} of {count} calls came to wait for the charge")


def refunded(charge):
    return sum(Payment.objects.filter(refund_of=charge).values_list("amount", flat=True), Decimal(0))


def record_refund_definition():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef('bookings_record_refund'::regproc)")
        (definition,) = cursor.fetchone()
    return definition


def paused_after_the_sum(definition):
    """The function with a pause between summing the refunds and recording this one, as a busy server might."""
    paused = definition.replace("status <> 'failed';", "status <> 'failed';\n    PERFORM pg_sleep(0.3);")
    assert paused.count("pg_sleep") == 1
    return paused


def test_negative_control_with_a_shared_lock_on_the_charge_concurrent_refunds_pass_it():
    """Proves the race below can see an over-refund: locked FOR SHARE instead of FOR UPDATE, the calls sum the
    refunds together (each pausing after its sum, as a busy server might), see none of the others', and more is
    refunded than was charged."""
    charge = paid_booking().payments.get(kind=Payment.Kind.CHARGE)
    definition = record_refund_definition()
    assert "FOR UPDATE" in definition
    with sql_function_replaced(
        "bookings_record_refund", paused_after_the_sum(definition.replace("FOR UPDATE", "FOR SHARE"))
    ):
        outcomes = refunds_at_once(charge)
    assert outcomes.count("refunded") > 3
    assert refunded(charge) > charge.amount


@pytest.mark.parametrize("paused", [False, True], ids=["as_migrated", "paused_after_the_sum"])
def test_concurrent_refunds_of_one_charge_never_pass_it(paused):
    """The real function, and the same with the control's pause: the lock, not the timing, keeps the sum right."""
    charge = paid_booking().payments.get(kind=Payment.Kind.CHARGE)
    assert charge.amount == Decimal("30.00")
    definition = record_refund_definition()
    with sql_function_replaced("bookings_record_refund", paused_after_the_sum(definition) if paused else definition):
        outcomes = refunds_at_once(charge)
    assert outcomes == ["refund_exceeds_charge"] * (REFUNDERS - 3) + ["refunded"] * 3
    assert refunded(charge) == charge.amount


def test_a_booking_cancelled_by_many_presses_at_once_is_cancelled_and_refunded_once():
    reservation = paid_booking(cinema_with(RefundPolicy.FULL))

    def press():
        try:
            return cancel_own_booking(reservation_id=reservation.pk).status
        except BookingError as refusal:
            return refusal.code

    outcomes = run_at_once([press] * REFUNDERS)

    assert sorted(outcomes) == ["Cancelled"] + ["booking_cancelled"] * (REFUNDERS - 1)
    refund = reservation.payments.get(kind=Payment.Kind.REFUND)
    assert refund.amount == Decimal("30.00") and refund.status == Payment.Status.SUCCEEDED
