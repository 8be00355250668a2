from celery import shared_task


@shared_task(name="waiting.serve_waiting_line", ignore_result=True)
def serve_waiting_line_task(show_id):
    from bookings.tasks import take_wake_up
    from waiting.services import serve_waiting_line

    take_wake_up(show_id)  # before serving: a change committed from now on needs (and queues) its own wake-up
    return serve_waiting_line(show_id=show_id)


@shared_task(name="waiting.tend_waiting_lines", ignore_result=True)
def tend_waiting_lines_task():
    from waiting.services import tend_waiting_lines

    return tend_waiting_lines()
