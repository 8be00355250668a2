"""Logging filters named in settings.LOGGING."""

import logging

from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS
from django.conf import settings


class QuietClockTasks(logging.Filter):
    """Drops a Celery worker's lines about the clocks' ticks (CELERY_BEAT_SCHEDULE's tasks) that did nothing.

    The clocks tick every second or two, and each tick's "Task ... received" and "Task ... succeeded ...: 0"
    buried the requests and every other task in `make run`'s output. A tick that did something ("succeeded ...:
    3", holds released or waiters served) and a failure still show, and so does every line of other tasks.
    """

    def __init__(self):
        super().__init__()
        self.clock_tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    def filter(self, record):
        # Celery logs these with one dict of the task's fields as the message's arguments.
        fields = record.args if isinstance(record.args, dict) else {}
        if fields.get("name") not in self.clock_tasks:
            return True
        did_nothing = record.msg == LOG_SUCCESS and fields.get("return_value") in {"0", "None"}
        return not (record.msg == LOG_RECEIVED or did_nothing)
