"""send_to_groups: the services' after-commit notices, through the real Redis channel layer."""

import asyncio
import contextlib
import logging
import subprocess
import sys
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from bookings.services import hold_seats
from tests.bookings.helpers import seat_ids
from tests.factories import make_hall, make_show
from ticketing.broadcast import send_to_groups
from ticketing.buyers import Buyer
from ticketing.services import create_api_key
from waiting.models import Waiter
from waiting.services import join_waiting_line, leave_waiting_line


def test_every_message_reaches_its_group_and_names_it():
    layer = get_channel_layer()

    async def listen_send_and_receive():
        first, second = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("broadcast-test-first", first)
        await layer.group_add("broadcast-test-second", second)
        return first, second

    first, second = async_to_sync(listen_send_and_receive)()
    send_to_groups(
        [
            ("broadcast-test-first", {"type": "note", "text": "one"}),
            ("broadcast-test-second", {"type": "note", "text": "two"}),
        ]
    )

    async def received():
        return await layer.receive(first), await layer.receive(second)

    assert async_to_sync(received)() == (
        {"type": "note", "text": "one", "group": "broadcast-test-first"},
        {"type": "note", "text": "two", "group": "broadcast-test-second"},
    )


def test_nothing_to_send_sends_nothing():
    send_to_groups([])  # no event loop, no connection; and no error


@pytest.fixture
def unreachable_channel_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},  # nothing listens on port 1
        }
    }


def test_an_unreachable_channel_layer_is_logged_not_raised(unreachable_channel_layer, caplog):
    with caplog.at_level(logging.WARNING, logger="ticketing.broadcast"):
        send_to_groups([("broadcast-test-first", {"type": "note"})])
    assert "Could not push" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_change_commits_even_when_its_notices_cannot_be_sent(unreachable_channel_layer, caplog):
    """The database holds the truth: a waiter leaves the line though nobody could be told at once."""
    api_key, _ = create_api_key(name="partner")
    show = make_show(hall=make_hall(plan="R"))
    hold_seats(buyer=Buyer(api_key.pk, "holder"), show=show, seat_ids=seat_ids(show))
    waiter, _ = join_waiting_line(buyer=Buyer(api_key.pk, "ann"), show=show, seats_wanted=1)

    with caplog.at_level(logging.WARNING, logger="ticketing.broadcast"):
        left = leave_waiting_line(buyer=Buyer(api_key.pk, "ann"), waiter_id=waiter.pk)

    assert left.status == "Cancelled"
    assert Waiter.objects.get(pk=waiter.pk).status == "Cancelled"
    assert "Could not push" in caplog.text


# A process that pushes two changes of one group, the second inside the window the first opened (made 10 s
# long here, so that it surely waits), then ends: normally, or killed outright (os._exit skips atexit).
PUSHING_PROCESS = """
import os, sys, time

import django

django.setup()
from ticketing import broadcast

broadcast.COALESCE_SECONDS = 10
group, ending = sys.argv[1], sys.argv[2]


def message(changes):
    return {"type": "note", "changes": sorted(changes)}


broadcast.send_coalesced(group, {"first": (1, "x")}, message)
time.sleep(1)  # the first goes out at once
broadcast.send_coalesced(group, {"second": (2, "y")}, message)
if ending == "killed":
    os._exit(0)
"""


def changes_heard_from_a_process_that(ending):
    layer = get_channel_layer()
    group = f"broadcast-test-{uuid.uuid4().hex}"

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        try:
            await asyncio.to_thread(
                subprocess.run, [sys.executable, "-c", PUSHING_PROCESS, group, ending], check=True, timeout=60
            )
            heard = []
            with contextlib.suppress(TimeoutError):
                while True:
                    heard += (await asyncio.wait_for(layer.receive(channel), 1))["changes"]
            return heard
        finally:
            await layer.group_discard(group, channel)

    return async_to_sync(scenario)()


def test_a_process_that_exits_sends_the_changes_still_waiting_out_their_window():
    assert changes_heard_from_a_process_that("exits") == ["first", "second"]


def test_negative_control_a_process_killed_outright_loses_the_changes_waiting_out_their_window():
    """The bound of what a crash loses: what the process got within the window before it died."""
    assert changes_heard_from_a_process_that("killed") == ["first"]
