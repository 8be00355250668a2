"""What a seat change costs does not grow with its watchers: one small channel-layer write per web process, and
a show's changes merged, at most one message per ~50 ms per sending process (ticketing.broadcast, ticketing.fanout).

Real processes, real sockets and the real Redis channel layer: the writes are counted with Redis MONITOR, which
also shows the commands the channel layer's scripts run.
"""

import asyncio
import contextlib
import json
import threading
import time

import pytest
import redis
import websockets
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.utils import timezone

from bookings.availability import seat_states
from bookings.consumers import push_seat_changes, show_group
from bookings.services import hold_seats
from tests.bookings.helpers import seat_ids
from tests.bookings.test_live_seat_map import PUSH_WAIT, connected_watcher
from tests.conftest import serving
from tests.factories import make_hall, make_show
from ticketing.broadcast import COALESCE_SECONDS
from ticketing.buyers import Buyer

pytestmark = pytest.mark.django_db(transaction=True)

WATCHERS_PER_PROCESS = 100
HOLDS = 6
# A message naming every watcher of a process (100 channel names of ~50 characters) is well past this; one
# seat message with its group is a few hundred characters, escaped as MONITOR prints it.
SMALL_WRITE = 1500


def layer_prefix():
    return django_settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]


def group_key(show):
    return f"{layer_prefix()}:group:{show_group(show.pk)}"


@contextlib.contextmanager
def redis_commands():
    """Every command run on the tests' Redis database while the block runs (MONITOR: scripts' commands too), as
    dicts of redis-py's Monitor ("client_type" is "lua" inside a script, "command" the words joined by spaces)."""
    client = redis.Redis.from_url(django_settings.REDIS_URL, decode_responses=True)
    database = client.connection_pool.connection_kwargs.get("db", 0)
    seen = []
    monitor = client.monitor()
    monitor.__enter__()

    def read():
        with contextlib.suppress(Exception):  # the block's end closes the connection
            while True:
                command = monitor.next_command()
                if command["db"] == database:
                    seen.append(command)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield seen
    finally:
        time.sleep(0.3)  # the last commands' lines on their way
        monitor.__exit__()
        reader.join(timeout=5)
        client.close()


def message_writes(commands):
    """The channel layer's writes of messages into its processes' channels: each a ZADD run by group_send's
    script into a process's key (its non-local channel name ends with "!"; "$inflight" keys are receipts)."""
    writes = []
    for command in commands:
        words = command["command"].split(" ", 2)
        if command["client_type"] != "lua" or words[0] != "ZADD":
            continue
        if words[1].startswith(f"{layer_prefix()}specific.") and words[1].endswith("!"):
            writes.append((words[1], len(command["command"])))
    return writes


def group_sends(commands, show):
    """group_send reads the group's members once per message sent to it."""
    return [command for command in commands if command["command"] == f"ZRANGE {group_key(show)} 0 -1"]


async def watch_over_websocket(url, show):
    socket_url = url.replace("http://", "ws://") + f"/ws/shows/{show.pk}/"
    socket = await websockets.connect(socket_url, origin=url, open_timeout=30)
    greeting = json.loads(await socket.recv())
    assert greeting["type"] == "version"
    return socket


async def messages_until(socket, wanted):
    """The messages read until every seat of `wanted` ({seat: version}) has been seen at its version or newer."""
    seen, messages = {}, []
    while any(seen.get(seat, -1) < version for seat, version in wanted.items()):
        message = json.loads(await asyncio.wait_for(socket.recv(), PUSH_WAIT))
        messages.append(message)
        for change in message["changes"]:
            seen[change["id"]] = max(seen.get(change["id"], -1), change["version"])
    return messages


def test_watchers_on_two_processes_each_get_every_change_with_one_small_write_per_process_per_send(settings):
    show = make_show(hall=make_hall(plan="R" * 10))
    seats = seat_ids(show)[:HOLDS]
    members = redis.Redis.from_url(django_settings.REDIS_URL)

    with serving(settings, workers=1) as (first, _), serving(settings, workers=1) as (second, _):

        async def scenario():
            sockets = await asyncio.gather(
                *(watch_over_websocket(url, show) for url in (first, second) for _ in range(WATCHERS_PER_PROCESS))
            )
            try:
                listening = members.zcard(group_key(show))
                with redis_commands() as commands:
                    # Holds in quick succession, each its own transaction and after-commit push.
                    for number, seat in enumerate(seats):
                        await database_sync_to_async(hold_seats)(
                            buyer=Buyer(None, f"buyer-{number}"), show=show, seat_ids=[seat]
                        )
                    _, versions, _ = await database_sync_to_async(seat_states)(show, timezone.now())
                    wanted = {seat: versions[seat] for seat in seats}
                    heard = await asyncio.gather(*(messages_until(socket, wanted) for socket in sockets))
                    await asyncio.sleep(0.3)  # nothing more is sent: the last send's writes are all seen
                return listening, wanted, heard, list(commands)
            finally:
                await asyncio.gather(*(socket.close() for socket in sockets))

        listening, wanted, heard, commands = async_to_sync(scenario)()

    sends = group_sends(commands, show)
    writes = message_writes(commands)
    assert listening == 2  # one member per process, not one per socket
    assert 1 <= len(sends) <= HOLDS
    assert len(writes) == 2 * len(sends)  # one write per process for each message sent
    assert len({key for key, _ in writes}) == 2
    assert max(size for _, size in writes) < SMALL_WRITE
    for messages in heard:
        assert len(messages) == len(sends)  # each socket got each message once
        assert all(
            message["version"] == max(change["version"] for change in message["changes"]) for message in messages
        )
        newest = {}
        for message in messages:
            for change in message["changes"]:
                assert change["status"] == "held"
                newest[change["id"]] = max(newest.get(change["id"], -1), change["version"])
        assert newest == wanted


def test_negative_control_the_count_sees_a_member_per_socket_and_writes_that_name_every_socket(show):
    """What the test above would see of the old design (every socket's own channel in the group): its
    assertions on members and write sizes would fail."""
    layer = get_channel_layer()
    group = show_group(show.pk)

    async def old_design():
        channels = [await layer.new_channel() for _ in range(WATCHERS_PER_PROCESS)]
        for channel in channels:
            await layer.group_add(group, channel)
        try:
            listening = redis.Redis.from_url(django_settings.REDIS_URL).zcard(group_key(show))
            with redis_commands() as commands:
                await layer.group_send(group, {"type": "seats.changed", "message": {"type": "seats"}})
            return listening, list(commands)
        finally:
            for channel in channels:
                await layer.group_discard(group, channel)
            # Nobody reads that message: it must not reach a later test's reader in this process.
            redis.Redis.from_url(django_settings.REDIS_URL).delete(layer.prefix + layer.non_local_name(channels[0]))

    listening, commands = async_to_sync(old_design)()

    writes = message_writes(commands)
    assert listening == WATCHERS_PER_PROCESS
    assert len(writes) == 1  # one process: channels_redis writes once per process already...
    assert writes[0][1] > 5 * SMALL_WRITE  # ...but that write names all its sockets' channels


def test_a_stream_of_changes_reaches_a_watcher_merged_at_most_once_per_window_each_seat_at_its_newest_version(show):
    """Request threads push one change after another, some with versions older than one already pushed (a
    transaction that committed earlier but pushed later): the watcher gets few messages, and applying them
    the client's way (a change only if newer) leaves every seat at its newest version."""
    seats = seat_ids(show)
    statuses = ("held", "available", "booked")
    pushes = []
    for number in range(60):
        seat = seats[number % len(seats)]
        pushes.append((seat, statuses[number % 3], 1000 + number))
        if number % 5 == 4:
            pushes.append((seat, "available", 1000 + number - 7))  # older than what this seat already had
    newest = {}
    for seat, status, version in pushes:
        if version > newest.get(seat, (-1, None))[0]:
            newest[seat] = (version, status)

    def push_one_by_one():
        started = time.monotonic()
        for seat, status, version in pushes:
            push_seat_changes(show.pk, [(seat, status, version)])
            time.sleep(0.004)
        return time.monotonic() - started

    async def scenario():
        watcher, _ = await connected_watcher(show)
        try:
            pushing = await asyncio.to_thread(push_one_by_one)
            messages = []
            while not await watcher.receive_nothing(timeout=0.5):
                messages.append(await watcher.receive_json_from())
            return pushing, messages
        finally:
            await watcher.disconnect()

    pushing, messages = async_to_sync(scenario)()

    assert 2 <= len(messages) <= pushing / COALESCE_SECONDS + 2  # not one per push (72 of them)
    seen = {}
    for message in messages:
        assert message["type"] == "seats"
        assert message["version"] == max(change["version"] for change in message["changes"])
        for change in message["changes"]:
            if change["version"] > seen.get(change["id"], (-1, None))[0]:
                seen[change["id"]] = (change["version"], change["status"])
    assert seen == newest


def test_one_burst_of_changes_is_one_message_with_each_seats_newest_version(show):
    """Changes pushed while the show's last message is under COALESCE_SECONDS old wait for the next one, merged."""
    first, second, third = seat_ids(show)[:3]

    async def scenario():
        watcher, _ = await connected_watcher(show)
        try:
            await asyncio.to_thread(push_seat_changes, show.pk, [(first, "held", 500)])
            lead = await watcher.receive_json_from(timeout=PUSH_WAIT)

            def burst():
                push_seat_changes(show.pk, [(second, "held", 505), (third, "held", 505)])
                push_seat_changes(show.pk, [(second, "available", 503)])  # older: changes nothing
                push_seat_changes(show.pk, [(first, "available", 506)])
                push_seat_changes(show.pk, [(third, "booked", 507), (first, "held", 501)])

            await asyncio.to_thread(burst)
            merged = await watcher.receive_json_from(timeout=PUSH_WAIT)
            return lead, merged, await watcher.receive_nothing(timeout=0.3)
        finally:
            await watcher.disconnect()

    # The burst must come within the window the lead message opened; on a machine too busy for that, its first
    # change goes alone and the rest follow merged: try again (a burst that never merges fails every try).
    for _ in range(3):
        lead, merged, nothing_more = async_to_sync(scenario)()
        if nothing_more:
            break
    assert lead == {"type": "seats", "version": 500, "changes": [{"id": first, "status": "held", "version": 500}]}
    assert nothing_more
    assert merged["version"] == 507
    assert sorted(merged["changes"], key=lambda change: change["id"]) == sorted(
        [
            {"id": second, "status": "held", "version": 505},
            {"id": third, "status": "booked", "version": 507},
            {"id": first, "status": "available", "version": 506},
        ],
        key=lambda change: change["id"],
    )


def test_a_server_we_start_sends_seat_frames_uncompressed_even_to_a_client_offering_compression(settings):
    """Compressed, one push to 1,000 sockets is 1,000 compressions (ticketing.proxies.WEBSOCKET_OPTIONS)."""
    show = make_show(hall=make_hall(plan="R" * 4))

    with serving(settings, workers=1) as (url, _):

        async def negotiated():
            async with websockets.connect(
                url.replace("http://", "ws://") + f"/ws/shows/{show.pk}/", origin=url, compression="deflate"
            ) as socket:
                return socket.response.headers.get("Sec-WebSocket-Extensions")

        assert async_to_sync(negotiated)() is None
