import os

from celery import Celery
from celery.signals import worker_process_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ticketing.settings")

app = Celery("ticketing")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_shutdown.connect
def send_waiting_pushes(**kwargs):
    """A pool process ends with os._exit (no atexit): its coalesced seat changes still waiting go out first."""
    from ticketing.broadcast import send_waiting_pushes

    send_waiting_pushes()
