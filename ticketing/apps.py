from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class TicketingConfig(AppConfig):
    name = "ticketing"
    verbose_name = _("Partners and API keys")

    def ready(self):
        # Celery only discovers tasks inside a worker; web processes send them by name, so they register here.
        from ticketing import tasks  # noqa: F401
        from ticketing.faults import check_no_crash_points

        checks.register(check_no_crash_points, checks.Tags.security, deploy=True)
