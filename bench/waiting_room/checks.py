"""The room's invariants, read from PostgreSQL after the run: each check's list of violations, empty when it holds."""

from collections import Counter

from bench.sell_out_checks import read_show


def admission_order(visitors, secret, late_joined):
    """Violations of the room's order: the early visitors' places are draw_order(secret, their ids); everyone
    admitted, in (admitted_at, place) order, is the head of draw order + those after the opening in place order;
    the late joiners' places follow the order they joined in (one at a time). Also returns the figures."""
    from waiting.rooms import draw_order  # Django is set up by bench/show.py's prepare_show

    early = [row for row in visitors if row[2]]
    drawn = draw_order(secret, [row[0] for row in early])
    place_of = {row[0]: row[3] for row in visitors}
    wrong = [f"early {vid}: drawn {n}, place {place_of[vid]}" for n, vid in enumerate(drawn, 1) if place_of[vid] != n]
    late = sorted((row for row in visitors if not row[2]), key=lambda row: row[3])
    expected = drawn + [row[0] for row in late]
    admitted = [row[0] for row in sorted((row for row in visitors if row[5] is not None), key=lambda r: (r[5], r[3]))]
    for n, (got, want) in enumerate(zip(admitted, expected, strict=False)):
        if got != want:
            wrong.append(f"admission {n + 1}: {got} (place {place_of[got]}), the order says {want}")
            break
    places = [place for _, _, place in late_joined]
    if places != sorted(places) or len(set(places)) != len(places):
        wrong.append(f"late joiners' places not in joining order: {places[:20]}")
    figures = {
        "early_visitors_drawn": len(drawn),
        "late_visitors": len(late),
        "admitted": len(admitted),
        "admitted_in_expected_order": not wrong,
        "statuses": dict(Counter(row[4] for row in visitors)),
    }
    return wrong, figures


def seat_checks(database_url, show_id, booked_seats):
    """0 seats with two live claims, held + booked + free = the hall, the seats paid for all different."""
    rows = read_show(database_url, show_id)
    live = rows["live_by_status"]
    held, booked, free, hall = live.get("Reserved", 0), live.get("Booked", 0), rows["free"], rows["hall_size"]
    sold = [seat for seats in booked_seats.values() for seat in seats]
    violations = {
        "seats_with_two_live_claims": [f"seat {seat}: {n} live claims" for seat, n in rows["doubled"]],
        "held_plus_booked_plus_free_is_hall_size": [f"{held} + {booked} + {free} != {hall}"]
        * (held + booked + free != hall),
        "seats_paid_for_all_different": [f"{len(sold)} seats paid for, {len(set(sold))} different"]
        * (len(sold) != len(set(sold))),
        "seats_paid_for_are_booked": [f"clients paid for {len(sold)} seats, the database has {booked} booked"]
        * (len(sold) != booked),
    }
    return violations, {"hall": hall, "held": held, "booked": booked, "free": free}


def outcome_checks(sale, driven):
    """Every driven visitor the room admitted got a hold (and paid) or a clear Show Full; nothing else."""
    outcomes = Counter(sale.outcomes.get(visitor_id, "no outcome") for visitor_id in driven)
    told = [visitor_id for visitor_id in driven if visitor_id in sale.told_admitted]
    wrong = [
        f"{visitor_id}: {sale.outcomes.get(visitor_id)}"
        for visitor_id in told
        if sale.outcomes.get(visitor_id) not in ("booked", "show_full")
    ]
    unexpected = {
        status: count
        for status, count in sale.statuses.items()
        # a web process's 503s and what the clients sent again (sent_again) are the load generator's, counted apart
        if not status.endswith(" 503") and " sent again: " not in status and status not in EXPECTED_STATUSES
    }
    return {
        "admitted_got_a_hold_or_show_full": wrong,
        "no_unexpected_status": [f"{status}: {count}" for status, count in unexpected.items()],
        "no_connection_error": sale.failures[:20] if any("Error" in f for f in sale.failures) else [],
    }, dict(outcomes)


EXPECTED_STATUSES = {"GET room 200", "POST hold 201", "POST hold 409", "POST pay 200", "POST pay 409"}
