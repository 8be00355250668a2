"""The raw-SQL ceiling of the hold path: pgbench running the statements a hold and a release run, no Python.

Usage (after python -m bench.hold_path has made its database and show, bench/show.py):
    python -m bench.sql_ceiling [--clients 50] [--duration 20] [--json FILE]

What it does:
1. In the hold benchmark's database (ticketing_bench_holds), puts two wrappers in a schema of its own (`bench`)
   around the application's own SQL functions (bookings migration 0009), the ones every API hold and cancel
   calls: `bench.hold(show, session, seat)` calls bookings_hold_seats for the seat and its neighbour and returns
   the reservation id, or NULL when it was refused (pgbench would stop a client at the refusal's error);
   `bench.release(reservation, session)` calls bookings_cancel_hold.
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

-- The application's own hold function (bookings migration 0009), called as the API calls it; a refusal (SQLSTATE
-- TKR01) is caught here because pgbench stops a client at its first error.
CREATE OR REPLACE FUNCTION bench.hold(p_show bigint, p_session text, p_seat bigint)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_reservation uuid;
BEGIN
    SELECT reservation_id INTO v_reservation
      FROM bookings_hold_seats(p_show, NULL, NULL, p_session, NULL, NULL, 2, ARRAY[p_seat, p_seat + 1], false, NULL,
                               true, ARRAY['Premium', 'Regular'], 10, interval '300 seconds', interval '5 seconds',
                               now());
    RETURN v_reservation;
EXCEPTION WHEN SQLSTATE 'TKR01' THEN
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION bench.release(p_reservation uuid, p_session text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_reservation IS NOT NULL THEN
        PERFORM * FROM bookings_cancel_hold(p_reservation, NULL, p_session, now());
    END IF;
END $$;
"""

SCRIPT = """\\set pair random(0, {pairs_last})
\\set session random(1, 1000000000)
\\set seat {first_seat} + 2 * :pair
SELECT coalesce(bench.hold({show}, 'sql-' || :session, :seat)::text, 'none') AS reservation \\gset
SELECT bench.release(NULLIF(':reservation', 'none')::uuid, 'sql-' || :session);
"""


def prepare(database_url, *, refusals):
    """Install the wrappers and release the last show's live holds (with refusals, hold every seat again).

    Returns the show's id, its hall's seat ids, and how many reservations it has before pgbench runs.
    """
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(FUNCTIONS)
        show_id, hall_id = connection.execute(
            "SELECT id, hall_id FROM cinemas_show ORDER BY id DESC LIMIT 1"
        ).fetchone()
        seat_ids = [
            row[0]
            for row in connection.execute("SELECT id FROM cinemas_seat WHERE hall_id = %s ORDER BY id", [hall_id])
        ]
        if seat_ids != list(range(seat_ids[0], seat_ids[0] + len(seat_ids))):
            sys.exit("the hall's seat ids are not consecutive: run python -m bench.hold_path on a fresh database first")
        connection.execute(
            "UPDATE bookings_seatclaim SET released_at = now() WHERE show_id = %s AND released_at IS NULL", [show_id]
        )
        connection.execute(
            "UPDATE bookings_reservation SET status = 'Cancelled' WHERE show_id = %s AND status = 'Reserved'", [show_id]
        )
        if refusals:
            for pair in range(len(seat_ids) // 2):
                connection.execute("SELECT bench.hold(%s, %s, %s)", [show_id, f"holder-{pair}", seat_ids[2 * pair]])
        before = connection.execute(
            "SELECT count(*) FROM bookings_reservation WHERE show_id = %s", [show_id]
        ).fetchone()[0]
    return show_id, seat_ids, before


def run_pgbench(options, show_id, seat_ids):
    """pgbench's transactions per second and average latency (ms) over SCRIPT."""
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
    return tps, latency


def after_pgbench(database_url, show_id, before):
    """Holds granted during the run, and how many seats have two live claims."""
    with psycopg.connect(database_url) as connection:
        granted = (
            connection.execute("SELECT count(*) FROM bookings_reservation WHERE show_id = %s", [show_id]).fetchone()[0]
            - before
        )
        doubled = connection.execute(
            "SELECT count(*) FROM (SELECT seat_id FROM bookings_seatclaim WHERE show_id = %s AND released_at IS NULL"
            " GROUP BY seat_id HAVING count(*) > 1) AS doubled",
            [show_id],
        ).fetchone()[0]
    return granted, doubled


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.sql_ceiling", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument(
        "--refusals",
        action="store_true",
        help="the refusal path instead: every seat of the hall is held first (by 1,000 two-seat holds), so every "
        "attempt is refused after counting the show's 2,000 live claims (its most expensive refusal)",
    )
    parser.add_argument("--json", help="also write the summary here")
    options = parser.parse_args()

    show_id, seat_ids, before = prepare(options.database_url, refusals=options.refusals)
    tps, latency = run_pgbench(options, show_id, seat_ids)
    granted, doubled = after_pgbench(options.database_url, show_id, before)
    summary = {
        "mode": "refusals: every attempt refused, the hall full of holds" if options.refusals else "hold and release",
        "clients": options.clients,
        "duration_s": options.duration,
        "hold_attempts_per_s": round(tps, 1),
        "holds_granted_per_s": round(granted / options.duration, 1),
        "latency_average_ms_per_transaction": latency,
        "seats_with_two_live_claims": doubled,
        "note": "pgbench on this machine, 2 pgbench threads; a transaction is one hold attempt and, in the hold and "
        "release mode, its release",
    }
    print(json.dumps(summary, indent=2))
    if options.json:
        with open(options.json, "w") as out:
            json.dump(summary, out, indent=2)
    return 1 if doubled else 0


if __name__ == "__main__":
    sys.exit(main())
