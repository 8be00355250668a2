from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class TicketingConfig(AppConfig):
    name = "ticketing"
    verbose_name = _("Partners and API keys")

    def ready(self):
        from ticketing.faults import check_no_crash_points

        checks.register(check_no_crash_points, checks.Tags.security, deploy=True)
