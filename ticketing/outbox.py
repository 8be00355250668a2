"""What the outboxes share (a buyer's mail, bookings.services.mail; a partner's webhooks, ticketing.webhooks): a
row per thing owed, written in the transaction that owes it, and attempts made by tasks that claim the row first.

A row is `queued` until it is done or given up on; `next_attempt_at` says when its next attempt is due, and while
an attempt runs, when that attempt counts as lost (its worker died). `attempts` counts them.
"""

from datetime import timedelta

from django.db.models import F

QUEUED = "queued"
# Workers' clocks may disagree a little: an attempt arriving this much before its time still runs.
CLOCK_SLACK = timedelta(seconds=5)


def claim_attempt(model, pk, *, at, lease):
    """Claim the next attempt at the row `pk` of `model`, if it is queued and due: counts it and marks it running
    until `at + lease`. True if claimed. A conditional update and no lock, so of two tasks for one row (a duplicate,
    a sweep's and a retry's) one attempts and the other does nothing."""
    return bool(
        model.objects.filter(pk=pk, status=QUEUED, next_attempt_at__lte=at + CLOCK_SLACK).update(
            attempts=F("attempts") + 1, last_attempt_at=at, next_attempt_at=at + lease
        )
    )


def queue_again(model, pk, *, at):
    """Queue the row again with a full set of attempts, due at `at`, unless it is queued already. True if it was.
    A conditional update, no lock."""
    return bool(
        model.objects.filter(pk=pk).exclude(status=QUEUED).update(status=QUEUED, attempts=0, next_attempt_at=at)
    )
