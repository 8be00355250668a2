"""The seat map's live channel, ws/shows/{id}/, through the real ASGI application and the Redis channel layer.

The scenarios are async (a WebSocket client) but pytest-asyncio is not used here: each test runs its scenario
with async_to_sync. Service calls inside go through database_sync_to_async, which runs them on the test's own
thread and database connection; the tests are transactional so that the services' on-commit pushes really run.
"""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from bookings.availability import seat_states
from bookings.providers import parse_card
from bookings.services import cancel_hold, hold_seats, pay_for_reservation
from ticketing.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
PUSH_WAIT = 5  # a receive returns as soon as the push arrives; only a missing push waits this long


def watch(show_id, *, origin=b"http://127.0.0.1"):
    return WebsocketCommunicator(
        application, f"/ws/shows/{show_id}/", headers=[(b"origin", origin), (b"host", b"127.0.0.1")]
    )


def run(scenario):
    async_to_sync(scenario)()


def seat_ids(show, count):
    return list(show.hall.seats.order_by("y", "x").values_list("pk", flat=True)[:count])


async def connected_watcher(show):
    """A client watching the show, and the seat-map version it was told on connecting."""
    watcher = watch(show.pk)
    connected, _ = await watcher.connect(timeout=3)
    assert connected
    hello = await watcher.receive_json_from(timeout=PUSH_WAIT)
    assert hello["type"] == "version"
    return watcher, hello["version"]


async def next_change(watcher, seats, status):
    """The next push, checked to change exactly these seats to `status`; returns its version."""
    message = await watcher.receive_json_from(timeout=PUSH_WAIT)
    version = message["version"]
    assert message["type"] == "seats"
    assert sorted(message["changes"], key=lambda change: change["id"]) == [
        {"id": seat_id, "status": status, "version": version} for seat_id in sorted(seats)
    ]
    return version


def test_a_watcher_is_told_the_seat_map_version_on_connect(show, alice):
    hold_seats(buyer=alice, show=show, seat_ids=seat_ids(show, 2))
    expected = seat_states(show, timezone.now())[2]
    assert expected > 0

    async def scenario():
        watcher = watch(show.pk)
        connected, _ = await watcher.connect(timeout=3)
        assert connected
        assert await watcher.receive_json_from(timeout=PUSH_WAIT) == {
            "type": "version",
            "show_id": show.pk,
            "version": expected,
        }
        await watcher.disconnect()

    run(scenario)


def test_another_buyers_hold_is_pushed_as_held_and_its_cancellation_as_available(show, bob):
    seats = seat_ids(show, 2)

    async def scenario():
        watcher, connect_version = await connected_watcher(show)
        try:
            hold = await database_sync_to_async(hold_seats)(buyer=bob, show=show, seat_ids=seats)
            held_version = await next_change(watcher, seats, "held")
            await database_sync_to_async(cancel_hold)(buyer=bob, reservation_id=hold.pk)
            freed_version = await next_change(watcher, seats, "available")
            assert connect_version < held_version < freed_version
            assert await watcher.receive_nothing(timeout=0.1)
        finally:
            await watcher.disconnect()

    run(scenario)


def test_paying_for_a_hold_is_pushed_as_booked(show, bob):
    seats = seat_ids(show, 3)

    async def scenario():
        watcher, connect_version = await connected_watcher(show)
        try:
            hold = await database_sync_to_async(hold_seats)(buyer=bob, show=show, seat_ids=seats)
            held_version = await next_change(watcher, seats, "held")
            await database_sync_to_async(pay_for_reservation)(buyer=bob, reservation_id=hold.pk, card=parse_card(CARD))
            booked_version = await next_change(watcher, seats, "booked")
            assert connect_version < held_version < booked_version
        finally:
            await watcher.disconnect()

    run(scenario)
    # What was pushed is what a client re-reading the seat map gets.
    statuses, versions, show_version = seat_states(show, timezone.now())
    assert statuses == dict.fromkeys(seats, "booked")
    assert show_version == max(versions.values())


def test_an_unknown_show_is_refused(show):
    async def scenario():
        watcher = watch(show.pk + 1000)
        connected, code = await watcher.connect(timeout=3)
        assert not connected
        assert code == 4404

    run(scenario)


def test_a_page_from_another_site_is_refused(show):
    async def scenario():
        watcher = watch(show.pk, origin=b"https://evil.example")
        connected, _ = await watcher.connect(timeout=3)
        assert not connected

    run(scenario)


def test_what_a_client_sends_reaches_nobody(show):
    async def scenario():
        talker, _ = await connected_watcher(show)
        listener, _ = await connected_watcher(show)
        try:
            await talker.send_json_to({"type": "seats", "version": 10**9, "changes": [{"id": 1, "status": "booked"}]})
            assert await listener.receive_nothing(timeout=0.3)
            assert await talker.receive_nothing(timeout=0.1)
        finally:
            await talker.disconnect()
            await listener.disconnect()

    run(scenario)


def test_a_malformed_frame_from_a_client_is_ignored_and_the_connection_stays_up(show, bob):
    seats = seat_ids(show, 1)

    async def scenario():
        watcher, version = await connected_watcher(show)
        try:
            await watcher.send_to(text_data="{not json")
            await watcher.send_to(bytes_data=b"\x00\x01")
            await database_sync_to_async(hold_seats)(buyer=bob, show=show, seat_ids=seats)
            assert await next_change(watcher, seats, "held") > version
        finally:
            await watcher.disconnect()

    run(scenario)


def test_an_idle_watcher_is_still_there_after_seven_quiet_seconds(show, bob):
    """Longer than the Redis client's read timeout: an idle socket must not be torn down by it."""
    seats = seat_ids(show, 1)

    async def scenario():
        import asyncio

        watcher, version = await connected_watcher(show)
        try:
            await asyncio.sleep(7)
            await database_sync_to_async(hold_seats)(buyer=bob, show=show, seat_ids=seats)
            assert await next_change(watcher, seats, "held") > version
        finally:
            await watcher.disconnect()

    run(scenario)
