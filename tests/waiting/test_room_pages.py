"""The on-sale waiting room's pages through Django's test client: the room before joining, joining after the
browser's proof of work, the place, entering with the pass, the seat map and the hold behind the room."""

import re
from datetime import timedelta
from pathlib import Path

import altcha
import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone
from django_altcha_widget import get_altcha_challenge

from bookings.models import Reservation
from tests.bookings.helpers import seat_ids
from tests.waiting.conftest import held_out_show
from tests.waiting.rooms import on_sale_of
from ticketing.buyers import ADMISSION_PASSES_SESSION_KEY
from waiting.models import RoomVisitor, Waiter
from waiting.rooms import admit_from_room

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates" / "waiting"


def solved_challenge():
    """What the browser's widget sends once it has done the work: the challenge this site signed, solved."""
    challenge = get_altcha_challenge()
    return altcha.Payload(challenge, altcha.solve_challenge(challenge)).to_base64()


def join_page(client, on_sale, **fields):
    data = {"challenge": solved_challenge(), "email": ""} | fields
    return client.post(f"/on-sale/{on_sale.pk}/join", {key: value for key, value in data.items() if value is not None})


def page_of(client, on_sale):
    response = client.get(f"/on-sale/{on_sale.pk}/")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def on_sale(db):
    return on_sale_of(opens_in=60, pass_seconds=120)  # within the grace: nobody is passed over as gone


def test_before_joining_the_room_shows_the_movie_its_shows_the_opening_the_rules_and_the_join_form(client, on_sale):
    show = on_sale.show
    page = page_of(client, on_sale)
    local = timezone.localtime(show.starts_at, show.hall.cinema.zone)
    assert on_sale.movie.title in page and show.hall.cinema.name in page
    assert f"{local:%H:%M}" in page  # the show's time in its cinema's zone
    assert "The sale opens" in page
    assert "gets a place drawn at random when it opens" in page
    assert "goes to the back of the line, in the order they arrive" in page
    assert "One place per browser, and per email if you give one." in page
    assert "you keep your place when you come back within 5 minutes" in page
    assert "a pass to choose seats, valid for 2 minutes" in page
    assert '<altcha-widget name="challenge"' in page and "Join the waiting room" in page
    # The widget is the site's own static files: nothing from elsewhere.
    assert re.search(r'src="/static/django_altcha_widget/altcha/external/altcha\.min\.js"', page)
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_joining_with_a_solved_challenge_takes_a_place_drawn_at_the_opening(client, on_sale):
    response = join_page(client, on_sale, email="Ann@Example.com")
    assert response.status_code == 302 and response["Location"] == f"/on-sale/{on_sale.pk}/"
    visitor = RoomVisitor.objects.get()
    assert (visitor.status, visitor.place, visitor.email, visitor.early) == ("Waiting", None, "ann@example.com", True)
    page = page_of(client, on_sale)
    assert "You're in. Places are drawn at random when the sale opens" in page
    assert f'data-ws-path="/ws/room/{visitor.pk}/?session_id={visitor.session_id}"' in page
    assert "Leave the waiting room" in page and "<altcha-widget" not in page
    # Without JavaScript the page still moves: it refreshes itself, and says how.
    assert '<noscript><meta http-equiv="refresh" content="15"></noscript>' in page and 'id="room-refresh"' in page
    assert join_page(client, on_sale).status_code == 302  # the same browser again: the same place
    assert RoomVisitor.objects.count() == 1


@pytest.mark.parametrize(
    "challenge",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("bm90IGEgcGF5bG9hZA==", id="not-a-payload"),
        pytest.param("forged", id="forged"),
    ],
)
def test_joining_without_a_valid_proof_of_work_says_so_and_changes_nothing(client, on_sale, challenge):
    if challenge == "forged":
        # A challenge of another key, solved: its signature does not hold here.
        forged = altcha.create_challenge("PBKDF2/SHA-256", 10, hmac_secret="x" * 64)
        challenge = altcha.Payload(forged, altcha.solve_challenge(forged)).to_base64()
    response = join_page(client, on_sale, challenge=challenge)
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="room-challenge-error"' in page
    assert "Let your browser finish the check" in page or "The check before joining did not pass" in page
    assert "<altcha-widget" in page  # a fresh challenge to try again with
    assert not RoomVisitor.objects.exists()


def test_a_challenge_answers_once(client, on_sale):
    payload = solved_challenge()
    assert join_page(client, on_sale, challenge=payload).status_code == 302
    response = join_page(Client(), on_sale, challenge=payload)
    assert response.status_code == 400 and "The check before joining did not pass" in response.content.decode()
    assert RoomVisitor.objects.count() == 1


def test_an_email_with_a_place_already_is_refused_on_the_page(client, on_sale):
    join_page(Client(), on_sale, email="ann@example.com")
    response = join_page(client, on_sale, email="ANN@example.com")
    assert response.status_code == 409
    assert "Someone with this email already has a place in this waiting room." in response.content.decode()
    assert RoomVisitor.objects.count() == 1


def test_too_many_places_from_one_network_address_are_refused_on_the_page(db):
    on_sale = on_sale_of(opens_in=600, joins_per_address=2)
    for _ in range(2):
        assert join_page(Client(), on_sale).status_code == 302
    response = join_page(Client(), on_sale)
    assert response.status_code == 429
    assert "Too many places in this waiting room were taken from your network address." in response.content.decode()
    assert RoomVisitor.objects.count() == 2


def test_a_room_not_open_yet_says_when_it_opens_and_offers_no_form(client):
    on_sale = on_sale_of(queue_opens_in=300, opens_in=600)
    page = page_of(client, on_sale)
    assert "The waiting room opens" in page and "<altcha-widget" not in page
    assert join_page(client, on_sale).status_code == 425
    assert not RoomVisitor.objects.exists()


def test_the_seat_map_of_a_show_behind_a_room_sends_a_browser_without_a_pass_to_the_room(client, on_sale):
    show_url = f"/shows/{on_sale.show_id}/"
    response = client.get(show_url)  # before the opening
    assert response.status_code == 302 and response["Location"] == f"/on-sale/{on_sale.pk}/"
    join_page(client, on_sale)
    with time_machine.travel(on_sale.opens_at + timedelta(seconds=1), tick=False):
        assert client.get(show_url)["Location"] == f"/on-sale/{on_sale.pk}/"  # open, not admitted yet
        session = client.session
        session[ADMISSION_PASSES_SESSION_KEY] = {str(on_sale.pk): "not-a-pass"}
        session.save()
        assert client.get(show_url)["Location"] == f"/on-sale/{on_sale.pk}/"


def test_a_hold_without_a_pass_is_sent_to_the_room_and_holds_nothing(client, on_sale):
    with time_machine.travel(on_sale.opens_at + timedelta(seconds=1), tick=False):
        response = client.post(f"/shows/{on_sale.show_id}/hold", {"seats": seat_ids(on_sale.show)[:2]})
    assert response.status_code == 302 and response["Location"] == f"/on-sale/{on_sale.pk}/"
    assert not Reservation.objects.exists()


def test_an_admitted_visitor_enters_with_the_pass_and_holds_seats(client, on_sale):
    join_page(client, on_sale)
    with time_machine.travel(on_sale.opens_at + timedelta(seconds=1), tick=False):
        assert admit_from_room(on_sale_id=on_sale.pk) == 1
        page = page_of(client, on_sale)
        assert "It's your turn." in page and "Your pass is valid for 2 more minutes." in page
        response = client.post(f"/on-sale/{on_sale.pk}/enter")
        assert response["Location"] == f"/shows/{on_sale.show_id}/"
        assert str(on_sale.pk) in client.session[ADMISSION_PASSES_SESSION_KEY]
        assert client.get(response["Location"]).status_code == 200
        held = client.post(f"/shows/{on_sale.show_id}/hold", {"seats": seat_ids(on_sale.show)[:2]})
    reservation = Reservation.objects.get()
    assert held.status_code == 302 and held["Location"] == f"/holds/{reservation.pk}/"


def test_entering_before_being_admitted_only_shows_the_room(client, on_sale):
    join_page(client, on_sale)
    response = client.post(f"/on-sale/{on_sale.pk}/enter")
    assert response["Location"] == f"/on-sale/{on_sale.pk}/"
    assert ADMISSION_PASSES_SESSION_KEY not in client.session


def test_at_the_opening_the_page_shows_the_place_the_people_ahead_and_the_wait(client, on_sale):
    ahead = Client()
    join_page(ahead, on_sale)
    with time_machine.travel(on_sale.opens_at + timedelta(seconds=1), tick=False):
        join_page(client, on_sale)  # after the opening: at the back, behind the one drawn
        page = page_of(client, on_sale)
    assert re.search(r'<strong id="room-place">2</strong>', page)
    assert re.search(r'<strong id="room-ahead">1</strong>', page)
    assert "about 1 minute" in page


def test_a_pass_that_ran_out_is_said_so_and_the_visitor_may_join_again_at_the_back(client, on_sale):
    join_page(client, on_sale)
    with time_machine.travel(on_sale.opens_at + timedelta(seconds=1), tick=False) as clock:
        admit_from_room(on_sale_id=on_sale.pk)
        clock.shift(on_sale.pass_seconds + 1)
        page = page_of(client, on_sale)
        assert "Your pass ran out." in page and "Join again" in page
        admit_from_room(on_sale_id=on_sale.pk)  # the room's clock ends the pass
        assert join_page(client, on_sale).status_code == 302
        again = RoomVisitor.objects.get(status="Waiting")
    assert again.place == 2 and RoomVisitor.objects.filter(status="Pass Expired").count() == 1


def test_leaving_gives_the_place_up(client, on_sale):
    join_page(client, on_sale)
    response = client.post(f"/on-sale/{on_sale.pk}/leave")
    assert response["Location"] == f"/on-sale/{on_sale.pk}/"
    assert RoomVisitor.objects.get().status == "Left"
    assert "You're no longer in the waiting room." in page_of(client, on_sale)


def test_the_waiting_line_of_a_show_behind_a_room_is_joined_with_its_pass_only(client):
    show, _ = held_out_show(seats=2)
    on_sale = on_sale_of(show, opens_in=600)
    response = client.post(f"/shows/{show.pk}/waitlist", {"seats_wanted": 1})
    assert response.status_code == 302 and response["Location"] == f"/on-sale/{on_sale.pk}/"


def test_the_room_pages_set_no_fixed_widths_that_would_overflow_a_375_px_phone():
    for template in TEMPLATES.glob("*room*.html"):
        text = template.read_text()
        assert "style=" not in text and not re.search(r"\bwidth=", text), template.name


def test_the_room_speaks_spanish(client, on_sale):
    page = client.get(f"/on-sale/{on_sale.pk}/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Sala de espera" in page and 'language="es-es"' in page
    assert "How the waiting room works" not in page


def test_the_showtimes_badge_a_show_behind_a_room_with_its_opening(client, on_sale):
    show = on_sale.show
    cinema = show.hall.cinema
    day = timezone.localtime(show.starts_at, cinema.zone).date()
    url = f"/cities/{cinema.city_id}/movies/{show.movie_id}/?date={day:%Y-%m-%d}"
    page = client.get(url).content.decode()
    opens = timezone.localtime(on_sale.opens_at, cinema.zone)
    assert f"On sale at {opens:%H:%M}, waiting room" in page
    with time_machine.travel(on_sale.opens_at + timedelta(seconds=1), tick=False):
        page = client.get(url).content.decode()
    assert "On sale at" not in page and "· waiting room" in page


def test_a_partner_joins_the_line_of_a_show_behind_a_room_only_with_the_rooms_pass(api):
    show, _ = held_out_show(seats=2)
    on_sale = on_sale_of(show, opens_in=60)
    url = f"/api/v1/shows/{show.pk}/waitlist"
    early = api.post(url, {"session_id": "ann", "seats_wanted": 1}, format="json")
    assert early.status_code == 425 and early.json()["error"]["code"] == "sale_not_open"
    assert early.json()["room"]["on_sale_id"] == on_sale.pk
    with time_machine.travel(on_sale.opens_at + timedelta(seconds=1), tick=False):
        refused = api.post(url, {"session_id": "ann", "seats_wanted": 1}, format="json", HTTP_ADMISSION_PASS="nope")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "admission_required"
    assert not Waiter.objects.exists()
