"""send_to_groups: the services' after-commit notices, through the real Redis channel layer."""

import logging

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from bookings.services import Buyer, hold_seats
from tests.bookings.helpers import seat_ids
from tests.factories import make_hall, make_show
from ticketing.broadcast import send_to_groups
from ticketing.services import create_api_key
from waiting.models import Waiter
from waiting.services import join_waiting_line, leave_waiting_line


def test_every_message_reaches_its_group():
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

    assert async_to_sync(received)() == ({"type": "note", "text": "one"}, {"type": "note", "text": "two"})


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
