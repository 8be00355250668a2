"""My bookings: a buyer finds their bookings again from any browser, with no account.

Two proofs, two reaches:
- the address and a booking code (both in the ticket mail) open that one booking;
- a one-time link mailed to the address (proof of the mailbox) opens the list of every booking made with it.

Asking for a link answers the same whether or not the address has bookings (a link is made and mailed only when it
has some), so the form tells nobody who books here. Both forms are capped per client network address and per
mail address, in the shared cache.
"""

import hashlib
from datetime import timedelta

from django.utils import timezone

from bookings import links, ticket_codes
from bookings.models import BookingsLink, OutgoingMail, Reservation
from bookings.services.errors import BookingError
from bookings.services.mail import BOOKINGS_LINK_MINUTES, queue_mail
from ticketing import shards
from ticketing.api_keys import count_in_cache

# Tries of an address and booking code: per client and per mail address in a quarter of an hour (a code is 40 random
# bits; the cap keeps guessing one for a known address hopeless).
CODE_TRIES = 10
CODE_WINDOW = timedelta(minutes=15)
# Links asked for: few per mail address (nobody's mailbox is flooded), more per client (a household, an office).
LINKS_PER_ADDRESS = 3
LINKS_PER_CLIENT = 10
LINK_WINDOW = timedelta(hours=1)


def _count_try(kind, who, limit, window, at):
    """Count a try of `kind` by `who` in the current window; BookingError("too_many_attempts") past `limit`."""
    seconds = int(window.total_seconds())
    start = int(at.timestamp()) // seconds
    digest = hashlib.sha256(who.encode()).hexdigest()[:32]  # no address in the cache's keys
    if count_in_cache(f"my-bookings:{kind}:{digest}:{start}", ttl=2 * seconds) > limit:
        retry_after = (start + 1) * seconds - int(at.timestamp())
        raise BookingError("too_many_attempts", minutes=max(1, -(-retry_after // 60)), retry_after=retry_after)


def _buyer_address(address):
    return address.strip()


def bookings_query(*, address, booking_code=None):
    """The query of bookings_of, for one database: the bookings made with this mail address (in any case), booked
    or cancelled, their show, hall and cinema read with them. With `booking_code`, only the booking of that code."""
    bookings = Reservation.objects.filter(email__iexact=_buyer_address(address), booking_code__isnull=False)
    if booking_code is not None:
        bookings = bookings.filter(booking_code=booking_code)
    return bookings.select_related("show__movie", "show__hall__cinema")


def bookings_of(*, address, booking_code=None):
    """bookings_query's bookings from every shard (ticketing.shards), as one list, soonest show first."""
    found = shards.from_every_shard(bookings_query(address=address, booking_code=booking_code))
    return sorted(found, key=lambda booking: (booking.show.starts_at, booking.pk))


def find_booking_by_code(*, address, code, client, at=None):
    """The booking with this code made with this mail address, or BookingError("booking_not_found").

    A read. Raises BookingError("too_many_attempts") past CODE_TRIES tries in CODE_WINDOW from the client (its
    network address) or for the mail address; every try counts, found or not.
    """
    at = at or timezone.now()
    address = _buyer_address(address)
    _count_try("code-client", client or "", CODE_TRIES, CODE_WINDOW, at)
    _count_try("code-address", address.lower(), CODE_TRIES, CODE_WINDOW, at)
    try:
        booking_code = ticket_codes.normalize_booking_code(code)
    except ticket_codes.InvalidTicket:
        raise BookingError("booking_not_found") from None
    found = bookings_of(address=address, booking_code=booking_code)
    if not found:
        raise BookingError("booking_not_found")
    return found[0]


def request_bookings_link(*, address, client, at=None):
    """Mail a one-time link to the address's bookings, if it has any; the caller answers the same either way.

    Raises BookingError("too_many_attempts") past LINKS_PER_ADDRESS asks for the address or LINKS_PER_CLIENT from
    the client in LINK_WINDOW. Writes the BookingsLink and owes its mail in one transaction; on commit, the mail's
    task sends it.
    """
    at = at or timezone.now()
    address = _buyer_address(address)
    _count_try("link-client", client or "", LINKS_PER_CLIENT, LINK_WINDOW, at)
    _count_try("link-address", address.lower(), LINKS_PER_ADDRESS, LINK_WINDOW, at)
    if not shards.exists_on_any_shard(bookings_query(address=address)):
        return
    with shards.atomic(durable=True):
        link = BookingsLink.objects.create(
            address=address, created_at=at, expires_at=at + timedelta(minutes=BOOKINGS_LINK_MINUTES)
        )
        queue_mail(kind=OutgoingMail.Kind.BOOKINGS_LINK, link=link, at=at)


def open_bookings_link(*, token, at=None):
    """Use a one-time link: returns the mail address whose bookings it opens.

    A conditional UPDATE marks it used only while unused and unexpired, so it opens once, whoever clicks first.
    Raises BookingError: link_invalid (not a token we signed, or no such link), link_expired (used, or past its
    BOOKINGS_LINK_MINUTES).
    """
    at = at or timezone.now()
    try:
        link_id = links.bookings_link_id(token)
    except links.InvalidLink:
        raise BookingError("link_invalid") from None
    opened = BookingsLink.objects.filter(pk=link_id, used_at__isnull=True, expires_at__gt=at).update(used_at=at)
    link = BookingsLink.objects.filter(pk=link_id).first()
    if link is None:
        raise BookingError("link_invalid")
    if not opened:
        raise BookingError("link_expired", minutes=BOOKINGS_LINK_MINUTES)
    return link.address
