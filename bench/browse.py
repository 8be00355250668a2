"""Browsing at the design study's catalog scale under load: moviegoers and partners reading through a real server.

Usage (the study catalog first: `make bench-search` loads it once into ticketing_study):
    python -m bench.browse [--concurrency 10,50] [--duration 20] [--workers 2 | --balanced 2] [--pool-max 10]
                           [--json FILE]

What it does, all on this machine:
1. The study catalog (postgres://postgres@127.0.0.1:5432/ticketing_study unless --database-url: 500 cities,
   5,000 cinemas, 70,000 shows; it is reused, never dropped or reloaded) and its own Redis database (/4).
   Rows this benchmark made in earlier runs (reservations of its own API key) are deleted first and again at
   the end, so the catalog is left as it was found.
2. `uvicorn ticketing.asgi:application --workers N` with production settings (bench/harness/site.py),
   or with --balanced K, K uvicorn processes of one worker each behind HAProxy (bench/harness/balancer.py; the CPU report
   then counts every web process and HAProxy, and the report says how many responses each process sent);
   each worker's pool sized to fit PostgreSQL's max_connections, holds lasting an hour so that the seat maps
   set up in step 3 stay as they are for the whole run.
3. "Hot" shows, so that seat maps and seat-type statuses are not trivially empty: --hot-shows upcoming shows in
   three cities get holds through the API (each a new session, 1-6 neighbouring seats, a quarter of them paid
   with the sandbox card so some seats are booked); one of them is held to 85 % of every seat type (Almost
   Full) and one has every Regular seat held (Regular: Full).
4. For each --concurrency level in turn, C virtual visitors for --duration seconds (after a --warmup that is
   not counted), each running journeys back to back (no think time unless --think):
   - partner search (45 %): SearchMovies with bench/search_movies.parameter_mix, then half the time the
     details of a show it found, and often that show's seat map;
   - app catalog (10 %): a city's movies, a movie's shows in that city, a show's seat map (API);
   - website (35 %): sometimes the home page (500 cities), a city's page, a movie's showtimes page (another
     day now and then), the seat map page of a show linked from it; a third of these visits go to a hot
     show's city, movie and day; now and then the people's search page instead. Each visitor keeps its
     session cookie (the site remembers its city in a database session) and now and then comes back as a
     new visitor;
   - hot seat map (10 %): a hot show's seat map or details through the API, as a live client re-reads it;
   - hot seat map page (0 %: `--mix hot_seat_map=1,hot_seat_map_page=1` gives an on-sale's read storm): a hot
     show's seat map page, as everyone opens it when a show goes on sale.
5. Figures per level: requests/s, per call n/p50/p95/p99/max and status counts, SearchMovies by kind of
   search and against the issue's target (p95 < 50 ms at the study's scale), the 2,000-seat seat map's p50
   (page and API; ":hot" for the hot shows everyone reads, the others apart) against issue 16's (page p50 <
   20 ms under load), the slowest requests, and where the CPU went (bench/harness/figures.py).
6. Checks: every answer must be a 200 (any 5xx, other status or connection error fails the run); every read
   of a hot show's seat map (API or page) or details during the load must show the held and booked counts the
   setup made, and its showtimes page must link to it; at the end, for every hot show, the held and booked
   seats read straight from PostgreSQL must equal what the setup was answered, the API's seat map (counts and
   which seats), the show's details and the seat map page, and its seat-type statuses (Available / Almost
   Full / Full) must follow from the database; a few SearchMovies totals must equal a count made in SQL.
   The exit status is 1 on any failure.

The website's visitors leave their sessions behind (django_session rows, which expire after 14 days); the
holds and bookings go. The visitors, the server, PostgreSQL and Redis share this machine's cores: the figures
are what one small machine does with everything on it (the report says how the CPU time was split).
"""

import argparse
import asyncio
import math
import random
import re
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg
import redis

from bench.harness.clients import bench_clients, timed
from bench.harness.database import setup_django
from bench.harness.figures import cpu_report, publish_report, responses_by_process, summary_ms, take_cpu_snapshot
from bench.harness.processes import unwind_on_sigterm
from bench.harness.servers import add_server_options, bench_server_running, plan_server, wait_and_warm_up
from bench.show import SeatingPlan

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ticketing_study"
# Not 0 (make run), 1 (make test) nor 2 (bench-holds): the tasks this run queues must reach nobody's worker.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/4"
BENCH_KEY = "tk_bench_browse_key"
BENCH_KEY_NAME = "bench-browse"
MIN_STUDY_SHOWS = 50_000
# Holds made at the start must outlast every level of the run, or the seat maps would change under the checks.
HOLD_SECONDS = 3600
SEARCH_TARGET_P95_MS = 50
# Issue 16's target for a 2,000-seat seat map under load (the page; the API's JSON is reported beside it).
SEAT_MAP_TARGET_P50_MS = 20
SEAT_MAP_CALLS = ("page:seat_map:hot", "SeatMap:hot", "page:seat_map", "SeatMap")
GOOD_CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}
HOT_CITIES = 3
PAID_SHARE = 0.25
SETUP_CONCURRENCY = 8
MAX_FAILURES = 20  # a broken server answers fast: end the level rather than spin on it
SLOWEST_KEPT = 8
JOURNEYS = {
    "partner_search": 0.45,
    "app_catalog": 0.10,
    "website": 0.35,
    "hot_seat_map": 0.10,
    # Not in the default mix: an on-sale's read storm, everyone on the hot shows' seat map pages
    # (`--mix hot_seat_map=1,hot_seat_map_page=1`).
    "hot_seat_map_page": 0.0,
}
MOVIE_LINK = re.compile(r'href="/cities/(\d+)/movies/(\d+)/"')
SHOW_LINK = re.compile(r'href="/shows/(\d+)/"')
DAY_LINK = re.compile(r'href="\?date=(\d{4}-\d{2}-\d{2})"')


# --- The catalog and the hot shows -------------------------------------------------------------------------


def delete_bench_rows():
    """Delete every reservation (claims, payments, refunds) and idempotency record of this benchmark's key."""
    from django.db import transaction

    from bookings.models import IdempotentRequest, Payment, Reservation

    with transaction.atomic():
        mine = Reservation.objects.filter(api_key__name=BENCH_KEY_NAME)
        payments = Payment.objects.filter(reservation__in=mine)
        Payment.objects.filter(refund_of__in=payments).delete()  # refunds point at their charge (PROTECT)
        payments.delete()
        deleted, _ = mine.delete()  # claims go with them (CASCADE)
        IdempotentRequest.objects.filter(api_key__name=BENCH_KEY_NAME).delete()
    return deleted


@dataclass
class HotShow:
    show_id: int
    movie_id: int
    city_id: int
    local_day: str  # the show's day where its cinema is, as the showtimes page's ?date= names it
    kind: str  # "busy", "almost_full" or "regular_full"
    seats_of_type: dict  # seat type -> seat ids
    plan: SeatingPlan
    holds: list = field(default_factory=list)  # [seat ids] to hold, in order
    pay: list = field(default_factory=list)  # per hold: whether to pay for it
    held: set = field(default_factory=set)  # as answered during the setup
    booked: set = field(default_factory=set)

    def counts(self):
        return {"held": len(self.held), "booked": len(self.booked)}


@dataclass
class Catalog:
    at: datetime
    cities: list
    cinemas: list
    titles: list
    city_ids: list
    hot: list  # [HotShow]
    database: dict
    parameter_mix: object  # bench/search_movies.parameter_mix (importing it sets Django up)


def load_catalog(options, rng):
    """What the visitors draw their requests from, and the hot shows with the holds planned for them."""
    from django.db import connection
    from django.db.models import Count

    from cinemas.models import Cinema, City, Movie, Seat, Show
    from ticketing.models import ApiKey
    from ticketing.services import create_api_key

    shows = Show.objects.count()
    if shows < MIN_STUDY_SHOWS:
        sys.exit(f"Only {shows} shows in {options.database_url}: load the study scale first (make bench-search).")
    if not ApiKey.objects.filter(name=BENCH_KEY_NAME).exists():
        create_api_key(name=BENCH_KEY_NAME, rate_per_minute=1_000_000_000, held_seats_per_show=None, raw_key=BENCH_KEY)
    at = datetime.now(UTC)
    cities = list(City.objects.annotate(n=Count("cinemas")).filter(n__gt=0).order_by("pk"))
    cinemas = list(Cinema.objects.order_by("pk"))
    titles = list(Movie.objects.order_by("pk").values_list("title", flat=True))

    # Shows far enough ahead that none starts during the run (a started show leaves the listings).
    hot_cities = rng.sample(cities, HOT_CITIES)
    candidates = list(
        Show.objects.filter(
            hall__cinema__city__in=hot_cities,
            starts_at__gt=at + timedelta(hours=3),
            starts_at__lt=at + timedelta(days=4),
        )
        .select_related("hall__cinema")
        .order_by("pk")
    )
    chosen = rng.sample(candidates, min(options.hot_shows, len(candidates)))
    seats = defaultdict(list)
    for hall_id, seat_id, seat_type, y in (
        Seat.objects.filter(hall_id__in={show.hall_id for show in chosen})
        .order_by("hall_id", "y", "x")
        .values_list("hall_id", "id", "seat_type", "y")
    ):
        seats[hall_id].append((seat_id, seat_type, y))
    hot = []
    for number, show in enumerate(chosen):
        rows, of_type = {}, defaultdict(list)
        for seat_id, seat_type, y in seats[show.hall_id]:
            rows.setdefault(y, []).append(seat_id)
            of_type[seat_type].append(seat_id)
        kind = {0: "almost_full", 1: "regular_full"}.get(number, "busy")
        local_day = show.starts_at.astimezone(ZoneInfo(show.hall.cinema.time_zone)).date().isoformat()
        hot_show = HotShow(
            show_id=show.pk,
            movie_id=show.movie_id,
            city_id=show.hall.cinema.city_id,
            local_day=local_day,
            kind=kind,
            seats_of_type=dict(of_type),
            plan=SeatingPlan(rows=list(rows.values())),
        )
        plan_holds(hot_show, rng)
        hot.append(hot_show)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    database = {
        "cities": len(cities),
        "cinemas": len(cinemas),
        "shows": shows,
        "upcoming_shows": Show.objects.upcoming(at).count(),
        "database_size": size,
    }
    from bench.search_movies import parameter_mix

    return Catalog(at, cities, cinemas, titles, [city.pk for city in cities], hot, database, parameter_mix)


def plan_holds(hot_show, rng):
    """The holds (seat lists, at most 10 seats: one session's cap) the setup makes on a hot show."""
    if hot_show.kind == "busy":
        taken = set()
        for _ in range(rng.randint(10, 40)):
            seats = hot_show.plan.pick(rng, rng.randint(1, 6), held=taken, avoid=set(), hot_share=0.7)
            if seats:
                taken.update(seats)
                hot_show.holds.append(seats)
    else:
        for seat_type, seat_ids in sorted(hot_show.seats_of_type.items()):
            if hot_show.kind == "almost_full":
                wanted = seat_ids[: math.ceil(0.85 * len(seat_ids))]  # at most 20 % left: Almost Full
            elif seat_type == "Regular":
                wanted = seat_ids  # none left: Full
            else:
                continue
            hot_show.holds.extend(wanted[start : start + 10] for start in range(0, len(wanted), 10))
    hot_show.pay = [rng.random() < PAID_SHARE for _ in hot_show.holds]


async def make_holds(client, catalog, run_tag):
    """Hold (and pay for some of) the planned seats through the API; any answer but 201/200 stops the run."""
    work = [
        (hot_show, number, seats, paid)
        for hot_show in catalog.hot
        for number, (seats, paid) in enumerate(zip(hot_show.holds, hot_show.pay, strict=True))
    ]

    async def holder():
        while work:
            hot_show, number, seats, paid = work.pop()
            session_id = f"browse-{run_tag}-{hot_show.show_id}-{number}"
            body = {
                "session_id": session_id,
                "movie_id": hot_show.movie_id,
                "show_id": hot_show.show_id,
                "seats_to_reserve": seats,
            }
            response = await client.post("/api/v1/reservations", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"setup hold {body} -> {response.status_code}: {response.text[:300]}")
            answered = sorted(seat["id"] for seat in response.json()["seats"])
            if answered != sorted(seats):
                raise RuntimeError(f"setup hold asked for {sorted(seats)}, answered {answered}")
            if not paid:
                hot_show.held.update(answered)
                continue
            response = await client.post(
                f"/api/v1/reservations/{response.json()['reservation_id']}/pay",
                json={"session_id": session_id, "payment": GOOD_CARD},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            if response.status_code != 200 or response.json().get("status") != "Booked":
                raise RuntimeError(f"setup payment -> {response.status_code}: {response.text[:300]}")
            hot_show.booked.update(answered)

    await asyncio.gather(*(holder() for _ in range(SETUP_CONCURRENCY)))


def drop_queued_tasks(redis_url):
    """Count and delete the Celery tasks the run queued (ticket mails, waiting-line wake-ups): no worker runs."""
    broker = redis.Redis.from_url(redis_url)
    queued = broker.llen("celery")
    broker.delete("celery")
    broker.close()
    return queued


# --- The visitors --------------------------------------------------------------------------------------------


@dataclass
class Level:
    """What the visitors of one concurrency level counted (one event loop: no locks needed)."""

    concurrency: int
    counting: bool = True  # False during the warm-up
    deadline: float = 0.0
    latencies: dict = field(default_factory=lambda: defaultdict(list))  # call -> [ms] of its 200s
    search_kinds: dict = field(default_factory=lambda: defaultdict(list))  # parameter_mix kind -> [ms]
    statuses: Counter = field(default_factory=Counter)  # "call status" -> n
    failures: list = field(default_factory=list)
    wrong_answers: list = field(default_factory=list)
    slowest: list = field(default_factory=list)  # (ms, call, url)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def fail(self, what):
        self.failures.append(what)
        if len(self.failures) >= MAX_FAILURES:
            self.stop.set()

    def wrong(self, what):
        self.wrong_answers.append(what)

    def record(self, call, status, ms, url):
        if not self.counting:
            return
        self.statuses[f"{call} {status}"] += 1
        if status == 200:
            self.latencies[call].append(ms)
        self.slowest.append((ms, call, url))
        if len(self.slowest) > 4 * SLOWEST_KEPT:
            self.slowest = sorted(self.slowest, reverse=True)[:SLOWEST_KEPT]


class Visitor:
    """One virtual moviegoer or partner app: its random choices, its website session, its requests."""

    def __init__(self, number, client, catalog, level, options):
        self.rng = random.Random(options.seed * 1_000_003 + number)
        self.client = client
        self.catalog = catalog
        self.level = level
        self.options = options
        self.session_cookie = None

    async def get(self, call, url, params=None, *, page=False):
        """GET and count it; the response when it is a 200, else None (and the failure is noted)."""
        headers = {"Cookie": f"sessionid={self.session_cookie}"} if page and self.session_cookie else None
        try:
            response, ms = await timed(self.client.get(url, params=params, headers=headers))
        except httpx.HTTPError as exc:
            if self.level.counting:
                self.level.statuses[f"{call} {type(exc).__name__}"] += 1
            self.level.fail(f"GET {url} {params or ''}: {type(exc).__name__}: {exc}")
            return None
        self.level.record(call, response.status_code, ms, response.url.raw_path.decode())
        if response.status_code != 200:
            self.level.fail(f"GET {response.url} -> {response.status_code}: {response.text[:300]}")
            return None
        if page and "sessionid" in response.cookies:
            self.session_cookie = response.cookies["sessionid"]
        if self.options.think:
            await asyncio.sleep(self.rng.expovariate(1 / self.options.think))
        return response

    async def run(self):
        journeys, weights = zip(*self.options.mix.items(), strict=True)
        while self.level.running():
            journey = self.rng.choices(journeys, weights)[0]
            await getattr(self, journey)()

    async def partner_search(self):
        catalog = self.catalog
        kind, parameters = catalog.parameter_mix(
            self.rng, cities=catalog.cities, cinemas=catalog.cinemas, titles=catalog.titles, at=catalog.at
        )
        started = time.perf_counter()
        response = await self.get("SearchMovies", "/api/v1/movies/search", parameters)
        if response is None:
            return
        if self.level.counting:
            self.level.search_kinds[kind].append((time.perf_counter() - started) * 1000)
        answer = response.json()
        if len(answer["results"]) > parameters["results_per_page"]:
            self.level.wrong(f"SearchMovies {parameters}: {len(answer['results'])} results on a page")
        if answer["results"] and self.rng.random() < 0.5:
            show_id = self.rng.choice(answer["results"])["show_id"]
            if await self.get("ShowDetail", f"/api/v1/shows/{show_id}") and self.rng.random() < 0.6:
                await self.get("SeatMap", f"/api/v1/shows/{show_id}/seats")

    async def app_catalog(self):
        city_id = self.rng.choice(self.catalog.city_ids)
        movies = await self.get("CityMovies", f"/api/v1/cities/{city_id}/movies")
        if movies is None:
            return
        listed = movies.json()
        listed = listed.get("results", listed) if isinstance(listed, dict) else listed
        if not listed:
            return
        movie_id = self.rng.choice(listed)["id"]
        shows = await self.get("MovieShows", f"/api/v1/movies/{movie_id}/shows", {"city": city_id})
        if shows is None:
            return
        show_ids = [show["show_id"] for cinema in shows.json() for show in cinema["shows"]]
        if show_ids:
            await self.get("SeatMap", f"/api/v1/shows/{self.rng.choice(show_ids)}/seats")

    async def website(self):
        rng = self.rng
        if rng.random() < 0.1:
            self.session_cookie = None  # a new visitor: a new session row on their first page
        new_or_back_home = self.session_cookie is None or rng.random() < 0.2
        if new_or_back_home and await self.get("page:home", "/", page=True) is None:
            return
        if rng.random() < 0.15:
            words = rng.choice(self.catalog.titles).split()[0]
            await self.get("page:search", "/search/", {"q": words}, page=True)
            return
        hot_show = rng.choice(self.catalog.hot) if rng.random() < 1 / 3 else None
        city_id = hot_show.city_id if hot_show else rng.choice(self.catalog.city_ids)
        city_page = await self.get("page:city", f"/cities/{city_id}/", page=True)
        if city_page is None:
            return
        if hot_show:
            movie_id, params = hot_show.movie_id, {"date": hot_show.local_day}
        else:
            movies = MOVIE_LINK.findall(city_page.text)
            if not movies:
                return
            movie_id, params = int(rng.choice(movies)[1]), None
        url = f"/cities/{city_id}/movies/{movie_id}/"
        showtimes = await self.get("page:movie_showtimes", url, params, page=True)
        if showtimes is None:
            return
        if not hot_show and rng.random() < 0.3:  # another day's showtimes
            days = DAY_LINK.findall(showtimes.text)
            showtimes = await self.get("page:movie_showtimes", url, {"date": rng.choice(days)}, page=True)
            if showtimes is None:
                return
        show_ids = [int(show_id) for show_id in SHOW_LINK.findall(showtimes.text)]
        if hot_show and hot_show.show_id not in show_ids and hot_show.kind != "regular_full":
            self.level.wrong(f"{url}?date={hot_show.local_day} has no link to hot show {hot_show.show_id}")
        if hot_show:
            show_id = hot_show.show_id
        elif show_ids and rng.random() < 0.7:
            show_id = rng.choice(show_ids)
        else:
            return
        call = "page:seat_map:hot" if hot_show else "page:seat_map"
        seat_map = await self.get(call, f"/shows/{show_id}/", page=True)
        if seat_map is not None and hot_show:
            self.check_seat_map_page(hot_show, seat_map.text)

    def check_seat_map_page(self, hot_show, html):
        on_page = {"held": html.count('data-status="held"'), "booked": html.count('data-status="booked"')}
        if on_page != hot_show.counts():
            self.level.wrong(f"seat map page of show {hot_show.show_id}: {on_page}, set up {hot_show.counts()}")

    async def hot_seat_map_page(self):
        hot_show = self.rng.choice(self.catalog.hot)
        if self.rng.random() < 0.1:
            self.session_cookie = None  # now and then a new visitor
        seat_map = await self.get("page:seat_map:hot", f"/shows/{hot_show.show_id}/", page=True)
        if seat_map is not None:
            self.check_seat_map_page(hot_show, seat_map.text)

    async def hot_seat_map(self):
        hot_show = self.rng.choice(self.catalog.hot)
        if self.rng.random() < 0.7:
            response = await self.get("SeatMap:hot", f"/api/v1/shows/{hot_show.show_id}/seats")
        else:
            response = await self.get("ShowDetail", f"/api/v1/shows/{hot_show.show_id}")
        if response is not None:
            counts = response.json()["counts"]
            answered = {"held": counts["held"], "booked": counts["booked"]}
            if answered != hot_show.counts():
                self.level.wrong(f"{response.url}: counts {answered}, set up {hot_show.counts()}")


async def run_level(clients, catalog, options, concurrency, *, seconds, counting, server):
    """C visitors for `seconds`; the Level they counted, and the CPU it took (None while warming up)."""
    level = Level(concurrency=concurrency, counting=counting)
    before = take_cpu_snapshot(server, options.database_url) if counting else None
    started = time.monotonic()
    level.deadline = started + seconds
    visitors = [
        Visitor(
            options.seed * 10_000 + concurrency * 100 + number, clients[number % len(clients)], catalog, level, options
        )
        for number in range(concurrency)
    ]
    await asyncio.gather(*(visitor.run() for visitor in visitors))
    elapsed = time.monotonic() - started
    cpu = None
    if counting:
        cpu = cpu_report(before, take_cpu_snapshot(server, options.database_url), server.pid, elapsed)
    return level, elapsed, cpu


def seat_map_target(level):
    """The 2,000-seat seat map's p50 (page and API), of the hot shows that everyone reads (":hot") and of the
    others (a show found by a search or a listing, often read by no one before), against the issue's target."""
    p50 = {call: summary_ms(level.latencies.get(call, [])).get("p50") for call in SEAT_MAP_CALLS}
    hot_page = p50["page:seat_map:hot"]
    return {
        "p50_ms": p50,
        "target_p50_ms": SEAT_MAP_TARGET_P50_MS,
        "met": hot_page is not None and hot_page < SEAT_MAP_TARGET_P50_MS,
    }


def level_report(level, elapsed, cpu):
    requests = sum(level.statuses.values())
    search = level.latencies.get("SearchMovies", [])
    search_p95 = summary_ms(search).get("p95")
    return {
        "concurrency": level.concurrency,
        "elapsed_s": round(elapsed, 2),
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "search_movies_target": {
            "p95_ms": search_p95,
            "target_p95_ms": SEARCH_TARGET_P95_MS,
            "met": search_p95 is not None and search_p95 < SEARCH_TARGET_P95_MS,
        },
        "seat_map_target": seat_map_target(level),
        "latency_ms": {call: summary_ms(values) for call, values in sorted(level.latencies.items())},
        "calls_per_s": {call: round(len(values) / elapsed, 1) for call, values in sorted(level.latencies.items())},
        "search_movies_by_kind_ms": {kind: summary_ms(values) for kind, values in sorted(level.search_kinds.items())},
        "status_counts": dict(sorted(level.statuses.items())),
        "slowest_requests": [
            {"ms": round(ms, 1), "call": call, "url": url}
            for ms, call, url in sorted(level.slowest, reverse=True)[:SLOWEST_KEPT]
        ],
        "failures": level.failures[:20],
        "wrong_answers": level.wrong_answers[:20],
        "wrong_answer_count": len(level.wrong_answers),
        "cpu": cpu,
    }


# --- The checks at the end ---------------------------------------------------------------------------------------


FINAL_CHECKS = [
    "database_matches_setup",
    "seat_map_matches_database",
    "seat_map_counts_match_database",
    "show_counts_match_database",
    "seat_type_statuses_match_database",
    "seat_map_page_matches_database",
    "hot_shows_cover_every_status",
    "search_total_matches_database",
]


def live_seats_in_database(database_url, show_ids):
    """{show_id: {"held": {seat ids}, "booked": {seat ids}}} straight from PostgreSQL (docs/decisions.md's rule
    for live)."""
    found = {show_id: {"held": set(), "booked": set()} for show_id in show_ids}
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT c.show_id, c.seat_id, r.status FROM bookings_seatclaim c "
            "JOIN bookings_reservation r ON r.id = c.reservation_id "
            "WHERE c.show_id = ANY(%s) AND c.released_at IS NULL "
            "AND (r.status = 'Booked' OR (r.status = 'Reserved' AND r.held_until > now()))",
            [list(show_ids)],
        ).fetchall()
    for show_id, seat_id, status in rows:
        found[show_id]["booked" if status == "Booked" else "held"].add(seat_id)
    return found


def expected_type_statuses(hot_show, live):
    """docs/decisions.md: Full when no seat of the type can be had, Almost Full when at most 20 % of them can."""
    taken = live["held"] | live["booked"]
    statuses = {}
    for seat_type, seat_ids in hot_show.seats_of_type.items():
        available = len(set(seat_ids) - taken)
        statuses[seat_type] = (
            "Full" if available == 0 else "Almost Full" if available <= 0.2 * len(seat_ids) else "Available"
        )
    return statuses


def upcoming_shows_in_city(database_url, city_id):
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT count(*) FROM cinemas_show s JOIN cinemas_hall h ON h.id = s.hall_id "
            "JOIN cinemas_cinema c ON c.id = h.cinema_id WHERE c.city_id = %s AND s.starts_at > now()",
            [city_id],
        ).fetchone()[0]


async def answer_of(client, url, params=None, *, text=False):
    response = await client.get(url, params=params)
    if response.status_code != 200:
        raise RuntimeError(f"check: GET {response.url} -> {response.status_code}: {response.text[:300]}")
    return response.text if text else response.json()


async def final_checks(client, catalog, options, rng):
    """Each check's list of problems (empty when it holds)."""
    problems = {name: [] for name in FINAL_CHECKS}
    live = live_seats_in_database(options.database_url, [hot_show.show_id for hot_show in catalog.hot])
    for hot_show in catalog.hot:
        show_id, in_database = hot_show.show_id, live[hot_show.show_id]
        for status in ("held", "booked"):
            if in_database[status] != getattr(hot_show, status):
                problems["database_matches_setup"].append(
                    f"show {show_id}: {len(in_database[status])} {status} seats in PostgreSQL, "
                    f"{len(getattr(hot_show, status))} answered in the setup"
                )
        seat_map = await answer_of(client, f"/api/v1/shows/{show_id}/seats")
        on_map = {
            status: {seat["id"] for seat in seat_map["seats"] if seat["status"] == status}
            for status in ("held", "booked")
        }
        counts = {status: len(in_database[status]) for status in ("held", "booked")}
        if on_map != in_database:
            problems["seat_map_matches_database"].append(
                f"show {show_id}: map held {len(on_map['held'])} booked {len(on_map['booked'])}, database {counts}"
            )
        if {status: seat_map["counts"][status] for status in counts} != counts:
            problems["seat_map_counts_match_database"].append(
                f"show {show_id}: {seat_map['counts']}, database {counts}"
            )
        detail = await answer_of(client, f"/api/v1/shows/{show_id}")
        if {status: detail["counts"][status] for status in counts} != counts:
            problems["show_counts_match_database"].append(f"show {show_id}: {detail['counts']}, database {counts}")
        statuses = {entry["type"]: entry["status"] for entry in detail["seats"]}
        expected = expected_type_statuses(hot_show, in_database)
        if statuses != expected:
            problems["seat_type_statuses_match_database"].append(f"show {show_id}: {statuses}, expected {expected}")
        page = await answer_of(client, f"/shows/{show_id}/", text=True)
        on_page = {status: page.count(f'data-status="{status}"') for status in counts}
        if on_page != counts:
            problems["seat_map_page_matches_database"].append(f"show {show_id}: page {on_page}, database {counts}")
    kinds = Counter(hot_show.kind for hot_show in catalog.hot)
    if not kinds["almost_full"] or not kinds["regular_full"]:
        problems["hot_shows_cover_every_status"].append(f"hot shows by kind: {dict(kinds)}")

    # SearchMovies' total for a city: every upcoming show of its cinemas, counted before and after in SQL
    # (a show may start in between).
    for city_id in rng.sample(catalog.city_ids, 3) + [catalog.hot[0].city_id]:
        before = upcoming_shows_in_city(options.database_url, city_id)
        answer = await answer_of(client, "/api/v1/movies/search", {"city": city_id})
        after = upcoming_shows_in_city(options.database_url, city_id)
        if not after <= answer["total"] <= before:
            problems["search_total_matches_database"].append(
                f"city {city_id}: total {answer['total']}, PostgreSQL {before} then {after}"
            )
    return problems


# --- The run -------------------------------------------------------------------------------------------------


def journey_mix(text):
    """'partner_search=1,website=0.5' -> {"partner_search": 1.0, "website": 0.5}: relative weights."""
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        try:
            mix[name.strip()] = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--mix wants NAME=WEIGHT,..., got {part!r}") from None
    unknown = set(mix) - set(JOURNEYS)
    if unknown or not any(weight > 0 for weight in mix.values()) or min(mix.values()) < 0:
        raise argparse.ArgumentTypeError(f"--mix names some of {', '.join(JOURNEYS)} with weights >= 0, got {text!r}")
    return mix


def concurrency_levels(text):
    """'10,50' -> [10, 50]."""
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"concurrency must be N or N,M,... with every N >= 1, got {text!r}")
    return levels


async def run(options, catalog, *, base_url, server, run_tag):
    # Visitors share clients but each keeps its own session cookie: the clients keep none.
    async with bench_clients(base_url, max(options.concurrency), api_key=BENCH_KEY, keep_cookies=False) as clients:
        await wait_and_warm_up(clients, server, catalog.hot[0].show_id, options)
        started = time.monotonic()
        await make_holds(clients[0], catalog, run_tag)
        setup = {
            "seconds": round(time.monotonic() - started, 1),
            "hot_shows": [
                {"show_id": hot.show_id, "city_id": hot.city_id, "kind": hot.kind, **hot.counts()}
                for hot in catalog.hot
            ],
        }
        # Warm every worker's imports, pools and caches (not counted), at the first level's concurrency.
        warmup, _, _ = await run_level(
            clients,
            catalog,
            options,
            options.concurrency[0],
            seconds=options.warmup,
            counting=False,
            server=server,
        )
        setup["warmup_failures"] = warmup.failures[:20] + warmup.wrong_answers[:20]
        levels = []
        for concurrency in options.concurrency:
            level, elapsed, cpu = await run_level(
                clients, catalog, options, concurrency, seconds=options.duration, counting=True, server=server
            )
            levels.append(level_report(level, elapsed, cpu))
            search = levels[-1]["search_movies_target"]
            seat_maps = levels[-1]["seat_map_target"]["p50_ms"]
            print(
                f"concurrency {concurrency}: {levels[-1]['requests_per_s']} requests/s, "
                f"SearchMovies p95 {search['p95_ms']} ms, hot seat map p50 page {seat_maps['page:seat_map:hot']} / "
                f"API {seat_maps['SeatMap:hot']} ms, failures {len(level.failures)}, "
                f"wrong answers {len(level.wrong_answers)}",
                file=sys.stderr,
            )
            if level.failures:
                break
        problems = await final_checks(clients[0], catalog, options, random.Random(options.seed))
    return setup, levels, problems


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.browse", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--concurrency", type=concurrency_levels, default=[10, 50], help="visitors at once, one level after another"
    )
    parser.add_argument("--duration", type=float, default=20, help="seconds per concurrency level (default 20)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before the first level, not counted")
    add_server_options(parser)
    parser.add_argument("--hot-shows", type=int, default=20, help="shows given holds and bookings (at least 2)")
    parser.add_argument(
        "--mix",
        type=journey_mix,
        default=dict(JOURNEYS),
        help="journeys' relative weights, e.g. partner_search=1 for partner searches alone (default "
        + ",".join(f"{name}={weight}" for name, weight in JOURNEYS.items())
        + ")",
    )
    parser.add_argument("--think", type=float, default=0, help="mean seconds a visitor waits between requests")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    if options.hot_shows < 2:
        parser.error("--hot-shows must be at least 2 (one Almost Full, one with Regular Full)")

    pool_max, server_settings = plan_server(options)
    # The holds outlast the run; the server inherits the setting (it copies os.environ).
    setup_django(options.database_url, options.redis_url, TICKETING_HOLD_SECONDS=str(HOLD_SECONDS))
    rng = random.Random(options.seed)
    deleted = delete_bench_rows()  # an interrupted run's holds would skew this one's seat maps
    drop_queued_tasks(options.redis_url)
    catalog = load_catalog(options, rng)
    run_tag = uuid.uuid4().hex[:8]
    server_settings["hold_seconds"] = HOLD_SECONDS
    with tempfile.NamedTemporaryFile("w+", prefix="bench-browse-server-", suffix=".log", delete=False) as log:
        try:
            with bench_server_running(options, pool_max=pool_max, log=log) as (server, base_url):
                try:
                    setup, levels, problems = asyncio.run(
                        run(options, catalog, base_url=base_url, server=server, run_tag=run_tag)
                    )
                except (RuntimeError, httpx.HTTPError) as exc:  # the setup or a final check could not be done
                    log.seek(0)
                    sys.exit(f"FAILED: {exc}\nThe server's log ({log.name}) ends with:\n{log.read()[-3000:]}")
                spread = responses_by_process(server)
        finally:
            server_settings["celery_tasks_queued"] = drop_queued_tasks(options.redis_url)
            delete_bench_rows()  # leave the study catalog as it was found
        log.seek(0)
        server_log = log.read()
    failed = (
        bool(setup["warmup_failures"])
        or any(level["failures"] or level["wrong_answer_count"] for level in levels)
        or any(problems.values())
    )
    report = {
        "setup": {
            **server_settings,
            "concurrency_levels": options.concurrency,
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "think_s": options.think,
            "journey_mix": options.mix,
            "earlier_rows_deleted": deleted,
        },
        "catalog": catalog.database,
        "hot_shows": setup,
        "search_movies_p95_ms_by_concurrency": {
            level["concurrency"]: level["search_movies_target"]["p95_ms"] for level in levels
        },
        "search_movies_target_p95_ms": SEARCH_TARGET_P95_MS,
        "seat_map_p50_ms_by_concurrency": {
            level["concurrency"]: level["seat_map_target"]["p50_ms"] for level in levels
        },
        "seat_map_target_p50_ms": SEAT_MAP_TARGET_P50_MS,
        "levels": levels,
        **({"responses_by_process": spread} if options.balanced else {}),
        "checks": {name: len(found) for name, found in problems.items()},
        "check_examples": {name: found[:5] for name, found in problems.items() if found},
        "ok": not failed,
    }
    publish_report(report, options, log=log, server_log=server_log)


if __name__ == "__main__":
    unwind_on_sigterm()
    main()
