"""A serving batch reaches the live seat maps as one push, through the real ASGI application and Redis."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from bookings.services import Buyer, cancel_hold, hold_seats
from tests.bookings.helpers import seat_ids
from tests.bookings.test_live_seat_map import PUSH_WAIT, connected_watcher
from tests.factories import make_hall, make_show
from waiting.models import Waiter
from waiting.services import join_waiting_line

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_waiters_one_batch_seats_are_pushed_in_one_message_each_seat_with_its_version():
    show = make_show(hall=make_hall(plan="RRRR"))
    hold = hold_seats(buyer=Buyer(None, "holder"), show=show, seat_ids=seat_ids(show))
    waiters = [join_waiting_line(buyer=Buyer(None, f"waiter-{n}"), show=show, seats_wanted=1)[0] for n in range(4)]

    async def scenario():
        watcher, _ = await connected_watcher(show)
        try:
            # The cancel frees the 4 seats (one push); its wake-up serves the 4 waiters in one batch.
            await database_sync_to_async(cancel_hold)(buyer=Buyer(None, "holder"), reservation_id=hold.pk)
            freed = await watcher.receive_json_from(timeout=PUSH_WAIT)
            served = await watcher.receive_json_from(timeout=PUSH_WAIT)
            assert await watcher.receive_nothing(timeout=0.5)
            return freed, served
        finally:
            await watcher.disconnect()

    freed, served = async_to_sync(scenario)()

    assert {change["status"] for change in freed["changes"]} == {"available"}
    assert sorted(change["id"] for change in served["changes"]) == sorted(seat_ids(show))
    assert {change["status"] for change in served["changes"]} == {"held"}
    versions = [change["version"] for change in served["changes"]]
    assert len(set(versions)) == 4 and served["version"] == max(versions)  # each hold kept its own version
    assert set(Waiter.objects.filter(pk__in=[w.pk for w in waiters]).values_list("status", flat=True)) == {
        "Seats Available"
    }
