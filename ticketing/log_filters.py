"""Logging filters named in settings.LOGGING."""

import logging

from django.conf import settings


class QuietClockTasks(logging.Filter):
    """Drops a Celery worker's INFO lines about the clocks' tasks (CELERY_BEAT_SCHEDULE).

    The clocks tick every second or two, and each tick's "Task ... received" and "Task ... succeeded" buried the
    requests and every other task in `make run`'s output. A clock task's failure is logged at ERROR and still
    shows; other tasks (mail, refunds) keep their INFO lines.
    """

    def __init__(self):
        super().__init__()
        self.clock_tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    def filter(self, record):
        # Celery logs these with one dict of the task's fields as the message's arguments.
        about_a_clock = isinstance(record.args, dict) and record.args.get("name") in self.clock_tasks
        return not (about_a_clock and record.levelno <= logging.INFO)
