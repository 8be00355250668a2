"""Celery tasks of partners' webhooks: thin wrappers that call ticketing.webhooks. Beat runs the sweep (settings)."""

from celery import shared_task
from django.db import DEFAULT_DB_ALIAS

from ticketing import shards
from ticketing.webhooks import SEND_WEBHOOK_TASK, dispatch_due_webhooks, send_webhook


# The row counts the attempts, waits between them and gives up (ticketing.webhooks): a failed attempt is picked up
# again by beat's sweep when it is due, so the task itself never retries.
@shared_task(name=SEND_WEBHOOK_TASK, ignore_result=True)
def send_webhook_task(delivery_id, database=DEFAULT_DB_ALIAS):
    with shards.in_database(database):  # the shard whose transaction owed it
        send_webhook(delivery_id=delivery_id)


@shared_task(name="ticketing.dispatch_due_webhooks", ignore_result=True)
def dispatch_due_webhooks_task():
    return sum(dispatch_due_webhooks() for _ in shards.each_shard())
