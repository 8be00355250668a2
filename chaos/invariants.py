"""The invariants every fault scenario checks afterwards, in SQL on the run's database (and against the payment
provider's ledger): seats, holds, bookings and their charges, the waiting line. Each is a count of violations.
"""

import psycopg

# Each check: the SQL that counts its violations on show %(show)s.
COUNTED = {
    "seats_claimed_twice": (
        "SELECT count(*) FROM (SELECT seat_id FROM bookings_seatclaim WHERE show_id = %(show)s "
        "AND released_at IS NULL GROUP BY seat_id HAVING count(*) > 1) doubled"
    ),
    "partial_holds": (
        "SELECT count(*) FROM bookings_reservation r WHERE r.show_id = %(show)s AND ("
        " (r.status IN ('Reserved', 'Booked') AND (NOT EXISTS (SELECT 1 FROM bookings_seatclaim c"
        "   WHERE c.reservation_id = r.id AND c.released_at IS NULL) OR EXISTS (SELECT 1 FROM bookings_seatclaim c"
        "   WHERE c.reservation_id = r.id AND c.released_at IS NOT NULL)))"
        " OR (r.status IN ('Expired', 'Cancelled') AND EXISTS (SELECT 1 FROM bookings_seatclaim c"
        "   WHERE c.reservation_id = r.id AND c.released_at IS NULL)))"
    ),
    "holds_blocking_past_expiry_grace_and_sweep": (
        "SELECT count(*) FROM bookings_reservation WHERE show_id = %(show)s AND status = 'Reserved' "
        "AND held_until < now() - interval '10 seconds'"
    ),
    "bookings_without_exactly_one_charge": (
        "SELECT count(*) FROM bookings_reservation r WHERE r.show_id = %(show)s AND r.status = 'Booked' AND "
        "(SELECT count(*) FROM bookings_payment p WHERE p.reservation_id = r.id AND p.kind = 'charge' "
        " AND p.status = 'succeeded') <> 1"
    ),
    "waiters_served_twice": (
        "SELECT count(*) FROM (SELECT w.id FROM waiting_waiter w JOIN bookings_reservation r "
        " ON r.session_id = w.session_id AND r.show_id = w.show_id WHERE w.show_id = %(show)s "
        " GROUP BY w.id HAVING count(*) > 1) twice"
    ),
    "waiters_lost": (
        "SELECT count(*) FROM waiting_waiter w WHERE w.show_id = %(show)s AND w.status = 'Seats Available' "
        "AND NOT EXISTS (SELECT 1 FROM bookings_reservation r WHERE r.id = w.reservation_id)"
    ),
    # Everyone wants one seat, so the line is served strictly by place: nobody still waits ahead of a served
    # waiter (and serving_order_breaks counts holds not made in the order of the places).
    "waiters_served_out_of_order": (
        "SELECT count(*) FROM waiting_waiter served WHERE served.show_id = %(show)s "
        "AND served.status = 'Seats Available' AND EXISTS (SELECT 1 FROM waiting_waiter ahead "
        " WHERE ahead.show_id = served.show_id AND ahead.place < served.place AND ahead.status = 'Waiting')"
    ),
}


def invariants(database_url, show_id, ledger_charges=None):
    """Each check's violations (a count, 0 when it holds), from PostgreSQL (and the provider's ledger)."""
    with psycopg.connect(database_url) as connection:
        checks = {name: connection.execute(sql, {"show": show_id}).fetchone()[0] for name, sql in COUNTED.items()}
        checks["waiters_served_out_of_order"] += serving_order_breaks(connection, show_id)
        if ledger_charges is not None:
            checks.update(ledger_checks(connection, show_id, ledger_charges))
    return checks


def serving_order_breaks(connection, show_id):
    """Served waiters whose hold came before an earlier place's. Each hold takes its seats' version from one
    sequence, inside the line's lock: in serving order. (Not created_at: a serving call reads the clock before it
    queues for the lock.)"""
    served = connection.execute(
        "SELECT w.place FROM waiting_waiter w JOIN bookings_seatclaim c ON c.reservation_id = w.reservation_id "
        "WHERE w.show_id = %(show)s GROUP BY w.id, w.place ORDER BY min(c.version)",
        {"show": show_id},
    ).fetchall()
    places = [place for (place,) in served]
    return sum(a > b for a, b in zip(places, places[1:], strict=False))


def ledger_checks(connection, show_id, ledger_charges):
    """Our succeeded, unrefunded charges of the show against the provider's ledger, both ways."""

    def values(sql):
        return {value for (value,) in connection.execute(sql, {"show": show_id})}

    # This show's charges: the provider's idempotency key of each is our payment's id.
    keys = {
        str(payment_id)
        for payment_id in values(
            "SELECT p.id FROM bookings_payment p JOIN bookings_reservation r ON r.id = p.reservation_id "
            "WHERE r.show_id = %(show)s AND p.kind = 'charge'"
        )
    }
    ours = values(
        "SELECT p.provider_reference FROM bookings_payment p JOIN bookings_reservation r "
        "ON r.id = p.reservation_id WHERE r.show_id = %(show)s AND p.kind = 'charge' "
        "AND p.status = 'succeeded'"
    )
    refunded = values(
        "SELECT c.provider_reference FROM bookings_payment c JOIN bookings_payment r "
        "ON r.refund_of_id = c.id AND r.status = 'succeeded'"
    )
    theirs = {
        charge["charge_id"] for charge in ledger_charges if charge["idempotency_key"] in keys and not charge["refunded"]
    }
    return {
        "charges_without_a_booking": len(theirs - (ours - refunded)),
        "bookings_without_a_charge_at_the_provider": len((ours - refunded) - theirs),
    }


def acknowledged_but_lost(database_url, acknowledged):
    """What clients were told and the database no longer has: holds answered 201 with no reservation row, and
    payments answered 200 whose reservation is not Booked with exactly one succeeded charge."""
    held, booked = sorted(acknowledged["held"]), sorted(acknowledged["booked"])
    with psycopg.connect(database_url) as connection:
        found = {
            str(row[0])
            for row in connection.execute(
                "SELECT id FROM bookings_reservation WHERE id::text = ANY(%s)", (held,)
            ).fetchall()
        }
        still_booked = {
            str(row[0])
            for row in connection.execute(
                "SELECT r.id FROM bookings_reservation r WHERE r.id::text = ANY(%s) AND r.status = 'Booked' AND "
                "(SELECT count(*) FROM bookings_payment p WHERE p.reservation_id = r.id AND p.kind = 'charge' "
                " AND p.status = 'succeeded') = 1",
                (booked,),
            ).fetchall()
        }
    return {
        "acknowledged_holds": len(held),
        "acknowledged_bookings": len(booked),
        "holds_lost": len(set(held) - found),
        "bookings_lost": len(set(booked) - still_booked),
    }
