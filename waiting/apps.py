from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WaitingConfig(AppConfig):
    name = "waiting"
    verbose_name = _("Waiting line")

    def ready(self):
        from bookings.notices import on_seats_freed_or_booked
        from waiting import tasks  # noqa: F401  (Celery discovers tasks only in a worker; web processes send them by name)
        from waiting.wake_ups import wake_waiting_lines

        # Seats that come free or are booked may move a show's line. Bookings can't call the line (it must not
        # import waiting), so the line hands bookings its wake-up here.
        on_seats_freed_or_booked(wake_waiting_lines)

        from ticketing.shards import live_on_their_shows_shard
        from waiting.models import Waiter

        live_on_their_shows_shard(Waiter)  # a show's line lives with its seats (the rooms, on-sale wide, at home)
