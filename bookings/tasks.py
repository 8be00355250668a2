"""Celery tasks: thin wrappers that load ids and call services. Beat runs the clocks (settings)."""

import logging
import threading
import time

from celery import current_app, shared_task
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections

from bookings.services import (
    MailNotSent,
    fold_sales_tally,
    move_gift_card_money,
    move_promo_code_uses,
    reconcile_payments,
    release_lapsed_holds,
    requeue_overdue_mail,
    send_outgoing_mail,
    settle_refund,
)
from bookings.services.mail import SEND_MAIL_TASK
from ticketing import shards

logger = logging.getLogger(__name__)


@shared_task(name="bookings.release_lapsed_holds", ignore_result=True)
def release_lapsed_holds_task():
    return sum(release_lapsed_holds() for _ in shards.each_shard())


@shared_task(name="bookings.reconcile_payments", ignore_result=True)
def reconcile_payments_task():
    return sum(reconcile_payments() for _ in shards.each_shard())


@shared_task(name="bookings.fold_sales_tally", ignore_result=True)
def fold_sales_tally_task():
    return sum(fold_sales_tally() for _ in shards.each_shard())


@shared_task(name="bookings.move_gift_card_money", ignore_result=True)
def move_gift_card_money_task():
    return sum(move_gift_card_money() for _ in shards.each_shard())


@shared_task(name="bookings.move_promo_code_uses", ignore_result=True)
def move_promo_code_uses_task():
    return sum(move_promo_code_uses() for _ in shards.each_shard())


@shared_task(name="bookings.settle_refund", ignore_result=True)
def settle_refund_task(payment_id, database=DEFAULT_DB_ALIAS):
    with shards.in_database(database):
        settle_refund(payment_id=payment_id)


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
@shared_task(bind=True, name=SEND_MAIL_TASK, ignore_result=True, max_retries=None)
def send_mail_task(self, mail_id, database=DEFAULT_DB_ALIAS):
    """One attempt at a mail (in `database`, the shard whose transaction owed it); a failed one is retried after
    the wait the service gives (doubling each time)."""
    try:
        with shards.in_database(database):
            send_outgoing_mail(mail_id=mail_id)
    except MailNotSent as failure:
        raise self.retry(countdown=failure.retry_in) from None


@shared_task(name="bookings.requeue_overdue_mail", ignore_result=True)
def requeue_overdue_mail_task():
    return sum(requeue_overdue_mail() for _ in shards.each_shard())
