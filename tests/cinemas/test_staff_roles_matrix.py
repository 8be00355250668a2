"""Who on the staff may do what, and where, through the real admin and staff pages: every role (a cinema's staff,
its manager, the chain's admin, a member of the staff with no role) tries every action at their own cinema and at
another. Allowed: the page answers as it does when it works, and the change is made. Refused: the page says no (403,
or the admin's "doesn't exist" redirect for a row out of reach, or the form's error for a choice out of reach) and
nothing changes.

The actions are the rows of ACTIONS: a page that joins the staff's (the box office, the sales) is one row more.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from bookings.models import Reservation
from cinemas.models import Cinema, CinemaStaff, City, Hall, HallPrice, MenuItem, Movie, OnSale, Show, StaffRole
from cinemas.services import plan_from_seats
from tests.bookings.helpers import STAFF_REASON, paid_booking
from tests.cinemas.test_admin import cinema_form, hall_form, menu_item_form, show_form
from tests.cinemas.test_bulk_scheduling import page_form as bulk_form
from tests.cinemas.test_posters import movie_form
from tests.factories import make_cinema, make_hall, make_movie, make_show, make_staff_member
from ticketing.models import ApiKey, WebhookEndpoint
from ticketing.services import create_api_key

pytestmark = pytest.mark.django_db

ROLES = ["staff", "manager", "chain admin", "no role"]
STAFF, MANAGER, CHAIN = "staff", "manager", "chain admin"
AT_THE_CINEMA = frozenset({STAFF, MANAGER, CHAIN})  # what a cinema's staff do there
MANAGING = frozenset({MANAGER, CHAIN})  # prices and schedules
CHAIN_ONLY = frozenset({CHAIN})

# The admin's answer to a row outside the user's reach: its list page, with "doesn't exist" (as for no row at all).
OUT_OF_REACH = 302


@dataclass
class Site:
    """One cinema with what the actions act on: a hall, a show starting soon (its door is open), a paid booking
    with a buyer's address, and an item on the menu."""

    cinema: Cinema
    hall: Hall
    show: Show
    booking: Reservation
    item: MenuItem


def make_site(name):
    cinema = make_cinema(name=name)
    hall = make_hall(cinema=cinema)
    show = make_show(hall=hall, starts_at=timezone.now() + timedelta(minutes=30))
    booking = paid_booking(show=show, seats=1)
    item = MenuItem.objects.create(cinema=cinema, name="Popcorn", price=Decimal("6.00"), stock=10)
    return Site(cinema, hall, show, booking, item)


def admin_url(app, model, view, *args):
    return reverse(f"admin:{app}_{model}_{view}", args=args)


def page_of(url_name):
    """A staff page's address, or None while that page is not built yet."""
    try:
        return reverse(url_name)
    except NoReverseMatch:
        return None


# --- The actions ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One row: who may (`allowed`, at their own cinema; the chain's admin at every cinema), what the user does
    (`attempt`, with a client logged in as them, at one Site), and whether it took effect (`took_effect`, after).
    `done` is the answer when it works, `refused` the answers a refusal may give. `page` names the staff page a
    row needs: without it (not built yet) the row is skipped."""

    allowed: frozenset
    attempt: Callable
    took_effect: Callable
    done: int
    refused: tuple
    page: str | None = None


def see_booking(client, site):
    return client.get(admin_url("bookings", "reservation", "change", site.booking.pk))


def cancel_booking(client, site):
    return client.post(admin_url("bookings", "reservation", "cancel", site.booking.pk), {"reason": STAFF_REASON})


def check_in(client, site):
    url = f"{reverse('bookings-staff:check-in')}?cinema={site.cinema.pk}"
    return client.post(url, {"code": site.booking.booking_code})


def see_show(client, site):
    return client.get(admin_url("cinemas", "show", "change", site.show.pk))


NEW_SHOW = ("2031-01-15", "19:30")


def schedule_show(client, site):
    return client.post(admin_url("cinemas", "show", "add"), show_form(make_movie(), site.hall, *NEW_SHOW))


def reschedule_show(client, site):
    local = site.show.local_starts_at + timedelta(hours=3)
    form = show_form(site.show.movie, site.hall, f"{local:%Y-%m-%d}", f"{local:%H:%M}", price_regular="99.00")
    return client.post(admin_url("cinemas", "show", "change", site.show.pk), form)


def rescheduled(site):
    show = Show.objects.get(pk=site.show.pk)
    return show.starts_at != site.show.starts_at and show.prices.get(seat_type="Regular").price == Decimal("99.00")


def reprice_menu(client, site):
    return client.post(
        admin_url("cinemas", "menuitem", "change", site.item.pk), menu_item_form(site.item, price="9.50")
    )


def on_sale_form(site, **fields):
    """An on-sale whose room opens in five minutes and whose sale opens in ten, on the cinema's clock."""
    local = timezone.now().astimezone(site.cinema.zone)
    queue, opens = local + timedelta(minutes=5), local + timedelta(minutes=10)
    return {
        "queue_opens_at_0": f"{queue:%Y-%m-%d}",
        "queue_opens_at_1": f"{queue:%H:%M}",
        "opens_at_0": f"{opens:%Y-%m-%d}",
        "opens_at_1": f"{opens:%H:%M}",
        "closes_at_0": "",
        "closes_at_1": "",
        "admissions_per_minute": "300",
        "pass_seconds": "180",
        "joins_per_address": "20",
        **fields,
    }


def mark_show_on_sale(client, site):
    return client.post(admin_url("cinemas", "onsale", "add"), on_sale_form(site, show=site.show.pk))


def mark_city_on_sale(client, site):
    form = on_sale_form(site, movie=site.show.movie_id, city=site.cinema.city_id)
    return client.post(admin_url("cinemas", "onsale", "add"), form)


def change_movie(client, site):
    return client.post(
        admin_url("cinemas", "movie", "change", site.show.movie.pk), movie_form(site.show.movie, title="Renamed")
    )


def change_city(client, site):
    city = site.cinema.city
    form = {"name": "Renamed", "state": city.state, "country": city.country}
    return client.post(admin_url("cinemas", "city", "change", city.pk), form)


def change_cinema(client, site):
    form = cinema_form(site.cinema, name="Renamed", currency="USD")
    return client.post(admin_url("cinemas", "cinema", "change", site.cinema.pk), form)


def rename_hall(client, site):
    form = hall_form(site.cinema, "Renamed", plan_of(site.hall))
    return client.post(admin_url("cinemas", "hall", "change", site.hall.pk), form)


def set_template_price(client, site):
    form = {"hall": site.hall.pk, "seat_type": "Regular", "price": "12.50"}
    return client.post(admin_url("cinemas", "hallprice", "add"), form)


def schedule_in_bulk(client, site):
    """One Saturday at two times, priced on the form (the hall has no template prices)."""
    prices = {f"price_{kind}": "10" for kind in ("regular", "premium", "wheelchair", "companion")}
    form = bulk_form(site.hall, make_movie(), first_day="2031-02-01", last_day="2031-02-01", weekdays=["5"], **prices)
    return client.post(reverse("admin:cinemas_show_schedule_in_bulk"), {**form, "_create": "Create"})


def sell_at_the_counter(client, site):
    """A cash sale of the show's first free seat: hold it on the counter's map, then take the cash."""
    seat = site.show.hall.seats.exclude(pk__in=site.booking.claims.values("seat")).order_by("y", "x").first()
    held = client.post(reverse("bookings-staff:box-office-show", args=[site.show.pk]), {"seats": [seat.pk]})
    if held.status_code != 302:
        return held
    sale = held["Location"]
    return client.post(sale, {"paid_by": "cash", "tendered": "1000"})


def sold_at_the_counter(site):
    return Reservation.objects.filter(
        show=site.show, channel=Reservation.Channel.BOX_OFFICE, status=Reservation.Status.BOOKED
    ).exists()


def plan_of(hall):
    return plan_from_seats(hall.seats.all())


def add_api_key(client, site):
    form = {"name": f"Partner of {site.cinema.name}", "rate_per_minute": "60", "held_seats_per_show": "10"}
    return client.post(admin_url("ticketing", "apikey", "add"), form)


def add_webhook_endpoint(client, site):
    api_key, _ = create_api_key(name=f"Hooked partner of {site.cinema.name}")
    form = {"api_key": api_key.pk, "url": "https://partner.example/hooks", "events": ["booking.created"]}
    return client.post(admin_url("ticketing", "webhookendpoint", "add"), form)


def put_on_staff(client, site):
    newcomer = make_staff_member(username=f"newcomer-{site.cinema.pk}")
    form = {"user": newcomer.pk, "cinema": site.cinema.pk, "role": StaffRole.MANAGER}
    return client.post(admin_url("cinemas", "cinemastaff", "add"), form)


def staff_page_row(url_name):
    """The row of a staff page a cinema's staff use at `?cinema=<id>`: it opens for their own cinema (and names it),
    and refuses another (400: not one of theirs) or anyone without the role (403)."""

    def attempt(client, site):
        return client.get(f"{reverse(url_name)}?cinema={site.cinema.pk}")

    return Action(
        AT_THE_CINEMA, attempt, lambda site, page: site.cinema.name in page.text, 200, (400, 403), page=url_name
    )


ACTIONS = {
    "see a booking": Action(
        AT_THE_CINEMA, see_booking, lambda site, page: site.booking.booking_code in page.text, 200, (OUT_OF_REACH, 403)
    ),
    "cancel a booking": Action(
        AT_THE_CINEMA,
        cancel_booking,
        lambda site, page: Reservation.objects.get(pk=site.booking.pk).status == Reservation.Status.CANCELLED,
        302,
        (OUT_OF_REACH, 403),
    ),
    "check a ticket in": Action(
        AT_THE_CINEMA,
        check_in,
        lambda site, page: Reservation.objects.get(pk=site.booking.pk).checked_in_at is not None,
        200,
        # 400: the door's cinema is not one of theirs; 403: they check in nowhere.
        (400, 403),
    ),
    "see a show": Action(
        AT_THE_CINEMA, see_show, lambda site, page: site.show.movie.title in page.text, 200, (OUT_OF_REACH, 403)
    ),
    "schedule a show": Action(
        MANAGING,
        schedule_show,
        lambda site, page: Show.objects.filter(hall=site.hall).count() == 2,
        302,
        # 200: the form refuses a hall of another cinema (not among its choices).
        (200, 403),
    ),
    "reschedule and reprice a show": Action(
        MANAGING, reschedule_show, lambda site, page: rescheduled(site), 302, (OUT_OF_REACH, 403)
    ),
    "set the menu's prices": Action(
        MANAGING,
        reprice_menu,
        lambda site, page: MenuItem.objects.get(pk=site.item.pk).price == Decimal("9.50"),
        302,
        (OUT_OF_REACH, 403),
    ),
    "set a hall's template prices": Action(
        MANAGING,
        set_template_price,
        lambda site, page: HallPrice.objects.filter(hall=site.hall, price=Decimal("12.50")).exists(),
        302,
        # 200: the form refuses a hall of another cinema (not among its choices).
        (200, 403),
    ),
    "schedule shows in bulk": Action(
        MANAGING,
        schedule_in_bulk,
        lambda site, page: Show.objects.filter(hall=site.hall).count() == 3,
        302,
        # 400: the form refuses a hall of another cinema (not among its choices).
        (400, 403),
    ),
    "mark a show's on-sale": Action(
        MANAGING,
        mark_show_on_sale,
        lambda site, page: OnSale.objects.filter(show=site.show, shows__show=site.show).exists(),
        302,
        # 200: the form refuses a show of another cinema (not among its choices).
        (200, 403),
    ),
    "mark a movie's on-sale in a city": Action(
        CHAIN_ONLY,
        mark_city_on_sale,
        lambda site, page: OnSale.objects.filter(city=site.cinema.city, shows__show=site.show).exists(),
        302,
        # 200: a manager's form has no city to choose (one show or nothing).
        (200, 403),
    ),
    "change a movie": Action(
        CHAIN_ONLY, change_movie, lambda site, page: Movie.objects.filter(title="Renamed").exists(), 302, (403,)
    ),
    "change a city": Action(
        CHAIN_ONLY, change_city, lambda site, page: City.objects.filter(name="Renamed").exists(), 302, (403,)
    ),
    "change a cinema": Action(
        CHAIN_ONLY,
        change_cinema,
        lambda site, page: Cinema.objects.filter(name="Renamed").exists(),
        302,
        (OUT_OF_REACH, 403),
    ),
    "change a hall": Action(
        CHAIN_ONLY,
        rename_hall,
        lambda site, page: Hall.objects.filter(name="Renamed").exists(),
        302,
        (OUT_OF_REACH, 403),
    ),
    "manage API keys": Action(CHAIN_ONLY, add_api_key, lambda site, page: ApiKey.objects.exists(), 302, (403,)),
    "manage partners' webhooks": Action(
        CHAIN_ONLY, add_webhook_endpoint, lambda site, page: WebhookEndpoint.objects.exists(), 302, (403,)
    ),
    "put someone on the staff": Action(
        CHAIN_ONLY,
        put_on_staff,
        lambda site, page: CinemaStaff.objects.filter(user__username__startswith="newcomer").exists(),
        302,
        (403,),
    ),
    "open the box office": staff_page_row("bookings-staff:box-office"),
    "sell at the box office": Action(
        AT_THE_CINEMA,
        sell_at_the_counter,
        lambda site, page: sold_at_the_counter(site),
        302,
        # 404: a show of another cinema is not at their counter; 403: they sell nowhere.
        (404, 403),
    ),
    "see the sales": staff_page_row("bookings-staff:sales"),
}


@pytest.fixture
def sites():
    return {"own": make_site("Own Cinema"), "other": make_site("Other Cinema")}


def logged_in(role, own):
    if role == CHAIN:
        user = make_staff_member(chain_admin=True)
    elif role == "no role":
        user = make_staff_member()
    else:
        user = make_staff_member(roles=[(own, StaffRole(role))])
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("where", ["own", "other"])
@pytest.mark.parametrize("name", ACTIONS)
@pytest.mark.parametrize("role", ROLES)
def test_each_role_does_what_its_role_allows_at_its_own_cinemas_and_nothing_else(role, name, where, sites):
    action = ACTIONS[name]
    if action.page and page_of(action.page) is None:
        pytest.skip(f"{action.page} is not built yet")
    site = sites[where]
    client = logged_in(role, sites["own"].cinema)
    may = role == CHAIN or (role in action.allowed and where == "own")

    response = action.attempt(client, site)

    if may:
        assert response.status_code == action.done, response.content[:2000]
        assert action.took_effect(site, response)
    else:
        assert response.status_code in action.refused, response.content[:2000]
        if response.status_code == OUT_OF_REACH:
            assert response["Location"].startswith(reverse("admin:index"))
        assert not action.took_effect(site, response)


# Seen, not changed: a cinema's staff read its shows; what they may not change reads without a save button.
@pytest.mark.parametrize("role", [STAFF, MANAGER])
def test_a_cinemas_staff_see_only_their_own_cinemas_rows_in_the_lists(role, sites):
    client = logged_in(role, sites["own"].cinema)

    for model, app in [
        ("reservation", "bookings"),
        ("show", "cinemas"),
        ("menuitem", "cinemas"),
        ("waiter", "waiting"),
    ]:
        listing = client.get(admin_url(app, model, "changelist"))
        assert listing.status_code == 200, model
        assert "Other Cinema" not in listing.text, model
    shows = client.get(admin_url("cinemas", "show", "changelist"))
    assert [show.pk for show in shows.context["cl"].result_list] == [sites["own"].show.pk]


def test_the_admins_home_lists_what_a_cinemas_staff_may_use_and_links_their_staff_pages(sites):
    client = logged_in(STAFF, sites["own"].cinema)

    home = client.get(reverse("admin:index"))

    listed = {model["object_name"] for app in home.context["app_list"] for model in app["models"]}
    assert listed == {"Reservation", "Show", "MenuItem", "HallPrice", "Waiter", "OnSale", "Room", "RoomVisitor"}
    assert f'href="{reverse("bookings-staff:check-in")}"' in home.text  # the admin leads to the staff pages


def test_django_permissions_give_a_member_of_the_staff_without_a_role_nothing_of_ours(sites):
    user = make_staff_member()
    user.user_permissions.add(*Permission.objects.all())
    client = Client()
    client.force_login(user)

    home = client.get(reverse("admin:index"))

    listed = {model["object_name"] for app in home.context["app_list"] for model in app["models"]}
    assert listed <= {"AccessAttempt", "AccessFailureLog", "AccessLog"}  # django-axes' own lists, by its permissions
    for url in [admin_url("auth", "user", "changelist"), admin_url("bookings", "reservation", "changelist")]:
        assert client.get(url).status_code == 403
    assert f'href="{reverse("bookings-staff:check-in")}"' not in home.text


def test_a_cinemas_staff_read_a_shows_times_and_prices_but_find_no_way_to_change_them(sites):
    client = logged_in(STAFF, sites["own"].cinema)
    show = sites["own"].show

    page = client.get(admin_url("cinemas", "show", "change", show.pk))

    assert page.status_code == 200
    assert f"{show.local_starts_at:%H:%M} America/New_York" in page.text  # on the cinema's clock
    assert "15.00" in page.text  # the Premium price, in the prices' inline
    assert 'name="_save"' not in page.text and 'name="starts_at_0"' not in page.text


def test_a_managers_hall_picker_offers_the_halls_of_their_own_cinemas_only(sites):
    client = logged_in(MANAGER, sites["own"].cinema)

    found = client.get(
        reverse("admin:autocomplete"), {"app_label": "cinemas", "model_name": "show", "field_name": "hall", "term": ""}
    )

    assert found.status_code == 200
    assert [int(hall["id"]) for hall in found.json()["results"]] == [sites["own"].hall.pk]
