"""No card data is kept or logged: the number goes to the provider and nowhere else (OWASP ASVS, PCI DSS)."""

import logging
import re
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from tests.bookings.helpers import DECLINED_CARD, GOOD_CARD, pay, reserve, seat_ids

pytestmark = pytest.mark.django_db

CARD_NUMBERS = (GOOD_CARD["card_number"], DECLINED_CARD["card_number"])


def every_row_as_text():
    """Each row of each of our tables, as PostgreSQL prints it (every column, whatever its type)."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT t::text FROM "{table}" t')
            rows.extend(f"{table}: {row}" for (row,) in cursor.fetchall())
    return rows


def test_paying_declined_then_paid_leaves_the_card_number_in_no_table_no_log_and_no_answer(api, show, caplog):
    caplog.set_level(logging.DEBUG)  # everything any logger says, from the database's to ours
    hold = reserve(api, show, seat_ids(show)[:2])
    assert hold.status_code == 201
    reservation_id = hold.json()["reservation_id"]
    declined = pay(api, reservation_id, key="key-1", card=DECLINED_CARD)
    bad_expiry = pay(api, reservation_id, key="key-2", card={**GOOD_CARD, "exp_month": 13})
    paid = pay(api, reservation_id, key="key-3")
    assert (declined.status_code, bad_expiry.status_code, paid.status_code) == (402, 400, 200)

    answers = [declined.content.decode(), bad_expiry.content.decode(), paid.content.decode()]
    rows = every_row_as_text()
    assert len(rows) > 10  # the scan really read the tables: the show, its seats, the booking...
    for number in CARD_NUMBERS:
        assert not [row for row in rows if number in row]
        assert number not in caplog.text
        assert not [answer for answer in answers if number in answer]


# --- The website's checkout never sends a card back ---------------------------------------------------------

WEBSITE_CARD = {"exp_month": "12", "exp_year": "2035", "email": "ann@example.com"}
# (card number, CVC, what else the form says, the answer): declined, timed out, unknown to the provider,
# malformed and expired cards, and a form refused before the card is looked at. The CVCs are all different,
# and none is part of a card number, so a CVC found in a page can only be the one that was sent.
REFUSED_CARDS = [
    ("4000 0000 0000 0002", "8642", {}, 402),
    ("4000-0000-0000-9995", "9731", {}, 504),
    ("5555 5555 5555 4444", "5319", {}, 400),
    ("3782 822463 10005", "7086", {}, 400),
    ("4242 4242 4242 4241", "6420", {}, 400),
    ("6011 1111 1111 1117", "2957", {"exp_year": "2020"}, 400),
    ("4111 1111 1111 1111", "3718", {"exp_month": "13"}, 400),
]


def hold_on_the_website(client, show):
    response = client.post(f"/shows/{show.pk}/hold", {"seats": seat_ids(show)[4:6]})
    assert response.status_code == 302, response.content.decode()[:2000]
    return response["Location"].split("/")[2]


def page_without_tokens(response, reservation_id):
    """The page without what is random in it (the hold's id, CSRF tokens) and without the sandbox's own list of
    test cards, so that a digit string found in the rest came from the request."""
    page = response.content.decode()
    page = page.replace(reservation_id, "").replace(reservation_id.replace("-", ""), "")
    page = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", page)
    return re.sub(r'<p[^>]*id="sandbox-cards".*?</p>', "", page, flags=re.S)


def input_tag(page, name):
    return re.search(rf'<input[^>]*name="{name}"[^>]*>', page).group(0)


@pytest.mark.parametrize(("number", "cvc", "other", "status"), REFUSED_CARDS)
def test_a_refused_card_comes_back_as_its_last_four_digits_only(client, show, number, cvc, other, status):
    reservation_id = hold_on_the_website(client, show)
    form = {**WEBSITE_CARD, "card_number": number, "cvc": cvc, **other}

    response = client.post(f"/holds/{reservation_id}/pay", form)

    assert response.status_code == status
    page = page_without_tokens(response, reservation_id)
    digits = re.sub(r"\D", "", number)
    for shown in {number, digits, digits[:-4], number[:-4].rstrip(" -")}:
        assert shown not in page
    assert cvc not in page
    assert 'value="' not in input_tag(page, "card_number") and 'value="' not in input_tag(page, "cvc")
    assert f"Card ending {digits[-4:]}" in page  # the hint that says which card it was
    assert 'value="ann@example.com"' in input_tag(page, "email")  # what isn't secret is kept


def test_a_card_sent_after_the_hold_ran_out_is_not_echoed_either(client, show, settings):
    reservation_id = hold_on_the_website(client, show)
    later = timezone.now() + timedelta(seconds=settings.TICKETING_HOLD_SECONDS + 60)
    with time_machine.travel(later, tick=False):
        response = client.post(
            f"/holds/{reservation_id}/pay", {**WEBSITE_CARD, "card_number": "4000 0000 0000 0002", "cvc": "8642"}
        )
    assert response.status_code == 410
    page = page_without_tokens(response, reservation_id)
    assert "4000000000000002" not in page and "4000 0000 0000 0002" not in page and "8642" not in page


def test_the_card_form_masks_the_security_code_and_names_each_field_for_autofill(client, show):
    reservation_id = hold_on_the_website(client, show)
    page = client.get(f"/holds/{reservation_id}/").content.decode()
    cvc = input_tag(page, "cvc")
    assert 'type="password"' in cvc and 'inputmode="numeric"' in cvc and 'autocomplete="cc-csc"' in cvc
    for name, autocomplete in [
        ("card_number", "cc-number"),
        ("exp_month", "cc-exp-month"),
        ("exp_year", "cc-exp-year"),
        ("email", "email"),
    ]:
        assert f'autocomplete="{autocomplete}"' in input_tag(page, name)
    assert 'inputmode="numeric"' in input_tag(page, "card_number")
