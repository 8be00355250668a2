"""A place in line, live: ws/waitlist/{waiter_id}/?session_id=, through the real ASGI application and Redis.

As in tests/bookings/test_live_seat_map.py, each async scenario runs with async_to_sync, service calls inside
go through database_sync_to_async, and the tests are transactional so that the after-commit nudges (and the
wake-up that serves the line, run eagerly by Celery in tests) really happen.
"""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from bookings.services import cancel_hold, hold_seats
from tests.bookings.helpers import seat_ids
from tests.factories import make_hall, make_show
from ticketing.asgi import application
from ticketing.buyers import Buyer
from waiting.models import Waiter
from waiting.serializers import waiter_body
from waiting.services import join_waiting_line, leave_waiting_line

pytestmark = pytest.mark.django_db(transaction=True)

PUSH_WAIT = 5  # a receive returns as soon as the push arrives; only a missing push waits this long
HOLDER = Buyer(None, "holder")


def full_line(*sessions, seats=2):
    """A show whose every seat is held by HOLDER, with these sessions waiting for a seat each, in order."""
    show = make_show(hall=make_hall(plan="R" * seats))
    hold = hold_seats(buyer=HOLDER, show=show, seat_ids=seat_ids(show))
    waiters = [join_waiting_line(buyer=Buyer(None, session), show=show, seats_wanted=1)[0] for session in sessions]
    return hold, waiters


def watch(waiter, *, session_id=None, origin=b"http://127.0.0.1"):
    session_id = waiter.session_id if session_id is None else session_id
    return WebsocketCommunicator(
        application,
        f"/ws/waitlist/{waiter.pk}/?session_id={session_id}",
        headers=[(b"origin", origin), (b"host", b"127.0.0.1")],
    )


def run(scenario):
    async_to_sync(scenario)()


async def connected(waiter):
    """A socket on the waiter, and the body it was sent on connecting."""
    socket = watch(waiter)
    accepted, _ = await socket.connect(timeout=3)
    assert accepted
    return socket, await socket.receive_json_from(timeout=PUSH_WAIT)


def test_on_connect_it_sends_the_waiters_current_state():
    _, (first, second) = full_line("ann", "ben")

    async def scenario():
        socket, hello = await connected(second)
        try:
            assert hello == await database_sync_to_async(waiter_body)(second)
            assert (hello["status"], hello["position"], hello["version"]) == ("Waiting", 2, second.version)
            assert await socket.receive_nothing(timeout=0.1)
        finally:
            await socket.disconnect()

    run(scenario)


def test_seats_coming_free_push_seats_available_with_the_hold_made_for_it():
    hold, (head,) = full_line("ann")

    async def scenario():
        socket, hello = await connected(head)
        try:
            # The holder cancels; the line is served after commit, then the waiter is nudged.
            await database_sync_to_async(cancel_hold)(buyer=HOLDER, reservation_id=hold.pk)
            pushed = await socket.receive_json_from(timeout=PUSH_WAIT)
            assert pushed["status"] == "Seats Available"
            assert pushed["position"] is None and pushed["version"] > hello["version"]
            served = await database_sync_to_async(Waiter.objects.get)(pk=head.pk)
            assert pushed["reservation_id"] == str(served.reservation_id)
            assert await socket.receive_nothing(timeout=0.2)  # the line's own nudge changed nothing more
        finally:
            await socket.disconnect()

    run(scenario)


def test_someone_ahead_leaving_pushes_the_new_position():
    _, (first, second) = full_line("ann", "ben")

    async def scenario():
        socket, hello = await connected(second)
        try:
            await database_sync_to_async(leave_waiting_line)(buyer=Buyer(None, "ann"), waiter_id=first.pk)
            pushed = await socket.receive_json_from(timeout=PUSH_WAIT)
            assert (pushed["status"], pushed["position"]) == ("Waiting", 1)
            assert pushed["version"] == hello["version"] + 1
        finally:
            await socket.disconnect()

    run(scenario)


def test_leaving_pushes_cancelled_to_the_one_who_left():
    _, (waiter,) = full_line("ann")

    async def scenario():
        socket, _ = await connected(waiter)
        try:
            await database_sync_to_async(leave_waiting_line)(buyer=Buyer(None, "ann"), waiter_id=waiter.pk)
            pushed = await socket.receive_json_from(timeout=PUSH_WAIT)
            assert (pushed["status"], pushed["position"]) == ("Cancelled", None)
        finally:
            await socket.disconnect()

    run(scenario)


def test_a_change_behind_it_pushes_nothing():
    """The line moved (the nudge reaches everyone in it) but the head's version did not: nothing is sent."""
    _, (first, second) = full_line("ann", "ben")

    async def scenario():
        socket, _ = await connected(first)
        try:
            await database_sync_to_async(leave_waiting_line)(buyer=Buyer(None, "ben"), waiter_id=second.pk)
            assert await socket.receive_nothing(timeout=0.5)
        finally:
            await socket.disconnect()

    run(scenario)


@pytest.mark.parametrize("session_id", ["ben", "", "ann%00"])
def test_another_session_is_refused_with_4404(session_id):
    _, (waiter,) = full_line("ann")

    async def scenario():
        connected, code = await watch(waiter, session_id=session_id).connect(timeout=3)
        assert not connected
        assert code == 4404

    run(scenario)


def test_an_unknown_waiter_is_refused_with_4404():
    _, (waiter,) = full_line("ann")
    waiter.pk = "00000000-0000-4000-8000-000000000000"

    async def scenario():
        connected, code = await watch(waiter).connect(timeout=3)
        assert not connected
        assert code == 4404

    run(scenario)


def test_a_page_from_another_site_is_refused():
    _, (waiter,) = full_line("ann")

    async def scenario():
        connected, _ = await watch(waiter, origin=b"https://evil.example").connect(timeout=3)
        assert not connected

    run(scenario)


def test_what_a_client_sends_is_ignored_and_the_socket_keeps_pushing():
    _, (first, second) = full_line("ann", "ben")

    async def scenario():
        socket, _ = await connected(second)
        try:
            await socket.send_json_to({"type": "waiter.changed", "waiter_id": str(second.pk)})
            await socket.send_to(text_data="{not json")
            await socket.send_to(bytes_data=b"\x00\x01")
            assert await socket.receive_nothing(timeout=0.3)
            await database_sync_to_async(leave_waiting_line)(buyer=Buyer(None, "ann"), waiter_id=first.pk)
            assert (await socket.receive_json_from(timeout=PUSH_WAIT))["position"] == 1
        finally:
            await socket.disconnect()

    run(scenario)
