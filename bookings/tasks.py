"""Celery tasks: thin wrappers that load ids and call services. Beat runs the clocks (settings)."""

import logging

from celery import current_app, shared_task

logger = logging.getLogger(__name__)

WAITING_LINE_TASK = "waiting.serve_waiting_line"


@shared_task(name="bookings.release_lapsed_holds", ignore_result=True)
def release_lapsed_holds_task():
    from bookings.services import release_lapsed_holds

    return release_lapsed_holds()


@shared_task(name="bookings.reconcile_payments", ignore_result=True)
def reconcile_payments_task():
    from bookings.services import reconcile_payments

    return reconcile_payments()


@shared_task(name="bookings.settle_refund", ignore_result=True)
def settle_refund_task(payment_id):
    from bookings.services import settle_refund

    settle_refund(payment_id=payment_id)


def wake_waiting_line(show_id):
    """Ask the waiting app to serve the show's line, by task name: bookings must not import waiting.

    Called after commit. If the broker is down the wake-up is lost, but nothing else is: the line is also
    served by beat, and the seats are free in the database either way.
    """
    try:
        current_app.signature(WAITING_LINE_TASK, args=(show_id,)).delay()
    except Exception:  # the broker's errors are many; any of them must not fail a committed request
        logger.warning("Could not wake the waiting line of show %s", show_id, exc_info=True)
