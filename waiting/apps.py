from django.apps import AppConfig


class WaitingConfig(AppConfig):
    name = "waiting"
    verbose_name = "Waiting line"

    def ready(self):
        # Celery only discovers tasks inside a worker; web processes send them by name, so they register here.
        from waiting import tasks  # noqa: F401
