"""The staff's sales dashboard (issue 19, point 2): /staff/sales/, bookings.sales and its CSV.

The scene is made with the real services: bookings on the website, through a partner's API key and at the counter
(the box office's service, paid in cash), a promo code, a booking the staff cancelled (refunded in full), seats held
for the house and a live hold. The report reads the sales tally the database keeps as they happen
(tests/bookings/test_sales_tally.py tests the tally itself).
"""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils.html import strip_tags

from bookings import staff_views
from bookings.models import PromoCode
from bookings.providers import parse_card
from bookings.sales import SalesFilter, sales_report
from bookings.services import (
    PaidBy,
    apply_promo_code,
    cancel_booking,
    hold_at_box_office,
    hold_house_seats,
    hold_seats,
    pay_for_reservation,
    sell_at_box_office,
)
from cinemas.models import StaffRole
from tests.bookings.helpers import GOOD_CARD
from tests.factories import (
    NY_SALES_TAX,
    make_api_key,
    make_cinema,
    make_hall,
    make_movie,
    make_show,
    make_staff_member,
)
from ticketing.buyers import Buyer
from ticketing.models import ApiKey
from ticketing.templatetags.site_format import money_text

pytestmark = pytest.mark.django_db

SALES = "/staff/sales/"
PLAN = "PPPPPP\nRRRRRRRRRRRRRRRR"  # 6 Premium, 16 Regular: 22 seats
NEW_YORK = ZoneInfo("America/New_York")
SOLD_AT = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)
# Monday 7 December at 20:30 in New York is already Tuesday in UTC (01:30): it is the Monday's show.
LATE_SHOW = datetime(2026, 12, 7, 20, 30, tzinfo=NEW_YORK)
TUESDAY_SHOW = datetime(2026, 12, 8, 18, 0, tzinfo=NEW_YORK)
MUMBAI_SHOW = datetime(2026, 12, 7, 19, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
REPORT_AT = datetime(2026, 12, 8, 12, 0, tzinfo=NEW_YORK)
BOTH_DAYS = {"start": "2026-12-07", "end": "2026-12-08"}


def seat_ids(show, seats):
    """The ids of these seats (labels like "B1": row A is Premium, B Regular) of `show`."""
    by_label = {f"{seat.row_label}{seat.number}": seat.pk for seat in show.hall.seats.all()}
    return [by_label[label] for label in seats]


def book(show, seats, *, session, api_key_id=None, code=None):
    """A booking of these seats of `show` on the website (or through a partner's key), paid by card."""
    buyer = Buyer(api_key_id, session)
    hold = hold_seats(buyer=buyer, show=show, seat_ids=seat_ids(show, seats))
    if code:
        apply_promo_code(buyer=buyer, reservation_id=hold.pk, code=code)
    return pay_for_reservation(buyer=buyer, reservation_id=hold.pk, card=parse_card(GOOD_CARD))


@pytest.fixture
def scene(django_capture_on_commit_callbacks):
    """New York's cinema (dollars, a $1.50 fee a ticket, 8.875 % sales tax on top; Regular $10, Premium $15) with
    a Monday late show and a Tuesday show, and Mumbai's (rupees) with one Monday show."""
    with time_machine.travel(SOLD_AT, tick=False):
        new_york = make_cinema(name="Union Square", **NY_SALES_TAX)
        hall = make_hall(cinema=new_york, plan=PLAN, name="Hall 1")
        movie = make_movie(title="The Long Night")
        late = make_show(movie=movie, hall=hall, starts_at=LATE_SHOW)
        tuesday = make_show(movie=make_movie(title="Morning Light"), hall=hall, starts_at=TUESDAY_SHOW)
        mumbai = make_cinema(name="Bandra", time_zone="Asia/Kolkata", currency="INR")
        mumbai_show = make_show(
            movie=movie,
            hall=make_hall(cinema=mumbai, plan=PLAN),
            starts_at=MUMBAI_SHOW,
            prices={"Regular": Decimal("250"), "Premium": Decimal("400")},
        )
        PromoCode.objects.create(code="SAVE20", kind="percent", value=Decimal("20"))
        make_api_key(name="partner-sales")
        partner = ApiKey.objects.get(name="partner-sales")

        # Monday: $29.40 on the website with SAVE20 (tickets $30, $6 off, fees $3, tax $2.40); $12.52 through a
        # partner ($10, fee $1.50, tax $1.02); $25.04 at the counter ($20, fees $3, tax $2.04); a house seat; and
        # $12.52 on the website that the staff cancel and refund.
        book(late, ["A1", "A2"], session="alice", code="SAVE20")
        book(late, ["B1"], session="partner-buyer", api_key_id=partner.pk)
        seller = make_staff_member(roles=[(new_york, StaffRole.MANAGER)])
        counter = hold_at_box_office(user=seller, show=late, seat_ids=seat_ids(late, ["B2", "B3"]))
        with django_capture_on_commit_callbacks(execute=True):
            sell_at_box_office(user=seller, reservation_id=counter.pk, paid_by=PaidBy.CASH, tendered=Decimal(30))
            hold_house_seats(user=seller, show=late, seat_ids=seat_ids(late, ["B4"]), note="Press")
        refunded = book(late, ["B5"], session="dave")
        with django_capture_on_commit_callbacks(execute=True):
            cancel_booking(reservation_id=refunded.pk)
        # Tuesday: $17.96 on the website (Premium $15, fee $1.50, tax $1.46).
        book(tuesday, ["A1"], session="erin")
        # Mumbai: ₹250, no fee or tax.
        book(mumbai_show, ["B1"], session="gina")
    with time_machine.travel(REPORT_AT - timedelta(minutes=1), tick=False):
        hold_seats(
            buyer=Buyer(None, "frank"),
            show=tuesday,
            seat_ids=list(tuesday.hall.seats.filter(row_label="B", number__in=[1, 2]).values_list("pk", flat=True)),
        )
    return {"new_york": new_york, "mumbai": mumbai, "late": late, "tuesday": tuesday, "mumbai_show": mumbai_show}


MONDAY = {
    "sold": 5, "website": 2, "partners": 1, "box_office": 2, "held": 0, "house": 1, "capacity": 22,
    "gross": Decimal("79.48"), "gross_online": Decimal("54.44"), "gross_box_office": Decimal("25.04"),
    "fees": Decimal("9.00"), "taxes": Decimal("6.48"), "discounts": Decimal("6.00"),
    "refunds": Decimal("12.52"), "net": Decimal("66.96"),
}  # fmt: skip
TUESDAY = {
    "sold": 1, "website": 1, "partners": 0, "box_office": 0, "held": 2, "house": 0, "capacity": 22,
    "gross": Decimal("17.96"), "gross_online": Decimal("17.96"), "gross_box_office": Decimal("0"),
    "fees": Decimal("1.50"), "taxes": Decimal("1.46"), "discounts": Decimal("0"),
    "refunds": Decimal("0"), "net": Decimal("17.96"),
}  # fmt: skip


def figures(row):
    return {name: getattr(row, name) for name in MONDAY}


def staff_client(user):
    client = Client()
    client.force_login(user)
    return client


def get(client, **query):
    with time_machine.travel(REPORT_AT, tick=False):
        return client.get(SALES, query)


def table_rows(response, kind):
    """The rows of the page's tables `kind` (day, cinema, movie, show, total; one per currency), in order: lists
    of the cells' text."""
    tables = re.findall(rf'<table class="sales-table" data-table="{kind}">(.*?)</table>', response.text, re.S)
    return [
        [" ".join(strip_tags(cell).split()) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for table in tables
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    ]


def test_the_page_is_at_staff_sales():
    assert reverse("bookings-staff:sales") == SALES


def test_the_report_sums_each_day_of_a_cinema_from_the_stored_breakdowns_and_refunds(scene):
    report = sales_report(
        SalesFilter(first=LATE_SHOW.date(), last=TUESDAY_SHOW.date(), cinema_ids=frozenset({scene["new_york"].pk})),
        at=REPORT_AT,
    )
    (dollars,) = report
    assert dollars.currency == "USD"
    monday, tuesday = dollars.days
    assert (monday.day.isoformat(), figures(monday)) == ("2026-12-07", MONDAY)
    assert (tuesday.day.isoformat(), figures(tuesday)) == ("2026-12-08", TUESDAY)
    assert dollars.total.sold == 6 and dollars.total.gross == Decimal("97.44") and dollars.total.capacity == 44
    assert dollars.total.occupancy == pytest.approx(6 / 44)


def test_a_show_after_midnight_utc_counts_on_its_day_in_its_cinemas_time_zone(scene):
    def days(first, last):
        (dollars,) = sales_report(
            SalesFilter(first=first, last=last, cinema_ids=frozenset({scene["new_york"].pk})), at=REPORT_AT
        )
        return {row.day.isoformat(): row.sold for row in dollars.days}

    monday, tuesday = LATE_SHOW.date(), TUESDAY_SHOW.date()
    assert LATE_SHOW.astimezone(UTC).date() == tuesday  # the case: Tuesday in UTC
    assert days(monday, monday) == {"2026-12-07": 5}
    assert days(tuesday, tuesday) == {"2026-12-08": 1}


def test_house_seats_are_counted_apart_and_never_as_money(scene):
    (dollars,) = sales_report(
        SalesFilter(first=LATE_SHOW.date(), last=LATE_SHOW.date(), show_id=scene["late"].pk, shows=True),
        at=REPORT_AT,
    )
    (show,) = dollars.shows
    assert show.house == 1 and show.sold == 5
    # House seats are never money: gross is the sales' alone.
    assert show.gross == MONDAY["gross"]


def test_the_chain_admin_sees_every_cinema_with_each_currency_on_its_own(scene):
    response = get(staff_client(make_staff_member(chain_admin=True)), **BOTH_DAYS)
    assert response.status_code == 200
    assert "Chain-wide, in USD" in response.text and "Chain-wide, in INR" in response.text
    totals = table_rows(response, "total")
    # One total per currency: dollars and rupees never in one sum.
    assert [row[9] for row in totals] == [money_text(Decimal("250"), "INR"), money_text(Decimal("97.44"), "USD")]
    cinemas = [row[0] for row in table_rows(response, "cinema")]
    assert cinemas == [f"Bandra, {scene['mumbai'].city.name}", f"Union Square, {scene['new_york'].city.name}"]


def test_a_cinemas_staff_see_its_days_movies_and_shows(scene):
    staff = make_staff_member(roles=[(scene["new_york"], StaffRole.STAFF)])
    response = get(staff_client(staff), **BOTH_DAYS)
    assert response.status_code == 200
    assert "INR" not in response.text and "Bandra" not in response.text
    days = table_rows(response, "day")
    assert [row[0] for row in days] == ["Mon 7 Dec 2026", "Tue 8 Dec 2026"]
    assert days[0][1:9] == ["5", "2", "1", "2", "0", "1", "22", "22.7 %"]
    assert days[0][9:] == [
        money_text(MONDAY[name], "USD")
        for name in ("gross", "gross_online", "gross_box_office", "fees", "taxes", "discounts", "refunds", "net")
    ]
    assert [row[0] for row in table_rows(response, "movie")] == ["The Long Night", "Morning Light"]
    shows = table_rows(response, "show")
    assert [row[0] for row in shows] == [
        "Mon 7 Dec, 20:30 The Long Night, Hall 1",
        "Tue 8 Dec, 18:00 Morning Light, Hall 1",
    ]
    # A cinema's staff have one cinema: no table by cinema, and no chain-wide total.
    assert table_rows(response, "cinema") == [] and "Chain-wide" not in response.text
    assert '<svg viewBox="0 0 72 160"' in response.text and "Seats sold per day" in response.text


def test_the_days_default_to_the_last_14_up_to_today_in_the_cinemas_zone(scene):
    staff = make_staff_member(roles=[(scene["new_york"], StaffRole.STAFF)])
    response = get(staff_client(staff), cinema=scene["new_york"].pk)
    assert response.status_code == 200
    assert 'name="start" value="2026-11-25"' in response.text and 'name="end" value="2026-12-08"' in response.text
    assert [row[0] for row in table_rows(response, "day")] == ["Mon 7 Dec 2026", "Tue 8 Dec 2026"]


def test_a_movie_or_a_show_narrows_the_figures(scene):
    client = staff_client(make_staff_member(roles=[(scene["new_york"], StaffRole.MANAGER)]))
    by_movie = get(client, movie=scene["tuesday"].movie_id, **BOTH_DAYS)
    assert [row[0] for row in table_rows(by_movie, "day")] == ["Tue 8 Dec 2026"]
    by_show = get(client, show=scene["late"].pk, **BOTH_DAYS)
    assert [row[1] for row in table_rows(by_show, "total")] == ["5"]


@pytest.mark.parametrize("filter_to", ["cinema", "show"])
def test_staff_cannot_see_or_filter_to_a_cinema_they_do_not_have(scene, filter_to):
    mumbai_staff = make_staff_member(roles=[(scene["mumbai"], StaffRole.MANAGER)])
    query = {"cinema": scene["new_york"].pk} if filter_to == "cinema" else {"show": scene["late"].pk}
    response = get(staff_client(mumbai_staff), **query, **BOTH_DAYS)
    assert response.status_code == 400
    assert "data-table" not in response.text and "Union Square" not in response.text
    assert "US$" not in response.text and "$" not in strip_tags(response.text)
    csv_response = get(staff_client(mumbai_staff), format="csv", **query, **BOTH_DAYS)
    assert csv_response.status_code == 400 and csv_response["Content-Type"].startswith("text/html")


def test_staff_without_the_sales_role_anywhere_are_refused(scene):
    buyer_account = make_staff_member()  # staff, but of no cinema
    assert get(staff_client(buyer_account), **BOTH_DAYS).status_code == 403
    anonymous = get(Client(), **BOTH_DAYS)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


@pytest.mark.parametrize(
    "query",
    [
        {"start": "2026-13-45"},
        {"end": "yesterday"},
        {"start": "2026-12-08", "end": "2026-12-01"},
        {"start": "2026-01-01", "end": "2026-12-31"},
        {"cinema": "abc"},
        {"cinema": "999999"},
        {"movie": "999999"},
        {"movie": "x"},
        {"show": "abc"},
        {"show": "-1"},
        {"show": "999999"},
        {"start": "9999-12-31", "end": "9999-12-31"},
        {"start": "0001-01-01", "end": "0001-01-01"},
        {"cinema": "99999999999999999999"},
        {"movie": "99999999999999999999"},
        {"show": "99999999999999999999"},
    ],
)
def test_bad_filters_get_the_form_back_with_a_400_never_a_500(scene, query):
    response = get(staff_client(make_staff_member(chain_admin=True)), **query)
    assert response.status_code == 400
    assert 'role="alert"' in response.text and "data-table" not in response.text


def test_a_nul_in_a_filter_is_refused_before_the_page(scene):
    response = get(staff_client(make_staff_member(chain_admin=True)), start="2026-12-01\x00", format="csv")
    assert response.status_code == 400 and "data-table" not in response.text


def test_the_csv_has_the_tables_rows_with_plain_amounts_and_their_currency(scene):
    client = staff_client(make_staff_member(chain_admin=True))
    page = get(client, **BOTH_DAYS)
    response = get(client, format="csv", **BOTH_DAYS)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="sales-2026-12-07-2026-12-08.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    dollar_days = [row for row in rows if row["table"] == "day" and row["currency"] == "USD"]
    assert [(row["day"], row["sold"], row["gross"], row["refunds"], row["net"]) for row in dollar_days] == [
        ("2026-12-07", "5", "79.48", "12.52", "66.96"),
        ("2026-12-08", "1", "17.96", "0.00", "17.96"),
    ]
    # Row for row what the page's tables show.
    for kind in ("total", "day", "cinema", "movie"):
        on_page = table_rows(page, kind)
        in_csv = [row for row in rows if row["table"] == kind]
        assert len(on_page) == len(in_csv)
        for cells, row in zip(on_page, in_csv, strict=True):
            assert cells[1] == row["sold"] and cells[5] == row["held"] and cells[6] == row["house"]
            assert cells[9] == money_text(row["gross"], row["currency"])
            assert cells[16] == money_text(row["net"], row["currency"])


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_quoted(scene):
    scene["late"].movie.__class__.objects.filter(pk=scene["late"].movie_id).update(title='=HYPERLINK("x")')
    response = get(staff_client(make_staff_member(chain_admin=True)), format="csv", **BOTH_DAYS)
    titles = {row["movie"] for row in csv.DictReader(io.StringIO(response.content.decode())) if row["table"] == "movie"}
    assert titles == {'\'=HYPERLINK("x")', "Morning Light"}


def test_the_page_speaks_spanish_with_the_readers_money_format(scene):
    staff = make_staff_member(roles=[(scene["new_york"], StaffRole.STAFF)])
    with time_machine.travel(REPORT_AT, tick=False):
        response = staff_client(staff).get(SALES, BOTH_DAYS, HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 200
    assert "Ventas" in response.text and "Butacas vendidas" in response.text
    assert "79,48\xa0US$" in response.text


def test_every_line_of_a_breakdown_counts_also_two_stacked_promo_codes(django_capture_on_commit_callbacks):
    with time_machine.travel(SOLD_AT, tick=False):
        show = make_show(hall=make_hall(cinema=make_cinema(**NY_SALES_TAX), plan=PLAN), starts_at=LATE_SHOW)
        for code, kind, value in (("TEN", "percent", "10"), ("TWO", "fixed", "2")):
            PromoCode.objects.create(code=code, kind=kind, value=Decimal(value), currency="USD", stackable=True)
        buyer = Buyer(None, "stacker")
        seats = list(show.hall.seats.filter(row_label="A", number__in=[1, 2]).values_list("pk", flat=True))
        hold = hold_seats(buyer=buyer, show=show, seat_ids=seats)
        apply_promo_code(buyer=buyer, reservation_id=hold.pk, code="TEN")
        apply_promo_code(buyer=buyer, reservation_id=hold.pk, code="TWO")
        booking = pay_for_reservation(buyer=buyer, reservation_id=hold.pk, card=parse_card(GOOD_CARD))
    lines = booking.price_breakdown["discounts"]
    assert [line["amount"] for line in lines] == ["3.00", "2.00"]  # 10 % of $30, then $2 of what is left
    (dollars,) = sales_report(SalesFilter(first=LATE_SHOW.date(), last=LATE_SHOW.date(), show_id=show.pk))
    assert dollars.total.discounts == Decimal("5.00") and dollars.total.gross == booking.amount


def test_past_the_page_limit_the_cinemas_table_shows_the_best_sellers_and_the_csv_every_cinema(scene, monkeypatch):
    with time_machine.travel(SOLD_AT, tick=False):
        brooklyn = make_cinema(name="Brooklyn Heights", **NY_SALES_TAX)
        book(make_show(hall=make_hall(cinema=brooklyn, plan=PLAN), starts_at=LATE_SHOW), ["B1"], session="carol")
    monkeypatch.setattr(staff_views, "CINEMAS_ON_PAGE", 1)
    client = staff_client(make_staff_member(chain_admin=True))

    page = get(client, **BOTH_DAYS)

    dollar_cinemas = [row[0] for row in table_rows(page, "cinema") if "Union Square" in row[0] or "Brooklyn" in row[0]]
    assert dollar_cinemas == [f"Union Square, {scene['new_york'].city.name}"]  # 6 seats sold against 1
    assert "The 1 cinemas that sold the most seats; 1 more is in the CSV." in page.text
    rows = list(csv.DictReader(io.StringIO(get(client, format="csv", **BOTH_DAYS).content.decode())))
    in_csv = {row["cinema"] for row in rows if row["table"] == "cinema" and row["currency"] == "USD"}
    assert in_csv == {"Union Square", "Brooklyn Heights"}
