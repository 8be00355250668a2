"""The benchmarks' show: a fresh 2,000-seat show tomorrow in a bench database of its own, and its API key.

The hot show (bench.hold_path), the sell-out, the seat pushes, the surge, the browse mix's buyers, the client
cost and chaos/ all sell seats of this show. `prepare_show` migrates the database, deletes earlier runs' rows
and schedules the show; `SeatingPlan` (bench/seating.py) is the hall as buyers see it.
"""

from datetime import UTC, datetime, timedelta

from bench.harness.database import setup_django
from bench.seating import SeatingPlan

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ticketing_bench_holds"
# Not 0 (make run) nor 1 (make test): the wake-up tasks this run queues must not reach anyone's worker.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/2"
BENCH_KEY = "tk_bench_hold_path_key"
BENCH_KEY_NAME = "bench-holds"
HALL_SEATS = 2000  # prepare_show's hall, unless asked for another size


def prepare_show(database_url, redis_url, *, key_cap=None, hall_seats=HALL_SEATS):
    """Migrate, delete earlier runs' rows, and schedule a fresh show; return what the buyers need to know.

    `key_cap`: the bench key's held seats per show (None: no cap), for the price of a capped partner.
    `hall_seats`: the hall's size (a hall of its own for each size, named by it), e.g. fewer for a quick sell-out.

    Django is set up here, in this process, only for the catalog services; the load goes through the server.
    """
    setup_django(database_url, redis_url)
    # Imported after setup, as Django requires.
    from django.core.management import call_command
    from django.db import transaction

    from cinemas.demo import hall_plan, ticket_prices
    from cinemas.models import OPEN_SEAT_TYPES, Seat
    from cinemas.services import build_seat_layout, schedule_show
    from ticketing.models import ApiKey
    from ticketing.services import create_api_key

    call_command("migrate", verbosity=0)
    with transaction.atomic():
        hall, movie = _bench_hall_and_movie(hall_seats)
        _delete_earlier_runs(hall)
        if not hall.seats.exists():
            hall = build_seat_layout(hall=hall, plan=hall_plan(hall_seats))
        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        show = schedule_show(
            movie=movie,
            hall=hall,
            starts_at=datetime(tomorrow.year, tomorrow.month, tomorrow.day, 20, 0, tzinfo=UTC),
            prices=ticket_prices(hall.capacity, hall.cinema.currency),
        )
        if not ApiKey.objects.filter(name=BENCH_KEY_NAME).exists():
            create_api_key(
                name=BENCH_KEY_NAME, rate_per_minute=1_000_000_000, held_seats_per_show=None, raw_key=BENCH_KEY
            )
        ApiKey.objects.filter(name=BENCH_KEY_NAME).update(held_seats_per_show=key_cap)
    rows = {}
    # The seats any buyer may take: wheelchair spaces and companion seats go only to buyers who say they need
    # them (bookings_refuse_reserved_seats, in the hold functions), which the benchmarks' buyers don't.
    open_seats = Seat.objects.filter(hall=hall, seat_type__in=OPEN_SEAT_TYPES).order_by("y", "x")
    for seat_id, y in open_seats.values_list("id", "y"):
        rows.setdefault(y, []).append(seat_id)
    return show.pk, show.movie_id, SeatingPlan(rows=list(rows.values()))


def _bench_hall_and_movie(hall_seats):
    """The bench city's cinema, its hall of `hall_seats` (its seats laid out once) and the bench movie."""
    from cinemas.models import Cinema, City, Hall, Movie

    city, _ = City.objects.get_or_create(name="Bench City", state="", country="Nowhere")
    cinema, _ = Cinema.objects.get_or_create(
        city=city,
        name="Bench Cinema",
        defaults={"address": "1 Load Street", "postal_code": "00000", "latitude": 0, "longitude": 0},
        time_zone="UTC",
    )
    hall, _ = Hall.objects.get_or_create(cinema=cinema, name=f"Bench Hall {hall_seats}")
    movie, _ = Movie.objects.get_or_create(
        title="Bench Premiere",
        defaults={
            "duration": 150,
            "genre": "Action",
            "language": "English",
            "release_date": datetime.now(UTC).date(),
            "country": "Nowhere",
        },
    )
    return hall, movie


def _delete_earlier_runs(hall):
    """Earlier runs' shows of `hall`, their waiting lines, holds and payments, and the bench key's idempotent
    answers: they would skew this run's seat map and counts (the database is the bench's own)."""
    from bookings.models import IdempotentRequest, Payment, Reservation, SeatClaim
    from cinemas.models import Show
    from waiting.models import Waiter

    old_shows = Show.objects.filter(hall=hall)
    Waiter.objects.filter(show__in=old_shows).delete()
    SeatClaim.objects.filter(show__in=old_shows).delete()
    # before the reservations: a hold's answer kept under its key refers to its reservation (PROTECT)
    IdempotentRequest.objects.filter(api_key__name=BENCH_KEY_NAME).delete()
    Payment.objects.filter(reservation__show__in=old_shows).delete()
    Reservation.objects.filter(show__in=old_shows).delete()
    old_shows.delete()
