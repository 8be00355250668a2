"""cProfile of the room's join, in process (Django's test client, production settings, the bench's database):
where a POST /api/v1/on-sales/{id}/room spends its time. Run `python -m bench.waiting_room` once first (it makes
the show); this replaces its on-sales with a fresh one.

    python -m bench.waiting_room.profile_join [--joins 300] [--out FILE.cprofile]
"""

import argparse
import cProfile
import pstats
import time
from pathlib import Path

from bench.harness.database import setup_django
from bench.show import BENCH_KEY
from bench.waiting_room.__main__ import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, REDIS_PREFIX


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.waiting_room.profile_join")
    parser.add_argument("--joins", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("room_join.cprofile"))
    options = parser.parse_args()
    setup_django(
        DEFAULT_DATABASE_URL,
        DEFAULT_REDIS_URL,
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="testserver",
        TICKETING_REDIS_PREFIX=REDIS_PREFIX,
    )
    from django.test import Client

    from bench.waiting_room import database as db
    from cinemas.models import OnSale

    show_id = OnSale.objects.order_by("-pk").values_list("show_id", flat=True).first()
    db.forget_earlier_on_sales(DEFAULT_DATABASE_URL)
    on_sale_id = db.mark_show_on_sale(show_id, rate=3000)
    client, tag = Client(), int(time.time())

    def join(count, prefix):
        for n in range(count):
            response = client.post(
                f"/api/v1/on-sales/{on_sale_id}/room",
                {"session_id": f"{prefix}-{n}"},
                content_type="application/json",
                HTTP_X_API_KEY=BENCH_KEY,
            )
            assert response.status_code == 201, response.content

    join(20, f"warm-{tag}")
    profile, started = cProfile.Profile(), time.perf_counter()
    profile.runcall(join, options.joins, f"prof-{tag}")
    print(f"{(time.perf_counter() - started) / options.joins * 1000:.1f} ms a join under the profiler")
    profile.dump_stats(options.out)
    pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
