from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = _("Bookings")

    def ready(self):
        # Celery only discovers tasks inside a worker; web processes send them by name, so they register here.
        from bookings import tasks
        from bookings.availability import taken_by_type
        from cinemas.search import register_taken_seats_counter

        register_taken_seats_counter(taken_by_type)

        # The webhooks about a booking are owed by the database (migration 0029); their data is the API's body.
        from bookings.serializers import reservation_event_data
        from ticketing.webhooks import register_renderer

        register_renderer("reservation", reservation_event_data)

        # The rows of a show's sale live on its shard (ticketing.shards), with the outbox of the mail they owe.
        from bookings.models import (
            ClientHeldSeats,
            GiftCardRedemption,
            IdempotentRequest,
            OutgoingMail,
            Payment,
            PromoRedemption,
            Reservation,
            ReservationAddOn,
            SeatClaim,
            ShowSales,
            ShowSeatCount,
        )
        from ticketing.shards import live_on_their_shows_shard

        live_on_their_shows_shard(
            Reservation,
            SeatClaim,
            ClientHeldSeats,
            ShowSeatCount,
            ShowSales,
            Payment,
            IdempotentRequest,
            OutgoingMail,
            ReservationAddOn,
            GiftCardRedemption,
            PromoRedemption,
        )

        from django.conf import settings

        if settings.TICKETING_IN_PROCESS_CLOCKS:
            tasks.start_beat_in_process()
