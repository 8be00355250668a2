"""Calls of the reservations API as a partner makes them, the staff's cancelling in the admin, and another
transaction's locks for races."""

import contextlib
import re
import threading

import psycopg
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection, connections
from django.urls import reverse

from bookings.models import Reservation
from bookings.providers import parse_card
from bookings.services import hold_seats, pay_for_reservation
from tests.factories import SMALL_PLAN, make_cinema, make_hall, make_show
from ticketing.buyers import Buyer

GOOD_CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}
DECLINED_CARD = {**GOOD_CARD, "card_number": "4000000000000002"}
TIMEOUT_CARD = {**GOOD_CARD, "card_number": "4000000000009995"}


def taken_by_others(show, seats, *, pay=False):
    """Hold `seats` (any number) in holds of others, ten at most each; and pay for them with `pay`. They need the
    wheelchair spaces among them (and may take companion seats without one)."""
    for number, start in enumerate(range(0, len(seats), 10)):
        buyer = Buyer(None, f"someone-{number}")
        hold = hold_seats(buyer=buyer, show=show, seat_ids=seats[start : start + 10], accessible_confirmed=True)
        if pay:
            pay_for_reservation(buyer=buyer, reservation_id=hold.pk, card=parse_card(GOOD_CARD))


def paid_booking(cinema=None, *, show=None, plan=SMALL_PLAN, seats=2, first_seat=0, email="ann@example.com"):
    """`seats` seats of `show` (or of a new show tomorrow at `cinema`), from its `first_seat`-th on, paid for by
    alice with address `email`; the first row is Premium at 15.00, so two seats cost 30.00."""
    show = show or make_show(hall=make_hall(cinema=cinema or make_cinema(), plan=plan))
    alice = Buyer(None, "alice")
    hold = hold_seats(buyer=alice, show=show, seat_ids=seat_ids(show)[first_seat : first_seat + seats])
    reservation = pay_for_reservation(buyer=alice, reservation_id=hold.pk, card=parse_card(GOOD_CARD))
    Reservation.objects.filter(pk=reservation.pk).update(email=email)
    return Reservation.objects.select_related("show__hall__cinema").get(pk=reservation.pk)


def seat_ids(show):
    return list(show.hall.seats.order_by("y", "x").values_list("id", flat=True))


def labelled(show, *labels):
    """Seat ids by label ("B2"), in the order given."""
    seats = {f"{seat.row_label}{seat.number}": seat.pk for seat in show.hall.seats.all()}
    return [seats[label] for label in labels]


def seat_tag(page, seat_id):
    """The seat map page's markup of one seat."""
    return re.search(rf'<label class="seat [^"]*"[^>]*data-seat-id="{seat_id}".*?</label>', page, re.S).group(0)


def reserve(api, show, seats=None, *, session="alice", best_available=None, **extra):
    body = {"session_id": session, "movie_id": show.movie_id, "show_id": show.pk, **extra}
    if best_available is not None:
        body["best_available"] = best_available
    else:
        body["seats_to_reserve"] = seats
    return api.post("/api/v1/reservations", body, format="json")


def pay(api, reservation_id, *, key="key-1", session="alice", card=GOOD_CARD):
    return api.post(
        f"/api/v1/reservations/{reservation_id}/pay",
        {"session_id": session, "payment": card},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def seat_map(api, show):
    return api.get(f"/api/v1/shows/{show.pk}/seats").json()


def statuses(api, show):
    return {seat["id"]: seat["status"] for seat in seat_map(api, show)["seats"]}


@contextlib.contextmanager
def row_locked_elsewhere(reservation):
    """The reservation's row locked FOR UPDATE by another connection's open transaction (as a payment of it
    mid-way locks it) for the block; rolled back after. Needs a transactional test: the row must be committed.
    """
    database = connection.settings_dict
    other = psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=database["NAME"]
    )
    try:
        locked = other.execute("SELECT id FROM bookings_reservation WHERE id = %s FOR UPDATE", [reservation.pk])
        assert locked.fetchone() is not None
        yield
        other.rollback()
    finally:
        other.close()


def finished_in_thread(action, *, wait=30):
    """Run `action` in a thread of its own (its own database connection); `("returned", value)` or
    `("raised", exception)`, or `("still running", None)` if it has not ended after `wait` seconds (a bound
    for tests that must not hang when a lock is waited for, not a measure of speed).

    A thread still running is left to end on its own once whatever it waits for lets go.
    """
    outcome = []

    def run():
        try:
            outcome.append(("returned", action()))
        except Exception as exc:  # the caller asserts on it
            outcome.append(("raised", exc))
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=wait)
    return outcome[0] if outcome else ("still running", None)


STAFF_REASON = "The projector broke down."


def cancel_through_action(client, *reservations, reason=STAFF_REASON):
    """The admin's "Cancel booking and refund" on these reservations, confirmed on its page with `reason`."""
    return client.post(
        reverse("admin:bookings_reservation_changelist"),
        {"action": "cancel_and_refund", ACTION_CHECKBOX_NAME: [str(r.pk) for r in reservations], "post": "yes"}
        | ({"reason": reason} if reason is not None else {}),
        follow=True,
    )
