"""What PostgreSQL's sessions of one database wait for, sampled while something else runs against it.

    python -m bench.pg_waits --database ticketing_bench_holds --duration 15 [--json FILE]

Every 20 ms it reads pg_stat_activity: each active client session of the database counts once for its wait
(`wait_event_type` and `wait_event`, "-" when it is running) and the first words of its statement. The report is
the average number of sessions in each (wait, statement) over the samples: 0.38 for "Lock transactionid" and
bookings_cancel_hold means that, on average, 0.38 sessions were cancelling a hold and waiting for another
transaction's commit. Found the capped keys' releases waiting for their stripes (issue 16, sitting 7).
"""

import argparse
import collections
import json
import time

import psycopg

SAMPLE = """
SELECT coalesce(wait_event_type, '-'), coalesce(wait_event, '-'), left(regexp_replace(query, '\\s+', ' ', 'g'), 60)
  FROM pg_stat_activity
 WHERE datname = %s AND backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()
"""


def sample_waits(database, duration, every=0.02):
    """`(samples, {(wait type, wait event, statement): sessions on average})`, most first."""
    counts = collections.Counter()
    samples = 0
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        end = time.monotonic() + duration
        while time.monotonic() < end:
            counts.update(db.execute(SAMPLE, [database]).fetchall())
            samples += 1
            time.sleep(every)
    return samples, {key: count / samples for key, count in counts.most_common()}


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.pg_waits", description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="ticketing_bench_holds")
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--json")
    arguments = parser.parse_args()
    samples, waits = sample_waits(arguments.database, arguments.duration)
    print(f"{samples} samples of {arguments.database}: sessions on average")
    for (kind, event, statement), sessions in waits.items():
        print(f"{sessions:6.2f}  {kind:8} {event:20} {statement}")
    if arguments.json:
        rows = [
            {"wait": f"{kind} {event}", "statement": s, "sessions": round(v, 3)}
            for (kind, event, s), v in waits.items()
        ]
        with open(arguments.json, "w") as out:
            json.dump({"database": arguments.database, "samples": samples, "waits": rows}, out, indent=2)


if __name__ == "__main__":
    main()
