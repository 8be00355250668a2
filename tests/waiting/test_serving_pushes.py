"""A serving batch reaches the live seat maps as one push, through the real ASGI application and Redis."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from bookings.services import cancel_hold, hold_seats
from tests.bookings.helpers import seat_ids
from tests.bookings.test_live_seat_map import PUSH_WAIT, connected_watcher
from tests.factories import make_hall, make_show
from ticketing.buyers import Buyer
from waiting.models import Waiter
from waiting.services import join_waiting_line, line_group

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_waiters_one_batch_seats_are_pushed_in_one_message_each_seat_with_its_version():
    show = make_show(hall=make_hall(plan="RRRR"))
    hold = hold_seats(buyer=Buyer(None, "holder"), show=show, seat_ids=seat_ids(show))
    waiters = [join_waiting_line(buyer=Buyer(None, f"waiter-{n}"), show=show, seats_wanted=1)[0] for n in range(4)]

    async def scenario():
        watcher, _ = await connected_watcher(show)
        try:
            # The cancel frees the 4 seats; its wake-up serves the 4 waiters in one batch. Both push after
            # commit, and pushes of a show within ~50 ms of each other go out merged: one message or two.
            await database_sync_to_async(cancel_hold)(buyer=Buyer(None, "holder"), reservation_id=hold.pk)
            messages = [await watcher.receive_json_from(timeout=PUSH_WAIT)]
            while not await watcher.receive_nothing(timeout=0.5):
                messages.append(await watcher.receive_json_from())
            return messages
        finally:
            await watcher.disconnect()

    messages = async_to_sync(scenario)()

    assert len(messages) <= 2
    if len(messages) == 2:
        assert {change["status"] for change in messages[0]["changes"]} == {"available"}
    served = messages[-1]
    assert sorted(change["id"] for change in served["changes"]) == sorted(seat_ids(show))
    assert {change["status"] for change in served["changes"]} == {"held"}
    versions = [change["version"] for change in served["changes"]]
    assert len(set(versions)) == 4 and served["version"] == max(versions)  # each hold kept its own version
    assert set(Waiter.objects.filter(pk__in=[w.pk for w in waiters]).values_list("status", flat=True)) == {
        "Seats Available"
    }


def test_the_line_hears_which_waiters_changed_status_so_only_their_long_polls_read_again():
    show = make_show(hall=make_hall(plan="RR"))
    hold = hold_seats(buyer=Buyer(None, "holder"), show=show, seat_ids=seat_ids(show))
    waiters = [join_waiting_line(buyer=Buyer(None, f"waiter-{n}"), show=show, seats_wanted=1)[0] for n in range(3)]
    layer = get_channel_layer()

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add(line_group(show.pk), channel)
        try:
            await database_sync_to_async(cancel_hold)(buyer=Buyer(None, "holder"), reservation_id=hold.pk)
            heard = [await asyncio.wait_for(layer.receive(channel), PUSH_WAIT)]
            while (more := await _received_within(layer, channel, 0.5)) is not None:
                heard.append(more)
            return heard
        finally:
            await layer.group_discard(line_group(show.pk), channel)

    heard = async_to_sync(scenario)()

    named = [waiter_id for message in heard for waiter_id in message["changed"]]
    assert {message["type"] for message in heard} == {"line.moved"}
    assert sorted(named) == sorted(str(waiter.pk) for waiter in waiters[:2])  # the third only moved up
    assert Waiter.objects.get(pk=waiters[2].pk).status == "Waiting"


async def _received_within(layer, channel, seconds):
    try:
        return await asyncio.wait_for(layer.receive(channel), seconds)
    except TimeoutError:
        return None
