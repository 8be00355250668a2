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

        # A booking's webhooks are owed by the database that wrote it (bookings migration 0029): on its shard.
        from django.contrib.auth import get_user_model

        from ticketing.models import ApiKey, WebhookDelivery, WebhookEndpoint
        from ticketing.shards import live_on_their_shows_shard, replicated_to_every_shard

        live_on_their_shows_shard(WebhookDelivery)
        # What a show's sale refers to besides the catalog: the partner's key and endpoints, the clerk who sold.
        replicated_to_every_shard(ApiKey, WebhookEndpoint, get_user_model())
