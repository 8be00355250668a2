"""The study catalog as the visitors see it (Catalog, load_catalog: what they draw their requests from, its
figures, the hot shows chosen in it), this benchmark's API key, and leaving the catalog as it was found: its rows
deleted before and after a run (delete_bench_rows), the Celery tasks it queued dropped (drop_queued_tasks).
"""

import sys
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from bench.browse.hot_shows import choose_hot_shows

BENCH_KEY = "tk_bench_browse_key"
BENCH_KEY_NAME = "bench-browse"
MIN_STUDY_SHOWS = 50_000


def delete_bench_rows():
    """Delete every reservation (claims, payments, refunds) and idempotency record of this benchmark's key."""
    from django.db import transaction

    from bookings.models import IdempotentRequest, Payment, Reservation

    with transaction.atomic():
        mine = Reservation.objects.filter(api_key__name=BENCH_KEY_NAME)
        payments = Payment.objects.filter(reservation__in=mine)
        Payment.objects.filter(refund_of__in=payments).delete()  # refunds point at their charge (PROTECT)
        payments.delete()
        deleted, _ = mine.delete()  # claims go with them (CASCADE)
        IdempotentRequest.objects.filter(api_key__name=BENCH_KEY_NAME).delete()
    return deleted


@dataclass
class Catalog:
    at: datetime
    cities: list  # City rows with cinemas
    cinemas: list
    titles: list
    city_ids: list
    hot: list  # [HotShow]
    database: dict


def load_catalog(options, rng):
    """What the visitors draw their requests from, and the hot shows with the holds planned for them."""
    from django.db import connection
    from django.db.models import Count

    from cinemas.models import Cinema, City, Movie, Show
    from ticketing.models import ApiKey
    from ticketing.services import create_api_key

    shows = Show.objects.count()
    if shows < MIN_STUDY_SHOWS:
        sys.exit(f"Only {shows} shows in {options.database_url}: load the study scale first (make bench-search).")
    if not ApiKey.objects.filter(name=BENCH_KEY_NAME).exists():
        create_api_key(name=BENCH_KEY_NAME, rate_per_minute=1_000_000_000, held_seats_per_show=None, raw_key=BENCH_KEY)
    at = datetime.now(UTC)
    cities = list(City.objects.annotate(n=Count("cinemas")).filter(n__gt=0).order_by("pk"))
    cinemas = list(Cinema.objects.order_by("pk"))
    titles = list(Movie.objects.order_by("pk").values_list("title", flat=True))
    hot = choose_hot_shows(cities, at, options.hot_shows, rng)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    database = {
        "cities": len(cities),
        "cinemas": len(cinemas),
        "shows": shows,
        "upcoming_shows": Show.objects.upcoming(at).count(),
        "database_size": size,
    }
    return Catalog(at, cities, cinemas, titles, [city.pk for city in cities], hot, database)


def drop_queued_tasks(redis_url):
    """Count and delete the Celery tasks the run queued (ticket mails, waiting-line wake-ups): no worker runs."""
    broker = redis.Redis.from_url(redis_url)
    queued = broker.llen("celery")
    broker.delete("celery")
    broker.close()
    return queued
