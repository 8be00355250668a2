"""After the sale in a real browser: the ticket found again from a second browser (the mailed link, My bookings by
address and booking code, My bookings by a one-time link read from the mail), and a buyer cancelling from the
ticket page with the refund shown before and after.

Each new_page() is another browser context: no cookies shared with the one that bought. The site runs in its own
process, so its mail goes to files (tests.bookings.mail_backends.FlakyFileBackend, never refusing here), which the
test reads as the buyer's mailbox.
"""

import re
from datetime import UTC
from decimal import Decimal
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from urllib.parse import urlsplit

import icalendar
import pytest
from playwright.sync_api import expect

from bookings.models import Reservation
from cinemas.models import Cinema
from tests.browser_flows import choose_and_hold, expect_ticket, fill_card, pay_button, save_screenshot, small_show
from tests.conftest import redis_keys_of_its_own

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 812}
ADDRESS = "ann.lee@example.com"


@pytest.fixture
def mailbox(tmp_path):
    folder = tmp_path / "mail"
    folder.mkdir()
    return folder


@pytest.fixture
def mailing_site(site_with, mailbox):
    """The site, mailing to `mailbox`, its cache of its own: My bookings' caps count from zero in every run."""
    return site_with(
        **redis_keys_of_its_own(),
        DJANGO_EMAIL_BACKEND="tests.bookings.mail_backends.FlakyFileBackend",
        TEST_MAIL_DIR=mailbox,
        TEST_MAIL_FAILURES=0,
    )


def mails(mailbox):
    """Every mail the site sent, oldest first: (subject, plain-text body)."""
    found = []
    for path in sorted(mailbox.glob("*.log"), key=lambda path: path.stat().st_mtime):
        # The file backend writes each message followed by a line of dashes.
        for raw in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
            if raw.strip():
                message = message_from_bytes(raw.strip(), policy=email_policy.default)
                found.append((message["Subject"], message.get_body(("plain",)).get_content()))
    return found


def link_in_mail(mailbox, pattern):
    """The path of the newest link in the mail matching `pattern`."""
    for _, body in reversed(mails(mailbox)):
        found = re.search(rf"https?://\S*?({pattern})", body)
        if found:
            return urlsplit(found.group(0)).path
    raise AssertionError(f"no link like {pattern} in the mail: {mails(mailbox)}")


def buy_two_seats(page):
    """In `page`'s browser: B1 and B2 of a new small show, paid with ADDRESS; returns the booking."""
    show = small_show()
    page.goto(f"/shows/{show.pk}/")
    reservation_id = choose_and_hold(page, "B1", "B2")
    fill_card(page, email=ADDRESS)
    pay_button(page).click()
    return expect_ticket(page, reservation_id)


def expect_the_ticket_of(page, reservation):
    expect(page.get_by_role("heading", name="Your tickets", level=1)).to_be_visible()
    expect(page.locator("#booking-code")).to_have_text(reservation.booking_code)
    expect(page.locator("#ticket-seats")).to_have_text("B1, B2")


def test_a_second_browser_opens_the_ticket_from_the_mail_and_from_my_bookings(mailing_site, mailbox, new_page):
    buyer = new_page(base_url=mailing_site)
    reservation = buy_two_seats(buyer)

    # The mailed ticket link, on a phone that never saw the site.
    phone = new_page(base_url=mailing_site, viewport=PHONE)
    phone.goto(link_in_mail(mailbox, rf"/tickets/{reservation.pk}/open/\S+/"))
    expect_the_ticket_of(phone, reservation)
    save_screenshot(phone, "ticket-opened-from-mail-phone")
    with phone.expect_download() as download:
        phone.get_by_role("link", name="Add to calendar").click()
    assert download.value.suggested_filename == f"booking-{reservation.booking_code}.ics"
    (event,) = icalendar.Calendar.from_ical(Path(download.value.path()).read_bytes()).walk("VEVENT")
    assert event.decoded("dtstart") == reservation.show.starts_at.astimezone(UTC).replace(microsecond=0)
    expect(phone.locator("#directions")).to_have_attribute("href", re.compile(r"^https://www\.openstreetmap\.org/"))

    # My bookings, from the header, by address and booking code.
    laptop = new_page(base_url=mailing_site, viewport=PHONE)  # a second phone, to see the forms at 375 px
    laptop.goto("/")
    laptop.get_by_role("link", name="My bookings").click()
    expect(laptop.get_by_role("heading", name="My bookings", level=1)).to_be_visible()
    assert laptop.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing wider than the phone
    save_screenshot(laptop, "my-bookings-forms-phone")
    find_form = laptop.locator('form[action="/my-bookings/find"]')
    find_form.get_by_label("Email address").fill(ADDRESS.upper())
    find_form.get_by_label("Booking code").fill(reservation.booking_code.lower())
    find_form.get_by_role("button", name="Open the booking").click()
    expect_the_ticket_of(laptop, reservation)

    # My bookings by a one-time link: the answer, then the mail, then the list.
    tablet = new_page(base_url=mailing_site)
    tablet.goto("/my-bookings/")
    link_form = tablet.locator('form[action="/my-bookings/link"]')
    link_form.get_by_label("Email address").fill(ADDRESS)
    link_form.get_by_role("button", name="Mail me a link").click()
    expect(tablet.locator("#link-sent")).to_contain_text("If this address has bookings with us")
    tablet.goto(link_in_mail(mailbox, r"/my-bookings/open/\S+/"))
    tablet.get_by_role("button", name="Show my bookings").click()
    upcoming = tablet.locator("#upcoming")
    expect(upcoming.get_by_role("link", name=reservation.show.movie.title)).to_be_visible()
    expect(upcoming).to_contain_text(reservation.booking_code)
    save_screenshot(tablet, "my-bookings")
    upcoming.get_by_role("link", name=reservation.show.movie.title).click()
    expect_the_ticket_of(tablet, reservation)


def test_a_buyer_cancels_from_the_ticket_page_and_sees_the_refund(mailing_site, mailbox, new_page):
    page = new_page(base_url=mailing_site, viewport=PHONE)
    reservation = buy_two_seats(page)  # 2 x 12.50
    Cinema.objects.filter(halls__shows__pk=reservation.show_id).update(convenience_fee=Decimal("1.50"))
    page.reload()

    page.get_by_role("link", name="Cancel this booking").click()
    expect(page.get_by_role("heading", name="Cancel your booking", level=1)).to_be_visible()
    expect(page.locator("#refund-terms")).to_contain_text("what you paid but the convenience fees")
    expect(page.locator("#refund-amount")).to_have_text("$25.00")  # 28.00 paid less two fees of 1.50
    save_screenshot(page, "cancel-booking-phone")
    page.get_by_role("button", name="Cancel the booking").click()

    expect(page.get_by_role("heading", name="Booking cancelled", level=1)).to_be_visible()
    expect(page.locator("#booking-cancelled")).to_contain_text("You cancelled this booking")
    expect(page.locator("#refund")).to_contain_text("We refunded $25.00 (USD) to the card ending 4242")
    reservation = Reservation.objects.get(pk=reservation.pk)
    assert (reservation.status, reservation.cancelled_by) == ("Cancelled", "buyer")
    assert reservation.payments.get(kind="refund").amount == Decimal("25.00")
    subject, body = mails(mailbox)[-1]
    assert subject.startswith("Cancellation confirmed: ") and "Refunded: 25.00 USD" in body
