"""A process listens to a group once for all its sockets and polls (ticketing.fanout), through the real ASGI
application and the real Redis channel layer; and it keeps listening when memberships expire or Redis fails."""

import asyncio

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings as django_settings

from bookings.consumers import MISSED_CHANGES_CLOSE_CODE, push_seat_changes
from bookings.services import hold_seats
from tests.bookings.helpers import seat_ids
from tests.bookings.test_live_seat_map import PUSH_WAIT, connected_watcher, next_change
from tests.bookings.test_seat_pushes_per_process import group_key
from tests.waiting.test_waitlist_socket import connected, full_line
from ticketing.buyers import Buyer
from waiting.services import leave_waiting_line, line_group

pytestmark = pytest.mark.django_db(transaction=True)


def redis_client():
    return redis.Redis.from_url(django_settings.REDIS_URL)


def test_fifty_seat_maps_in_one_process_are_one_member_of_the_shows_group_until_the_last_one_goes(show, bob):
    seats = seat_ids(show)[:2]

    async def scenario():
        watchers = [(await connected_watcher(show))[0] for _ in range(50)]
        members = redis_client().zrange(group_key(show), 0, -1)
        await database_sync_to_async(hold_seats)(buyer=bob, show=show, seat_ids=seats)
        for watcher in watchers:
            await next_change(watcher, seats, "held")
        for watcher in watchers[:-1]:
            await watcher.disconnect()
        still_member = redis_client().exists(group_key(show))
        await watchers[-1].disconnect()
        return members, still_member, redis_client().exists(group_key(show))

    members, still_member_with_one_watcher, member_with_none = async_to_sync(scenario)()

    assert len(members) == 1
    assert still_member_with_one_watcher
    assert not member_with_none


def test_the_waiting_pages_sockets_of_a_show_share_their_processs_one_membership_of_the_line():
    _, waiters = full_line("ann", "ben", "cat")

    async def scenario():
        sockets = [(await connected(waiter))[0] for waiter in waiters[1:]]
        try:
            members = redis_client().zcard(f"{group_key_prefix()}:group:{line_group(waiters[0].show_id)}")
            await database_sync_to_async(leave_waiting_line)(buyer=Buyer(None, "ann"), waiter_id=waiters[0].pk)
            moved = [(await socket.receive_json_from(timeout=PUSH_WAIT))["position"] for socket in sockets]
            return members, moved
        finally:
            for socket in sockets:
                await socket.disconnect()

    members, moved = async_to_sync(scenario)()

    assert members == 1
    assert moved == [1, 2]


def group_key_prefix():
    return django_settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]


@pytest.fixture
def short_group_expiry(settings):
    """channels_redis forgets a member this long after it joined (a day, unless configured)."""
    layers = {alias: {**config, "CONFIG": dict(config["CONFIG"])} for alias, config in settings.CHANNEL_LAYERS.items()}
    layers["default"]["CONFIG"]["group_expiry"] = 2
    settings.CHANNEL_LAYERS = layers


def test_a_process_renews_its_membership_before_the_channel_layer_forgets_it(short_group_expiry, show):
    """A show watched on a process for longer than the group expiry (a day in production) is still heard."""
    seat = seat_ids(show)[0]

    async def scenario():
        watcher, _ = await connected_watcher(show)
        try:
            await asyncio.sleep(3)  # past the 2 s expiry of the membership made on connecting
            await asyncio.to_thread(push_seat_changes, show.pk, [(seat, "held", 10**6)])
            return await watcher.receive_json_from(timeout=PUSH_WAIT)
        finally:
            await watcher.disconnect()

    pushed = async_to_sync(scenario)()

    assert pushed["changes"] == [{"id": seat, "status": "held", "version": 10**6}]


def kill_the_connections_waiting_for_messages():
    """Cut the connections blocked reading a channel of the tests' Redis database (this process's reader: the
    only one in the test), as a Redis restart would."""
    client = redis_client()
    database = client.connection_pool.connection_kwargs.get("db", 0)
    readers = [c["id"] for c in client.client_list() if c["cmd"] == "bzpopmin" and int(c["db"]) == database]
    for reader in readers:
        client.client_kill_filter(_id=reader)
    return len(readers)


def test_when_the_channel_layer_fails_seat_maps_close_to_re_read_and_the_process_joins_its_groups_again(show, bob):
    """Redis restarted empty: the process's memberships are gone and messages were lost. A seat map is closed
    (1012) so that its page reconnects and re-reads; a waiting page's socket re-reads and stays; the process
    joins its groups again, so the socket that stayed hears the next change."""
    _, (ann, ben) = full_line("ann", "ben")
    line_key = f"{group_key_prefix()}:group:{line_group(ann.show_id)}"

    async def scenario():
        watcher, _ = await connected_watcher(show)
        waiting, _ = await connected(ben)
        try:
            redis_client().delete(group_key(show), line_key)  # what a restart without saving loses
            killed = await asyncio.to_thread(kill_the_connections_waiting_for_messages)
            closed = await watcher.receive_output(timeout=PUSH_WAIT)
            deadline = asyncio.get_running_loop().time() + 10
            while not redis_client().exists(line_key) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
            await database_sync_to_async(leave_waiting_line)(buyer=Buyer(None, "ann"), waiter_id=ann.pk)
            moved = await waiting.receive_json_from(timeout=PUSH_WAIT)
            return killed, closed, moved
        finally:
            await watcher.disconnect()
            await waiting.disconnect()

    killed, closed, moved = async_to_sync(scenario)()

    assert killed >= 1
    assert closed == {"type": "websocket.close", "code": MISSED_CHANGES_CLOSE_CODE}
    assert (moved["status"], moved["position"]) == ("Waiting", 1)
