"""A hand-made mutation run: break one rule of the services at a time and see that a test fails.

Run on demand (it is not part of `make test`), against your checkout's own test database:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ticketing_me REDIS_URL=redis://127.0.0.1:6379/N \\
        .venv/bin/python scripts/mutations.py [--list] [NAME ...]

Each mutation makes one small edit at one place of a service's source (found ignoring white space), runs the
tests that should catch it (`pytest -x`) and puts the file back, whatever happens. "caught" names the first
test that failed; "SURVIVED" is a rule no test guards; "stale" means the source changed and the mutation
must be rewritten. Exit status 1 if any survived or went stale. Takes about 8 minutes for all of them.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HOLDS = "bookings/services/holds.py"
NOTICES = "bookings/notices.py"
HOLD_FUNCTIONS = "bookings/migrations/0009_hold_functions.py"
# The hold functions 0011 replaced (the claim, the refusal, the session cap's count, ...): mutations of those
# bodies go here, since 0009's are no longer what runs.
HOLD_FUNCTIONS_NOW = "bookings/migrations/0011_hold_functions_planned_once.py"
# The hold and the change of seats as 0012 redefined them (the client cap's count in stripes), with the cap's
# trigger and check: mutations of those bodies go here.
HOLD_AND_CHANGE = "bookings/migrations/0012_client_caps_in_stripes.py"
# The hold and the change of seats as 0016 redefined them (each hold priced in its own call), which 0025 derives
# its versions from: mutations of those bodies go here now; 0012 keeps the client cap's trigger and take.
HOLD_PRICED = "bookings/migrations/0016_price_breakdown.py"
# The take of a client's seats on a stripe as 0014 redefined it (a hold waits for one stripe, not all eight).
CAP_TAKE = "bookings/migrations/0014_client_cap_waits_for_one_stripe.py"
PAYMENTS = "bookings/services/payments.py"
CANCELLATIONS = "bookings/services/cancellations.py"
PAY_FUNCTIONS = "bookings/migrations/0010_pay_functions.py"
# The start of a charge and its fulfilment as 0019 redefined them (gift cards pay first): mutations of those go here.
PAY_WITH_GIFT_CARDS = "bookings/migrations/0019_gift_cards.py"
TICKETS = "bookings/services/tickets.py"
MAIL = "bookings/services/mail.py"
WAITING = "waiting/services.py"
WAITER_READS = "waiting/migrations/0006_version_counts_moves.py"  # the position and version rules (0004 first)
LINE_FUNCTION = "waiting/migrations/0005_line_is_open_planned_once.py"  # 0003 first wrote it
SEARCH = "cinemas/search.py"
SEAT_MAPS = "bookings/seat_maps.py"
TAKEN_SEATS = "bookings/migrations/0013_taken_seats_function.py"
HOLD_EXTENSION = "bookings/migrations/0020_hold_extension.py"
CACHED_READS = "ticketing/cached_reads.py"
CATALOG = "cinemas/services.py"
CATALOG_ADMIN = "cinemas/admin.py"
WEBHOOKS = "ticketing/webhooks.py"
BOOKING_WEBHOOKS = "bookings/migrations/0029_webhook_events.py"


@dataclass(frozen=True)
class Mutation:
    """In `path`, at the one place matching `at` (default: `old`; any run of white space matches any other),
    replace `old` with `new`, and run `tests`."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    at: str | None = None

    def apply(self, source):
        """The mutated source, or None when `at` does not occur exactly once (the source changed)."""
        pattern = r"\s+".join(re.escape(word) for word in (self.at or self.old).split())
        places = list(re.finditer(pattern, source))
        if len(places) != 1 or self.old not in places[0].group():
            return None
        start, end = places[0].span()
        return source[:start] + places[0].group().replace(self.old, self.new, 1) + source[end:]


def _tests(*names):
    return tuple(f"tests/{name}.py" for name in names)


MUTATIONS = [
    # --- hot reads served from the cache ------------------------------------------------------------------------
    Mutation(
        "the picker's seats are kept across staff's price changes",
        SEAT_MAPS,
        '"show-seat-spots-2", (CATALOG_GENERATION,)',
        '"show-seat-spots-2", ()',
        _tests("bookings/test_seat_map_cache"),
    ),
    Mutation(
        "a change of seats leaves the cached seat map as it was",
        NOTICES,
        "seat_maps_changed(changed)",
        "None",
        _tests("bookings/test_seat_map_cache"),
        at="if maps_changed: seat_maps_changed(changed)",
    ),
    Mutation(
        "a cached seat map outlives a hold it shows",
        SEAT_MAPS,
        "valid_until=lapses_at",
        "valid_until=None",
        _tests("bookings/test_seat_map_cache"),
        at="return Built(SeatMapJson(content, etag_of(content)), valid_until=lapses_at)",
    ),
    Mutation(
        "a cached seat map page outlives a hold it shows",
        SEAT_MAPS,
        "valid_until=lapses_at",
        "valid_until=None",
        _tests("bookings/test_seat_map_cache"),
        at="return Built(_drawn(picture), valid_until=lapses_at)",
    ),
    Mutation(
        "a seat map is cached whatever the catalog says",
        SEAT_MAPS,
        "(seats_generation(show_id), CATALOG_GENERATION)",
        "(seats_generation(show_id),)",
        _tests("bookings/test_seat_map_cache"),
    ),
    Mutation(
        "scheduling and rescheduling shows leave the cached catalog as it was",
        CATALOG,
        "catalog_changed()",
        "None",
        _tests("cinemas/test_catalog_cache"),
        at="show.prices.exclude(seat_type__in=list(prices)).delete() catalog_changed()",
    ),
    Mutation(
        "the admin's saves leave the cached catalog as it was",
        CATALOG_ADMIN,
        "catalog_changed()",
        "None",
        _tests("cinemas/test_catalog_cache"),
        at="super().save_related(request, form, formsets, change) catalog_changed()",
    ),
    Mutation(
        "the admin's deletes leave the cached catalog as it was",
        CATALOG_ADMIN,
        "catalog_changed()",
        "None",
        _tests("cinemas/test_catalog_cache"),
        at="super().delete_queryset(request, queryset) catalog_changed()",
    ),
    Mutation(
        "reads inside a transaction use the cache",
        CACHED_READS,
        "connection.in_atomic_block",
        "False",
        _tests("bookings/test_seat_map_cache"),
    ),
    Mutation(
        "cached answers are shared by every time zone",
        CACHED_READS,
        "timezone.get_current_timezone_name()",
        '"UTC"',
        _tests("cinemas/test_catalog_cache"),
    ),
    # --- holds (the rules live in the SQL functions of bookings migrations 0009, 0011 and 0012; the test database
    # is made anew for each run, so a mutated migration is what the tests meet) ---------------------------------
    Mutation(
        "sweep waits for a locked hold (no SKIP LOCKED)",
        HOLD_FUNCTIONS,
        " SKIP LOCKED",
        "",
        _tests("bookings/test_hold_clock"),
        at="ORDER BY hold.held_until LIMIT p_batch FOR UPDATE SKIP LOCKED",
    ),
    Mutation(
        "fresh buyers skip the waiting line",
        HOLD_PRICED,
        "bookings_line_is_open(p_show)",
        "false",
        _tests("waiting/test_line"),
        at="AND bookings_line_is_open(p_show) THEN",
    ),
    Mutation(
        "no grace seconds after the countdown",
        HOLD_PRICED,
        "p_at + p_hold + p_grace",
        "p_at + p_hold",
        _tests("bookings/test_hold_clock"),
    ),
    Mutation(
        "session seat cap off by one (hold)",
        HOLD_PRICED,
        ">",
        ">=",
        _tests("bookings/test_reserve_seats", "bookings/test_hold_caps"),
        at="bookings_seats_of_buyer(p_show, p_api_key, p_session, p_at) + p_count > p_max_seats",
    ),
    Mutation(
        "session seat cap ignores the buyer's other holds",
        HOLD_PRICED,
        "bookings_seats_of_buyer(p_show, p_api_key, p_session, p_at) + p_count",
        "p_count",
        _tests("bookings/test_reserve_seats", "bookings/test_hold_caps"),
    ),
    Mutation(
        "session seat cap counts lapsed holds",
        HOLD_FUNCTIONS_NOW,
        "(hold.status = 'Reserved' AND hold.held_until > p_at)",
        "hold.status = 'Reserved'",
        _tests("bookings/test_reserve_seats"),
    ),
    Mutation(
        "session seat cap off by one (change)",
        HOLD_PRICED,
        ">",
        ">=",
        _tests("bookings/test_change_and_cancel", "bookings/test_hold_caps"),
        at="p_reservation) + v_count > p_max_seats",
    ),
    Mutation(
        "session seat cap counts the changed hold's own seats",
        HOLD_PRICED,
        ", p_reservation) + v_count",
        ") + v_count",
        _tests("bookings/test_change_and_cancel", "bookings/test_hold_caps"),
    ),
    Mutation(
        "client cap counts paid seats",
        HOLD_AND_CHANGE,
        "NEW.status = 'Reserved'",
        "NEW.status IN ('Reserved', 'Booked')",
        _tests("bookings/test_hold_caps"),
    ),
    Mutation(
        "client cap counts lapsed holds",
        HOLD_AND_CHANGE,
        "IF v_lapsed IS NOT NULL THEN",
        "IF false THEN",
        _tests("bookings/test_hold_caps"),
    ),
    Mutation(
        "client cap off by one",
        HOLD_AND_CHANGE,
        "<=",
        "<",
        _tests("bookings/test_hold_caps"),
        at="IF coalesce(v_held, 0) + p_added <= p_cap THEN RETURN; END IF; SELECT array_agg(locked.id)",
    ),
    Mutation(
        "client cap counts the changed hold's own seats",
        HOLD_PRICED,
        "v_count - v_hold.capped_seats",
        "v_count",
        _tests("bookings/test_hold_caps"),
    ),
    Mutation(
        "client cap takes a stripe without room for the hold",
        CAP_TAKE,
        "counted.allowance - counted.held >= p_added",
        "true",
        _tests("bookings/test_hold_caps"),
        at="counted.allowance - counted.held >= p_added AND (p_stripe IS NULL OR counted.stripe = p_stripe)"
        " ORDER BY counted.allowance - counted.held DESC",
    ),
    Mutation(
        "client cap takes a stripe computed for another cap",
        CAP_TAKE,
        "counted.cap = p_cap",
        "true",
        _tests("bookings/test_hold_caps"),
        at="counted.cap = p_cap AND counted.allowance - counted.held >= p_added AND (p_stripe IS NULL OR"
        " counted.stripe = p_stripe) ORDER BY counted.allowance - counted.held DESC",
    ),
    Mutation(
        "client cap takes the stripe it waited for without room for the hold",
        CAP_TAKE,
        "AND counted.cap = p_cap AND counted.allowance - counted.held >= p_added",
        "",
        _tests("bookings/test_hold_caps"),
        at="AND counted.cap = p_cap AND counted.allowance - counted.held >= p_added FOR UPDATE",
    ),
    Mutation(
        "client cap keeps the stripe it waited for in vain as it takes the slow path",
        CAP_TAKE,
        "RAISE SQLSTATE 'TKR02';",
        "",
        _tests("bookings/test_hold_caps"),
    ),
    Mutation(
        "client cap sends a hold that finds every stripe held to the slow path",
        CAP_TAKE,
        "IF v_waited_on IS NOT NULL THEN",
        "IF false THEN",
        _tests("bookings/test_hold_caps"),
    ),
    Mutation(
        "client cap rebalances the seats a hold takes into the spare ones too",
        CAP_TAKE,
        "v_spare := p_cap - v_held - p_added;",
        "v_spare := p_cap - v_held;",
        _tests("bookings/test_hold_caps"),
    ),
    Mutation(
        "client cap never gets the seats of a hold that ends back",
        HOLD_AND_CHANGE,
        "SET held = counted.held + p_seats",
        "SET held = counted.held",
        _tests("bookings/test_hold_caps"),
    ),
    Mutation(
        "client cap counted in one stripe, which every hold of the client waits on",
        CAP_TAKE,
        "v_stripes CONSTANT int := least(32, greatest(2, p_cap / 10));",
        "v_stripes CONSTANT int := 1;",
        _tests("bookings/test_hold_caps"),
    ),
    Mutation(
        "a change may grow a hold past the waiting line",
        HOLD_PRICED,
        "v_count > cardinality(v_current)",
        "false",
        _tests("bookings/test_change_and_cancel", "waiting/test_line"),
    ),
    Mutation(
        "a same-size swap is refused while people wait",
        HOLD_PRICED,
        "v_count > cardinality(v_current)",
        "v_count >= cardinality(v_current)",
        _tests("bookings/test_change_and_cancel", "waiting/test_line"),
    ),
    Mutation(
        "a hold may be changed after the show started",
        HOLD_PRICED,
        "IF v_show.starts_at <= p_at THEN PERFORM bookings_refuse('show_started'); END IF;",
        "",
        _tests("bookings/test_change_and_cancel"),
        at="WHERE id = show_id; IF v_show.starts_at <= p_at THEN PERFORM bookings_refuse('show_started'); END IF;",
    ),
    Mutation(
        "a lapsed hold may be changed",
        HOLD_PRICED,
        "OR (v_hold.status = 'Reserved' AND v_hold.held_until <= p_at)",
        "OR false",
        _tests("bookings/test_change_and_cancel", "bookings/test_hold_clock"),
    ),
    Mutation(
        "a claimer never expires the lapsed hold in its way",
        HOLD_FUNCTIONS_NOW,
        "bookings_take_over_lapsed(p_show, v_missing, p_at)",
        "'[]'",
        _tests("bookings/test_hold_clock"),
    ),
    Mutation(
        "one claim attempt only",
        HOLD_FUNCTIONS_NOW,
        "FOR attempt IN 1..3",
        "FOR attempt IN 1..1",
        _tests("bookings/test_hold_clock"),
    ),
    Mutation(
        "a takeover's claims keep a version older than the freed seats'",
        HOLD_FUNCTIONS_NOW,
        "IF p_claimed AND p_freed <> '[]' THEN",
        "IF false THEN",
        _tests("bookings/test_hold_functions"),
    ),
    Mutation(
        "a show is on sale at its very start",
        HOLD_PRICED,
        "<=",
        "<",
        _tests("bookings/test_reserve_seats"),
        at="IF v_show.starts_at <= p_at THEN PERFORM bookings_refuse('show_started'); END IF; IF p_count IS NULL",
    ),
    Mutation(
        "cancelling a lapsed hold says Cancelled",
        HOLD_PRICED,
        "CASE WHEN v_hold.held_until <= p_at THEN 'Expired' ELSE 'Cancelled' END",
        "'Cancelled'",
        _tests("bookings/test_change_and_cancel"),
    ),
    Mutation(
        "a buyer may cancel a booking",
        HOLD_PRICED,
        "IF v_hold.status = 'Booked' THEN PERFORM bookings_refuse('booked_not_cancellable'); END IF;",
        "",
        _tests("bookings/test_payments", "bookings/test_change_and_cancel"),
    ),
    Mutation(
        "freed seats don't wake the line",
        NOTICES,
        '"available", "booked"',
        '"booked"',
        _tests("bookings/test_notices", "waiting/test_wake_up"),
        at='FREED_OR_BOOKED = frozenset({"available", "booked"})',
    ),
    Mutation(
        "booked seats don't wake the line",
        NOTICES,
        '"available", "booked"',
        '"available"',
        _tests("bookings/test_notices"),
        at='FREED_OR_BOOKED = frozenset({"available", "booked"})',
    ),
    Mutation(
        "the website's single-seat-gap rule is off",
        HOLDS,
        "not no_single_gaps",
        "True",
        _tests("bookings/test_single_seat_rule"),
        at="if not no_single_gaps: return _held(",
    ),
    Mutation(
        "the show's counters never hear of released claims",
        HOLD_FUNCTIONS_NOW,
        "SELECT show_id, seat_type, -1, -booked::int FROM old_claims WHERE released_at IS NULL) change;",
        "SELECT show_id, seat_type, 0, 0 FROM old_claims WHERE released_at IS NULL) change;",
        _tests("bookings/test_hold_functions"),
    ),
    Mutation(
        "one counter row per show, which every buyer of the show updates",
        HOLD_FUNCTIONS_NOW,
        "pg_backend_pid()",
        "0",
        _tests("bookings/test_hold_functions"),
    ),
    Mutation(
        "a refusal says seats_unavailable from the live claims alone",
        HOLD_FUNCTIONS_NOW,
        "IF v_capacity - (v_claimed - v_lapsed) >= p_count THEN RETURN 'seats_unavailable'; END IF;",
        "",
        _tests("bookings/test_hold_functions"),
    ),
    Mutation(
        "retry rather than show full when booked seats leave too few",
        HOLD_FUNCTIONS_NOW,
        "IF v_capacity - v_booked < p_count THEN RETURN 'show_full'; END IF;",
        "",
        _tests("bookings/test_reserve_seats"),
    ),
    Mutation(
        "another session's reservation is found",
        HOLDS,
        ", session_id=buyer.session_id",
        "",
        _tests("bookings/test_change_and_cancel"),
        at="pk=reservation_id, api_key_id=buyer.api_key_id, session_id=buyer.session_id",
    ),
    Mutation(
        "another session's hold can be cancelled",
        HOLD_PRICED,
        " AND hold.session_id = p_session",
        "",
        _tests("bookings/test_change_and_cancel"),
        at="IS NOT DISTINCT FROM p_api_key AND hold.session_id = p_session FOR UPDATE;",
    ),
    Mutation(
        "a hold joins a caller's transaction (not durable)",
        HOLDS,
        "durable=own_transaction",
        "",
        _tests("bookings/test_transactions"),
    ),
    Mutation(
        "best available gives up when its pick is taken meanwhile",
        HOLDS,
        "self.looks < PICK_ATTEMPTS",
        "False",
        _tests("ticketing/test_lean_path"),
    ),
    Mutation(
        "best available counts the seats a hold gave up as taken",
        TAKEN_SEATS,
        " AND claim.released_at IS NULL",
        "",
        _tests("ticketing/test_lean_path"),
        at="WHERE claim.show_id = p_show AND claim.released_at IS NULL",
    ),
    # --- more time for a hold, once ---------------------------------------------------------------------------
    Mutation(
        "a hold is extended a second time",
        HOLD_EXTENSION,
        "v_hold.extensions > 0",
        "false",
        _tests("bookings/test_hold_extension"),
    ),
    Mutation(
        "two clicks at once both read the hold unlocked",
        HOLD_EXTENSION,
        "FOR UPDATE;",
        ";",
        _tests("bookings/test_hold_extension"),
        at="hold.session_id = p_session FOR UPDATE;",
    ),
    Mutation(
        "a lapsed hold is extended",
        HOLD_EXTENSION,
        "PERFORM bookings_refuse_unless_held(v_hold, p_at);",
        "",
        _tests("bookings/test_hold_extension"),
    ),
    Mutation(
        "a hold only a payment keeps is extended",
        HOLD_EXTENSION,
        "v_hold.expires_at + p_grace <= p_at",
        "false",
        _tests("bookings/test_hold_extension"),
    ),
    Mutation(
        "extending while paying shortens the payment's time",
        HOLD_EXTENSION,
        "greatest(hold.held_until, hold.expires_at + p_extension + p_grace)",
        "hold.expires_at + p_extension + p_grace",
        _tests("bookings/test_hold_extension"),
    ),
    # --- payments ------------------------------------------------------------------------------------------
    Mutation(
        "no extension of the hold while the provider works",
        PAYMENTS,
        "timedelta(seconds=30)",
        "timedelta(seconds=0)",
        _tests("bookings/test_payments"),
        at="PAYMENT_HOLD_EXTENSION = timedelta(seconds=30)",
    ),
    Mutation(
        "a declined card leaves the hold extended",
        PAY_FUNCTIONS,
        "hold.held_until > hold.expires_at + p_grace",
        "false",
        _tests("bookings/test_payments", "bookings/test_hold_clock"),
    ),
    Mutation(
        "a lost hold is booked anyway when its charge lands",
        PAY_WITH_GIFT_CARDS,
        "v_hold.status = 'Reserved'",
        "true",
        _tests("bookings/test_payments"),
        at="IF v_hold.status = 'Reserved' THEN BEGIN",
    ),
    Mutation(
        "a charge fulfilled twice is recorded twice",
        PAY_WITH_GIFT_CARDS,
        "v_charge.status <> 'succeeded'",
        "true",
        _tests("bookings/test_payments"),
    ),
    Mutation(
        "a second payment may start while one is at the provider",
        PAY_WITH_GIFT_CARDS,
        "PERFORM bookings_refuse('payment_in_progress');",
        "NULL;",
        _tests("bookings/test_payments"),
    ),
    Mutation(
        "paying skips the check that the hold is still live",
        PAY_WITH_GIFT_CARDS,
        "PERFORM bookings_refuse_unless_held(v_hold, p_at);",
        "",
        _tests("bookings/test_hold_clock", "bookings/test_payments"),
    ),
    Mutation(
        "a pending charge is looked up at once, not after the settle time",
        PAY_WITH_GIFT_CARDS,
        " - p_settle_after",
        "",
        _tests("bookings/test_payments"),
        at="charge.updated_at <= p_at - p_settle_after",
    ),
    Mutation(
        "the reconciler takes payments still in flight",
        PAYMENTS,
        " - settle_after",
        "",
        _tests("bookings/test_payments"),
        at="status__in=[Payment.Status.PENDING, Payment.Status.UNKNOWN], updated_at__lte=at - settle_after",
    ),
    Mutation(
        "staff cancelling a booking refund nothing",
        CANCELLATIONS,
        "to_card > 0",
        "False",
        _tests("bookings/test_change_and_cancel"),
        at='if to_card > 0: (refund_id,) = call_function("bookings_record_refund"',
    ),
    Mutation(
        "staff may cancel a hold as a booking",
        CANCELLATIONS,
        "reservation.status != Reservation.Status.BOOKED",
        "False",
        _tests("bookings/test_change_and_cancel", "bookings/test_staff_admin"),
        at='if reservation.status != Reservation.Status.BOOKED: raise BookingError("not_booked")',
    ),
    Mutation(
        "an Idempotency-Key reused for another request is accepted",
        PAY_FUNCTIONS,
        "v_request.fingerprint <> p_fingerprint",
        "false",
        _tests("bookings/test_payments"),
    ),
    Mutation(
        "an unanswered Idempotency-Key is taken over at once",
        PAY_FUNCTIONS,
        "v_request.started_at > p_at - p_takeover_after",
        "false",
        _tests("bookings/test_payments"),
    ),
    Mutation(
        "paying starts inside a caller's transaction (not durable)",
        PAYMENTS,
        "*self.arguments)",
        "*self.arguments, own_transaction=False)",
        _tests("bookings/test_transactions"),
        at="def run(self): return call_function(self.function, *self.arguments)",
    ),
    Mutation(
        "staff cancel a booking inside a caller's transaction (not durable)",
        CANCELLATIONS,
        "durable=True",
        "",
        _tests("bookings/test_transactions"),
        at="with transaction.atomic(durable=True): reservation = _locked(reservation_id)"
        " if reservation.status != Reservation.Status.BOOKED",
    ),
    # --- tickets -------------------------------------------------------------------------------------------
    Mutation(
        "a ticket is admitted twice",
        TICKETS,
        "reservation.checked_in_at is not None",
        "False",
        _tests("bookings/test_check_in"),
        at="if reservation.checked_in_at is not None:",
    ),
    Mutation(
        "a cancelled booking's ticket is admitted",
        TICKETS,
        "reservation.status != Reservation.Status.BOOKED",
        "False",
        _tests("bookings/test_check_in"),
        at='if reservation.status != Reservation.Status.BOOKED: raise BookingError("ticket_not_valid"',
    ),
    Mutation(
        "an ended show's ticket is admitted",
        TICKETS,
        "show.ends_at <= at",
        "False",
        _tests("bookings/test_check_in"),
    ),
    Mutation(
        "check-in runs inside a caller's transaction (not durable)",
        TICKETS,
        "durable=True",
        "",
        _tests("bookings/test_transactions"),
        at="with transaction.atomic(durable=True): reservation = _tickets().select_for_update(",
    ),
    Mutation(
        "a ticket is mailed for a hold that is not booked",
        MAIL,
        "reservation.status != Reservation.Status.BOOKED",
        "False",
        _tests("bookings/test_tickets", "bookings/test_website"),
        at="if reservation.status != Reservation.Status.BOOKED: return reservation reservation.email = address",
    ),
    Mutation(
        "a call that loses a deadlock is not made again",
        HOLDS,
        "isinstance(error, psycopg.errors.DeadlockDetected)",
        "False",
        _tests("bookings/test_hold_functions"),
    ),
    # --- the waiting line ----------------------------------------------------------------------------------
    Mutation(
        "a head whose seats can't be held is passed over",
        WAITING,
        "blocked |= usable",
        "pass",
        _tests("waiting/test_fairness", "waiting/test_categories"),
        at="# The head can't be seated yet: nobody behind it goes first in its categories. blocked |= usable",
    ),
    Mutation(
        "a head that wants more than is free is passed over",
        WAITING,
        "blocked |= usable",
        "pass",
        _tests("waiting/test_fairness", "waiting/test_categories"),
        at="wake the line again once this transaction lets go of its lock. blocked |= usable",
    ),
    Mutation(
        "the line is served from its tail",
        WAITING,
        '"place"',
        '"-place"',
        _tests("waiting/test_fairness"),
        at='waiting = Waiter.objects.filter(show_id=show_id, status=Waiter.Status.WAITING).order_by("place")',
    ),
    Mutation(
        "a waiter that can't be served blocks the line for good",
        WAITING,
        "continue",
        "break",
        _tests("waiting/test_line", "waiting/test_fairness"),
        at="_end([waiter], Waiter.Status.CANCELLED, at, notices) continue",
    ),
    Mutation(
        "the line counts ended waits as open",
        LINE_FUNCTION,
        " AND status = 'Waiting'",
        "",
        _tests("waiting/test_line", "bookings/test_reserve_seats"),
        at="WHERE show_id = p_show AND status = 'Waiting')",
    ),
    Mutation(
        "joining is allowed when exactly enough seats are free",
        WAITING,
        "free >= seats_wanted",
        "free > seats_wanted",
        _tests("waiting/test_line"),
        at="if free >= seats_wanted and first_in_line:",
    ),
    Mutation(
        "joining behind a line is refused while seats are free",
        WAITING,
        " and first_in_line",
        "",
        _tests("waiting/test_line", "waiting/test_fairness"),
        at="if free >= seats_wanted and first_in_line:",
    ),
    Mutation(
        "joining is refused when exactly enough seats are unbooked",
        WAITING,
        "not_booked < seats_wanted",
        "not_booked <= seats_wanted",
        _tests("waiting/test_line"),
    ),
    Mutation(
        "a waiter wanting exactly the unbooked seats gets Show Full",
        WAITING,
        "seats_wanted__gt=servable.not_booked_for(seat_type)",
        "seats_wanted__gte=servable.not_booked_for(seat_type)",
        _tests("waiting/test_line", "waiting/test_categories"),
    ),
    Mutation(
        "a wait outlives its maximum by an instant",
        WAITING,
        "expires_at__lte=at",
        "expires_at__lt=at",
        _tests("waiting/test_line"),
    ),
    Mutation(
        "the line stays open at the show's start",
        WAITING,
        "<=",
        "<",
        _tests("waiting/test_line"),
        at="if show.starts_at <= at: _end(waiting",
    ),
    Mutation(
        "joining is allowed at the show's start",
        WAITING,
        "<=",
        "<",
        _tests("waiting/test_line"),
        at='if show.starts_at <= at: raise WaitingError("show_started")',
    ),
    Mutation(
        "joins are not serialized by the line lock",
        WAITING,
        "_lock_line(show.pk)",
        "pass",
        _tests("waiting/test_concurrency"),
        at="with transaction.atomic(durable=True): _lock_line(show.pk)",
    ),
    Mutation(
        "serving is not serialized by the line lock",
        WAITING,
        "_lock_line(show_id)",
        "pass",
        _tests("waiting/test_concurrency"),
        at="_lock_line(show_id) # The clock is read",
    ),
    Mutation(
        "a position counts the waiter itself as ahead",
        WAITER_READS,
        'ORDER BY line.place) AS "position"',
        'ORDER BY line.place) + 1 AS "position"',
        _tests("waiting/test_line"),
        at="the rule: 1 + those of the show still Waiting with a lower place SELECT line.id, row_number() OVER "
        '(PARTITION BY line.show_id ORDER BY line.place) AS "position"',
    ),
    Mutation(
        "a waiter's shown version ignores the moves ahead of it",
        WAITER_READS,
        'a.version + a.place - counted."position"',
        "a.version",
        _tests("waiting/test_line"),
    ),
    Mutation(
        "a waiter leaving the line keeps the version it showed",
        WAITING,
        "version = shown.version + 1",
        "version = shown.version",
        _tests("waiting/test_line"),
    ),
    Mutation(
        "leaving a place already ended ends it again",
        WAITING,
        "waiter.status == Waiter.Status.WAITING",
        "True",
        _tests("waiting/test_line"),
        at="if waiter.status == Waiter.Status.WAITING: _end([waiter], Waiter.Status.CANCELLED",
    ),
    Mutation(
        "joining joins a caller's transaction (not durable)",
        WAITING,
        "durable=True",
        "",
        _tests("waiting/test_line"),
        at="with transaction.atomic(durable=True): _lock_line(show.pk)",
    ),
    Mutation(
        "serving joins a caller's transaction (not durable)",
        WAITING,
        "durable=True",
        "",
        _tests("waiting/test_line"),
        at="with transaction.atomic(durable=True): _lock_line(show_id) # The clock",
    ),
    # --- search --------------------------------------------------------------------------------------------
    Mutation(
        "the radius is only the latitude/longitude box",
        SEARCH,
        ", distance_km__lte=search.radius_km",
        "",
        _tests("cinemas/test_search_movies"),
    ),
    # --- partners' webhooks -------------------------------------------------------------------------------------
    Mutation(
        "a webhook answered with an error counts as delivered",
        WEBHOOKS,
        "200 <= status_code < 300",
        "status_code >= 200",
        _tests("ticketing/test_webhooks"),
    ),
    Mutation(
        "a webhook's signature leaves out its timestamp",
        WEBHOOKS,
        'f"{timestamp}.".encode() + body',
        "body",
        _tests("ticketing/test_webhooks"),
    ),
    Mutation(
        "a failed webhook is retried at once",
        WEBHOOKS,
        "timezone.now() + retry_wait(delivery.attempts)",
        "timezone.now()",
        _tests("ticketing/test_webhooks"),
    ),
    Mutation(
        "every change of a partner's reservation is told as a booking event",
        BOOKING_WEBHOOKS,
        "(OLD.status = 'Booked') IS DISTINCT FROM (NEW.status = 'Booked')",
        "OLD.status IS DISTINCT FROM NEW.status",
        _tests("bookings/test_booking_webhooks"),
    ),
]


def run(mutation):
    """`(outcome, detail)`: caught (the first failing test), SURVIVED, stale, or error (the tests didn't run)."""
    path = ROOT / mutation.path
    original = path.read_text()
    mutated = mutation.apply(original)
    if mutated is None:
        return "stale", f"{mutation.at or mutation.old!r} is not in {mutation.path} exactly once"
    try:
        path.write_text(mutated)
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf", *mutation.tests]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    finally:
        path.write_text(original)
    if result.returncode == 0:
        return "SURVIVED", ""
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.MULTILINE)
    if result.returncode == 1 and failed:
        return "caught", failed[0]
    return "error", (result.stdout + result.stderr).strip().splitlines()[-1:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only the mutations whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    arguments = parser.parse_args()
    chosen = [m for m in MUTATIONS if not arguments.names or any(n in m.name for n in arguments.names)]
    if arguments.list:
        for mutation in chosen:
            print(f"{mutation.path}: {mutation.name}")
        return 0
    if "DATABASE_URL" not in os.environ:
        sys.exit("Set DATABASE_URL (and REDIS_URL) to your checkout's own database: the tests run against it.")
    # A Ctrl-C or kill still puts the source back (run's finally).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bad = 0
    print("| mutation | file | outcome | caught by |\n| --- | --- | --- | --- |", flush=True)
    for mutation in chosen:
        started = time.monotonic()
        outcome, detail = run(mutation)
        bad += outcome != "caught"
        print(f"| {mutation.name} | {mutation.path} | {outcome} | {detail} |", flush=True)
        print(f"  ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
