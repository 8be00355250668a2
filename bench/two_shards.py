"""Two hot shows at once: on two shards (each show's sale on a PostgreSQL primary of its own, ticketing.shards),
side by side with both on one database, alternated in the same sitting.

    python -m bench.two_shards [--rounds 3] [--duration 20] [--buyers 100] [--json FILE]

Each run is a process of its own (Django is set up once a process) with PostgreSQL clusters of its own on
loopback ports, made alike (bench/harness/shards.py: wal_level=logical, the same settings): "one" has one, both
shows on it and no DATABASE_SHARD_URLS; "two" has two, the home and shard2, and the two shows are ones the ring
puts on different shards (the catalog replicated from the home). The site is served as `make serve` serves it: two
uvicorn processes behind HAProxy (bench/harness/balancer.py), production settings. `--buyers` buyers (half on
each show) hold two seats, then pay (1 in 20) or cancel at once, as fast as they are answered (chaos/load.py's
buyers), for `--duration` seconds. The figures: holds/s and pays/s in all and per show, the hold's p50/p99 (ms),
per run; their medians per setup and the ratios of two to one. The checks, on each database: no seat claimed twice,
every hold a client was told of is there, no answer a 5xx.

Everything shares this machine's two cores: the load generator, HAProxy, both web processes and one PostgreSQL or
two. What the split buys is measured here, not assumed.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from bench.harness.balancer import stack_running
from bench.harness.figures import alternated_sitting, medians_of, publish_report, ratios, summary_ms
from bench.harness.processes import ROOT, unwind_on_sigterm
from bench.harness.services import own_redis
from bench.harness.shards import DATABASE, own_shards, prepare_shards, shard_environment, shows_until
from bench.harness.site import server_environment

SETUPS = ("one", "two")
POOL_MAX = 8
# Few buyers pay, so neither 2,000-seat show sells out within a run: the holds stay the load.
PAY_SHARE = 0.05


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.two_shards", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--buyers", type=int, default=100)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one-run", choices=SETUPS, help=argparse.SUPPRESS)  # a child: one run, figures on stdout
    options = parser.parse_args()
    if options.one_run:
        print(json.dumps(one_run(options.one_run, options)))
        return
    report = alternated_sitting(
        "bench.two_shards",
        SETUPS,
        options.rounds,
        lambda setup: _in_a_child(setup, options),
        lambda runs: medians_of(runs, ("holds_per_s", "pays_per_s", "hold_p50_ms", "hold_p99_ms")),
    )
    report["ratio_two_to_one"] = ratios(report["medians"]["two"], report["medians"]["one"])
    publish_report(report, options)


def _in_a_child(setup, options):
    arguments = ["--one-run", setup, "--duration", str(options.duration), "--buyers", str(options.buyers)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.two_shards", *arguments], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        return {"ok": False, "error": done.stderr[-2000:]}
    return json.loads(done.stdout.splitlines()[-1])


def one_run(setup, options):
    """One run of `setup` ("one" or "two"), start to end, in this process: its figures and checks."""
    names = ["default"] if setup == "one" else ["default", "shard2"]
    with own_shards(names, max_connections=200) as clusters, own_redis() as redis_server:
        environment = server_environment(
            database_url=clusters["default"].url(DATABASE),
            redis_url=redis_server.url,
            pool_max=POOL_MAX,
            TICKETING_HOLD_SECONDS="3600",
        )
        if setup == "two":
            environment.update(shard_environment(clusters))
            prepare_shards(environment, names)
        shows = _two_hot_shows(environment, setup)
        urls = {name: cluster.url(DATABASE) for name, cluster in clusters.items()}
        with stack_running(web_processes=2, environment=environment) as stack:
            loads = asyncio.run(_sell(stack.url, shows, options))
        return _figures(setup, shows, loads, urls, options)


def _two_hot_shows(environment, setup):
    """[(show id, its shard, seat ids)] for two 2,000-seat shows in one hall (bench.show's), set up in this process;
    with "two", shows the ring puts on different shards."""
    os.environ.update(environment)
    from bench.show import prepare_show
    from ticketing.shards import database_of_show

    show_id, _, plan = prepare_show(environment["DATABASE_URL"], environment["REDIS_URL"])
    seats = [seat for row in plan.rows for seat in row]
    # One database: the second show is the next one. Two: the first the ring puts on the other shard.
    shows = shows_until(show_id, key=database_of_show if setup == "two" else (lambda show: show), count=2)
    return [(show, database_of_show(show), seats) for show in shows.values()]


async def _sell(url, shows, options):
    from chaos.load import Load

    clients = options.buyers // len(shows)
    loads = [Load(url, show, seats, clients=clients, pay_share=PAY_SHARE) for show, _, seats in shows]
    await asyncio.gather(*(load.run(options.duration) for load in loads))
    return loads


def _figures(setup, shows, loads, urls, options):
    seconds = options.duration
    per_show = []
    problems = {"5xx": 0, "seats_claimed_twice": 0, "acknowledged_holds_missing": 0}
    all_holds_ms = []
    for (show, shard, _), load in zip(shows, loads, strict=True):
        holds_ms = [ms for (_, call, status, _), ms in zip(load.answers, load.durations, strict=True) if call == "hold"]
        all_holds_ms += holds_ms
        counted = {
            "holds": sum(1 for _, call, status, _ in load.answers if call == "hold" and status == 201),
            "pays": sum(1 for _, call, status, _ in load.answers if call == "pay" and status == 200),
        }
        problems["5xx"] += sum(1 for answer in load.answers if answer[2] == "no answer" or answer[2] >= 500)
        with psycopg.connect(urls[shard]) as connection:
            problems["seats_claimed_twice"] += connection.execute(
                "SELECT count(*) FROM (SELECT seat_id FROM bookings_seatclaim WHERE show_id = %s "
                "AND released_at IS NULL GROUP BY seat_id HAVING count(*) > 1) doubled",
                [show],
            ).fetchone()[0]
            held = sorted(load.acknowledged["held"])
            found = connection.execute(
                "SELECT count(*) FROM bookings_reservation WHERE id::text = ANY(%s)", [held]
            ).fetchone()[0]
            problems["acknowledged_holds_missing"] += len(held) - found
        per_show.append(
            {
                "show": show,
                "shard": shard,
                "holds_per_s": round(counted["holds"] / seconds, 1),
                "pays_per_s": round(counted["pays"] / seconds, 1),
                "hold_ms": summary_ms(holds_ms),
            }
        )
    return {
        "setup": setup,
        "shards": sorted(urls),
        "holds_per_s": round(sum(show["holds_per_s"] for show in per_show), 1),
        "pays_per_s": round(sum(show["pays_per_s"] for show in per_show), 1),
        "hold_p50_ms": summary_ms(all_holds_ms).get("p50"),
        "hold_p99_ms": summary_ms(all_holds_ms).get("p99"),
        "shows": per_show,
        "problems": problems,
        "ok": not any(problems.values()),
    }


if __name__ == "__main__":
    unwind_on_sigterm()
    main()
