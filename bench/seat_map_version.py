"""How to know a seat map's current version cheaply: the database's claims, or a marker in Redis.

Usage (on the study catalog that `make bench-search` loads; nothing is left behind):
    python -m bench.seat_map_version [--database-url URL] [--redis-url URL] [--live 2000] [--released 4000]

In one transaction that is rolled back at the end, a show of the catalog gets --live claims (its whole hall
held) and --released ones (the history a busy on-sale leaves), as the services write them; then each way of
reading "what is this show's seat map now" is timed (median and p95 of 300 reads, one connection, loopback):

- `max(version)` over the show's claims with the indexes the schema has today, and with an index on
  (show_id, version) added for the measurement;
- a fingerprint that changes with every committed change (count and sum of the versions), with that index;
- a per-show marker in Redis (GET, and the INCR a change would make after its commit);
- and for scale, the reads that build the whole map (bookings.availability.seat_states' two queries).

It also shows why `max(version)` alone can't key a cache: versions come from a sequence taken before commit,
so two writers can commit out of order, and the later commit leaves the maximum where it was.
"""

import argparse
import json
import statistics
import time
import uuid

import psycopg
import redis

READS = 300


def timed(run, reads=READS):
    times = []
    for _ in range(reads):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 3), "p95_ms": round(times[int(0.95 * len(times))], 3)}


def fill_show(cursor, *, live, released):
    """A show with `live` claims (one per seat) and `released` ones; returns the show id."""
    cursor.execute(
        "SELECT s.id FROM cinemas_show s JOIN cinemas_hall h ON h.id = s.hall_id "
        "WHERE s.starts_at > now() + interval '1 day' "
        "AND (SELECT count(*) FROM cinemas_seat WHERE hall_id = h.id) >= %s "
        "ORDER BY s.id LIMIT 1",
        [live],
    )
    show_id = cursor.fetchone()[0]
    reservation_id = uuid.uuid4()
    cursor.execute(
        "INSERT INTO bookings_reservation (id, show_id, session_id, status, amount, currency, created_at, "
        "expires_at, held_until) VALUES (%s, %s, 'bench-version', 'Reserved', 0, 'USD', now(), "
        "now() + interval '1 hour', now() + interval '1 hour')",
        [reservation_id, show_id],
    )
    cursor.execute("SELECT hall_id FROM cinemas_show WHERE id = %s", [show_id])
    hall_id = cursor.fetchone()[0]
    # History first (released claims of the same seats, as holds that lapsed or were changed leave), then the
    # live claims, each batch with its own version from the sequence, as the services take them.
    for batch, is_released in ((released, True), (live, False)):
        cursor.execute(
            "INSERT INTO bookings_seatclaim (reservation_id, show_id, seat_id, seat_type, price, version, released_at) "
            "SELECT %s, %s, id, seat_type, 10, nextval('bookings_seat_version'), "
            "CASE WHEN %s THEN now() END "
            "FROM (SELECT id, seat_type FROM cinemas_seat WHERE hall_id = %s ORDER BY id) seats, "
            "generate_series(1, GREATEST(1, %s / GREATEST(1, (SELECT count(*) FROM cinemas_seat WHERE hall_id = %s)))) "
            "LIMIT %s",
            [reservation_id, show_id, is_released, hall_id, batch, hall_id, batch],
        )
    return show_id


def out_of_order_commits(database_url, show_id):
    """Two writers take versions v1 < v2 and commit in the order v2, v1: max(version) reads the same after both.

    Returns the maxima a reader sees after the first and after the second commit, and the claim counts.
    """
    writers = [psycopg.connect(database_url) for _ in range(2)]
    reader = psycopg.connect(database_url, autocommit=True)
    try:
        versions = [writer.execute("SELECT nextval('bookings_seat_version')").fetchone()[0] for writer in writers]
        reservation_id = uuid.uuid4()
        with psycopg.connect(database_url, autocommit=True) as setup:
            setup.execute(
                "INSERT INTO bookings_reservation (id, show_id, session_id, status, amount, currency, created_at, "
                "expires_at, held_until) VALUES (%s, %s, 'bench-version-order', 'Reserved', 0, 'USD', now(), "
                "now() + interval '1 hour', now() + interval '1 hour')",
                [reservation_id, show_id],
            )
            seats = setup.execute(
                "SELECT id FROM cinemas_seat WHERE hall_id = (SELECT hall_id FROM cinemas_show WHERE id = %s) "
                "ORDER BY id LIMIT 2",
                [show_id],
            ).fetchall()
        seen = []
        for writer, version, (seat_id,) in reversed(list(zip(writers, versions, seats, strict=True))):
            writer.execute(
                "INSERT INTO bookings_seatclaim (reservation_id, show_id, seat_id, seat_type, price, version) "
                "VALUES (%s, %s, %s, 'Regular', 10, %s)",
                [reservation_id, show_id, seat_id, version],
            )
            writer.commit()
            seen.append(
                reader.execute(
                    "SELECT max(version), count(*) FROM bookings_seatclaim WHERE show_id = %s", [show_id]
                ).fetchone()
            )
        return {
            "versions_taken": versions,
            "commit_order": list(reversed(versions)),
            "after_first_commit": {"max_version": seen[0][0], "claims": seen[0][1]},
            "after_second_commit": {"max_version": seen[1][0], "claims": seen[1][1]},
        }
    finally:
        with psycopg.connect(database_url, autocommit=True) as cleanup:
            cleanup.execute(
                "DELETE FROM bookings_seatclaim WHERE reservation_id IN "
                "(SELECT id FROM bookings_reservation WHERE session_id = 'bench-version-order')"
            )
            cleanup.execute("DELETE FROM bookings_reservation WHERE session_id = 'bench-version-order'")
        for connection in (*writers, reader):
            connection.close()


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.seat_map_version",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/ticketing_study")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--live", type=int, default=2000, help="live claims of the show (its hall's seats)")
    parser.add_argument("--released", type=int, default=4000, help="released claims of the show (history)")
    parser.add_argument("--json", help="also write the figures here")
    options = parser.parse_args()

    report = {"live_claims": options.live, "released_claims": options.released, "reads": READS}
    with psycopg.connect(options.database_url) as connection, connection.cursor() as cursor:
        show_id = fill_show(cursor, live=options.live, released=options.released)

        def query(sql):
            return lambda: cursor.execute(sql, [show_id]).fetchall()

        max_version = query("SELECT max(version) FROM bookings_seatclaim WHERE show_id = %s")
        fingerprint = query("SELECT count(*), sum(version), max(version) FROM bookings_seatclaim WHERE show_id = %s")
        report["max_version_today"] = timed(max_version)
        report["fingerprint_today"] = timed(fingerprint)
        report["whole_map_reads"] = timed(
            lambda: (
                cursor.execute(
                    "SELECT c.seat_id, r.status FROM bookings_seatclaim c JOIN bookings_reservation r "
                    "ON r.id = c.reservation_id WHERE c.show_id = %s AND c.released_at IS NULL "
                    "AND (r.status = 'Booked' OR (r.status = 'Reserved' AND r.held_until > now()))",
                    [show_id],
                ).fetchall(),
                cursor.execute(
                    "SELECT seat_id, max(version) FROM bookings_seatclaim WHERE show_id = %s GROUP BY seat_id",
                    [show_id],
                ).fetchall(),
            ),
            reads=50,
        )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the foreign keys' checks, before the index may be made
        cursor.execute("CREATE INDEX bench_seatclaim_show_version ON bookings_seatclaim (show_id, version)")
        report["max_version_with_index"] = timed(max_version)
        report["fingerprint_with_index"] = timed(fingerprint)
        connection.rollback()  # the claims, the reservation and the index: nothing stays
        report["out_of_order_commits"] = out_of_order_commits(options.database_url, show_id)

    marker = redis.Redis.from_url(options.redis_url)
    key = f"bench-seat-map-version:{uuid.uuid4().hex}"
    marker.incr(key)
    report["redis_marker_get"] = timed(lambda: marker.get(key))
    report["redis_marker_incr"] = timed(lambda: marker.incr(key))
    marker.delete(key)
    marker.close()
    text = json.dumps(report, indent=2)
    print(text)
    if options.json:
        with open(options.json, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
