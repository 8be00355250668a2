"""The surge's checks, from PostgreSQL after the run: the line served by its rule (strictly from the head), each
served hold whole and of the size wanted, each poll answered with its waiter's outcome, no seat claimed twice,
held + booked + free = the hall.
"""

import psycopg


def check_serving_order(line):
    """serve_waiting_line's rule: nobody is served while anyone who joined earlier is still in the line.

    Each waiter left the line in the transaction its row's xmin names (serving, Show Full or Expired ends, a
    leave); one still waiting never left. A served waiter's transaction must not come before the one that
    took out anyone ahead of it.
    """
    never = float("inf")
    violations = []
    latest_ahead, latest_ahead_who = -1, None
    for waiter_id, place, status, _, left_in, *_ in line:
        left = never if status == "Waiting" else left_in
        if status == "Seats Available" and latest_ahead > left:
            still = "is still waiting" if latest_ahead == never else f"left in a later transaction ({latest_ahead})"
            violations.append(
                f"waiter {waiter_id} (place {place}) served in transaction {left}, but {latest_ahead_who} {still}"
            )
        if left > latest_ahead:
            latest_ahead, latest_ahead_who = left, f"waiter at place {place}"
    return violations


def check_invariants(database_url, show_id, line, surge):
    violations = {"served_out_of_order": check_serving_order(line)}
    with psycopg.connect(database_url) as connection:
        doubled = connection.execute(
            "SELECT seat_id, count(*) FROM bookings_seatclaim WHERE show_id = %s AND released_at IS NULL "
            "GROUP BY seat_id HAVING count(*) > 1",
            [show_id],
        ).fetchall()
        hall_size, held, booked, free = connection.execute(
            "SELECT count(*), "
            "  count(*) FILTER (WHERE EXISTS (SELECT 1 FROM bookings_seatclaim c JOIN bookings_reservation r "
            "     ON r.id = c.reservation_id WHERE c.show_id = s.show AND c.seat_id = seat.id "
            "     AND c.released_at IS NULL AND r.status = 'Reserved')), "
            "  count(*) FILTER (WHERE EXISTS (SELECT 1 FROM bookings_seatclaim c JOIN bookings_reservation r "
            "     ON r.id = c.reservation_id WHERE c.show_id = s.show AND c.seat_id = seat.id "
            "     AND c.released_at IS NULL AND r.status = 'Booked')), "
            "  count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM bookings_seatclaim c "
            "     WHERE c.show_id = s.show AND c.seat_id = seat.id AND c.released_at IS NULL)) "
            "FROM cinemas_seat seat, (SELECT %s::bigint AS show) s "
            "WHERE seat.hall_id = (SELECT hall_id FROM cinemas_show WHERE id = s.show)",
            [show_id],
        ).fetchone()
        # A hold is all or nothing: while live, all its claims are live; once ended, none is.
        partial = connection.execute(
            "SELECT r.id::text, r.status, count(c.id), count(c.id) FILTER (WHERE c.released_at IS NULL) "
            "FROM bookings_reservation r JOIN bookings_seatclaim c ON c.reservation_id = r.id "
            "WHERE r.show_id = %s GROUP BY r.id, r.status "
            "HAVING (r.status IN ('Reserved', 'Booked') AND count(c.id) FILTER (WHERE c.released_at IS NULL) "
            "        <> count(c.id)) "
            "    OR (r.status IN ('Expired', 'Cancelled') AND count(c.id) FILTER (WHERE c.released_at IS NULL) > 0)",
            [show_id],
        ).fetchall()
    violations["seats_with_two_live_claims"] = [f"seat {seat}: {n} live claims" for seat, n in doubled]
    violations["held_booked_free_not_hall_size"] = (
        [f"held {held} + booked {booked} + free {free} != {hall_size}"] if held + booked + free != hall_size else []
    )
    violations["partial_holds"] = [
        f"{rid} ({status}): {live} of {claims} claims live" for rid, status, claims, live in partial
    ]
    violations["served_with_wrong_seat_count"] = [
        f"waiter {waiter_id} wanted {wanted}, its hold has {claims} claims"
        for waiter_id, _, status, wanted, _, _, _, _, claims in line
        if status == "Seats Available" and claims != wanted
    ]
    answers = {waiter.waiter_id: waiter for waiter in surge.waiters if waiter.waiter_id}
    wrong_answers = []
    for waiter_id, _, status, _, _, reservation_id, *_ in line:
        waiter = answers.get(waiter_id)
        if waiter is None or status == "Waiting":
            continue
        if waiter.final_status != status or waiter.reservation_id != reservation_id:
            wrong_answers.append(
                f"waiter {waiter_id} is {status} ({reservation_id}); its poll said {waiter.final_status} "
                f"({waiter.reservation_id})"
            )
    violations["polls_not_answered_with_the_outcome"] = wrong_answers
    counts = {"hall_size": hall_size, "held": held, "booked": booked, "free": free}
    return violations, counts
