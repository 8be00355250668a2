"""Waking a show's waiting line once it may move: the task that serves it, queued after commit, one at a time.

A line may move when seats of its show came free (its head may be served) or were booked (some waiters may now
be Show Full): bookings says so after commit through the one hook it has for it, which waiting.apps registers
(bookings.notices.on_seats_freed_or_booked: bookings must not import waiting). The line's own changes wake it
too (waiting.services: the first to join, a leave).

A wake-up is the task WAKE_UP_TASK (waiting.tasks), queued only while someone waits for the show; at most one
per show waits in the broker at a time (5,000 joins once queued 4,000 wake-ups ahead of beat's sweeps). If the
broker is down the wake-up is lost, but nothing else is: beat tends every open line every few seconds, and the
seats are free in the database either way.
"""

import logging

from celery import current_app
from django.conf import settings
from django.core.cache import cache

from ticketing import shards
from ticketing.shards import connection

logger = logging.getLogger(__name__)

# Queued by its name: waiting.tasks calls the services that wake lines, so this module can't import it without
# the three importing each other.
WAKE_UP_TASK = "waiting.serve_waiting_line"

# While a wake-up of a show's line sits in the broker, others would find the line as it will: one is enough.
# The mark is dropped by the task as it starts (take_wake_up), so a change committed after that queues a new
# one; its timeout only matters if the task is lost, and beat tends every open line meanwhile.
WAKE_UP_QUEUED = "waiting-line-wake-up-queued:{show_id}"
WAKE_UP_QUEUED_SECONDS = 30


def line_is_open(show_id):
    """True while anyone waits in the show's line: the database's bookings_line_is_open, whose body this app's
    migrations give (waiting 0003, 0005), the same question bookings' hold functions ask before a fresh hold."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT bookings_line_is_open(%s)", [show_id])
        return cursor.fetchone()[0]


def wake_waiting_line(show_id):
    """Queue the task that serves the show's line, unless nobody waits or a wake-up of it is queued already.

    Called after commit. What the broker or the cache raise is logged, never raised: the change that asked for
    the wake-up has committed.
    """
    with shards.in_show_database(show_id):
        if not line_is_open(show_id):
            return
    try:
        if not settings.CELERY_TASK_ALWAYS_EAGER and not cache.add(
            WAKE_UP_QUEUED.format(show_id=show_id), 1, timeout=WAKE_UP_QUEUED_SECONDS
        ):
            return
        current_app.signature(WAKE_UP_TASK, args=(show_id,)).delay()
    except Exception:  # the broker's and cache's errors are many; none may fail a committed request
        logger.warning("Could not wake the waiting line of show %s", show_id, exc_info=True)


def wake_waiting_lines(show_ids):
    """wake_waiting_line for each show: what bookings calls after a commit that freed or booked seats of them."""
    for show_id in show_ids:
        wake_waiting_line(show_id)


def take_wake_up(show_id):
    """The wake-up task of the show's line has started: the next change queues a new one."""
    try:
        cache.delete(WAKE_UP_QUEUED.format(show_id=show_id))
    except Exception:
        logger.warning("Could not clear the queued wake-up of show %s", show_id, exc_info=True)
