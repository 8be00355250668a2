from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cinemas.admin import EstimatedCountPaginator, LocalDateFilter
from cinemas.models import Hall, MenuItem, Seat, Show
from cinemas.services import add_to_stock, default_show_end
from tests.factories import SMALL_PLAN, make_cinema, make_hall, make_movie, make_show

pytestmark = pytest.mark.django_db

PRICES = {"price_regular": "12.00", "price_premium": "18.00", "price_wheelchair": "12.00", "price_companion": "6.00"}


def url(model, view="changelist", *args):
    return reverse(f"admin:cinemas_{model}_{view}", args=args)


def seat_queries(queries):
    return [query["sql"] for query in queries if 'FROM "cinemas_seat"' in query["sql"]]


def hall_form(cinema, name, plan):
    # The template prices inline posts its management form (none here).
    management = {"price_template-TOTAL_FORMS": "0", "price_template-INITIAL_FORMS": "0"}
    return {"cinema": cinema.pk, "name": name, "plan": plan, **management}


def show_form(movie, hall, day, time, ends=("", ""), **prices):
    return {
        "movie": movie.pk,
        "hall": hall.pk,
        "starts_at_0": day,
        "starts_at_1": time,
        "ends_at_0": ends[0],
        "ends_at_1": ends[1],
        "format": "2D",
        "audio_language": "",
        "subtitles": "",
        **PRICES,
        **prices,
        # The read-only prices inline on the change page posts its management form; it saves nothing.
        "prices-TOTAL_FORMS": "0",
        "prices-INITIAL_FORMS": "0",
    }


def form_errors(response):
    form = response.context["adminform"].form
    return {field: [str(message) for message in messages] for field, messages in form.errors.items()}


# --- Every list ---------------------------------------------------------------------------------------------


def search_and_filter(model, show):
    hall, cinema, movie = show.hall, show.hall.cinema, show.movie
    return {
        "city": {"q": cinema.city.name, "country": "United States"},
        "cinema": {"q": cinema.name, "time_zone": "America/New_York", "city__id__exact": cinema.city.pk},
        "hall": {"q": hall.name, "cinema__id__exact": cinema.pk, "cinema__time_zone": "America/New_York"},
        "seat": {"q": "A", "hall__id__exact": hall.pk, "seat_type__exact": "Premium"},
        "menuitem": {"q": "Popcorn", "cinema__id__exact": cinema.pk, "on_sale__exact": "1"},
        "movie": {"q": movie.title, "genre": "Drama", "language": "English", "country": "United States"},
        "show": {
            "q": movie.title,
            "hall__cinema__id__exact": cinema.pk,
            "movie__id__exact": movie.pk,
            "local_date": f"{show.local_starts_at:%Y-%m-%d}",
        },
    }[model]


@pytest.mark.parametrize(
    ("model", "found"),
    [("city", 1), ("cinema", 1), ("hall", 1), ("seat", 4), ("movie", 1), ("show", 1), ("menuitem", 1)],
)
def test_every_changelist_loads_with_a_search_and_a_filter(admin_client, model, found):
    show = make_show()
    other = make_show()  # another of everything, which the search and filters leave out
    for cinema in (show.hall.cinema, other.hall.cinema):
        MenuItem.objects.create(cinema=cinema, name="Popcorn", price=Decimal("6.00"), stock=10)

    response = admin_client.get(url(model), search_and_filter(model, show))

    assert response.status_code == 200
    assert response.context["cl"].result_count == found


def test_the_show_list_names_the_chosen_cinema_in_its_filter(admin_client):
    show = make_show(hall=make_hall(cinema=make_cinema(name="Regal Union Square")))

    response = admin_client.get(url("show"), {"hall__cinema__id__exact": show.hall.cinema.pk})

    assert response.context["cl"].result_count == 1
    assert "Regal Union Square" in response.text


def test_the_unfiltered_seat_list_pages_on_the_row_estimate_instead_of_counting(admin_client, monkeypatch):
    make_hall()
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 0)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE cinemas_seat")

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url("seat"))

    assert response.status_code == 200
    assert not [sql for sql in seat_queries(queries) if "COUNT(" in sql]


# --- Halls and seats ----------------------------------------------------------------------------------------


def test_a_hall_is_created_with_its_seats_from_the_plan_on_the_add_form(admin_client):
    cinema = make_cinema()

    response = admin_client.post(url("hall", "add"), hall_form(cinema, "Hall 1", "PPPP\r\nRR.RR\r\n\r\nWC"))

    assert response.status_code == 302
    hall = Hall.objects.get(cinema=cinema, name="Hall 1")
    assert hall.capacity == {"Premium": 4, "Regular": 4, "Wheelchair": 1, "Companion": 1}
    assert sorted(hall.seats.values_list("row_label", "number", "x", "y"))[4:6] == [("B", 1, 0, 1), ("B", 2, 1, 1)]


def test_a_bad_plan_shows_the_error_on_the_form_and_creates_nothing(admin_client):
    cinema = make_cinema()

    response = admin_client.post(url("hall", "add"), hall_form(cinema, "Hall 1", "RRRR\r\nRRXR"))

    assert response.status_code == 200
    assert form_errors(response) == {
        "plan": ["Line 2, column 3: 'X' is not a seat or gap (use R, P, W, C for seats and '.' for gaps)."]
    }
    assert not Hall.objects.exists()
    assert not Seat.objects.exists()


def test_the_hall_page_pictures_every_seat_by_type(admin_client):
    hall = make_hall(plan=SMALL_PLAN)

    response = admin_client.get(url("hall", "change", hall.pk))

    assert response.status_code == 200
    page = response.text
    assert page.count('<use class="seat"') == 13
    assert page.count('<use class="seat" href="#seatmap-premium"') == 4
    assert page.count('<use class="seat" href="#seatmap-regular"') == 7
    assert page.count('<use class="seat" href="#seatmap-wheelchair"') == 1
    assert page.count('<use class="seat" href="#seatmap-companion"') == 1
    assert "<title>D2 · Companion</title>" in page
    assert ">SCREEN</text>" in page
    assert "Premium: 4</li>" in page
    assert "Total: 13</li>" in page


def test_the_hall_form_starts_from_the_halls_current_plan(admin_client):
    hall = make_hall(plan=SMALL_PLAN)

    response = admin_client.get(url("hall", "change", hall.pk))

    assert response.context["adminform"].form.initial["plan"] == SMALL_PLAN
    assert f">\n{SMALL_PLAN}</textarea>" in response.text


def test_the_hall_page_reads_its_seats_in_one_query(admin_client):
    hall = make_hall(plan=SMALL_PLAN)

    with CaptureQueriesContext(connection) as queries:
        admin_client.get(url("hall", "change", hall.pk))

    assert len(seat_queries(queries)) == 1


def test_the_page_of_a_2000_seat_hall_renders(admin_client):
    hall = make_hall(plan="\n".join(["R" * 25 + "." + "R" * 25] * 40))

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url("hall", "change", hall.pk))

    assert response.status_code == 200
    assert response.text.count('<use class="seat"') == 2000
    assert len(seat_queries(queries)) == 1


def test_changing_the_plan_rebuilds_the_seats(admin_client):
    hall = make_hall(plan=SMALL_PLAN)

    response = admin_client.post(url("hall", "change", hall.pk), hall_form(hall.cinema, hall.name, "WCCW"))

    assert response.status_code == 302
    hall.refresh_from_db()
    assert hall.capacity == {"Wheelchair": 2, "Companion": 2}
    assert hall.seats.count() == 4


def test_renaming_a_hall_with_shows_keeps_its_seats(admin_client):
    hall = make_show().hall
    seat_ids = set(hall.seats.values_list("pk", flat=True))
    # As a browser sends the unchanged plan: CRLF line ends, and the staff member typed gaps as spaces.
    plan = SMALL_PLAN.replace("\n", "\r\n").replace(".", " ")

    response = admin_client.post(url("hall", "change", hall.pk), hall_form(hall.cinema, "Screen 1", plan))

    assert response.status_code == 302
    hall.refresh_from_db()
    assert hall.name == "Screen 1"
    assert set(hall.seats.values_list("pk", flat=True)) == seat_ids


def test_redrawing_a_hall_with_shows_is_refused_on_the_form_and_changes_nothing(admin_client):
    hall = make_show().hall
    seat_ids = set(hall.seats.values_list("pk", flat=True))

    response = admin_client.post(url("hall", "change", hall.pk), hall_form(hall.cinema, "Screen 1", "RRRR"))

    assert response.status_code == 200
    assert form_errors(response) == {
        "plan": ["This hall already has shows scheduled; its seats can't be redrawn. Add a new hall instead."]
    }
    assert "RRRR</textarea>" in response.text  # the staff member's plan is still there to fix
    hall.refresh_from_db()
    assert hall.name != "Screen 1"
    assert set(hall.seats.values_list("pk", flat=True)) == seat_ids
    assert hall.capacity == {"Premium": 4, "Regular": 7, "Wheelchair": 1, "Companion": 1}


def test_single_seats_cannot_be_added_changed_or_deleted(admin_client):
    seat = make_hall().seats.first()

    assert admin_client.get(url("seat", "add")).status_code == 403
    assert admin_client.post(url("seat", "change", seat.pk), {"seat_type": "Premium"}).status_code == 403
    assert admin_client.post(url("seat", "delete", seat.pk), {"post": "yes"}).status_code == 403
    assert admin_client.get(url("seat", "change", seat.pk)).status_code == 200  # but they can be looked at
    assert Seat.objects.get(pk=seat.pk).seat_type == seat.seat_type


# --- Shows --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "time", "utc"),
    [
        ("America/New_York", "2026-01-15", "19:30", datetime(2026, 1, 16, 0, 30, tzinfo=UTC)),
        ("America/New_York", "2026-07-15", "19:30", datetime(2026, 7, 15, 23, 30, tzinfo=UTC)),
        ("Asia/Kolkata", "2026-01-15", "09:00", datetime(2026, 1, 15, 3, 30, tzinfo=UTC)),
    ],
)
def test_a_show_scheduled_in_the_cinemas_local_time_is_stored_at_the_right_instant(admin_client, zone, day, time, utc):
    hall = make_hall(cinema=make_cinema(time_zone=zone))
    movie = make_movie(duration=100)

    response = admin_client.post(url("show", "add"), show_form(movie, hall, day, time))

    assert response.status_code == 302
    show = Show.objects.get(hall=hall)
    assert show.starts_at == utc
    assert show.ends_at == default_show_end(movie=movie, starts_at=utc)
    assert dict(show.prices.values_list("seat_type", "price")) == {
        "Regular": Decimal("12.00"),
        "Premium": Decimal("18.00"),
        "Wheelchair": Decimal("12.00"),
        "Companion": Decimal("6.00"),
    }


def test_a_given_end_is_read_in_local_time_too(admin_client):
    hall = make_hall()  # New York

    admin_client.post(url("show", "add"), show_form(make_movie(), hall, "2026-01-15", "19:30", ("2026-01-15", "22:00")))

    assert Show.objects.get(hall=hall).ends_at == datetime(2026, 1, 16, 3, 0, tzinfo=UTC)


def test_the_show_form_gives_the_start_in_the_cinemas_local_time(admin_client):
    show = make_show(starts_at=datetime(2026, 1, 16, 0, 30, tzinfo=UTC))  # New York

    response = admin_client.get(url("show", "change", show.pk))

    form = response.context["adminform"].form
    assert form.initial["starts_at"] == datetime(2026, 1, 15, 19, 30)
    assert "ends_at" not in form.initial  # the default end, left blank so that it follows a new start
    assert 'value="2026-01-15"' in response.text
    assert 'value="19:30:00"' in response.text
    assert "2026-01-16 00:30 – 2026-01-16 02:30 UTC" in response.text


def test_the_show_list_gives_the_local_start_with_its_zone(admin_client):
    make_show(starts_at=datetime(2026, 1, 16, 0, 30, tzinfo=UTC))

    response = admin_client.get(url("show"))

    assert "Thu 15 Jan 2026 19:30 America/New_York" in response.text


def test_rescheduling_a_show_in_the_admin_moves_it_and_its_end(admin_client):
    show = make_show(starts_at=datetime(2026, 1, 16, 0, 30, tzinfo=UTC))

    response = admin_client.post(
        url("show", "change", show.pk), show_form(show.movie, show.hall, "2026-01-15", "21:00", price_regular="9.50")
    )

    assert response.status_code == 302
    show.refresh_from_db()
    assert show.starts_at == datetime(2026, 1, 16, 2, 0, tzinfo=UTC)
    assert show.ends_at == default_show_end(movie=show.movie, starts_at=show.starts_at)
    assert show.prices.get(seat_type="Regular").price == Decimal("9.50")


def test_an_overlapping_show_shows_the_clash_and_saves_nothing(admin_client):
    first = make_show(movie=make_movie(title="Cars 2"), starts_at=datetime(2026, 1, 16, 0, 30, tzinfo=UTC))

    response = admin_client.post(url("show", "add"), show_form(make_movie(), first.hall, "2026-01-15", "20:00"))

    assert response.status_code == 200
    assert form_errors(response) == {
        "__all__": [f"{first.hall} already has Cars 2 at Thu 15 Jan 19:30–21:30; shows in one hall can't overlap."]
    }
    assert list(Show.objects.all()) == [first]


def test_moving_a_show_onto_another_shows_the_clash_and_changes_nothing(admin_client):
    first = make_show(starts_at=datetime(2026, 1, 16, 0, 30, tzinfo=UTC))
    second = make_show(hall=first.hall, starts_at=first.ends_at + timedelta(hours=1))

    response = admin_client.post(
        url("show", "change", second.pk), show_form(second.movie, second.hall, "2026-01-15", "20:00")
    )

    assert response.status_code == 200
    assert "shows in one hall can't overlap" in form_errors(response)["__all__"][0]
    assert Show.objects.get(pk=second.pk).starts_at == second.starts_at


def test_a_missing_price_shows_an_error_and_saves_nothing(admin_client):
    hall = make_hall()  # all four seat types

    response = admin_client.post(
        url("show", "add"),
        show_form(make_movie(), hall, "2026-01-15", "19:30", price_premium="", price_wheelchair="", price_companion=""),
    )

    assert response.status_code == 200
    assert form_errors(response) == {
        "__all__": ["This hall has Companion, Premium, Wheelchair seats: give a price for each."]
    }
    assert not Show.objects.exists()


def test_a_time_the_clocks_skip_is_refused(admin_client):
    hall = make_hall()  # New York, where 02:00 becomes 03:00 on 8 March 2026

    response = admin_client.post(url("show", "add"), show_form(make_movie(), hall, "2026-03-08", "02:30"))

    assert response.status_code == 200
    assert form_errors(response) == {
        "starts_at": ["02:30 doesn't happen on 08 Mar 2026 in America/New_York: the clocks go forward past it."]
    }
    assert not Show.objects.exists()


def test_the_show_forms_hall_picker_finds_halls_by_cinema_name(admin_client):
    hall = make_hall(cinema=make_cinema(name="Regal Union Square"), name="Screen 4")
    make_hall(name="Screen 4")

    response = admin_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "cinemas", "model_name": "show", "field_name": "hall", "term": "union"},
    )

    assert response.json()["results"] == [{"id": str(hall.pk), "text": "Regal Union Square – Screen 4"}]


# --- Shows in the cinema's own time: messages and the date drill-down -------------------------------------------


def saved_messages(response):
    return [str(message) for message in response.context["messages"]]


def test_the_saved_message_gives_the_start_on_the_cinemas_clock_and_names_its_zone(admin_client):
    hall = make_hall()  # New York: 19:00 on Monday 8 December is 00:00 UTC on the 9th

    added = admin_client.post(url("show", "add"), show_form(make_movie(), hall, "2025-12-08", "19:00"), follow=True)

    show = Show.objects.get(hall=hall)
    assert show.starts_at == datetime(2025, 12, 9, 0, 0, tzinfo=UTC)
    (message,) = saved_messages(added)
    assert "Mon 8 Dec 2025 19:00 (America/New_York)" in message and "UTC" not in message

    changed = admin_client.post(
        url("show", "change", show.pk), show_form(show.movie, hall, "2025-12-08", "21:15"), follow=True
    )

    (message,) = saved_messages(changed)
    assert "Mon 8 Dec 2025 21:15 (America/New_York)" in message and "UTC" not in message


def shows_listed(admin_client, **query):
    response = admin_client.get(url("show"), query)
    assert response.status_code == 200
    return set(response.context["cl"].result_list)


def date_choices(admin_client, **query):
    """The drill-down's choices in the sidebar: {display: query string}."""
    response = admin_client.get(url("show"), query)
    (spec,) = [spec for spec in response.context["cl"].filter_specs if isinstance(spec, LocalDateFilter)]
    return {choice["display"]: choice["query_string"] for choice in spec.choices(response.context["cl"])}


@pytest.fixture
def evening_shows():
    """Two shows on either side of midnight UTC, each filed under its own cinema's date."""
    new_york = make_show(starts_at=datetime(2025, 12, 9, 0, 0, tzinfo=UTC))  # Mon 8 Dec, 19:00 there
    kolkata = make_show(  # Tue 9 Dec, 01:30 there
        hall=make_hall(cinema=make_cinema(time_zone="Asia/Kolkata")), starts_at=datetime(2025, 12, 8, 20, 0, tzinfo=UTC)
    )
    return new_york, kolkata


def test_the_date_drill_down_files_each_show_under_its_cinemas_own_date(admin_client, evening_shows):
    new_york, kolkata = evening_shows

    assert shows_listed(admin_client, local_date="2025-12-08") == {new_york}
    assert shows_listed(admin_client, local_date="2025-12-09") == {kolkata}
    assert shows_listed(admin_client, local_date="2025-12") == {new_york, kolkata}
    assert shows_listed(admin_client, local_date="2025") == {new_york, kolkata}


def test_the_date_drill_down_goes_from_years_to_months_to_days(admin_client, evening_shows):
    assert set(date_choices(admin_client)) == {"All", "2025"}
    assert set(date_choices(admin_client, local_date="2025")) == {"All", "All of 2025", "December 2025"}
    by_day = date_choices(admin_client, local_date="2025-12")
    assert set(by_day) == {"All", "All of 2025", "December 2025", "· Mon 8 Dec", "· Tue 9 Dec"}
    assert by_day["· Mon 8 Dec"] == "?local_date=2025-12-08"


def test_a_new_years_eve_show_belongs_to_the_old_year_where_it_plays(admin_client):
    show = make_show(starts_at=datetime(2026, 1, 1, 1, 0, tzinfo=UTC))  # 20:00 on 31 Dec in New York

    assert shows_listed(admin_client, local_date="2025") == {show}
    assert shows_listed(admin_client, local_date="2026") == set()
    assert set(date_choices(admin_client)) == {"All", "2025"}


# (A NUL never gets this far: ticketing.middleware refuses it first, tests/ticketing/test_bad_input.py.)
@pytest.mark.parametrize("value", ["2025-13", "2025-02-30", "abc", "9999", "0001-01-01", "２０２５", "2025-1"])
def test_a_date_that_is_no_date_goes_back_to_the_whole_list(admin_client, evening_shows, value):
    response = admin_client.get(url("show"), {"local_date": value})

    assert response.status_code == 302 and response["Location"].endswith("?e=1")


# --- The counter's menu -----------------------------------------------------------------------------------------


def menu_item_form(item, **changes):
    return {"name": item.name, "description": item.description, "price": str(item.price), "on_sale": "on", **changes}


def test_staff_add_a_menu_item_with_its_first_stock(admin_client):
    cinema = make_cinema()
    form = {"cinema": cinema.pk, "name": "Nachos", "description": "", "price": "7.00", "stock": "40", "on_sale": "on"}
    response = admin_client.post(url("menuitem", "add"), form)
    assert response.status_code == 302
    assert MenuItem.objects.get(cinema=cinema, name="Nachos").stock == 40


def test_restocking_adds_to_what_is_left_even_after_buyers_took_some_while_the_form_was_open(admin_client):
    item = MenuItem.objects.create(cinema=make_cinema(), name="Popcorn", price=Decimal("6.00"), stock=10)
    admin_client.get(url("menuitem", "change", item.pk))  # the form shows 10
    add_to_stock(item=item, count=-3)  # buyers take 3 meanwhile
    response = admin_client.post(url("menuitem", "change", item.pk), menu_item_form(item, restock="5"))
    assert response.status_code == 302
    assert MenuItem.objects.get(pk=item.pk).stock == 12


def test_writing_off_more_than_is_left_is_refused_on_the_form_and_changes_nothing(admin_client):
    item = MenuItem.objects.create(cinema=make_cinema(), name="Popcorn", price=Decimal("6.00"), stock=4)
    response = admin_client.post(url("menuitem", "change", item.pk), menu_item_form(item, price="9.00", restock="-5"))
    assert response.status_code == 200
    assert form_errors(response) == {"restock": ["Only 4 are left to write off."]}
    item.refresh_from_db()
    assert (item.stock, item.price) == (4, Decimal("6.00"))


# --- A cinema's money ----------------------------------------------------------------------------------------


def cinema_form(cinema, **changes):
    fields = {
        "city": cinema.city_id,
        "name": cinema.name,
        "address": cinema.address,
        "postal_code": cinema.postal_code,
        "latitude": cinema.latitude,
        "longitude": cinema.longitude,
        "time_zone": cinema.time_zone,
        "currency": "INR",
        "convenience_fee": "30",
        "tax_name": "GST",
        "tax_rate": "18",
        "tax_included": "on",
        "cancellation_cutoff_minutes": 120,
        "refund_policy": "fee_kept",
        "refund_percent": 100,
        "companion_release_minutes": 60,
    }
    return {**fields, **changes}


def test_staff_set_a_cinemas_currency_tax_and_fee_on_its_page(admin_client):
    cinema = make_cinema()

    response = admin_client.post(url("cinema", "change", cinema.pk), cinema_form(cinema, currency="inr"))

    assert response.status_code == 302, form_errors(response)
    cinema.refresh_from_db()
    assert (cinema.currency, cinema.tax_name, cinema.tax_rate, cinema.tax_included, cinema.convenience_fee) == (
        "INR",
        "GST",
        Decimal("18"),
        True,
        Decimal("30"),
    )


@pytest.mark.parametrize(
    ("currency", "problem"), [("XYZ", "Not an ISO 4217 currency code"), ("KWD", "KWD has 3 decimals")]
)
def test_a_currency_the_site_cannot_price_in_is_refused_on_the_form(admin_client, currency, problem):
    cinema = make_cinema()

    response = admin_client.post(url("cinema", "change", cinema.pk), cinema_form(cinema, currency=currency))

    assert response.status_code == 200 and problem in form_errors(response)["currency"][0]
    cinema.refresh_from_db()
    assert cinema.currency == "USD"
