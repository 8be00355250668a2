"""What bookings tells others once a change of seats has committed: the one home of its after-commit notices.

Every service that holds, books or frees seats announces the change here (announce_seat_changes,
announce_freed_seats), inside its transaction; once that commits:
- the show's cached seat maps are built afresh on their next read (bookings.seat_maps.seat_maps_changed), first,
  so that a client told of a change never re-reads the map from before it;
- the changes are pushed to everyone watching the show's live map (bookings.consumers.push_seat_changes);
- when seats came free or were booked, the one listener registered with on_seats_freed_or_booked hears which
  shows: the waiting line (waiting.apps), whose head may now be served or whose waiters may now be Show Full.
  That hook is all bookings knows of the line: waiting imports bookings, never the other way (DESIGN decision 9).

Never from inside a transaction that may roll back (DESIGN decision 7). The change has committed by then, so a
failing notice is logged, never made the buyer's error.
"""

import asyncio
import concurrent.futures
import logging
import threading
from contextlib import contextmanager

from django.db import close_old_connections

from bookings.consumers import push_seat_changes
from bookings.seat_maps import seat_maps_changed
from ticketing import shards

logger = logging.getLogger(__name__)

# The statuses a seat changes to whose news may move a waiting line: freed seats may seat its head, booked ones
# may leave fewer seats than a waiter wants. A seat newly held does neither.
FREED_OR_BOOKED = frozenset({"available", "booked"})

_listener = None


def on_seats_freed_or_booked(listener):
    """Register `listener(show_ids)`: after each commit that freed or booked seats, it is called with the ids of
    those shows. Returns the listener it replaces (None at first), so a test can put it back.

    One listener: the waiting line registers its wake-up at start (waiting.apps). It runs where the change
    committed, on the thread that pushes the change (not the request's, on the lean path): it must be quick, and
    what it raises is logged and dropped.
    """
    global _listener
    replaced, _listener = _listener, listener
    return replaced


def announce_seat_changes(show_id, version, changes):
    """After commit: push `changes`, `(seat id, "held" | "booked" | "available")` at `version`, to the show's live
    maps, and tell the listener of on_seats_freed_or_booked if any seat came free or was booked.

    Inside seat_changes_pushed_together the changes wait for the block's end instead.
    """
    if not changes:
        return  # e.g. a hold changed to the seats it already has: nothing to tell anyone
    freed_or_booked = any(status in FREED_OR_BOOKED for _, status in changes)
    changes = [(seat_id, status, version) for seat_id, status in changes]
    gathered = getattr(_pushed_together, "changes", None)
    if gathered is not None:
        gathered.setdefault(show_id, []).extend(changes)
        if freed_or_booked:
            _pushed_together.freed_or_booked.add(show_id)
        return
    _push_after_commit({show_id: changes}, {show_id} if freed_or_booked else set())


def announce_freed_seats(freed):
    """announce_seat_changes for the seats a hold function freed (takeovers of lapsed holds, cancels, the sweep):
    `freed` as the functions return it, `[{"show", "version", "seats": [seat id, ...]}, ...]`."""
    for entry in freed:
        announce_seat_changes(entry["show"], entry["version"], [(seat_id, "available") for seat_id in entry["seats"]])


def _push_after_commit(changes_by_show, freed_or_booked):
    changed = list(changes_by_show)

    def push(maps_changed=True):
        if maps_changed:
            seat_maps_changed(changed)
        for show_id, changes in changes_by_show.items():
            push_seat_changes(show_id, changes)
        if freed_or_booked and _listener is not None:
            _listener(sorted(freed_or_booked))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # robust: the change has committed; a failing push is logged, never made the buyer's 500.
        shards.on_commit(push, robust=True)
        return
    # The lean path: the call was its own transaction and has committed. The seat maps' generation moves now,
    # one Redis round trip on the event loop, so that the buyer's next read of the map has the hold. The pushes
    # are sync code (the channel layer from sync, Celery): on a thread of their own, not awaited, so the answer
    # does not wait for them. Not the loop's default executor: a loop that closes waits for that one, while a
    # push waits on a loop of its own.
    seat_maps_changed(changed)
    _pushing.submit(_logged_failure(lambda: push(maps_changed=False)))


_pushing = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="after-commit-push")


def _logged_failure(push):
    def run():
        try:
            push()
        except Exception:
            logger.exception("Could not push a committed change")
        finally:
            close_old_connections()  # the listener may have read the database; no request's end closes it here

    return run


_pushed_together = threading.local()


@contextmanager
def seat_changes_pushed_together():
    """Gather the seat changes announced in the block and push them after commit as one message per show.

    For a transaction that holds seats many times over (a serving batch of the waiting line: up to 25 holds,
    which were 25 pushes to each of a thousand seat maps). Only what commits with the block's transaction may
    be announced in it: hold_seats_for_waiter announces last in its savepoint, once nothing can fail. If the
    block raises, nothing is pushed.
    """
    _pushed_together.changes, _pushed_together.freed_or_booked = {}, set()
    try:
        yield
        changes_by_show, freed_or_booked = _pushed_together.changes, _pushed_together.freed_or_booked
    finally:
        _pushed_together.changes = _pushed_together.freed_or_booked = None
    if changes_by_show:
        _push_after_commit(changes_by_show, freed_or_booked)
