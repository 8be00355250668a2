"""Who may open the site's WebSockets (ticketing.asgi.origins, API.md "Additions"): a program that sends no
Origin (a partner's server, an app) and a page of the site itself; never a page of another site, whose browser
names it in Origin. A socket to an unknown path or id is closed cleanly, Origin or not. Through the real ASGI
application and the Redis channel layer, as tests/bookings/test_live_seat_map.py.
"""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from bookings.services import hold_seats
from tests.bookings.helpers import seat_ids
from tests.factories import make_hall, make_show
from ticketing.asgi import application
from ticketing.buyers import Buyer
from waiting.services import join_waiting_line

pytestmark = pytest.mark.django_db(transaction=True)

NO_ORIGIN = None
OWN_SITE = [b"http://127.0.0.1", b"http://localhost:8000", b"https://localhost"]
FOREIGN = [b"https://evil.example", b"http://127.0.0.1.evil.example", b"null", b"", b"not a url"]


def handshake(path, *, origin=NO_ORIGIN, cookie=None):
    """Whether the socket was accepted, and its first frame (or the close code it was refused with)."""
    headers = [(b"host", b"127.0.0.1")]
    if origin is not None:
        headers.append((b"origin", origin))
    if cookie is not None:
        headers.append((b"cookie", cookie))

    async def connect():
        socket = WebsocketCommunicator(application, path, headers=headers)
        accepted, detail = await socket.connect(timeout=3)
        first = await socket.receive_json_from(timeout=3) if accepted else detail
        await socket.disconnect()
        return accepted, first

    return async_to_sync(connect)()


@pytest.fixture
def show(db):
    return make_show(hall=make_hall(plan="RR"))


def test_a_program_that_sends_no_origin_watches_the_seat_map(show):
    accepted, hello = handshake(f"/ws/shows/{show.pk}/")

    assert accepted and hello["type"] == "version" and hello["show_id"] == show.pk


@pytest.mark.parametrize("origin", OWN_SITE)
def test_a_page_of_the_site_itself_watches_it(show, origin):
    accepted, hello = handshake(f"/ws/shows/{show.pk}/", origin=origin)

    assert accepted and hello["type"] == "version"


@pytest.mark.parametrize("origin", FOREIGN)
def test_a_page_of_another_site_or_an_opaque_origin_is_refused(show, origin):
    accepted, _ = handshake(f"/ws/shows/{show.pk}/", origin=origin)

    assert not accepted


@pytest.mark.parametrize("origin", [NO_ORIGIN, OWN_SITE[0], FOREIGN[0]])
@pytest.mark.parametrize("path", ["/ws/nothing/", "/ws/shows/999999999/", "/ws/waitlist/not-a-waiter/", "/"])
def test_an_unknown_path_or_id_closes_the_handshake_cleanly(path, origin):
    accepted, _ = handshake(path, origin=origin)

    assert not accepted


def waiter_of_a_full_show(session_id):
    show = make_show(hall=make_hall(plan="R"))
    hold_seats(buyer=Buyer(None, "holder"), show=show, seat_ids=seat_ids(show))
    waiter, _ = join_waiting_line(buyer=Buyer(None, session_id), show=show, seats_wanted=1)
    return waiter


def test_a_program_follows_its_own_place_in_line_by_its_session_id():
    waiter = waiter_of_a_full_show("ann")

    accepted, body = handshake(f"/ws/waitlist/{waiter.pk}/?session_id=ann")

    assert accepted and body["waiter_id"] == str(waiter.pk) and body["status"] == "Waiting"


def test_without_its_session_id_no_cookie_opens_a_place_in_line():
    """The socket reads no cookie (the stack has no session or auth middleware): a connection without an Origin
    that carries the site's cookies but not the waiter's session_id is refused like any other."""
    waiter = waiter_of_a_full_show("ann")
    cookie = b"sessionid=ann; csrftoken=x"

    for path in (f"/ws/waitlist/{waiter.pk}/", f"/ws/waitlist/{waiter.pk}/?session_id=bob"):
        accepted, code = handshake(path, cookie=cookie)
        assert not accepted and code == 4404
