"""Catalog reads on a streaming replica (ticketing.db_routers), end to end: a PostgreSQL primary and a hot standby
of this module's own (bench.harness.services: OwnPostgres, OwnStandby, `pg_basebackup -R`), the site migrated
and seeded on the primary (bench.show.prepare_show), served by real uvicorn processes with DATABASE_REPLICA_URL.

What a read was served by is told by data, not by a mock: with the standby's replay paused
(pg_wal_replay_pause), a row committed on the primary is missing on the standby, so an answer without it came
from the standby and an answer with it from the primary. Two sites share the pair:
- "lenient" allows an hour of lag and measures the replica once at start (then every 10 minutes): while replay
  is paused it keeps reading the stale standby (what its rules allow), and a standby stopped under it is found
  by a read failing mid-request (the pooled connection is dead), not by a measurement;
- "strict" allows 1 s and measures every second: replay paused past that, its reads go to the primary.
Each site has its own Redis keys, so their cached answers are their own. Every read is a new cache key (a new
search word), so no answer cached before the change under test can stand in for the database.
"""

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from html.parser import HTMLParser

import httpx
import psycopg
import pytest
import redis
from django.core.cache.backends.base import default_key_func

from bench.harness.processes import ROOT, free_port, wait_until_url_answers
from bench.harness.services import own_services, standby_running
from bench.harness.site import server_environment, server_running
from bench.show import BENCH_KEY
from tests.helpers import wait_until

DATABASE = "ticketing_replica"
STAFF, STAFF_PASSWORD = "staff", "a-staff-password-for-the-replica-tests"
LENIENT = {"TICKETING_REPLICA_MAX_LAG_SECONDS": "3600", "TICKETING_REPLICA_CHECK_SECONDS": "600"}
STRICT_MAX_LAG, STRICT_CHECK = 1, 1
STRICT_WINDOW = STRICT_MAX_LAG + 2 * STRICT_CHECK + 1
STRICT = {
    "TICKETING_REPLICA_MAX_LAG_SECONDS": str(STRICT_MAX_LAG),
    "TICKETING_REPLICA_CHECK_SECONDS": str(STRICT_CHECK),
}


@pytest.fixture(scope="module")
def cluster():
    """(primary, standby, redis server, {"show", "movie", "city"}): the site migrated and seeded on the primary
    (a 60-seat show, a staff member), the standby streaming from it and caught up."""
    with own_services() as (primary, redis_server), standby_running(primary) as standby:
        primary.create_database(DATABASE)
        seeded = _python(
            primary,
            redis_server,
            "import json, sys; from bench.show import prepare_show; "
            "show, movie, _ = prepare_show(sys.argv[1], sys.argv[2], hall_seats=60); print(json.dumps([show, movie]))",
            primary.url(DATABASE),
            redis_server.url,
        )
        show, movie = json.loads(seeded.splitlines()[-1])
        _manage(primary, redis_server, "createsuperuser", "--noinput", "--username", STAFF, "--email", "s@example.com")
        (city,) = _on(primary, "SELECT id FROM cinemas_city WHERE name = 'Bench City'")
        assert wait_until(standby.caught_up, 30)
        yield primary, standby, redis_server, {"show": show, "movie": movie, "city": city}


def _tool_environment(primary, redis_server):
    return {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": primary.url(DATABASE),
        "REDIS_URL": redis_server.url,
        "TICKETING_REDIS_PREFIX": "tools:",  # none of the sites' keys: what tools change, no site hears of
        "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD,
    }


def _python(primary, redis_server, code, *arguments):
    command = [sys.executable, "-c", code, *arguments]
    environment = _tool_environment(primary, redis_server)
    return subprocess.run(command, cwd=ROOT, env=environment, check=True, capture_output=True, text=True).stdout


def _manage(primary, redis_server, *arguments):
    command = [sys.executable, "manage.py", *arguments]
    environment = _tool_environment(primary, redis_server)
    return subprocess.run(command, cwd=ROOT, env=environment, check=True, capture_output=True, text=True).stdout


def _on(server, sql, *parameters):
    with psycopg.connect(server.url(DATABASE), autocommit=True) as connection:
        return connection.execute(sql, parameters).fetchone()


@contextlib.contextmanager
def _site(cluster, tmp_path_factory, name, replica_settings):
    primary, standby, redis_server, _ = cluster
    port = free_port()
    environment = server_environment(
        database_url=primary.url(DATABASE),
        redis_url=redis_server.url,
        pool_max=3,
        DATABASE_REPLICA_URL=standby.url(DATABASE),
        DATABASE_POOL_TIMEOUT="3",
        TICKETING_REDIS_PREFIX=f"{name}-{uuid.uuid4().hex}:",
        DJANGO_LOG_LEVEL="WARNING",
        **replica_settings,
    )
    log_path = tmp_path_factory.mktemp(name) / "server.log"
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log, server_running(workers=1, port=port, environment=environment, log=log) as server:
        wait_until_url_answers(f"{url}/health/live", server, name)
        site = Site(url, environment["TICKETING_REDIS_PREFIX"], log_path)
        # The first catalog read starts the process's measurements of the replica; its reads go to the primary
        # until the first one is in.
        site.api("/api/v1/cities")
        assert wait_until(lambda: _measured_by(standby, server.pid), 30)
        yield site


def _measured_by(standby, pid):
    """Whether the measuring thread of the process `pid` has asked the standby at least once."""
    return _on(
        standby,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
        "AND query LIKE 'SELECT pg_is_in_recovery()%%' AND state = 'idle'",
        f"replica-health {pid}",
    )[0]


class Site:
    def __init__(self, url, redis_prefix, log_path):
        self.url, self.redis_prefix, self.log_path = url, redis_prefix, log_path

    def api(self, path, client=None, **parameters):
        response = (client or httpx).get(f"{self.url}{path}", params=parameters, headers={"X-API-Key": BENCH_KEY})
        assert response.status_code == 200, response.text
        return response.json()

    def cities_named(self, name, client=None):
        return self.api("/api/v1/cities", client, search=name)["count"]

    def titles_found(self, keyword, client=None):
        return {result["title"] for result in self.api("/api/v1/movies/search", client, keyword=keyword)["results"]}

    def log(self):
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def lenient(cluster, tmp_path_factory):
    with _site(cluster, tmp_path_factory, "lenient", LENIENT) as site:
        yield site


@pytest.fixture(scope="module")
def strict(cluster, tmp_path_factory):
    with _site(cluster, tmp_path_factory, "strict", STRICT) as site:
        yield site


@contextlib.contextmanager
def replay_paused(standby):
    """The standby receives the primary's WAL but applies none of it until the block ends (then catches up)."""
    standby.pause_replay()
    try:
        yield
    finally:
        standby.resume_replay()
        assert wait_until(standby.caught_up, 30)


def add_city(primary, name):
    """A city committed on the primary by hand (no staff edit: no cache generation, no mark)."""
    _on(primary, "INSERT INTO cinemas_city (name, state, country) VALUES (%s, '', 'Nowhere') RETURNING id", name)


# --- Served by the replica, or by the primary ------------------------------------------------------------------


def test_a_catalog_read_is_served_by_the_standby_it_lacks_a_row_the_primary_has(cluster, lenient):
    primary, standby, _, _ = cluster
    with replay_paused(standby):
        add_city(primary, "Pausedville")
        assert lenient.cities_named("Pausedville") == 0  # the standby's answer: it has not replayed the row
        assert _on(standby, "SELECT count(*) FROM cinemas_city WHERE name = 'Pausedville'") == (0,)
    # Replayed, the standby has it: the next read (another cache key) lists it.
    assert lenient.cities_named("pausedville") == 1


def test_replay_paused_past_the_largest_lag_allowed_the_same_read_comes_from_the_primary(cluster, lenient, strict):
    primary, standby, _, _ = cluster
    with replay_paused(standby):
        add_city(primary, "Laggington")
        committed = time.monotonic()
        # The staleness window (ticketing.db_routers): past it, no measurement strict may still use can say the
        # standby is within its limit and lack the commit (one taken before the commit rightly said "no lag").
        time.sleep(max(0.0, committed + STRICT_WINDOW - time.monotonic()))
        assert standby.lag_seconds() > STRICT_MAX_LAG
        assert strict.cities_named("Laggington") == 1
        assert lenient.cities_named("Laggington") == 0  # negative control: within its hour, the stale standby


def test_a_hold_on_a_show_the_standby_has_not_replayed_succeeds_on_the_primary(cluster, lenient):
    primary, standby, redis_server, seeded = cluster
    with replay_paused(standby):
        show = _new_show(primary, redis_server, seeded["show"])
        assert _on(standby, "SELECT count(*) FROM cinemas_show WHERE id = %s", show) == (0,)
        seats = [seat for (seat,) in _rows(primary, _OPEN_SEATS_OF_SHOW, show)][:2]
        body = {"session_id": "replica-buyer", "movie_id": seeded["movie"], "show_id": show, "seats_to_reserve": seats}
        held = httpx.post(f"{lenient.url}/api/v1/reservations", json=body, headers={"X-API-Key": BENCH_KEY})
        assert held.status_code == 201, held.text  # the API's hold (the lean path)
        with httpx.Client(base_url=lenient.url) as browser:  # the website's, best available, through Django
            browser.get("/admin/login/")
            form = {"csrfmiddlewaretoken": browser.cookies["csrftoken"], "best": "1", "count": "2"}
            response = browser.post(f"/shows/{show}/hold", data=form)
        assert response.status_code == 302 and "/holds/" in response.headers["location"], response.text[-2000:]


_OPEN_SEATS_OF_SHOW = (
    "SELECT seat.id FROM cinemas_seat seat JOIN cinemas_show show ON show.hall_id = seat.hall_id "
    "WHERE show.id = %s AND seat.seat_type IN ('Regular', 'Premium') ORDER BY seat.y, seat.x"
)


def _rows(server, sql, *parameters):
    with psycopg.connect(server.url(DATABASE), autocommit=True) as connection:
        return connection.execute(sql, parameters).fetchall()


def _new_show(primary, redis_server, like_show):
    """A show scheduled by the catalog's service on the primary (by a tool, whose cache marks no site hears of),
    in the same hall as `like_show`, a day after it; its id."""
    code = (
        "import sys; from datetime import timedelta; from cinemas.models import Show; "
        "from cinemas.services import schedule_show; "
        "show = Show.objects.get(pk=int(sys.argv[1])); "
        "prices = dict(show.prices.values_list('seat_type', 'price')); "
        "later = Show.objects.filter(hall=show.hall).order_by('-starts_at').first(); "
        "print(schedule_show(movie=show.movie, hall=show.hall, starts_at=later.starts_at + timedelta(days=1), "
        "prices=prices).pk)"
    )
    return int(_python(primary, redis_server, f"import django; django.setup(); {code}", str(like_show)).split()[-1])


# --- Staff see their own changes at once ------------------------------------------------------------------------


class _FormFields(HTMLParser):
    """What a browser submits of the page's form: its inputs, checked boxes, selected options and text areas."""

    def __init__(self):
        super().__init__()
        self.fields, self.select, self.textarea, self.first_option = [], None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type", "text") not in ("submit", "file", "button", "image"):
            if attrs.get("type") not in ("checkbox", "radio") or "checked" in attrs:
                self.fields.append((name, attrs.get("value", "on" if attrs.get("type") == "checkbox" else "")))
        elif tag == "select" and name:
            self.select, self.first_option = [name, None], None
        elif tag == "option" and self.select is not None:
            value = attrs.get("value", "")
            self.first_option = value if self.first_option is None else self.first_option
            if "selected" in attrs:
                self.select[1] = value
        elif tag == "textarea" and name:
            self.textarea = [name, ""]

    def handle_endtag(self, tag):
        if tag == "select" and self.select is not None:
            self.fields.append(
                (self.select[0], self.select[1] if self.select[1] is not None else self.first_option or "")
            )
            self.select = None
        elif tag == "textarea" and self.textarea is not None:
            self.fields.append(tuple(self.textarea))
            self.textarea = None

    def handle_data(self, data):
        if self.textarea is not None:
            self.textarea[1] += data


@contextlib.contextmanager
def staff_browser(site):
    """An httpx client logged in to the admin as staff (the login, a POST by staff, pins it to the primary)."""
    with httpx.Client(base_url=site.url) as browser:
        assert browser.get("/admin/login/").status_code == 200
        form = {"username": STAFF, "password": STAFF_PASSWORD, "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
        assert browser.post("/admin/login/", data={**form, "next": "/admin/"}).status_code == 302
        yield browser


def retitle(browser, movie, title):
    """Change the movie's title through the admin's form, as staff do."""
    path = f"/admin/cinemas/movie/{movie}/change/"
    parser = _FormFields()
    parser.feed(browser.get(path).text)
    fields = {}
    for name, value in parser.fields:
        fields.setdefault(name, []).append(title if name == "title" else value)
    saved = browser.post(path, data=fields)
    assert saved.status_code == 302, saved.text[-2000:]


def test_staff_see_the_movie_they_renamed_at_once_while_replay_is_paused_and_so_does_everyone(cluster, lenient):
    _, standby, _, seeded = cluster
    with staff_browser(lenient) as staff, replay_paused(standby):
        retitle(staff, seeded["movie"], "Renamed While Paused")
        assert "Renamed While Paused" in staff.get("/search/", params={"q": "Renamed While Paused"}).text
        assert lenient.titles_found("Renamed While Paused", staff) == {"Renamed While Paused"}
        # The change's mark in the cache keeps every fill on the primary for the staleness window: a visitor's
        # first read of it is fresh too.
        assert lenient.titles_found("renamed while paused") == {"Renamed While Paused"}


def test_without_the_caches_mark_only_the_staff_who_wrote_read_their_change_the_rest_read_the_stale_standby(
    cluster, lenient
):
    """The staff member's pin on its own: the change's mark in the cache is lost (as when Redis could not be
    reached right after the commit)."""
    _, standby, redis_server, seeded = cluster
    with staff_browser(lenient) as staff, replay_paused(standby):
        retitle(staff, seeded["movie"], "Renamed Twice")
        forget_the_mark(redis_server, lenient)
        assert lenient.titles_found("Renamed Twice") == set()  # a visitor: the standby's stale title
        # The same read by the staff member who wrote builds afresh on the primary, whatever the visitor cached.
        assert lenient.titles_found("Renamed Twice", staff) == {"Renamed Twice"}
        assert "Renamed Twice" in staff.get("/search/", params={"q": "Renamed Twice"}).text
        # Negative control: the same staff member without the pin (its session alone) reads what visitors read.
        unpinned = httpx.Client(base_url=lenient.url, cookies={"sessionid": staff.cookies["sessionid"]})
        assert lenient.titles_found("Twice", unpinned) == set()
        assert "Renamed Twice" not in unpinned.get("/search/", params={"q": "renamed twice"}).text


def forget_the_mark(redis_server, site):
    key = default_key_func("recent:catalog", f"{site.redis_prefix}reads", 1)
    assert redis.Redis.from_url(redis_server.url).delete(key) == 1


# --- The standby stopped --------------------------------------------------------------------------------------

CATALOG_PAGES = ("/", "/cities/{city}/", "/cities/{city}/movies/{movie}/", "/search/?q=Bench", "/shows/{show}/")
CATALOG_API = (
    "/api/v1/cities",
    "/api/v1/cities/{city}/movies",
    "/api/v1/movies/{movie}/shows?city={city}",
    "/api/v1/movies/search?keyword=Bench",
    "/api/v1/shows/{show}",
    "/api/v1/shows/{show}/seats",
)


def test_with_the_standby_stopped_every_catalog_read_comes_from_the_primary_without_an_error(cluster, lenient):
    primary, standby, _, seeded = cluster
    standby.stop("fast")
    try:
        add_city(primary, "Downtown Without Standby")
        # lenient has not measured since: its first reads meet the dead pooled connection and are read again on
        # the primary; after that the replica is left out until a measurement finds it answering.
        assert lenient.cities_named("Downtown Without Standby") == 1
        for path in CATALOG_PAGES + CATALOG_API:
            response = httpx.get(f"{lenient.url}{path.format(**seeded)}", headers={"X-API-Key": BENCH_KEY})
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
        assert lenient.cities_named("downtown without standby") == 1
        log = lenient.log()
        assert log.count("Catalog reads go to the primary: the replica failed a read") == 1, log[-3000:]
    finally:
        standby.start()  # lenient keeps to the primary: its next measurement is minutes away
        assert wait_until(standby.caught_up, 30)
