"""No card data is kept or logged: the number goes to the provider and nowhere else (OWASP ASVS, PCI DSS)."""

import logging

import pytest
from django.db import connection

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
