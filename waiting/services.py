"""Every change to a show's waiting line: joining, leaving, serving it, and ending waits that can't be served.

One short critical section per show (DESIGN decision 3): a transaction-scoped advisory lock keyed by the
show serializes everything that decides on the whole line, so places follow the order joins commit and the
line is served strictly from its head. Nothing else ever waits on it: holds of seats never take it.
Notifications (long polls, WebSockets) and wake-ups are sent after commit.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from bookings.availability import taken_by_type
from bookings.notices import seat_changes_pushed_together
from bookings.seat_maps import show_seat_spots
from bookings.services import BookingError, hold_seats_for_waiter, refuse_unadmitted
from cinemas.models import OPEN_SEAT_TYPES, Show
from cinemas.on_sales import gate_for
from ticketing import shards
from ticketing.broadcast import send_to_groups
from ticketing.buyers import Buyer
from ticketing.db import lock_until_commit
from ticketing.error_codes import error_message
from ticketing.lean import pooled_rows
from ticketing.models import WebhookEvent
from ticketing.shards import connection
from ticketing.webhooks import record_webhook_event
from waiting.models import Waiter
from waiting.wake_ups import line_is_open, wake_waiting_line

logger = logging.getLogger(__name__)


class WaitingError(Exception):
    """The waiting line said no. `code` is the machine word, a key of ticketing.error_codes.ERROR_CODES."""

    def __init__(self, code):
        self.code = code
        self.message = error_message(code)
        super().__init__(self.message)


# --- Reads ------------------------------------------------------------------------------------------------


def position_of(waiter):
    """1 for the head of the line; None once the waiter is out of it. As the database's waiting_waiters (waiting
    migration 0007) counts it: the rule lives there once, for this, the lean poll and the parked polls."""
    return read_waiter(waiter.pk).position


def read_waiter(waiter_id):
    """The waiter as a WaiterRow with its position and the version it shows, in one query on Django's
    connection. Locks nothing."""
    return read_waiters([(waiter_id, None)])[str(waiter_id), None]


# --- Reading places in line in one round trip (the polls, waiting.api and waiting.longpoll) --------------------

WAITERS_FUNCTION = "waiting_waiters"


@dataclass(frozen=True, slots=True)
class WaiterRow:
    """A row of waiting_waiters (waiting migration 0007): a waiter as its body shows it, with whose it is.

    `unchanged`: still in the status the read was asked about (its position then not counted).
    """

    id: uuid.UUID
    unless: str | None
    unchanged: bool
    status: str
    position: int | None
    version: int
    show_id: int
    seats_wanted: int
    expires_at: datetime
    reservation_id: uuid.UUID | None
    api_key_id: int | None
    session_id: str

    def is_of(self, buyer):
        return self.api_key_id == buyer.api_key_id and self.session_id == buyer.session_id


def _waiters_arguments(wanted):
    return [[str(waiter_id) for waiter_id, _ in wanted], [status for _, status in wanted]]


def read_waiters(wanted):
    """For each (waiter_id, status) of `wanted`: its WaiterRow, keyed by the pair, in one query on Django's
    connection; `status` None reads it whatever it is. A waiter that does not exist has no row. Locks nothing."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {WAITERS_FUNCTION}(%s, %s)", _waiters_arguments(wanted))
        return _rows_by_pair(cursor.fetchall())


async def aread_waiters(wanted):
    """read_waiters on the lean path's async pool (ticketing.lean): the same function, one round trip."""
    return _rows_by_pair(await pooled_rows(WAITERS_FUNCTION, _waiters_arguments(wanted)))


def _rows_by_pair(rows):
    waiters = (WaiterRow(*row) for row in rows)
    return {(str(waiter.id), waiter.unless): waiter for waiter in waiters}


def read_own_waiter(*, buyer, waiter_id):
    """The buyer's own place in line as a WaiterRow with its position, in one query on Django's connection; or
    WaitingError("not_found"). On the lean path: waiting.longpoll.read_own_waiter, batched on the async pool."""
    return own_waiter(read_waiters([(waiter_id, None)]).get((str(waiter_id), None)), buyer)


def own_waiter(row, buyer):
    """`row` (a WaiterRow, or None) if it is the buyer's, else WaitingError("not_found"), as find_waiter says:
    another session's place is never revealed."""
    if row is None or not row.is_of(buyer):
        raise WaitingError("not_found")
    return row


def find_waiter(*, buyer, waiter_id):
    """The buyer's own place in line, or WaitingError("not_found"): another session's is never revealed."""
    waiter = Waiter.objects.filter(pk=waiter_id, api_key_id=buyer.api_key_id, session_id=buyer.session_id).first()
    if waiter is None:
        raise WaitingError("not_found")
    return waiter


class _ServableSeats:
    """The seats the line may give, per category asked for ("": the cheapest that fits, any open type): free
    now and not booked. Served waiters get best-available seats, which are of the open types only (never a
    wheelchair space or a companion seat). Counted once (per join, per batch of serving) and kept current as
    waiters are served."""

    def __init__(self, show, at):
        taken = taken_by_type([show.pk], at).get(show.pk, {})
        capacity = show.hall.capacity
        self.free = {kind: capacity.get(kind, 0) - taken.get(kind, (0, 0))[0] for kind in OPEN_SEAT_TYPES}
        self.not_booked = {kind: capacity.get(kind, 0) - taken.get(kind, (0, 0))[1] for kind in OPEN_SEAT_TYPES}

    def _of(self, counts, seat_type):
        return counts[seat_type] if seat_type else sum(counts.values())

    def free_for(self, seat_type):
        return self._of(self.free, seat_type)

    def not_booked_for(self, seat_type):
        return self._of(self.not_booked, seat_type)

    def served(self, reservation):
        for seat in reservation.seats_held:
            self.free[seat.seat_type] -= 1


# --- The line lock and what changes under it ------------------------------------------------------------------


def _lock_line(show_id):
    lock_until_commit(f"waiting-line:{show_id}")


def line_group(show_id):
    """The channel-layer group told when the show's line moves (positions or statuses change)."""
    return f"waiting-line-{show_id}"


def _notices_after_commit():
    """Where a transaction collects its notices for long polls and WebSockets; all are sent once it commits.

    One per group (they only say "re-read"), all in one go: a line of 1,000 ending at once is one message.
    """
    notices = {}
    shards.on_commit(lambda: send_to_groups(list(notices.items())), robust=True)
    return notices


def _end(waiters, status, at, notices):
    """Take these waiters out of the line with `status`; everyone behind them moves up (the line's notice,
    naming them, tells the rest to read their positions again)."""
    waiters = list(waiters)
    if not waiters:
        return
    _leave_line(waiters, status, at)
    for waiter in waiters:
        _notify_waiter(waiter, notices)


# A waiter leaving the line keeps the version it was last shown, plus one. While it waits, the version shown
# counts the moves ahead of it (waiting migration 0006): a move writes no row but those of the waiters leaving.
# Callers hold the line's lock and pass waiters they read as Waiting under it (leaving an ended place is
# leave_waiting_line's to refuse).
LEAVE_LINE = f"""
UPDATE waiting_waiter waiter
   SET status = %s, ended_at = %s, reservation_id = %s, version = shown.version + 1
  FROM {WAITERS_FUNCTION}(%s::uuid[], %s::text[]) shown
 WHERE waiter.id = shown.id
"""


def _leave_line(waiters, status, at, *, reservation=None):
    ids = [str(waiter.pk) for waiter in waiters]
    with connection.cursor() as cursor:
        cursor.execute(LEAVE_LINE, [status, at, reservation and reservation.pk, ids, [None] * len(ids)])


def _notify_waiter(waiter, notices):
    """The show's line group hears of the waiter's change of status, naming it: long polls and the waiting
    page's sockets listen to the line alone (one membership per show and process: ticketing.fanout), and
    only the polls of the waiters a message names read again (waiting.longpoll)."""
    _line_notice(waiter.show_id, notices)["changed"].append(str(waiter.pk))


def _line_notice(show_id, notices):
    """The transaction's one "line.moved" for the show; `changed` names the waiters whose status changed."""
    return notices.setdefault(line_group(show_id), {"type": "line.moved", "show_id": show_id, "changed": []})


def _wake_line_after_commit(show_id):
    shards.on_commit(lambda: wake_waiting_line(show_id), robust=True)


# --- Joining and leaving ----------------------------------------------------------------------------------------


@shards.in_its_shows_database
def join_waiting_line(*, buyer, show, seats_wanted, seat_type="", at=None, admission_pass=None):
    """Queue the buyer for `seats_wanted` seats of the show; returns `(waiter, created)`.

    A show behind an on-sale's waiting room is queued for with the room's `admission_pass`, as it is held with
    one: BookingError sale_not_open or admission_required (bookings.services.refuse_unadmitted) without it.

    `seat_type`: the category they want (an open seat type: Premium, Regular), or "" for the cheapest that
    fits when they are served; the counts below are of that category. Only when the seats can't be had now but
    may come free. Locks the show's line. Raises WaitingError: bad_count, bad_seat_type, show_started,
    seats_available (enough are free and nobody waits: hold them instead), show_full (too few seats are
    unbooked). A buyer already waiting for the show gets its place back (created False). On commit,
    when it is the line's first: the line is served, in case seats came free meanwhile.
    """
    at = at or timezone.now()
    if not 1 <= seats_wanted <= settings.TICKETING_MAX_SEATS:
        raise WaitingError("bad_count")
    seat_type = seat_type or ""
    if seat_type and seat_type not in OPEN_SEAT_TYPES:
        raise WaitingError("bad_seat_type")
    if show.starts_at <= at:
        raise WaitingError("show_started")
    refuse_unadmitted(gate_for(show.pk, at), buyer=buyer, admission_pass=admission_pass, at=at)
    with shards.atomic(durable=True):
        _lock_line(show.pk)
        existing = Waiter.objects.filter(
            show=show, api_key_id=buyer.api_key_id, session_id=buyer.session_id, status=Waiter.Status.WAITING
        ).first()
        if existing is not None:
            return existing, False
        servable = _ServableSeats(show, at)
        free, not_booked = servable.free_for(seat_type), servable.not_booked_for(seat_type)
        if not_booked < seats_wanted:
            raise WaitingError("show_full")
        first_in_line = not line_is_open(show.pk)
        if free >= seats_wanted and first_in_line:
            raise WaitingError("seats_available")
        last_place = Waiter.objects.filter(show=show).aggregate(last=Max("place"))["last"] or 0
        waiter = Waiter.objects.create(
            show=show,
            api_key_id=buyer.api_key_id,
            session_id=buyer.session_id,
            client_address=buyer.client_address,
            seats_wanted=seats_wanted,
            seat_type=seat_type,
            place=last_place + 1,
            joined_at=at,
            expires_at=at + timedelta(seconds=settings.TICKETING_MAX_WAIT_SECONDS),
        )
        if first_in_line or free >= seats_wanted:
            # Seats freed while this transaction ran found no line to wake. Behind a head, a join changes
            # nothing the head waits for (5,000 joins woke the line 5,000 times, each locking it in turn); but
            # one that seats free now could seat may be seated past a head waiting for another category.
            _wake_line_after_commit(show.pk)
    return waiter, True


def leave_waiting_line(*, buyer, waiter_id, at=None):
    """The buyer gives up its place: status Cancelled, everyone behind moves up. Returns the waiter.

    Locks the show's line. Leaving a place already ended (served, expired...) changes nothing. On commit:
    notifies the waiter and those behind, and serves the line (the head may have left).
    """
    at = at or timezone.now()
    waiter = find_waiter(buyer=buyer, waiter_id=waiter_id)
    with shards.atomic(durable=True):
        _lock_line(waiter.show_id)
        waiter.refresh_from_db()
        if waiter.status == Waiter.Status.WAITING:
            _end([waiter], Waiter.Status.CANCELLED, at, _notices_after_commit())
            _wake_line_after_commit(waiter.show_id)
            waiter.refresh_from_db()
    return waiter


# --- Serving ----------------------------------------------------------------------------------------------------------


# Waiters seated per transaction. Each transaction holds the line's lock (joins and leaves wait) and dates its
# holds from its start: a whole wave in one would keep the line locked for its length, and the last waiters'
# clocks would be half gone before they heard (500 waiters took one transaction ~48 s).
SERVE_BATCH = 25


@shards.in_its_shows_database
def serve_waiting_line(*, show_id, at=None):
    """Serve the show's line from its head, strictly in order, while the head's count fits. Returns how many.

    Works in short transactions of up to SERVE_BATCH waiters, each locking the show's line: first ends the
    waits that can't go on: past the maximum wait (Expired), or wanting more seats than remain unbooked
    (Show Full). Then, for the head: holds the best seats for it (status Seats Available with the hold's
    reservation) and moves to the next; stops at the first head that can't be seated, so nobody behind it is
    served first. Waiters who asked for a category (Waiter.seat_type) keep their order among those who could
    take the same seats: a head waiting for Premium lets a waiter behind it who asked for Regular, or for the
    cheapest that fits, be seated in Regular (within the batch; the next wake-up reads the line again).
    Each batch's holds start when the batch runs (or all at `at`, when given). Idempotent and
    safe from several workers and web processes at once. A partner's waiter served is owed waiter.served in the
    same transaction (ticketing.webhooks). On each commit: notifies every waiter whose status or position changed.
    """
    served = 0
    seats = show_seat_spots(show_id)  # outside the batches' transactions: from the process's cache
    while True:
        seated, head_stopped = _serve_batch(show_id, at, seats)
        served += seated
        if head_stopped:
            return served


def _serve_batch(show_id, at, seats):
    """One transaction of serve_waiting_line: `(waiters seated, True when the line can't move further now)`."""
    with shards.atomic(durable=True):
        _lock_line(show_id)
        # The clock is read once the line is ours: read before, while another worker held the lock, it could
        # date a hold before the lapse (swept meanwhile) that freed its seats.
        at = at or timezone.now()
        notices = _notices_after_commit()
        show = Show.objects.select_related("hall").get(pk=show_id)
        waiting = Waiter.objects.filter(show_id=show_id, status=Waiter.Status.WAITING).order_by("place")
        if show.starts_at <= at:
            _end(waiting, Waiter.Status.EXPIRED, at, notices)
            return 0, True
        _end(waiting.filter(expires_at__lte=at), Waiter.Status.EXPIRED, at, notices)
        servable = _ServableSeats(show, at)
        for seat_type in ("", *OPEN_SEAT_TYPES):
            cannot = waiting.filter(seat_type=seat_type, seats_wanted__gt=servable.not_booked_for(seat_type))
            _end(cannot, Waiter.Status.SHOW_FULL, at, notices)
        seated = 0
        batch = list(waiting.select_related("api_key")[:SERVE_BATCH])
        head_stopped = len(batch) < SERVE_BATCH  # else more may wait behind this batch
        # The batch's holds reach the seat maps as one push after commit, not one per waiter.
        # The categories a waiter ahead could not be seated in: nobody behind it is seated in them first.
        blocked = set()
        with seat_changes_pushed_together():
            for waiter in batch:
                usable = ({waiter.seat_type} if waiter.seat_type else set(OPEN_SEAT_TYPES)) - blocked
                if not usable:
                    continue
                # The category to seat the waiter in: its own, else the cheapest that fits among those left.
                seat_type = next(iter(usable)) if len(usable) == 1 else ""
                if waiter.seats_wanted > servable.free_for(seat_type):
                    # Not even counted free (the usual case while holds last): no search of the hall. Seats that
                    # come free after this count wake the line again once this transaction lets go of its lock.
                    blocked |= usable
                    head_stopped = True  # those behind are read again at the next wake-up, not by another batch
                    if blocked >= set(OPEN_SEAT_TYPES):
                        break
                    continue
                # The client's caps hold for seats served from the line too: else many sessions in line would
                # collect freed seats past the cap that refuses their direct holds.
                buyer = Buyer(
                    api_key_id=waiter.api_key_id,
                    session_id=waiter.session_id,
                    client_address=waiter.client_address,
                    key_seat_cap=waiter.api_key.held_seats_per_show if waiter.api_key_id else None,
                )
                try:
                    reservation = hold_seats_for_waiter(
                        buyer=buyer,
                        show=show,
                        count=waiter.seats_wanted,
                        seat_type=seat_type or None,
                        at=at,
                        seats=seats,
                    )
                except BookingError as refusal:
                    if refusal.code in ("seats_unavailable", "retry", "show_full"):
                        # The head can't be seated yet: nobody behind it goes first in its categories.
                        blocked |= usable
                        head_stopped = True
                        if blocked >= set(OPEN_SEAT_TYPES):
                            break
                        continue
                    # The waiter's own session, or its client (key or address), already holds as many seats of the
                    # show as it may: it can't be served, and mustn't stop the line for everyone behind it.
                    logger.info("Waiter %s can't be served: %s", waiter.pk, refusal.code)
                    _end([waiter], Waiter.Status.CANCELLED, at, notices)
                    continue
                _leave_line([waiter], Waiter.Status.SEATS_AVAILABLE, at, reservation=reservation)
                _notify_waiter(waiter, notices)
                if waiter.api_key_id is not None:  # a partner's waiter: its endpoints hear of it
                    _owe_served_webhook(waiter, reservation, at)
                servable.served(reservation)
                seated += 1
        return seated, head_stopped


def _owe_served_webhook(waiter, reservation, at):
    """waiter.served, in the serving transaction (ticketing.webhooks): the waiter as its body shows it."""
    record_webhook_event(
        api_key_id=waiter.api_key_id,
        event_type=WebhookEvent.WAITER_SERVED,
        data={
            "waiter_id": str(waiter.pk),
            "show_id": waiter.show_id,
            "session_id": waiter.session_id,
            "status": str(Waiter.Status.SEATS_AVAILABLE),
            "seats_wanted": waiter.seats_wanted,
            "reservation_id": str(reservation.pk),
        },
        at=at,
    )


def tend_waiting_lines(*, at=None):
    """Beat's safety net: serve every show whose line is open (ending overdue waits on the way).

    Wake-ups after commit normally serve a line within a second; this catches any that were lost (a broker
    restart, a killed worker) and waits that ran past their maximum while nothing else happened. Without `at`,
    each batch's holds start when that batch runs, as serve_waiting_line's do: dated from the tend's start, a
    long line's last holds (a surge's, served over many seconds) lost that much of their clock before anyone
    heard of them.
    """
    show_ids = Waiter.objects.filter(status=Waiter.Status.WAITING).values_list("show_id", flat=True).distinct()
    return sum(serve_waiting_line(show_id=show_id, at=at) for show_id in list(show_ids))
