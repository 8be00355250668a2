"""The booking rules as a state machine (TEST-PLAN.md C6): Hypothesis drives the real services through random
sequences of holds, cancellations, payments, extensions, clock moves, sweeps and joins of the waiting line, on
PostgreSQL, and checks them after every step against a model of the rules.

The model keeps its own book of the direct holds (which seats, until when, paid, cancelled or extended) and
predicts each hold's, cancellation's, payment's and extension's outcome; the holds the waiting line gives its
waiters are made by the services on their own (after a sweep or a cancellation, in order), so the model reads
them back and checks the line's rules instead: nobody is served while someone ahead still waits, nobody twice.
After every step the seats the model says are free at this moment must be exactly the seats the database says
are free, no seat may have two live claims, and every live reservation holds all its seats or none.
"""

from datetime import timedelta
from importlib import import_module

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from bookings.availability import live_claims
from bookings.models import Reservation
from bookings.providers import parse_card
from bookings.services import (
    BookingError,
    cancel_hold,
    extend_hold,
    hold_seats,
    pay_for_reservation,
    release_lapsed_holds,
)
from tests.bookings.helpers import DECLINED_CARD, GOOD_CARD
from tests.factories import make_hall, make_show
from ticketing.buyers import Buyer
from waiting.models import Waiter
from waiting.services import WaitingError, join_waiting_line

HOLD_LASTS = timedelta(seconds=305)  # TICKETING_HOLD_SECONDS + TICKETING_HOLD_GRACE_SECONDS
EXTENSION = timedelta(seconds=120)  # TICKETING_HOLD_EXTENSION_SECONDS
SESSIONS = ["ann", "ben", "cat"]
PLAN = "RRRR\nRRRR"  # 8 seats: small enough that holds collide and the show fills
UNAVAILABLE = {"seats_unavailable", "retry", "show_full"}


class BookingRules(RuleBasedStateMachine):
    holds = Bundle("holds")

    @initialize()
    def a_fresh_show(self):
        self.show = make_show(hall=make_hall(plan=PLAN))
        self.seats = list(self.show.hall.seats.order_by("y", "x").values_list("id", flat=True))
        self.clock = time_machine.travel(self.show.starts_at - timedelta(days=1), tick=False)
        self.traveller = self.clock.start()
        # reservation id -> {"session", "seats", "held_until", "booked", "cancelled", "extended"}
        self.direct = {}
        self.served = {}  # the waiting line's holds, read back: reservation id -> (seats, held_until)

    def teardown(self):
        self.clock.stop()

    # --- The model -------------------------------------------------------------------------------------------

    def now(self):
        return timezone.now()

    def taken_by_model(self):
        now = self.now()
        taken = set()
        for hold in self.direct.values():
            if hold["booked"] or hold["held_until"] > now:
                taken |= hold["seats"]
        for seats, held_until in self.served.values():
            if held_until > now:
                taken |= seats
        return taken

    def seats_of_session(self, session):
        now = self.now()
        return sum(
            len(hold["seats"])
            for hold in self.direct.values()
            if hold["session"] == session and (hold["booked"] or hold["held_until"] > now)
        )

    def someone_waits(self):
        return Waiter.objects.filter(show=self.show, status=Waiter.Status.WAITING).exists()

    def read_back_the_lines_holds(self):
        for waiter in Waiter.objects.filter(show=self.show, reservation__isnull=False).select_related("reservation"):
            reservation = waiter.reservation
            seats = set(reservation.claims.values_list("seat_id", flat=True))
            self.served[reservation.pk] = (seats, reservation.held_until)

    # --- Rules ------------------------------------------------------------------------------------------------

    @rule(target=holds, session=st.sampled_from(SESSIONS), picks=st.sets(st.integers(0, 7), min_size=1, max_size=3))
    def hold(self, session, picks):
        chosen = {self.seats[index] for index in picks}
        waits = self.someone_waits()
        over_cap = self.seats_of_session(session) + len(chosen) > 10
        free = not (chosen & self.taken_by_model())
        try:
            reservation = hold_seats(buyer=Buyer(None, session), show=self.show, seat_ids=sorted(chosen))
        except BookingError as refusal:
            if waits:
                assert refusal.code == "waiting_line"
            elif over_cap:
                assert refusal.code == "session_seat_cap"
            else:
                assert not free and refusal.code in UNAVAILABLE, refusal.code
            self.read_back_the_lines_holds()
            return None
        assert not waits and not over_cap and free, "a hold the rules refuse was granted"
        self.direct[reservation.pk] = {
            "session": session,
            "seats": chosen,
            "held_until": reservation.held_until,
            "booked": False,
            "cancelled": False,
            "extended": False,
        }
        return reservation.pk

    @rule(reservation_id=holds)
    def cancel(self, reservation_id):
        if reservation_id is None:
            return
        hold = self.direct[reservation_id]
        try:
            cancel_hold(buyer=Buyer(None, hold["session"]), reservation_id=reservation_id)
        except BookingError as refusal:
            assert hold["booked"] and refusal.code == "booked_not_cancellable"
        else:
            assert not hold["booked"]
            hold["cancelled"] = hold["cancelled"] or hold["held_until"] > self.now()  # a lapsed one is Expired
            hold["held_until"] = min(hold["held_until"], self.now())
        self.read_back_the_lines_holds()

    @rule(reservation_id=holds)
    def extend(self, reservation_id):
        if reservation_id is None:
            return
        hold = self.direct[reservation_id]
        live = not hold["booked"] and hold["held_until"] > self.now()
        try:
            extended = extend_hold(buyer=Buyer(None, hold["session"]), reservation_id=reservation_id)
        except BookingError as refusal:
            if hold["booked"]:
                assert refusal.code == "already_booked"
            elif hold["cancelled"]:
                assert refusal.code == "hold_cancelled"
            elif not live:
                assert refusal.code == "hold_expired"
            else:
                assert hold["extended"] and refusal.code == "hold_already_extended", refusal.code
            return
        assert live and not hold["extended"], "an extension the rules refuse was granted"
        hold["extended"] = True
        hold["held_until"] += EXTENSION
        assert extended.held_until == hold["held_until"]

    @rule(reservation_id=holds, good_card=st.booleans())
    def pay(self, reservation_id, good_card):
        if reservation_id is None:
            return
        hold = self.direct[reservation_id]
        live = not hold["booked"] and hold["held_until"] > self.now()
        card = parse_card(GOOD_CARD if good_card else DECLINED_CARD)
        try:
            pay_for_reservation(buyer=Buyer(None, hold["session"]), reservation_id=reservation_id, card=card)
        except BookingError as refusal:
            if hold["booked"]:
                assert refusal.code == "already_booked"
            elif not live:
                assert refusal.code in {"hold_expired", "hold_cancelled"}
            else:
                assert not good_card and refusal.code == "card_declined"
            return
        assert live and good_card, "a payment the rules refuse went through"
        hold["booked"] = True

    @rule(seconds=st.integers(0, 400))
    def time_passes(self, seconds):
        self.traveller.shift(timedelta(seconds=seconds))

    @rule()
    def sweep(self):
        release_lapsed_holds()
        self.read_back_the_lines_holds()

    @rule(session=st.sampled_from(["w1", "w2", "w3", "w4"]), count=st.integers(1, 4))
    def join_the_line(self, session, count):
        try:
            join_waiting_line(buyer=Buyer(None, session), show=self.show, seats_wanted=count)
        except WaitingError as refusal:
            assert refusal.code in {"seats_available", "show_full"}, refusal.code
        self.read_back_the_lines_holds()

    # --- What must always be true -----------------------------------------------------------------------------

    @invariant()
    def the_free_seats_are_the_models(self):
        if not hasattr(self, "show"):
            return
        taken = set(live_claims(self.now()).filter(show=self.show).values_list("seat_id", flat=True))
        assert taken == self.taken_by_model()

    @invariant()
    def no_seat_is_claimed_twice_and_no_hold_is_partial(self):
        if not hasattr(self, "show"):
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM (SELECT seat_id FROM bookings_seatclaim WHERE show_id = %s "
                "AND released_at IS NULL GROUP BY seat_id HAVING count(*) > 1) doubled",
                [self.show.pk],
            )
            assert cursor.fetchone()[0] == 0
        for reservation in Reservation.objects.filter(show=self.show):
            claims = list(reservation.claims.values_list("released_at", flat=True))
            live = [released for released in claims if released is None]
            assert claims and (len(live) in (0, len(claims)))

    @invariant()
    def the_line_is_served_in_order_and_once(self):
        if not hasattr(self, "show"):
            return
        line = list(Waiter.objects.filter(show=self.show).order_by("place").values_list("status", "reservation_id"))
        served_places = [place for place, (status, _) in enumerate(line) if status == Waiter.Status.SEATS_AVAILABLE]
        waiting_places = [place for place, (status, _) in enumerate(line) if status == Waiter.Status.WAITING]
        assert not served_places or not waiting_places or max(served_places) < min(waiting_places)
        reservations = [reservation for _, reservation in line if reservation is not None]
        assert len(reservations) == len(set(reservations))


@pytest.mark.django_db(transaction=True)
def test_the_services_keep_the_booking_rules_through_random_sequences():
    run_state_machine_as_test(
        BookingRules,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            database=None,  # no example files in the repository: CI starts afresh anyway
            derandomize=True,  # the same sequences on every run: CI's answer depends on the code alone
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


@pytest.fixture
def paying_skips_the_hold_check():
    """bookings_refuse_unless_held (migration 0010) refusing nothing, for the test; put back after it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION bookings_refuse_unless_held(p_hold bookings_reservation, p_at timestamptz)"
            " RETURNS void LANGUAGE sql AS $$ SELECT $$"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(import_module("bookings.migrations.0010_pay_functions").FUNCTIONS)


@pytest.mark.django_db(transaction=True)
def test_negative_control_a_payment_that_skips_the_hold_check_is_caught(paying_skips_the_hold_check):
    """Proves the machine can see a broken rule: with the check that a hold is still live skipped when paying,
    Hypothesis finds a sequence (e.g. hold, let it lapse, pay) whose outcome the model refuses."""

    with pytest.raises(AssertionError):
        run_state_machine_as_test(
            BookingRules,
            settings=settings(
                max_examples=200,
                stateful_step_count=25,
                deadline=None,
                database=None,
                phases=[Phase.generate],  # finding it is the point; shrinking the sequence would only take time
                derandomize=True,  # the same sequences each run: random ones sometimes met the database's own
                # constraint (one successful charge per hold) first, an IntegrityError instead of the model's word
                report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
