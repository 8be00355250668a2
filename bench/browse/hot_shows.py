"""The hot shows: seat maps and seat-type statuses made not trivially empty before the load. HotShow, chosen in
the catalog (choose_hot_shows) with the holds planned for it (plan_holds); the holds made, and some paid for,
through the API (make_holds) once the server is warmed up (prepare_hot_shows).
"""

import asyncio
import math
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from bench.harness.clients import bench_clients
from bench.harness.servers import wait_and_warm_up
from bench.seating import SeatingPlan

GOOD_CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}
PAID_SHARE = 0.25
SETUP_CONCURRENCY = 8
HOT_CITIES = 3


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


def choose_hot_shows(cities, at, count, rng):
    """`count` upcoming shows in HOT_CITIES of `cities`, each a HotShow with the holds planned for it: the first
    to be Almost Full, the second to have every Regular seat held, the others busy."""
    from cinemas.models import OPEN_SEAT_TYPES, Seat, Show

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
    chosen = rng.sample(candidates, min(count, len(candidates)))
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
            if seat_type in OPEN_SEAT_TYPES:  # the busy shows' holds are picked from these
                rows.setdefault(y, []).append(seat_id)
            of_type[seat_type].append(seat_id)
        hot_show = HotShow(
            show_id=show.pk,
            movie_id=show.movie_id,
            city_id=show.hall.cinema.city_id,
            local_day=show.starts_at.astimezone(ZoneInfo(show.hall.cinema.time_zone)).date().isoformat(),
            kind={0: "almost_full", 1: "regular_full"}.get(number, "busy"),
            seats_of_type=dict(of_type),
            plan=SeatingPlan(rows=list(rows.values())),
        )
        plan_holds(hot_show, rng)
        hot.append(hot_show)
    return hot


def plan_holds(hot_show, rng):
    """The holds (seat lists, at most 10 seats: one session's cap) the setup makes on a hot show. Of the seats any
    buyer may take: wheelchair spaces and companion seats go only to buyers who say they need them
    (bookings_refuse_reserved_seats), which the setup's buyers don't, so those stay free."""
    from cinemas.models import OPEN_SEAT_TYPES

    if hot_show.kind == "busy":
        taken = set()
        for _ in range(rng.randint(10, 40)):
            seats = hot_show.plan.pick(rng, rng.randint(1, 6), held=taken, avoid=set(), hot_share=0.7)
            if seats:
                taken.update(seats)
                hot_show.holds.append(seats)
    else:
        for seat_type, seat_ids in sorted(hot_show.seats_of_type.items()):
            if seat_type not in OPEN_SEAT_TYPES:
                continue
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


async def prepare_hot_shows(options, catalog, *, base_url, server, api_key, run_tag):
    """Wait for the server, warm it up, make the hot shows' holds; the report's "hot_shows" part."""
    # The clients keep no cookie: the setup's sessions are named in its requests.
    async with bench_clients(base_url, max(options.concurrency), api_key=api_key, keep_cookies=False) as clients:
        await wait_and_warm_up(clients, server, catalog.hot[0].show_id, options)
        started = time.monotonic()
        await make_holds(clients[0], catalog, run_tag)
    return {
        "seconds": round(time.monotonic() - started, 1),
        "hot_shows": [
            {"show_id": hot.show_id, "city_id": hot.city_id, "kind": hot.kind, **hot.counts()} for hot in catalog.hot
        ],
    }
