"""Forwarding headers are believed only from the proxies the settings name (TICKETING_TRUSTED_PROXIES), nobody by
default, on every server we start: `make serve`'s uvicorn, `make run`'s Daphne (runserver) and the web processes
behind the shipped HAProxy.

The limit that leaned on it: one network address holds at most TICKETING_MAX_HELD_SEATS_PER_ADDRESS unpaid seats of
a show on the website. uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, so under `make serve`
each new X-Forwarded-For value sent from the machine got another 10 seats past the cap.

Real servers, real HTTP. The buyer connects from the machine itself (127.0.0.1), as in the report; behind HAProxy,
from 127.0.0.3 (any 127/8 address reaches the loopback), so its own address is told apart from HAProxy's 127.0.0.1.
"""

import contextlib
import os
import re
import sys

import httpx
import pytest
from django.conf import settings as django_settings

from bench.harness.balancer import stack_running
from bench.harness.processes import free_port, process_running, wait_until_url_answers
from bookings.models import Reservation
from tests import conftest
from tests.bookings.helpers import seat_ids
from tests.factories import make_hall, make_show
from tests.helpers import make_serve_running, stack_environment

pytestmark = pytest.mark.django_db(transaction=True)

LOOPBACK = "127.0.0.1"
CAP = 4  # seats per address; each session holds 2
FORGED = ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"]


@pytest.fixture
def show():
    return make_show(hall=make_hall(plan="RRRRRRRRRR\nRRRRRRRRRR"))


def hold_two_seats_as_a_new_buyer(url, show, pair, *, forwarded_for, from_address):
    """A new browser session (its own cookies) opens the seat map and holds two seats, sending X-Forwarded-For."""
    headers = {"X-Forwarded-For": forwarded_for}
    transport = httpx.HTTPTransport(local_address=from_address)
    with httpx.Client(base_url=url, transport=transport, headers=headers, timeout=30) as browser:
        page = browser.get(f"/shows/{show.pk}/")
        assert page.status_code == 200, page.text[:500]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return browser.post(f"/shows/{show.pk}/hold", data={"seats": pair, "csrfmiddlewaretoken": token})


def four_buyers_each_naming_another_address(url, show, *, from_address=LOOPBACK):
    seats = seat_ids(show)
    return [
        hold_two_seats_as_a_new_buyer(
            url, show, seats[2 * n : 2 * n + 2], forwarded_for=address, from_address=from_address
        )
        for n, address in enumerate(FORGED)
    ]


def held_addresses(show):
    return sorted(
        Reservation.objects.filter(show=show, status=Reservation.Status.RESERVED).values_list(
            "client_address", flat=True
        )
    )


@contextlib.contextmanager
def daphne_runserver(environment):
    """`make run`'s server: manage.py runserver (Daphne) on the test database, as scripts/run.sh starts it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    runserver_environment = {**os.environ, "DATABASE_URL": conftest.test_database_url(), "DJANGO_DEBUG": "1"}
    with (
        open(os.devnull, "wb") as quiet,
        process_running(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            environment={**runserver_environment, **environment},
            log=quiet,
        ) as server,
    ):
        wait_until_url_answers(f"{url}/api/v1/cities", server, "runserver", seconds=60)
        yield url


@contextlib.contextmanager
def uvicorn(environment):
    """uvicorn as the tests and benchmarks start it (tests.conftest.serving)."""
    with conftest.serving(django_settings, workers=1, environment=environment) as (url, _):
        yield url


@contextlib.contextmanager
def make_serve(environment):
    """`make serve` itself (scripts/run.sh: uvicorn with two workers, a Celery worker and beat); Ctrl-C stops it."""
    with make_serve_running(**environment) as (_, _, url):
        yield url


@pytest.mark.parametrize(
    "server", [make_serve, uvicorn, daphne_runserver], ids=["make serve", "uvicorn", "daphne (make run)"]
)
def test_new_x_forwarded_for_values_from_one_address_get_no_seats_past_its_cap(show, server):
    with server({"TICKETING_MAX_HELD_SEATS_PER_ADDRESS": str(CAP)}) as url:
        answers = four_buyers_each_naming_another_address(url, show)

    assert [answer.status_code for answer in answers] == [302, 302, 429, 429]
    assert "Too many seats" in answers[-1].text
    assert held_addresses(show) == [LOOPBACK, LOOPBACK]


def test_negative_control_a_server_that_trusts_the_buyers_address_is_walked_around(show):
    """Proves the test above would see the hole: trusting 127.0.0.1 as a proxy (uvicorn's own default) lets every
    forged X-Forwarded-For hold its own seats."""
    environment = {"TICKETING_MAX_HELD_SEATS_PER_ADDRESS": str(CAP), "TICKETING_TRUSTED_PROXIES": LOOPBACK}
    with uvicorn(environment) as url:
        answers = four_buyers_each_naming_another_address(url, show)

    assert [answer.status_code for answer in answers] == [302] * 4
    assert held_addresses(show) == FORGED


def test_behind_the_shipped_haproxy_the_buyers_own_address_counts_and_a_forged_one_does_not(show):
    """HAProxy (deploy/haproxy.cfg) appends the address it saw; the web processes trust HAProxy's alone."""
    environment = stack_environment(TICKETING_MAX_HELD_SEATS_PER_ADDRESS=str(CAP))
    with stack_running(web_processes=1, environment=environment) as stack:
        answers = four_buyers_each_naming_another_address(stack.url, show, from_address="127.0.0.3")

    assert [answer.status_code for answer in answers] == [302, 302, 429, 429]
    # The buyer's address as HAProxy saw it: not HAProxy's own (127.0.0.1), nor what the buyer claimed.
    assert held_addresses(show) == ["127.0.0.3", "127.0.0.3"]


def test_x_forwarded_proto_from_an_untrusted_peer_does_not_make_a_request_https(show):
    """The same rule for the scheme: with DJANGO_HTTPS on, only the named TLS proxy can say a request came over
    HTTPS; anyone else claiming it is redirected to HTTPS like any plain request."""
    environment = {"DJANGO_HTTPS": "1", "TICKETING_TRUSTED_PROXIES": "127.0.0.2"}
    with uvicorn(environment) as url:
        with httpx.Client(base_url=url) as untrusted:  # from 127.0.0.1
            claimed = untrusted.get("/", headers={"X-Forwarded-Proto": "https"})
        with httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address="127.0.0.2")) as proxy:
            vouched = proxy.get("/", headers={"X-Forwarded-Proto": "https"})
            plain = proxy.get("/", headers={"X-Forwarded-Proto": "http"})

    assert claimed.status_code == 301 and claimed.headers["Location"].startswith("https://")
    assert vouched.status_code == 200
    assert plain.status_code == 301
