"""The browsing visitors as Locust users (Visitor, a FastHttpUser), for bench/browse's __main__, which runs
`locust -f bench/browse/locustfile.py` with BROWSE_PLAN naming a JSON file (catalog.locust_plan's: the catalog
to draw from, the hot shows and what the setup made of them, --mix, --think, --seed, where to write the tally
and the stats CSV).

Each user is one moviegoer or partner app running journeys back to back, each chosen by --mix's weights (the
journeys are __main__'s docstring's). Every answer must be a 200 (no redirect followed); any other is marked
failed (response.failure) and noted, and the run stops at MAX_FAILURES of them. An answer that contradicts the
setup (a hot show's seat map, page or details not showing its held and booked counts, a showtimes page without
a link to the hot show, a page of SearchMovies with too many results) is marked failed too and noted apart as a
wrong answer. Request names are the report's call names.

Runs in Locust's interpreter with the project on PYTHONPATH: the standard library, Locust and
bench/catalog_queries.py only.
"""

import itertools
import json
import os
import random
import re
from datetime import datetime
from http.cookies import SimpleCookie
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import gevent
from locust import FastHttpUser, constant, events, task

from bench.browse.tally import Tally, write_stats_csv
from bench.catalog_queries import parameter_mix

MAX_FAILURES = 20  # a broken server answers fast: end the run rather than spin on it
MOVIE_LINK = re.compile(r'href="/cities/(\d+)/movies/(\d+)/"')
SHOW_LINK = re.compile(r'href="/shows/(\d+)/"')
DAY_LINK = re.compile(r'href="\?date=(\d{4}-\d{2}-\d{2})"')

PLAN = json.loads(Path(os.environ["BROWSE_PLAN"]).read_text())
CITIES = [SimpleNamespace(pk=pk, name=name) for pk, name in PLAN["cities"]]
CINEMAS = [SimpleNamespace(latitude=lat, longitude=long, postal_code=code) for lat, long, code in PLAN["cinemas"]]
CITY_IDS = [city.pk for city in CITIES]
AT = datetime.fromisoformat(PLAN["at"])
HOT = [SimpleNamespace(**hot_show) for hot_show in PLAN["hot_shows"]]  # counts: {"held": n, "booked": n}
JOURNEYS, WEIGHTS = zip(*PLAN["mix"].items(), strict=True)
NUMBERS = itertools.count()

TALLY = Tally(PLAN["slowest_kept"])
events.request.add_listener(TALLY.on_request)


@events.quitting.add_listener
def at_the_end(environment, **_):
    TALLY.write(PLAN["tally"], environment)
    write_stats_csv(environment, PLAN["stats"])


def loads_text(content):
    return content.decode(errors="replace")


class Visitor(FastHttpUser):
    """One virtual moviegoer or partner app: its random choices, its website session, its requests."""

    wait_time = constant(0)  # no think time between journeys; --think's is between requests
    default_headers = {"X-API-Key": PLAN["api_key"]}

    def on_start(self):
        number = PLAN["seed"] * 10_000 + PLAN["concurrency"] * 100 + next(NUMBERS)
        self.rng = random.Random(PLAN["seed"] * 1_000_003 + number)
        # The session cookie goes with the website's pages only (get's page=True), as before: no cookie jar.
        self.client.client.cookiejar = None
        # Redirects are answers other than a 200, not followed (Locust 2.37's allow_redirects=False is broken).
        self.client.client.redirect_response_codes = frozenset()
        self.session_cookie = None

    @task
    def journey(self):
        getattr(self, self.rng.choices(JOURNEYS, WEIGHTS)[0])()

    def get(self, call, url, params=None, *, page=False, read=bytes, check=None, context=None):
        """GET and count it; read(body) when it is a 200, else None (the failure noted). check(read's value):
        what is wrong with the answer, or None."""
        path = f"{url}?{urlencode(params)}" if params else url
        headers = {"Cookie": f"sessionid={self.session_cookie}"} if page and self.session_cookie else {}
        with self.client.get(path, name=call, headers=headers, catch_response=True, context=context or {}) as response:
            if response.status_code != 200:
                what = (
                    f"GET {path} -> {response.status_code}: {response.text[:300]}"
                    if response.status_code
                    else f"GET {path}: {type(response.error).__name__}: {response.error}"
                )
                response.failure(what)
                if TALLY.fail(what) == MAX_FAILURES:
                    gevent.spawn(self.environment.runner.quit)
                return None
            answer = read(response.content)
            wrong = check(answer) if check else None
            if wrong:
                response.failure(wrong)
                TALLY.wrong(wrong)
        if page:
            for header in response.headers.getlist("set-cookie"):
                cookie = SimpleCookie(header)
                if "sessionid" in cookie:
                    self.session_cookie = cookie["sessionid"].value
        if PLAN["think"]:
            gevent.sleep(self.rng.expovariate(1 / PLAN["think"]))
        return answer

    def partner_search(self):
        kind, parameters = parameter_mix(
            self.rng, cities=CITIES, cinemas=CINEMAS, titles=PLAN["titles"], at=AT, sorting_orders=PLAN["orders"]
        )

        def check(answer):
            if len(answer["results"]) > parameters["results_per_page"]:
                return f"SearchMovies {parameters}: {len(answer['results'])} results on a page"
            return None

        answer = self.get(
            "SearchMovies", "/api/v1/movies/search", parameters, read=json.loads, check=check, context={"kind": kind}
        )
        if answer and answer["results"] and self.rng.random() < 0.5:
            show_id = self.rng.choice(answer["results"])["show_id"]
            if self.get("ShowDetail", f"/api/v1/shows/{show_id}") is not None and self.rng.random() < 0.6:
                self.get("SeatMap", f"/api/v1/shows/{show_id}/seats")

    def app_catalog(self):
        city_id = self.rng.choice(CITY_IDS)
        listed = self.get("CityMovies", f"/api/v1/cities/{city_id}/movies", read=json.loads)
        if listed is None:
            return
        listed = listed.get("results", listed) if isinstance(listed, dict) else listed
        if not listed:
            return
        movie_id = self.rng.choice(listed)["id"]
        shows = self.get("MovieShows", f"/api/v1/movies/{movie_id}/shows", {"city": city_id}, read=json.loads)
        if shows is None:
            return
        show_ids = [show["show_id"] for cinema in shows for show in cinema["shows"]]
        if show_ids:
            self.get("SeatMap", f"/api/v1/shows/{self.rng.choice(show_ids)}/seats")

    def page(self, call, url, params=None, check=None):
        return self.get(call, url, params, page=True, read=loads_text, check=check)

    def website(self):
        rng = self.rng
        if rng.random() < 0.1:
            self.session_cookie = None  # a new visitor: a new session row on their first page
        new_or_back_home = self.session_cookie is None or rng.random() < 0.2
        if new_or_back_home and self.page("page:home", "/") is None:
            return
        if rng.random() < 0.15:
            self.page("page:search", "/search/", {"q": rng.choice(PLAN["titles"]).split()[0]})
            return
        hot_show = rng.choice(HOT) if rng.random() < 1 / 3 else None
        city_id = hot_show.city_id if hot_show else rng.choice(CITY_IDS)
        city_page = self.page("page:city", f"/cities/{city_id}/")
        if city_page is None:
            return
        if hot_show:
            movie_id, params = hot_show.movie_id, {"date": hot_show.local_day}
        else:
            movies = MOVIE_LINK.findall(city_page)
            if not movies:
                return
            movie_id, params = int(rng.choice(movies)[1]), None
        url = f"/cities/{city_id}/movies/{movie_id}/"
        showtimes = self.page("page:movie_showtimes", url, params, check=hot_show and links_to(hot_show, url))
        if showtimes is None:
            return
        if not hot_show and rng.random() < 0.3:  # another day's showtimes
            showtimes = self.page("page:movie_showtimes", url, {"date": rng.choice(DAY_LINK.findall(showtimes))})
            if showtimes is None:
                return
        if hot_show:
            show_id = hot_show.show_id
        elif (show_ids := SHOW_LINK.findall(showtimes)) and rng.random() < 0.7:
            show_id = int(rng.choice(show_ids))
        else:
            return
        if hot_show:
            self.page("page:seat_map:hot", f"/shows/{show_id}/", check=page_shows(hot_show))
        else:
            self.page("page:seat_map", f"/shows/{show_id}/")

    def hot_seat_map_page(self):
        hot_show = self.rng.choice(HOT)
        if self.rng.random() < 0.1:
            self.session_cookie = None  # now and then a new visitor
        self.page("page:seat_map:hot", f"/shows/{hot_show.show_id}/", check=page_shows(hot_show))

    def hot_seat_map(self):
        hot_show = self.rng.choice(HOT)
        call, url = ("SeatMap:hot", "/seats") if self.rng.random() < 0.7 else ("ShowDetail", "")
        url = f"/api/v1/shows/{hot_show.show_id}{url}"

        def check(answer):
            answered = {"held": answer["counts"]["held"], "booked": answer["counts"]["booked"]}
            return None if answered == hot_show.counts else f"{url}: counts {answered}, set up {hot_show.counts}"

        self.get(call, url, read=json.loads, check=check)


def links_to(hot_show, url):
    """A check of the hot show's showtimes page: it links to the show (unless its Regular seats are all gone)."""

    def check(html):
        linked = {int(show_id) for show_id in SHOW_LINK.findall(html)}
        if hot_show.show_id not in linked and hot_show.kind != "regular_full":
            return f"{url}?date={hot_show.local_day} has no link to hot show {hot_show.show_id}"
        return None

    return check


def page_shows(hot_show):
    """A check of the hot show's seat map page: as many held and booked seats as the setup made."""

    def check(html):
        on_page = {"held": html.count('data-status="held"'), "booked": html.count('data-status="booked"')}
        if on_page != hot_show.counts:
            return f"seat map page of show {hot_show.show_id}: {on_page}, set up {hot_show.counts}"
        return None

    return check
