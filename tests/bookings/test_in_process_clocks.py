"""The single-process demo runs beat's schedule in a thread of its web process."""

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import Reservation
from bookings.services import hold_seats
from bookings.tasks import run_beat_in_process
from tests.bookings.helpers import seat_ids
from ticketing.buyers import Buyer


@pytest.mark.django_db(transaction=True)
def test_the_in_process_beat_expires_a_lapsed_hold_within_seconds(show):
    hold = hold_seats(
        buyer=Buyer(None, "alice"), show=show, seat_ids=seat_ids(show)[:1], at=timezone.now() - timedelta(minutes=6)
    )
    stop = threading.Event()
    clocks = threading.Thread(target=run_beat_in_process, args=(stop,))
    clocks.start()
    try:
        deadline = time.monotonic() + 10
        while Reservation.objects.get(pk=hold.pk).status != "Expired" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        clocks.join(timeout=10)
    assert Reservation.objects.get(pk=hold.pk).status == "Expired"
    assert not clocks.is_alive()
