from django.apps import AppConfig
from django.core import checks


class TicketingConfig(AppConfig):
    name = "ticketing"
    verbose_name = "Partners and API keys"

    def ready(self):
        from ticketing.faults import check_no_crash_points

        checks.register(check_no_crash_points, checks.Tags.security, deploy=True)
