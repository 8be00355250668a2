"""Celery tasks: thin wrappers that load ids and call services. Beat runs the clocks (settings)."""

import logging
import threading
import time

from celery import current_app, shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections

from bookings.availability import line_is_open

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


# While a wake-up of a show's line sits in the broker, others would find the line as it will: one is enough.
# The key is dropped by the task as it starts (waiting.tasks), so a change committed after that queues a new
# one; its timeout only matters if the task is lost, and beat tends every open line meanwhile.
WAKE_UP_QUEUED = "waiting-line-wake-up-queued:{show_id}"
WAKE_UP_QUEUED_SECONDS = 30


def wake_waiting_line(show_id):
    """Ask the waiting app to serve the show's line, by task name: bookings must not import waiting.

    Called after commit, and only while someone waits for the show; at most one wake-up per show waits in the
    broker at a time (5,000 joins once queued 4,000 wake-ups ahead of beat's sweeps). If the broker is down
    the wake-up is lost, but nothing else is: beat tends every open line every few seconds, and the seats are
    free in the database either way.
    """
    if not line_is_open(show_id):
        return
    try:
        if not settings.CELERY_TASK_ALWAYS_EAGER and not cache.add(
            WAKE_UP_QUEUED.format(show_id=show_id), 1, timeout=WAKE_UP_QUEUED_SECONDS
        ):
            return
        current_app.signature(WAITING_LINE_TASK, args=(show_id,)).delay()
    except Exception:  # the broker's and cache's errors are many; none may fail a committed request
        logger.warning("Could not wake the waiting line of show %s", show_id, exc_info=True)


def take_wake_up(show_id):
    """The wake-up task of the show's line has started: the next change queues a new one."""
    try:
        cache.delete(WAKE_UP_QUEUED.format(show_id=show_id))
    except Exception:
        logger.warning("Could not clear the queued wake-up of show %s", show_id, exc_info=True)


def run_beat_in_process(stop=None):
    """The single-process demo's beat: run the beat schedule's tasks in this process, each on its period.

    The same tasks and services as under Celery beat; only the driver differs. Stops when `stop` (an
    Event) is set. A failing tick is logged and retried on the next one, as beat would.
    """
    stop = stop or threading.Event()
    due = dict.fromkeys(settings.CELERY_BEAT_SCHEDULE, 0.0)
    while not stop.is_set():
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
            if time.monotonic() >= due[name]:
                try:
                    current_app.tasks[entry["task"]].apply(throw=True)
                except Exception:
                    logger.exception("In-process clock %s failed", name)
                finally:
                    close_old_connections()
                due[name] = time.monotonic() + entry["schedule"]
        stop.wait(0.2)


def start_beat_in_process():
    thread = threading.Thread(target=run_beat_in_process, name="in-process-beat", daemon=True)
    thread.start()
    return thread


# The row counts the attempts and gives up (bookings.services.mail), so Celery's own limit is off: a mail queued
# again by the sweep or by staff starts a new chain of retries with the row's count.
@shared_task(bind=True, name="bookings.send_mail", ignore_result=True, max_retries=None)
def send_mail_task(self, mail_id):
    """One attempt at a mail; a failed one is retried after the wait the service gives (doubling each time)."""
    from bookings.services import MailNotSent, send_outgoing_mail

    try:
        send_outgoing_mail(mail_id=mail_id)
    except MailNotSent as failure:
        raise self.retry(countdown=failure.retry_in) from None


@shared_task(name="bookings.requeue_overdue_mail", ignore_result=True)
def requeue_overdue_mail_task():
    from bookings.services import requeue_overdue_mail

    return requeue_overdue_mail()
