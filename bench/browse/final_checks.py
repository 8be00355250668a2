"""The checks at the end of a run (final_checks, check_at_end): for every hot show, the held and booked seats read
straight from PostgreSQL against what the setup was answered, the API's seat map (counts and which seats), the
show's details and its seat map page; its seat-type statuses against what the database says they must be; a few
SearchMovies totals against a count made in SQL.
"""

import random
from collections import Counter

import psycopg

from bench.harness.clients import bench_clients

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


async def check_at_end(options, catalog, *, base_url, api_key):
    """final_checks through a client of its own: each check's list of problems."""
    async with bench_clients(base_url, 1, api_key=api_key, keep_cookies=False) as clients:
        return await final_checks(clients[0], catalog, options, random.Random(options.seed))
