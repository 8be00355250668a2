from django.apps import AppConfig


class WaitingConfig(AppConfig):
    name = "waiting"
    verbose_name = "Waiting line"

    def ready(self):
        # Celery only discovers tasks inside a worker; web processes send them by name, so they register here.
        from bookings.services import register_waiting_line_check
        from waiting import tasks  # noqa: F401
        from waiting.services import line_is_open

        register_waiting_line_check(line_is_open)
