"""The bench's database work: earlier runs' on-sales emptied, an on-sale marked and opened, its rate raised, the
room's memory measured, and the run's visitors and show read back."""

import contextlib
import threading
import time
from datetime import timedelta

import psycopg
import redis
from psycopg import sql

from bench.show import BENCH_KEY_NAME

ROOM_TABLES = ("waiting_roomvisitor", "waiting_roomaddress")


def forget_earlier_on_sales(database_url):
    """Delete every on-sale and its room (the bench's own database): bench/show.py deletes earlier shows, which
    an on-sale protects. The visitors' table is TRUNCATEd, so that its size afterwards is this run's rows alone."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        if connection.execute("SELECT to_regclass('waiting_roomvisitor')").fetchone()[0] is None:
            return  # not migrated yet
        connection.execute(f"TRUNCATE {', '.join(ROOM_TABLES)}")
        connection.execute("DELETE FROM waiting_room")
        connection.execute("DELETE FROM cinemas_onsaleshow")
        connection.execute("DELETE FROM cinemas_onsale")


def mark_show_on_sale(show_id, *, rate, opens_in_seconds=24 * 3600, pass_seconds=180):
    """A new on-sale of the show, its room open now, its sale opening `opens_in_seconds` ahead. Returns its id."""
    from django.utils import timezone

    from cinemas.models import OnSale, Show
    from cinemas.on_sales import mark_on_sale

    show = Show.objects.get(pk=show_id)
    now = timezone.now()
    on_sale = OnSale(
        show=show,
        movie_id=show.movie_id,
        queue_opens_at=now - timedelta(seconds=5),
        opens_at=now + timedelta(seconds=opens_in_seconds),
        admissions_per_minute=rate,
        pass_seconds=pass_seconds,
    )
    return mark_on_sale(on_sale).pk


def open_sale_in(on_sale_id, seconds):
    """Move the on-sale's opening to `seconds` from now, as staff would (mark_on_sale). Returns the opening."""
    from django.utils import timezone

    from cinemas.models import OnSale
    from cinemas.on_sales import mark_on_sale

    on_sale = OnSale.objects.get(pk=on_sale_id)
    on_sale.opens_at = timezone.now() + timedelta(seconds=seconds)
    mark_on_sale(on_sale)
    return on_sale.opens_at


def set_rate(on_sale_id, per_minute):
    """The room's admissions a minute, changed as staff's form would (tend_rooms reads it each tick)."""
    from cinemas.models import OnSale

    OnSale.objects.filter(pk=on_sale_id).update(admissions_per_minute=per_minute)


def delete_on_sale(database_url, on_sale_id):
    """The on-sale, its room and visitors gone (so that the show can be put behind another room)."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {', '.join(ROOM_TABLES)}")
        connection.execute("DELETE FROM waiting_room WHERE on_sale_id = %s", [on_sale_id])
        connection.execute("DELETE FROM cinemas_onsaleshow WHERE on_sale_id = %s", [on_sale_id])
        connection.execute("DELETE FROM cinemas_onsale WHERE id = %s", [on_sale_id])


def postgres_memory(database_url, on_sale_id):
    """Bytes the room's visitors take in PostgreSQL: the table with its indexes and TOAST, per row."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute("SELECT count(*) FROM waiting_roomvisitor WHERE room_id = %s", [on_sale_id])
        rows = rows.fetchone()[0]
        total, table, indexes = connection.execute(
            "SELECT pg_total_relation_size('waiting_roomvisitor'), pg_table_size('waiting_roomvisitor'), "
            "pg_indexes_size('waiting_roomvisitor')"
        ).fetchone()
        by_index = connection.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
            "WHERE indrelid = 'waiting_roomvisitor'::regclass ORDER BY 2 DESC"
        ).fetchall()
    per_row = lambda size: round(size / rows, 1) if rows else None  # noqa: E731
    return {
        "rows": rows,
        "total_bytes": total,
        "bytes_per_visitor": per_row(total),
        "table_bytes_per_visitor": per_row(table),
        "index_bytes_per_visitor": per_row(indexes),
        "indexes_bytes_per_visitor": {name: per_row(size) for name, size in by_index},
    }


def seed_visitors(database_url, on_sale_id, count, tag):
    """`count` early visitors written straight into the room (one INSERT), sessions `tag`-seed-n of the bench key:
    the crowd the API's joins stand in front of when a run can't join them all through the API in its time.
    They have no presence key in Redis, which the room reads as present."""
    from cinemas.models import OnSale
    from waiting.rooms import room_of

    room_of(OnSale.objects.get(pk=on_sale_id))
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO waiting_roomvisitor (id, room_id, api_key_id, session_id, email, client_address, early, "
            "place, status, joined_at) "
            "SELECT gen_random_uuid(), %s, k.id, %s || '-seed-' || n, '', NULL, true, NULL, 'Waiting', now() "
            "FROM generate_series(1, %s) n, ticketing_apikey k WHERE k.name = %s",
            [on_sale_id, tag, count, BENCH_KEY_NAME],
        )


def redis_used_memory(redis_url):
    return redis.Redis.from_url(redis_url).info("memory")["used_memory"]


def redis_presence(redis_url, *, sample=500):
    """The presence keys (waiting.rooms.note_seen's "room-seen:"): how many, and MEMORY USAGE of a sample."""
    store = redis.Redis.from_url(redis_url)
    keys, sizes = 0, []
    for key in store.scan_iter(match="*room-seen:*", count=5000):
        keys += 1
        if len(sizes) < sample:
            sizes.append(store.memory_usage(key, samples=0))
    return {"presence_keys": keys, "memory_usage_bytes_per_key": round(sum(sizes) / len(sizes), 1) if sizes else None}


def wait_until_drawn(database_url, on_sale_id, *, seconds):
    """(drawn_at, drawn_count, secret) once the room is drawn; RuntimeError after `seconds`."""
    deadline = time.monotonic() + seconds
    with psycopg.connect(database_url, autocommit=True) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT drawn_at, drawn_count, secret FROM waiting_room WHERE on_sale_id = %s AND drawn_at IS NOT NULL",
                [on_sale_id],
            ).fetchone()
            if row:
                return row
            time.sleep(0.1)
    raise RuntimeError(f"the room was not drawn within {seconds} s of the opening")


def head_of_line(database_url, on_sale_id, count):
    """[(visitor id, session id, place)] of the first `count` places."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT id::text, session_id, place FROM waiting_roomvisitor WHERE room_id = %s AND place <= %s "
            "ORDER BY place",
            [on_sale_id, count],
        ).fetchall()


def room_state(database_url, on_sale_id):
    """(called_through, last_place, admitted) of the room."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT called_through, last_place, admitted FROM waiting_room WHERE on_sale_id = %s", [on_sale_id]
        ).fetchone()


def read_visitors(database_url, on_sale_id):
    """Every visitor of the room: (id, session id, early, place, status, epoch of admitted_at, of joined_at)."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT id::text, session_id, early, place, status, extract(epoch FROM admitted_at)::float8, "
            "extract(epoch FROM joined_at)::float8 FROM waiting_roomvisitor WHERE room_id = %s ORDER BY place",
            [on_sale_id],
        ).fetchall()


def read_room(database_url, on_sale_id):
    """(secret, epoch of drawn_at, drawn_count, epoch of opens_at) of the room and its on-sale."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT r.secret, extract(epoch FROM r.drawn_at)::float8, r.drawn_count, "
            "extract(epoch FROM o.opens_at)::float8 FROM waiting_room r JOIN cinemas_onsale o ON o.id = r.on_sale_id "
            "WHERE r.on_sale_id = %s",
            [on_sale_id],
        ).fetchone()


@contextlib.contextmanager
def analyzed_as_it_grows(database_url, tables=("waiting_roomvisitor",), *, every_seconds=5.0):
    """While the block runs, ANALYZE each of `tables` whenever it changed by autovacuum's default analyze
    threshold (50 rows + 10 %), checked every few seconds: this machine's PostgreSQL runs with autovacuum off,
    a live site's does not. Without it the join's lookup of the buyer's place is planned on the statistics of an
    empty table and picks the (room, place) index, reading every visitor of the room a join (PostgreSQL's time a
    join 72 ms at 52,000 visitors; joins/s falling from ~230 to ~130); and in the sale, best available's read of
    the taken seats joins the claims to the reservations planned as if both were empty, a sequential scan of the
    reservations per claim (300-530 ms a read once 800 were booked). Yields a list of the ANALYZEs' times."""
    stop, analyzed = threading.Event(), []

    def analyze():
        with psycopg.connect(database_url, autocommit=True) as connection:
            while not stop.wait(every_seconds):
                for table in tables:
                    changed, rows = connection.execute(
                        "SELECT n_mod_since_analyze, greatest(c.reltuples, 0) FROM pg_stat_user_tables s "
                        "JOIN pg_class c ON c.oid = s.relid WHERE s.relname = %s",
                        (table,),
                    ).fetchone()
                    if changed > 50 + 0.1 * rows:
                        connection.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
                        analyzed.append(time.time())

    thread = threading.Thread(target=analyze, name="analyze", daemon=True)
    thread.start()
    try:
        yield analyzed
    finally:
        stop.set()
        thread.join()
