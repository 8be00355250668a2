"""A replica serving catalog reads (ticketing.db_routers) that lags, then dies, while visitors browse the catalog
and buyers hold and pay (R1). The site's two web processes read the catalog from a hot standby of the run's
PostgreSQL (bench.harness.services.standby_running), allowed MAX_LAG_SECONDS of lag; the scenario pauses the
standby's replay, resumes it, stops the standby and starts it again. Throughout, a probe adds a city on the
primary every second and asks the site for it at once (a new search, so a new cache key): found, the answer
was fresh. Which node served the catalog is read from each node's own counters of scans of the catalog's
tables (pg_stat_user_tables), per phase.

Passes when no answer was a 5xx other than 503 with Retry-After (browsing or buying), every probe made once the
lag had passed the limit (plus the staleness window) and every probe made while the standby was down was
answered fresh, and the standby served catalog reads before the fault and again after it came back.
"""

import asyncio
import itertools
import time

import psycopg

from bench.harness.services import catalog_scans, standby_running
from chaos.load import Load
from ticketing.db_routers import staleness_window

MAX_LAG_SECONDS = 2
CHECK_SECONDS = 1
# Past it, no read misses a commit.
WINDOW_SECONDS = staleness_window(MAX_LAG_SECONDS, CHECK_SECONDS)
DATABASE = "ticketing_chaos"
# (phase, seconds from the start it begins at); the run ends at END.
PHASES = (("replica", 0), ("lagging", 15), ("resumed", 35), ("down", 40), ("back", 55))
END = 70


def replica_lagging_then_down(run):
    with standby_running(run.postgres) as standby:
        environment = {
            **run.environment,
            "DATABASE_REPLICA_URL": standby.url(DATABASE),
            "TICKETING_REPLICA_MAX_LAG_SECONDS": str(MAX_LAG_SECONDS),
            "TICKETING_REPLICA_CHECK_SECONDS": str(CHECK_SECONDS),
        }

        async def fault(run, stack, show_id, seats):
            return await _lag_then_down(run, stack, show_id, seats, standby)

        return run.under_load(
            fault,
            environment=environment,
            target=(
                "no 5xx but 503 + Retry-After; every catalog answer fresh once the lag passed the limit and while the "
                "standby was down; the standby serving catalog reads before and after"
            ),
            passed=lambda result: (
                result["browsing"]["5xx_other_than_503_with_retry_after"] == 0
                and not result["stale_probes_past_the_limit_or_down"]
                and result["catalog_scans"]["replica"].get("standby", 0) > 0
                and result["catalog_scans"]["back"].get("standby", 0) > 0
            ),
        )


class Browsers(Load):
    """Visitors reading the catalog's pages and API in a loop (Load's answers and summary, other calls)."""

    def __init__(self, url, show_id, *, city_id, movie_id, clients):
        super().__init__(url, show_id, [], clients=clients, think=0.05)
        # (what the answer is counted as, the path): a search's words are new each time, so its answer is read
        # from the database, not from the cache.
        paths = [
            ("cities", lambda: "/api/v1/cities?search=Bench"),
            ("city movies", lambda: f"/api/v1/cities/{city_id}/movies"),
            ("movie shows", lambda: f"/api/v1/movies/{movie_id}/shows?city={city_id}"),
            ("show", lambda: f"/api/v1/shows/{show_id}"),
            ("search", lambda: f"/api/v1/movies/search?keyword=Bench{next(self.searched)}"),
            ("city page", lambda: f"/cities/{city_id}/"),
            ("showtimes page", lambda: f"/cities/{city_id}/movies/{movie_id}/"),
            ("seat map page", lambda: f"/shows/{show_id}/"),
            ("search page", lambda: f"/search/?q=Premiere{next(self.searched)}"),
        ]
        self.searched = itertools.count()
        self.paths = itertools.cycle(paths)

    async def buyer(self, client, number):
        while not self.stop.is_set():
            call, path = next(self.paths)
            await self.call(client, call, "GET", path())
            await asyncio.sleep(self.think * self.rng.random() * 2)


async def _lag_then_down(run, stack, show_id, seats, standby):
    city_id, movie_id = await asyncio.to_thread(_ids, run.database_url, show_id)
    buyers = Load(stack.url, show_id, seats, clients=8, think=0.5)  # holds and payments: writes, so the lag grows
    browsers = Browsers(stack.url, show_id, city_id=city_id, movie_id=movie_id, clients=16)
    started = time.monotonic()
    buyers.started = browsers.started = started
    loads = [asyncio.create_task(load.run(END)) for load in (buyers, browsers)]
    probes = asyncio.create_task(_probe(run, stack, started))
    scans = {}
    phase_starts = {}
    for (phase, at), (_, until) in zip(PHASES, [*PHASES[1:], ("end", END)], strict=True):
        await asyncio.sleep(max(0.0, at - (time.monotonic() - started)))
        phase_starts[phase] = round(time.monotonic() - started, 1)
        if phase == "lagging":
            await asyncio.to_thread(standby.pause_replay)
        elif phase == "resumed":
            await asyncio.to_thread(standby.resume_replay)
        elif phase == "down":
            await asyncio.to_thread(standby.stop, "fast")
        elif phase == "back":
            await asyncio.to_thread(standby.start)
        # Counted from a second in (the change settles) to the phase's end.
        await asyncio.sleep(max(0.0, at + 1 - (time.monotonic() - started)))
        before = await asyncio.to_thread(catalog_scans, run.postgres, standby, DATABASE)
        await asyncio.sleep(max(0.0, until - (time.monotonic() - started)))
        after = await asyncio.to_thread(catalog_scans, run.postgres, standby, DATABASE)
        scans[phase] = {node: after[node] - before[node] for node in after if None not in (after[node], before[node])}
    await asyncio.gather(*loads)
    probed = await probes
    lag_fresh_from = phase_starts["lagging"] + WINDOW_SECONDS
    must_be_fresh = [
        probe
        for probe in probed
        if lag_fresh_from <= probe["at"] < phase_starts["resumed"]
        or phase_starts["down"] <= probe["at"] < phase_starts["back"]
    ]
    logs = "".join(stack.log_text(process.name) for process in stack.web)
    return {
        "phases_s": phase_starts,
        "catalog_scans": scans,
        "probes": {
            phase: _probe_counts(probed, start, end)
            for (phase, start), (_, end) in zip(
                phase_starts.items(), [*list(phase_starts.items())[1:], ("end", END)], strict=True
            )
        },
        "stale_probes_past_the_limit_or_down": [probe for probe in must_be_fresh if not probe["found"]],
        "replica_left_out_logged": logs.count("Catalog reads go to the primary"),
        "replica_used_logged": logs.count("The replica serves catalog reads"),
        "browsing": browsers.summary(),
        "load": _merged(buyers.summary(), browsers.summary()),
    }


def _merged(*summaries):
    """One summary for Run.under_load's 5xx check: the buyers' and the visitors' answers together."""
    return {
        "answers": sum(summary["answers"] for summary in summaries),
        "5xx_other_than_503_with_retry_after": sum(
            summary["5xx_other_than_503_with_retry_after"] for summary in summaries
        ),
        "by_status": {name: count for summary in summaries for name, count in summary["by_status"].items()},
    }


def _probe_counts(probed, start, end):
    inside = [probe for probe in probed if start <= probe["at"] < end]
    return {"made": len(inside), "fresh": sum(probe["found"] for probe in inside)}


async def _probe(run, stack, started):
    """Every second: a city added on the primary, asked for at once through the balancer."""
    import httpx

    from bench.show import BENCH_KEY

    probed = []
    async with httpx.AsyncClient(base_url=stack.url, headers={"X-API-Key": BENCH_KEY}, timeout=30) as client:
        for number in itertools.count():
            at = time.monotonic() - started
            if at >= END - 1:
                return probed
            name = f"Probe City {number}"
            await asyncio.to_thread(_add_city, run.database_url, name)
            try:
                response = await client.get("/api/v1/cities", params={"search": name})
                found = response.status_code == 200 and response.json()["count"] == 1
            except httpx.HTTPError:
                found = False
            probed.append({"at": round(at, 1), "found": found})
            await asyncio.sleep(max(0.0, number + 1 - (time.monotonic() - started)))


def _add_city(database_url, name):
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("INSERT INTO cinemas_city (name, state, country) VALUES (%s, '', 'Nowhere')", [name])


def _ids(database_url, show_id):
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT cinema.city_id, show.movie_id FROM cinemas_show show"
            " JOIN cinemas_hall hall ON hall.id = show.hall_id JOIN cinemas_cinema cinema ON cinema.id = hall.cinema_id"
            " WHERE show.id = %s",
            [show_id],
        ).fetchone()
