"""The sell-out's invariants (bench.sell_out), read straight from PostgreSQL and the sandbox provider's ledger, not
through the app, then the API's seat map: each check's list of violations, empty when it holds."""

from collections import Counter

import psycopg


def check_invariants(database_url, sale, seat_map):
    """Each check's list of violations (empty when it holds), read from PostgreSQL, the ledger and the seat map."""
    rows = read_show(database_url, sale.show_id)
    hall_size, free = rows["hall_size"], rows["free"]
    violations = {"seats_with_two_live_claims": [f"seat {seat}: {n} live claims" for seat, n in rows["doubled"]]}
    live_by_status = rows["live_by_status"]
    held, booked = live_by_status.get("Reserved", 0), live_by_status.get("Booked", 0)
    ended = {status: n for status, n in live_by_status.items() if status not in {"Reserved", "Booked"}}
    violations["held_plus_booked_plus_free_is_hall_size"] = [
        f"held {held} + booked {booked} + free {free} != {hall_size} seats"
    ] * (held + booked + free != hall_size) + [f"live claims of ended reservations: {ended}"] * bool(ended)

    charges = {}
    for payment_id, reservation_id, kind, status, amount, reference in rows["payments"]:
        charges.setdefault(reservation_id, []).append((payment_id, kind, status, amount, reference))
    partial, wrong_charges, booked_in_database = check_reservations(sale, rows["reservations"], charges)
    violations["partial_holds"] = partial
    violations["booking_charged_once_at_its_price"] = wrong_charges
    violations["charges_in_the_provider_ledger"] = check_ledger(
        [c for found in charges.values() for c in found if c[1] == "charge" and c[2] == "succeeded"]
    )
    answered_booked = {reservation_id: seats for reservation_id, (seats, _) in sale.booked.items()}
    violations["seats_booked_are_what_clients_were_answered"] = (
        [f"booked, not answered: {sorted(set(booked_in_database) - set(answered_booked))}"]
        * bool(set(booked_in_database) - set(answered_booked))
        + [f"answered, not booked: {sorted(set(answered_booked) - set(booked_in_database))}"]
        * bool(set(answered_booked) - set(booked_in_database))
        + [
            f"{reservation_id}: answered {seats}, booked {booked_in_database[reservation_id]}"
            for reservation_id, seats in answered_booked.items()
            if reservation_id in booked_in_database and booked_in_database[reservation_id] != seats
        ]
    )
    seats_answered = [seat_id for seats in answered_booked.values() for seat_id in seats]
    violations["no_oversell"] = (
        [f"{booked} seats booked in a {hall_size}-seat hall"] * (booked > hall_size)
        + [f"clients were sold {len(seats_answered)} seats, {len(set(seats_answered))} different"]
        * (len(seats_answered) != len(set(seats_answered)))
        + [f"{kind}: {n} booked of {capacity}" for kind, n, capacity in rows["booked_over_capacity"]]
    )
    violations["seat_map_agrees"] = check_seat_map(
        seat_map, held=held, booked=booked, free=free, booked_seats=seats_answered
    )
    counts = {"hall": hall_size, "held": held, "booked": booked, "free": free}
    return counts, violations


def read_show(database_url, show_id):
    """What PostgreSQL has of the show's seats, claims, reservations and payments after the run."""
    with psycopg.connect(database_url) as connection:
        hall_size = connection.execute(
            "SELECT count(*) FROM cinemas_seat s JOIN cinemas_show sh ON sh.hall_id = s.hall_id WHERE sh.id = %s",
            [show_id],
        ).fetchone()[0]
        doubled = connection.execute(
            "SELECT seat_id, count(*) FROM bookings_seatclaim WHERE show_id = %s AND released_at IS NULL "
            "GROUP BY 1 HAVING count(*) > 1",
            [show_id],
        ).fetchall()
        # Seats, not claims: a seat claimed twice would count once here and twice in held + booked.
        live_by_status = dict(
            connection.execute(
                "SELECT r.status, count(*) FROM bookings_seatclaim c JOIN bookings_reservation r "
                "ON r.id = c.reservation_id WHERE c.show_id = %s AND c.released_at IS NULL GROUP BY 1",
                [show_id],
            ).fetchall()
        )
        free = connection.execute(
            "SELECT count(*) FROM cinemas_seat s JOIN cinemas_show sh ON sh.hall_id = s.hall_id WHERE sh.id = %s "
            "AND NOT EXISTS (SELECT 1 FROM bookings_seatclaim c WHERE c.show_id = sh.id AND c.seat_id = s.id "
            "AND c.released_at IS NULL)",
            [show_id],
        ).fetchone()[0]
        # Each reservation: its status and amount, its live claims, all its claims, and what its live seats
        # cost at the show's prices (from the catalog, not from the claims' own copy of the price).
        reservations = connection.execute(
            "SELECT r.id::text, r.status, r.amount, "
            "       coalesce(array_agg(c.seat_id ORDER BY c.seat_id) FILTER (WHERE c.released_at IS NULL), '{}'), "
            "       count(c.id), coalesce(sum(p.price) FILTER (WHERE c.released_at IS NULL), 0) "
            "FROM bookings_reservation r "
            "LEFT JOIN bookings_seatclaim c ON c.reservation_id = r.id "
            "LEFT JOIN cinemas_seat s ON s.id = c.seat_id "
            "LEFT JOIN cinemas_showprice p ON p.show_id = r.show_id AND p.seat_type = s.seat_type "
            "WHERE r.show_id = %s GROUP BY r.id",
            [show_id],
        ).fetchall()
        payments = connection.execute(
            "SELECT p.id::text, p.reservation_id::text, p.kind, p.status, p.amount, p.provider_reference "
            "FROM bookings_payment p JOIN bookings_reservation r ON r.id = p.reservation_id WHERE r.show_id = %s",
            [show_id],
        ).fetchall()
        booked_over_capacity = connection.execute(
            "SELECT s.seat_type, count(*), max(h.capacity ->> s.seat_type)::int "
            "FROM bookings_seatclaim c JOIN bookings_reservation r ON r.id = c.reservation_id "
            "JOIN cinemas_seat s ON s.id = c.seat_id JOIN cinemas_hall h ON h.id = s.hall_id "
            "WHERE c.show_id = %s AND c.released_at IS NULL AND r.status = 'Booked' GROUP BY 1 "
            "HAVING count(*) > max(h.capacity ->> s.seat_type)::int",
            [show_id],
        ).fetchall()
    return {
        "hall_size": hall_size,
        "doubled": doubled,
        "live_by_status": live_by_status,
        "free": free,
        "reservations": reservations,
        "payments": payments,
        "booked_over_capacity": booked_over_capacity,
    }


def check_reservations(sale, reservations, charges):
    """Partial holds, wrong charges, and {reservation id: live seats} of the bookings, from the database's rows."""
    in_database = {row[0]: row[1:] for row in reservations}
    partial = [
        f"reservation without a 201: {reservation_id}" for reservation_id in set(in_database) - set(sale.answered)
    ]
    partial += [
        f"201 without a reservation: {reservation_id}" for reservation_id in set(sale.answered) - set(in_database)
    ]
    wrong_charges, booked_in_database = [], {}
    for reservation_id, (status, amount, live, claims, seats_price) in in_database.items():
        answered_seats, answered_amount = sale.answered.get(reservation_id, (None, None))
        if answered_seats is not None and (list(live) != answered_seats or claims != len(answered_seats)):
            partial.append(
                f"{reservation_id} ({status}): answered {answered_seats}, live {list(live)}, {claims} claims"
            )
        succeeded = [c for c in charges.get(reservation_id, []) if c[1] == "charge" and c[2] == "succeeded"]
        refunded = sum(c[3] for c in charges.get(reservation_id, []) if c[1] == "refund" and c[2] == "succeeded")
        unsettled = [c for c in charges.get(reservation_id, []) if c[2] in {"pending", "unknown"}]
        if status == "Booked":
            booked_in_database[reservation_id] = list(live)
            if len(succeeded) != 1:
                wrong_charges.append(f"{reservation_id} (Booked): {len(succeeded)} successful charges")
            elif not succeeded[0][3] == amount == seats_price == answered_amount:
                wrong_charges.append(
                    f"{reservation_id}: charged {succeeded[0][3]}, amount {amount}, its seats cost {seats_price}, "
                    f"answered {answered_amount}"
                )
        elif sum(c[3] for c in succeeded) != refunded:
            wrong_charges.append(f"{reservation_id} ({status}): charged {succeeded} but refunded {refunded}")
        if unsettled:
            wrong_charges.append(f"{reservation_id}: payments left unsettled {unsettled}")
    return partial, wrong_charges, booked_in_database


def check_ledger(succeeded_charges):
    """Each successful charge as the sandbox provider's own ledger (in Redis) has it: same charge id and amount."""
    from bookings.providers import get_provider  # Django was set up by prepare_show, with the run's Redis

    provider, wrong = get_provider(), []
    for payment_id, _, _, amount, reference in succeeded_charges:
        charge = provider.find_charge(idempotency_key=payment_id)
        if charge is None or charge.charge_id != reference or charge.amount != amount or charge.refunded:
            wrong.append(f"payment {payment_id} ({reference}, {amount}): the ledger has {charge}")
    return wrong


def check_seat_map(seat_map, *, held, booked, free, booked_seats):
    if seat_map.status_code != 200:
        return [f"GET seats answered {seat_map.status_code}"]
    listed = seat_map.json()["seats"]
    by_status = Counter(seat["status"] for seat in listed)
    on_map = {seat["id"] for seat in listed if seat["status"] == "booked"}
    wrong = []
    if (by_status["held"], by_status["booked"], by_status["available"]) != (held, booked, free):
        wrong.append(f"the map's held/booked/available {dict(by_status)} != the database's {held}/{booked}/{free}")
    if on_map != set(booked_seats):
        wrong.append(f"booked on the map {len(on_map)}, answered to clients {len(set(booked_seats))}")
    return wrong
