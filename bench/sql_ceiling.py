"""The raw-SQL ceiling of the hold path: pgbench running the statements a hold and a release run, no Python.

Usage (after bench/hold_path.py has made its database and show):
    python bench/sql_ceiling.py [--clients 50] [--duration 20] [--json FILE]

What it does:
1. In the hold benchmark's database (ticketing_bench_holds), puts two SQL functions in a schema of its own
   (`bench`): `bench.hold(show, session, seat, seat)` runs in one call what bookings.services.hold_seats runs
   as statements (the waiting-line check, the buyer's advisory lock, the buyer's seat count, the reservation
   insert, the seat-version sequence, the claims insert in a subtransaction, as the ORM's savepoint); it
   returns the reservation id, or NULL when a seat was taken (the unique index said no, as in the app).
   `bench.release(reservation)` runs what cancel_hold runs (lock the row, release its claims, mark it).
2. pgbench, C clients for D seconds: each transaction holds a random pair of the hall's 1,000 seat pairs
   (so each pair is wanted by several clients at once) for a session of its own, and releases what it got.
3. Prints holds attempted per second (pgbench's tps: one hold and one release each), and from the database how
   many holds were granted and whether any seat has two live claims. Same machine, same durability
   (synchronous_commit on) as the application's benchmark.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import psycopg

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ticketing_bench_holds"

FUNCTIONS = """
CREATE SCHEMA IF NOT EXISTS bench;

CREATE OR REPLACE FUNCTION bench.hold(p_show bigint, p_session text, p_seat_a bigint, p_seat_b bigint)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_reservation uuid := gen_random_uuid();
    v_version bigint;
    v_held bigint;
BEGIN
    PERFORM 1 FROM waiting_waiter WHERE show_id = p_show AND status = 'Waiting' LIMIT 1;
    PERFORM pg_advisory_xact_lock(hashtextextended('buyer:bench:' || p_session || ':' || p_show, 0));
    SELECT count(*) INTO v_held FROM bookings_seatclaim
     WHERE released_at IS NULL AND reservation_id IN (
        SELECT id FROM bookings_reservation
         WHERE show_id = p_show AND session_id = p_session AND status = 'Reserved' AND held_until > now());
    INSERT INTO bookings_reservation (id, show_id, api_key_id, session_id, status, amount, currency, created_at,
                                      expires_at, held_until)
    VALUES (v_reservation, p_show, NULL, p_session, 'Reserved', 25, 'USD', now(), now() + interval '5 minutes',
            now() + interval '305 seconds');
    v_version := nextval('bookings_seat_version');
    BEGIN
        INSERT INTO bookings_seatclaim (reservation_id, show_id, seat_id, seat_type, price, version, released_at)
        SELECT v_reservation, p_show, seat.id, seat.seat_type, 12.50, v_version, NULL
          FROM cinemas_seat seat WHERE seat.id IN (p_seat_a, p_seat_b);
    EXCEPTION WHEN unique_violation THEN
        DELETE FROM bookings_reservation WHERE id = v_reservation;
        RETURN NULL;
    END;
    RETURN v_reservation;
END $$;

CREATE OR REPLACE FUNCTION bench.release(p_reservation uuid)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_reservation IS NULL THEN
        RETURN;
    END IF;
    PERFORM 1 FROM bookings_reservation WHERE id = p_reservation FOR UPDATE;
    UPDATE bookings_seatclaim SET released_at = now(), version = nextval('bookings_seat_version')
     WHERE reservation_id = p_reservation AND released_at IS NULL;
    UPDATE bookings_reservation SET status = 'Cancelled', ended_at = now() WHERE id = p_reservation;
END $$;
"""

SCRIPT = """\\set pair random(0, {pairs_last})
\\set session random(1, 1000000000)
\\set seat {first_seat} + 2 * :pair
SELECT coalesce(bench.hold({show}, 'sql-' || :session, :seat, :seat + 1)::text, 'none') AS reservation \\gset
SELECT bench.release(NULLIF(':reservation', 'none')::uuid);
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--json", help="also write the summary here")
    options = parser.parse_args()

    with psycopg.connect(options.database_url, autocommit=True) as connection:
        connection.execute(FUNCTIONS)
        show_id, hall_id = connection.execute(
            "SELECT id, hall_id FROM cinemas_show ORDER BY id DESC LIMIT 1"
        ).fetchone()
        seat_ids = [
            row[0]
            for row in connection.execute("SELECT id FROM cinemas_seat WHERE hall_id = %s ORDER BY id", [hall_id])
        ]
        if seat_ids != list(range(seat_ids[0], seat_ids[0] + len(seat_ids))):
            sys.exit("the hall's seat ids are not consecutive: run bench/hold_path.py on a fresh database first")
        connection.execute(
            "UPDATE bookings_seatclaim SET released_at = now() WHERE show_id = %s AND released_at IS NULL", [show_id]
        )
        connection.execute(
            "UPDATE bookings_reservation SET status = 'Cancelled' WHERE show_id = %s AND status = 'Reserved'", [show_id]
        )
        before = connection.execute(
            "SELECT count(*) FROM bookings_reservation WHERE show_id = %s", [show_id]
        ).fetchone()[0]

    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(SCRIPT.format(show=show_id, first_seat=seat_ids[0], pairs_last=len(seat_ids) // 2 - 1))
    command = ["pgbench", "-n", "-c", str(options.clients), "-j", "2", "-T", str(options.duration), "-f", script.name]
    command.append(options.database_url)
    run = subprocess.run(command, capture_output=True, text=True)
    os.unlink(script.name)
    if run.returncode != 0:
        sys.exit(f"pgbench failed:\n{run.stdout}\n{run.stderr}")
    tps = float(re.search(r"tps = ([\d.]+)", run.stdout).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", run.stdout).group(1))

    with psycopg.connect(options.database_url) as connection:
        granted = (
            connection.execute("SELECT count(*) FROM bookings_reservation WHERE show_id = %s", [show_id]).fetchone()[0]
            - before
        )
        doubled = connection.execute(
            "SELECT count(*) FROM (SELECT seat_id FROM bookings_seatclaim WHERE show_id = %s AND released_at IS NULL"
            " GROUP BY seat_id HAVING count(*) > 1) AS doubled",
            [show_id],
        ).fetchone()[0]
    summary = {
        "clients": options.clients,
        "duration_s": options.duration,
        "hold_attempts_per_s": round(tps, 1),
        "holds_granted_per_s": round(granted / options.duration, 1),
        "latency_average_ms_hold_and_release": latency,
        "seats_with_two_live_claims": doubled,
        "note": "pgbench on this machine, 2 pgbench threads; each transaction pair = one hold attempt + its release",
    }
    print(json.dumps(summary, indent=2))
    if options.json:
        with open(options.json, "w") as out:
            json.dump(summary, out, indent=2)
    return 1 if doubled else 0


if __name__ == "__main__":
    sys.exit(main())
