"""The staff's sales dashboard at the design study's scale: its report's queries and its whole page.

Usage:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ticketing_study python -m bench.sales_dashboard [--runs N]

The database must hold `seed_demo --scale study` (5,000 cinemas, 70,000 shows of 2,000 seats over 7 days). The
study catalog has no sales, so the first run books a share of every show's seats (`book_study_sales`, once,
about 7 million bookings; `--unbook` removes them): 2-22 % of a show's seats by show (12 % on average), 1-4 seats
a booking, 70 % on the website, 20 % through a partner's API key, 10 % at the box office; every fifth booking with a
20 % promo code, one in fifty cancelled by its buyer and refunded less its fees; every online booking with its
charge. The rows are written straight in SQL, around the hold functions (which would take hours at this size):
they carry price breakdowns made by the real price rule (bookings_price_breakdown) with New York's terms (a
$1.50 fee a ticket, 8.875 % sales tax on top), but no seat claims, so the seat maps still show the seats free.
The sales tally's triggers (bookings migration 0032) count them as they go in, as they count any booked row.

Then it times bookings.sales.sales_report, and the page /staff/sales/ through the whole Django stack in-process
(the session, the form, the template), for one cinema over the 14 days from today (as its manager, and as a chain
admin, whose form lists every cinema) and for the whole chain over the same days (a chain admin): the median and
the slowest of --runs (--chain-runs) runs after one uncounted run each.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench.harness.figures import publish_report
from bench.harness.site import SECRET_KEY

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ticketing.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", SECRET_KEY)
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
os.environ.setdefault("DATABASE_POOL_MIN", "1")
os.environ.setdefault("DATABASE_POOL_MAX", "1")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from bookings.sales import SalesFilter, sales_report  # noqa: E402
from cinemas.models import Cinema, CinemaStaff, Show, StaffRole  # noqa: E402

SESSION = "study-sales"  # the session id of the bookings made here, which --unbook removes
BATCH_SHOWS = 5000

# The study's baskets: 1-4 Regular or Premium seats (the study's prices), with or without a 20 % promo code,
# priced by the real rule on New York's terms.
_BASKETS = """
CREATE TEMPORARY TABLE study_basket AS
SELECT row_number() OVER (ORDER BY seats, premium, promo) - 1 AS number, bookings_price_breakdown(
           (SELECT jsonb_agg(jsonb_build_array(place, NULL, NULL, CASE WHEN premium THEN 'Premium' ELSE 'Regular' END,
                                               CASE WHEN premium THEN '22.00' ELSE '15.00' END))
              FROM generate_series(1, seats) AS places (place)),
           jsonb_build_object('currency', 'USD', 'exponent', 2, 'fee', '1.50', 'tax_name', 'Sales tax',
                              'tax_rate', '8.875', 'tax_included', false,
                              'discounts', CASE WHEN promo THEN '[{"code": "STUDY20", "percent": "20"}]'::jsonb
                                                ELSE '[]'::jsonb END)) AS breakdown
  FROM generate_series(1, 4) seats, (VALUES (false), (true)) kinds (premium), (VALUES (false), (true)) codes (promo)
"""

# One batch of shows' bookings, their charges and the refunds of those cancelled. A booking's basket, channel and
# fate follow from its show's id and its number in the show, so a rerun writes the same rows.
_BOOK = """
WITH made AS (
    INSERT INTO bookings_reservation (id, show_id, api_key_id, session_id, status, amount, currency, price_breakdown,
                                      created_at, expires_at, held_until, booking_code, booked_at, ended_at,
                                      cancelled_by, channel)
    SELECT gen_random_uuid(), show.id, CASE WHEN sale.number %% 10 IN (1, 2) THEN %(partner)s END, %(session)s,
           CASE WHEN sale.number %% 50 = 7 THEN 'Cancelled' ELSE 'Booked' END,
           (basket.breakdown ->> 'total')::numeric, 'USD', basket.breakdown,
           sold_at, sold_at + interval '10 minutes', sold_at + interval '10 minutes',
           'SB' || lpad(show.id::text, 6, '0') || lpad(sale.number::text, 4, '0'), sold_at,
           CASE WHEN sale.number %% 50 = 7 THEN sold_at + interval '1 day' END,
           CASE WHEN sale.number %% 50 = 7 THEN 'buyer' ELSE '' END,
           CASE WHEN sale.number %% 10 = 0 THEN 'box_office' ELSE 'online' END
      FROM cinemas_show show
     CROSS JOIN LATERAL generate_series(1, (2000 * (2 + (show.id * 7919) %% 21) / 100 / 2.5)::int) AS sale (number)
      JOIN study_basket basket
        ON basket.number = ((sale.number * 7 + show.id) %% 4) * 4 + (show.id %% 2) * 2
                           + (sale.number %% 5 = 3)::int
     CROSS JOIN LATERAL (
         SELECT least(%(now)s, show.starts_at - interval '1 hour' * (1 + sale.number %% 200)) AS sold_at
     ) AS times
     WHERE show.id >= %(low)s AND show.id < %(high)s
    RETURNING id, status, amount, booked_at, ended_at, channel, price_breakdown
),
charged AS (
    INSERT INTO bookings_payment (id, reservation_id, kind, status, amount, currency, provider, provider_reference,
                                  card_last4, error_code, created_at, updated_at)
    SELECT gen_random_uuid(), made.id, 'charge', 'succeeded', made.amount, 'USD', 'fake', '', '4242', '',
           made.booked_at, made.booked_at
      FROM made WHERE made.channel = 'online'
    RETURNING id, reservation_id, amount
)
INSERT INTO bookings_payment (id, reservation_id, kind, status, amount, currency, provider, provider_reference,
                              refund_of_id, card_last4, error_code, created_at, updated_at)
SELECT gen_random_uuid(), made.id, 'refund', 'succeeded',
       charged.amount - (SELECT coalesce(sum((line ->> 'amount')::numeric), 0)
                           FROM jsonb_array_elements(made.price_breakdown -> 'fees') line),
       'USD', 'fake', '', charged.id, '4242', '', made.ended_at, made.ended_at
  FROM made JOIN charged ON charged.reservation_id = made.id
 WHERE made.status = 'Cancelled'
"""


def book_study_sales(*, log=print):
    """Book the study's share of seats (see the module's docstring), the shows in batches, resuming after the last
    show booked. Returns the number of bookings there are."""
    from ticketing.models import ApiKey

    partner = ApiKey.objects.order_by("pk").values_list("pk", flat=True).first()
    if partner is None:
        sys.exit("No API key here: seed_demo makes one.")
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(show_id), 0) FROM bookings_reservation WHERE session_id = %s", [SESSION])
        done = cursor.fetchone()[0]
        last = Show.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        if done < last:
            cursor.execute(_BASKETS)
        low = done + 1
        while low <= last:
            started = time.monotonic()
            with transaction.atomic():
                cursor.execute(
                    _BOOK,
                    {
                        "partner": partner,
                        "session": SESSION,
                        "now": timezone.now(),
                        "low": low,
                        "high": low + BATCH_SHOWS,
                    },
                )
            high = min(last, low + BATCH_SHOWS - 1)
            log(f"Booked shows {low}-{high} of {last} in {time.monotonic() - started:.1f} s.")
            low += BATCH_SHOWS
        if done < last:
            cursor.execute("ANALYZE bookings_reservation")
            cursor.execute("ANALYZE bookings_payment")
        cursor.execute("SELECT count(*) FROM bookings_reservation WHERE session_id = %s", [SESSION])
        return cursor.fetchone()[0]


def unbook_study_sales():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM bookings_payment WHERE reservation_id IN "
            "(SELECT id FROM bookings_reservation WHERE session_id = %s) AND kind = 'refund'",
            [SESSION],
        )
        cursor.execute(
            "DELETE FROM bookings_payment WHERE reservation_id IN "
            "(SELECT id FROM bookings_reservation WHERE session_id = %s)",
            [SESSION],
        )
        cursor.execute("DELETE FROM bookings_reservation WHERE session_id = %s", [SESSION])


def timed(action, runs):
    """{"median_ms", "max_ms", "runs"} of `runs` calls of `action` after one uncounted call."""
    action()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(timings), 1), "max_ms": round(max(timings), 1), "runs": runs}


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.sales_dashboard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=15, help="timed runs for one cinema")
    parser.add_argument("--chain-runs", type=int, default=3, help="timed runs for the whole chain (slow)")
    parser.add_argument("--unbook", action="store_true", help="remove the bookings this bench made, and stop")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    arguments = parser.parse_args()
    if arguments.unbook:
        unbook_study_sales()
        return
    if Show.objects.count() < 50_000:
        sys.exit("Too few shows here: load the study scale first (seed_demo --scale study).")
    bookings = book_study_sales(log=lambda line: print(line, file=sys.stderr))

    cinema = Cinema.objects.filter(halls__shows__isnull=False).order_by("pk").first()
    # The study's shows run from tomorrow: the 14 days from today hold them all.
    first = timezone.localtime(timezone.now(), cinema.zone).date()
    last = first + timedelta(days=13)
    one_cinema = SalesFilter(first=first, last=last, cinema_ids=frozenset({cinema.pk}), shows=True)
    chain = SalesFilter(first=first, last=last)
    admin = get_user_model().objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
    chain_admin = Client()
    chain_admin.force_login(admin)
    # The cinema's manager: whose form lists their own cinema, where a chain admin's lists all 5,000.
    manager, _ = get_user_model().objects.get_or_create(username="bench-sales-manager", defaults={"is_staff": True})
    CinemaStaff.objects.get_or_create(user=manager, cinema=cinema, defaults={"role": StaffRole.MANAGER})
    cinema_manager = Client()
    cinema_manager.force_login(manager)

    def page(query, client=chain_admin):
        response = client.get("/staff/sales/", query)
        if response.status_code != 200:
            sys.exit(f"/staff/sales/?{query} -> {response.status_code}")

    dates = {"start": first.isoformat(), "end": last.isoformat()}
    chain_report = sales_report(chain)
    load = os.getloadavg()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        database_size = cursor.fetchone()[0]
    report = {
        "catalog": {
            "cinemas": Cinema.objects.count(),
            "shows": Show.objects.count(),
            "bookings": bookings,
            "database_size": database_size,
        },
        "days": [first.isoformat(), last.isoformat()],
        "load_average_at_start": [round(value, 2) for value in load],
        "chain_seats_sold": sum(part.total.sold for part in chain_report),
        "report_ms": {
            "one_cinema_14_days": timed(lambda: sales_report(one_cinema), arguments.runs),
            "chain_14_days": timed(lambda: sales_report(chain), arguments.chain_runs),
        },
        "page_ms": {
            "one_cinema_14_days_its_manager": timed(lambda: page(dates, cinema_manager), arguments.runs),
            "one_cinema_14_days_chain_admin": timed(lambda: page({"cinema": cinema.pk, **dates}), arguments.runs),
            "chain_14_days": timed(lambda: page(dates), arguments.chain_runs),
        },
    }
    publish_report(report, arguments)


if __name__ == "__main__":
    main()
