"""The website's waiting page through Django's test client: join from the seat map, wait, leave, be served."""

import pytest
from django.test import Client

from bookings.services import cancel_hold
from tests.waiting.conftest import held_out_show
from ticketing.buyers import Buyer
from waiting.models import Waiter

pytestmark = pytest.mark.django_db


def join_on_page(client, show, seats_wanted=1):
    return client.post(f"/shows/{show.pk}/waitlist", {"seats_wanted": seats_wanted})


def test_joining_from_a_held_out_show_leads_to_the_waiting_page_with_the_place_in_line(client):
    show, _ = held_out_show(seats=3)
    Client().post(f"/shows/{show.pk}/waitlist", {"seats_wanted": 1})  # someone is ahead
    response = join_on_page(client, show, 2)
    waiter = Waiter.objects.get(place=2)
    assert response.status_code == 302 and response["Location"] == f"/waiting/{waiter.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert '<strong id="waiting-position">2</strong>' in page and "Leave the line" in page
    assert f'data-ws-path="/ws/waitlist/{waiter.pk}/?session_id={waiter.session_id}"' in page


def test_joining_when_seats_are_free_sends_the_buyer_back_to_choose_them(client, show):
    response = join_on_page(client, show, 2)
    assert response["Location"] == f"/shows/{show.pk}/" and not Waiter.objects.exists()
    assert "Enough seats are free now" in client.get(response["Location"]).content.decode()


def test_the_page_polls_its_waiter_as_json(client):
    show, _ = held_out_show(seats=2)
    join_on_page(client, show)
    waiter = Waiter.objects.get()
    body = client.get(f"/waiting/{waiter.pk}/poll").json()
    assert (body["status"], body["position"], body["version"]) == ("Waiting", 1, waiter.version)
    # Under the test client nothing holds the answer (HoldLongPolls is an ASGI middleware): it comes at once.
    held = client.get(f"/waiting/{waiter.pk}/poll", {"version": waiter.version, "wait": 30}).json()
    assert held == body


def test_leaving_cancels_the_place(client):
    show, _ = held_out_show(seats=2)
    join_on_page(client, show)
    waiter = Waiter.objects.get()
    response = client.post(f"/waiting/{waiter.pk}/leave")
    assert response["Location"] == f"/shows/{show.pk}/"
    waiter.refresh_from_db()
    assert waiter.status == "Cancelled"


def test_a_served_waiter_finds_its_seats_held_on_the_map(client, django_capture_on_commit_callbacks):
    show, holds = held_out_show(seats=2)
    join_on_page(client, show)
    with django_capture_on_commit_callbacks(execute=True):  # the line is served after the hold's commit
        cancel_hold(buyer=Buyer(None, holds[0].session_id), reservation_id=holds[0].pk)
    waiter = Waiter.objects.get()
    assert waiter.status == "Seats Available"
    page = client.get(f"/waiting/{waiter.pk}/").content.decode()
    assert "Your seats are held" in page
    seat_map = client.get(f"/shows/{show.pk}/").content.decode()
    assert "seat--yours" in seat_map and "Continue to payment" in seat_map


def test_another_browser_cannot_see_poll_or_leave_a_place_in_line(client):
    show, _ = held_out_show(seats=2)
    join_on_page(client, show)
    waiter = Waiter.objects.get()
    stranger = Client()
    assert stranger.get(f"/waiting/{waiter.pk}/").status_code == 404
    assert stranger.get(f"/waiting/{waiter.pk}/poll").status_code == 404
    assert stranger.post(f"/waiting/{waiter.pk}/leave").status_code == 404
    waiter.refresh_from_db()
    assert waiter.status == "Waiting"


def test_the_waiting_page_and_its_poll_are_never_stored_by_the_browser(client):
    show, _ = held_out_show(seats=2)
    waiting_page = client.get(join_on_page(client, show)["Location"])
    waiter = Waiter.objects.get()
    poll = client.get(f"/waiting/{waiter.pk}/poll")
    assert waiting_page.status_code == poll.status_code == 200
    assert "no-store" in waiting_page["Cache-Control"] and "no-store" in poll["Cache-Control"]
