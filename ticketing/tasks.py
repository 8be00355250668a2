"""Celery tasks of partners' webhooks: thin wrappers that call ticketing.webhooks. Beat runs the sweep (settings)."""

from celery import shared_task

from ticketing.webhooks import SEND_WEBHOOK_TASK, dispatch_due_webhooks, send_webhook


# The row counts the attempts, waits between them and gives up (ticketing.webhooks): a failed attempt is picked up
# again by beat's sweep when it is due, so the task itself never retries.
@shared_task(name=SEND_WEBHOOK_TASK, ignore_result=True)
def send_webhook_task(delivery_id):
    send_webhook(delivery_id=delivery_id)


@shared_task(name="ticketing.dispatch_due_webhooks", ignore_result=True)
def dispatch_due_webhooks_task():
    return dispatch_due_webhooks()
