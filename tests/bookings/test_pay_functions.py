"""Paying's SQL functions (migration bookings 0010), called as a client of PostgreSQL would, without Django.

The lean front, the website, the reconciler and staff all pay through them, so these tests hold the rules of
paying where they live: which hold may be charged and for how long it is kept, booking once whoever fulfils a
charge, refunding a charge whose hold was lost, a declined hold's clock, and an Idempotency-Key's answers.
"""

from datetime import timedelta

import psycopg
import pytest
from django.utils import timezone

from bookings.models import IdempotentRequest, Payment, Reservation, SeatClaim
from bookings.services import hold_seats
from tests.bookings.test_hold_functions import database, refusal
from tests.factories import make_hall, make_show
from tests.helpers import run_at_once, sql_function_replaced, sql_function_with
from ticketing.buyers import Buyer

pytestmark = pytest.mark.django_db(transaction=True)

SETTLE, EXTENSION, GRACE, TAKEOVER = (timedelta(seconds=s) for s in (30, 30, 5, 60))


@pytest.fixture
def show(db):
    return make_show(hall=make_hall(plan="\n".join(["RRRRRRRRRR"] * 2)))


@pytest.fixture
def held(show):
    seats = list(show.hall.seats.order_by("id").values_list("id", flat=True))[:2]
    return hold_seats(buyer=Buyer(api_key_id=None, session_id="alice"), show=show, seat_ids=seats)


def start_charge(db, reservation, *, session="alice", look_up=False, at=None):
    return db.execute(
        "SELECT * FROM bookings_start_charge(%s, NULL, %s, false, %s, %s, %s, 'sandbox', '4242', %s)",
        [reservation.pk, session, look_up, SETTLE, EXTENSION, at or timezone.now()],
    ).fetchone()


def fulfil(db, payment, code="K7M2Q9XD", at=None):
    return db.execute(
        "SELECT * FROM bookings_fulfil_charge(%s, 'ch_1', %s, %s)", [payment, code, at or timezone.now()]
    ).fetchone()


def begin(db, key, fingerprint="f1", at=None):
    return db.execute(
        "SELECT * FROM bookings_begin_idempotent_request(NULL, 'alice', %s, %s, %s, %s, NULL)",
        [key, fingerprint, TAKEOVER, at or timezone.now()],
    ).fetchone()


def test_starting_a_charge_keeps_the_hold_a_little_longer_and_records_a_pending_charge(held):
    moment = held.expires_at - timedelta(seconds=1)
    with database() as db:
        payment, amount, currency, unsettled, booked = start_charge(db, held, at=moment)

    charge = Payment.objects.get(pk=payment)
    assert (charge.status, charge.kind, charge.amount, amount, currency) == (
        "pending",
        "charge",
        held.amount,
        held.amount,
        "USD",
    )
    assert unsettled is None and booked is None
    assert Reservation.objects.get(pk=held.pk).held_until == moment + EXTENSION


def test_starting_a_charge_refuses_another_sessions_hold_a_lapsed_hold_and_a_second_charge(held):
    with database() as db:
        assert refusal(lambda: start_charge(db, held, session="bob")) == "not_found"
        assert refusal(lambda: start_charge(db, held, at=held.held_until)) == "hold_expired"
        start_charge(db, held)
        assert refusal(lambda: start_charge(db, held)) == "payment_in_progress"
    assert Payment.objects.count() == 1


def test_a_charge_whose_outcome_nobody_waits_for_is_handed_back_to_look_up_before_any_new_charge(held):
    start = timezone.now()
    with database() as db:
        payment = start_charge(db, held, at=start)[0]
        assert start_charge(db, held, look_up=True, at=start + SETTLE)[3] == [[str(payment), "pending"]]
    assert Payment.objects.count() == 1


def test_two_connections_paying_one_hold_at_once_book_it_once_with_one_charge(held):
    def pay():
        with database() as db:
            try:
                payment = start_charge(db, held)[0]
            except Exception as error:
                return getattr(error, "sqlstate", None)
            return [fulfil(db, payment, code=code)[0]["status"] for code in ("AAAAAAAA", "BBBBBBBB")]

    answers = run_at_once([pay, pay])

    assert sorted(answers, key=str) == ["TKR01", ["Booked", "Booked"]]
    reservation = Reservation.objects.get(pk=held.pk)
    assert reservation.status == "Booked" and reservation.booking_code == "AAAAAAAA"
    assert list(Payment.objects.values_list("kind", "status")) == [("charge", "succeeded")]
    assert set(SeatClaim.objects.filter(reservation=held).values_list("booked", flat=True)) == {True}


def test_a_booking_code_another_booking_has_is_refused_as_taken_and_books_nothing(show, held):
    seats = list(show.hall.seats.order_by("id").values_list("id", flat=True))[2:3]
    other = hold_seats(buyer=Buyer(api_key_id=None, session_id="bob"), show=show, seat_ids=seats)
    with database() as db:
        fulfil(db, start_charge(db, other, session="bob")[0], code="K7M2Q9XD")
        payment = start_charge(db, held)[0]

        assert refusal(lambda: fulfil(db, payment, code="K7M2Q9XD")) == "booking_code_taken"
        assert fulfil(db, payment, code="K7M2Q9XE")[0]["status"] == "Booked"


def test_a_unique_violation_of_another_table_while_booking_goes_up_as_itself_not_as_a_code_taken(held):
    """The reservation's update fires the sales tally's trigger in the same statement: a uniqueness it breaks
    is a fault of its own, not a booking code drawn twice (0019 took it for one and the caller drew again)."""
    breaking_the_tally = sql_function_with(
        "bookings_tally_reservation",
        "BEGIN\n",
        """BEGIN
    INSERT INTO bookings_showsales (show_id, backend, website, partners, box_office, house, gross_online,
                                    gross_box_office, fees, taxes, discounts, refunds)
    SELECT NEW.show_id, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 FROM generate_series(1, 2);
""",
    )
    with database() as db:
        payment = start_charge(db, held)[0]
        with (
            sql_function_replaced("bookings_tally_reservation", breaking_the_tally),
            pytest.raises(psycopg.errors.UniqueViolation) as raised,
        ):
            fulfil(db, payment)

    assert raised.value.diag.constraint_name == "bookings_showsales_one_per_session"
    assert Reservation.objects.get(pk=held.pk).status == "Reserved"


def test_a_charge_that_lands_after_its_hold_was_lost_records_a_refund_and_books_nothing(held):
    with database() as db:
        payment = start_charge(db, held)[0]
        db.execute("SELECT bookings_cancel_hold(%s, NULL, 'alice', %s)", [held.pk, timezone.now()])
        reservation, version, booked, refund = fulfil(db, payment)

    assert reservation["status"] == "Cancelled" and booked is None
    assert refund["charge"] == "ch_1" and refund["amount"] == str(held.amount)
    assert Payment.objects.get(pk=refund["id"]).refund_of_id == payment


def test_a_declined_charge_gives_the_hold_its_own_clock_back_once(held):
    with database() as db:
        payment = start_charge(db, held, at=held.expires_at - timedelta(seconds=1))[0]
        settle = "SELECT bookings_settle_failed_charge(%s, 'pending', 'declined', 'card_declined', %s, now())"
        assert db.execute(settle, [payment, GRACE]).fetchone() == (True,)
        assert db.execute(settle, [payment, GRACE]).fetchone() == (False,)

    assert Reservation.objects.get(pk=held.pk).held_until == held.expires_at + GRACE
    assert Payment.objects.get(pk=payment).status == "declined"


def test_an_idempotency_key_is_claimed_replayed_refused_for_another_request_and_taken_over_when_abandoned():
    start = timezone.now()
    with database() as db:
        request_id, resumed, status, body = begin(db, "k", at=start)
        assert not resumed and status is None
        assert refusal(lambda: begin(db, "k", at=start)) == "idempotency_in_flight"
        assert refusal(lambda: begin(db, "k", fingerprint="f2", at=start)) == "idempotency_mismatch"
        db.execute("SELECT bookings_abandon_idempotent_request(%s, %s, %s)", [request_id, TAKEOVER, start])
        assert begin(db, "k", at=start)[1] is True  # resumed
        db.execute("SELECT bookings_finish_idempotent_request(%s, 200, '{}', %s)", [request_id, start])
        assert begin(db, "k", at=start)[2:] == (200, "{}")
    assert IdempotentRequest.objects.count() == 1
