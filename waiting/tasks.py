from celery import shared_task

from ticketing import shards
from waiting.rooms import tend_rooms
from waiting.services import serve_waiting_line, tend_waiting_lines
from waiting.wake_ups import WAKE_UP_TASK, take_wake_up


@shared_task(name=WAKE_UP_TASK, ignore_result=True)
def serve_waiting_line_task(show_id):
    take_wake_up(show_id)  # before serving: a change committed from now on needs (and queues) its own wake-up
    return serve_waiting_line(show_id=show_id)


@shared_task(name="waiting.tend_waiting_lines", ignore_result=True)
def tend_waiting_lines_task():
    return sum(tend_waiting_lines() for _ in shards.each_shard())


@shared_task(name="waiting.tend_rooms", ignore_result=True)
def tend_rooms_task():
    return tend_rooms()
