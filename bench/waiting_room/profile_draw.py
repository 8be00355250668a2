"""Where the draw of a full room spends its time: N early visitors written into a fresh on-sale's room (one
INSERT, as --api-joins' shortcut does), then beat's first tick after the opening (waiting.rooms.admit_from_room,
which draws the room and admits its first visitors) under cProfile, in process, on the bench's database; before
it, EXPLAIN (ANALYZE, BUFFERS) of the draw's UPDATE (waiting.rooms.PLACE_DRAWN) in a transaction rolled back.

    python -m bench.waiting_room.profile_draw [--visitors 100000] [--out FILE.cprofile]

Run `python -m bench.waiting_room` (or profile_join) once first: it makes the show. Replaces the bench's on-sales.
"""

import argparse
import cProfile
import pstats
import random
import time
from datetime import timedelta
from pathlib import Path

from bench.harness.database import setup_django
from bench.waiting_room.__main__ import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, REDIS_PREFIX


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.waiting_room.profile_draw")
    parser.add_argument("--visitors", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("room_draw.cprofile"))
    options = parser.parse_args()
    setup_django(DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, DJANGO_DEBUG="0", TICKETING_REDIS_PREFIX=REDIS_PREFIX)
    from django.db import connection, transaction

    from bench.waiting_room import database as db
    from cinemas.models import OnSale
    from waiting.models import RoomVisitor
    from waiting.rooms import PLACE_DRAWN, admit_from_room

    show_id = OnSale.objects.order_by("-pk").values_list("show_id", flat=True).first()
    if show_id is None:
        from cinemas.models import Show

        show_id = Show.objects.order_by("-pk").values_list("pk", flat=True).first()
    db.forget_earlier_on_sales(DEFAULT_DATABASE_URL)
    on_sale_id = db.mark_show_on_sale(show_id, rate=3000)
    db.seed_visitors(DEFAULT_DATABASE_URL, on_sale_id, options.visitors, f"draw{int(time.time())}")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE waiting_roomvisitor")
    on_sale = OnSale.objects.get(pk=on_sale_id)

    ids = [str(pk) for pk in RoomVisitor.objects.filter(room_id=on_sale_id).values_list("pk", flat=True)]
    random.shuffle(ids)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + PLACE_DRAWN, [",".join(ids)])
            print("\n".join(row[0] for row in cursor.fetchall()))
        transaction.set_rollback(True)

    at = on_sale.opens_at + timedelta(seconds=0.1)
    profile, started = cProfile.Profile(), time.perf_counter()
    admitted = profile.runcall(admit_from_room, on_sale_id=on_sale_id, at=at)
    print(f"the draw's tick: {time.perf_counter() - started:.2f} s under the profiler for {options.visitors} visitors")
    print(f"admitted in it: {admitted}")
    profile.dump_stats(options.out)
    pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    db.forget_earlier_on_sales(DEFAULT_DATABASE_URL)


if __name__ == "__main__":
    main()
