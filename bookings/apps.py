from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"

    def ready(self):
        # Celery only discovers tasks inside a worker; web processes send them by name, so they register here.
        from bookings import tasks
        from bookings.availability import taken_by_type
        from cinemas.search import register_taken_seats_counter

        def taken_seats(show_ids, at):
            return {
                show_id: {seat_type: taken for seat_type, (taken, _booked) in by_type.items()}
                for show_id, by_type in taken_by_type(show_ids, at).items()
            }

        register_taken_seats_counter(taken_seats)

        from django.conf import settings

        if settings.TICKETING_IN_PROCESS_CLOCKS:
            tasks.start_beat_in_process()
