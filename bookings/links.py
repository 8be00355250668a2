"""Links a buyer gets by mail, and links to elsewhere: the signed link to a ticket, the one-time link to an
address's bookings (My bookings), and directions to a cinema.

Signed with Django's signing (SECRET_KEY), each kind under a salt of its own, so no signature of one kind is good
for another. This module touches no database: whether a link has been used is bookings.services.my_bookings's.
"""

import uuid
from urllib.parse import urlencode

from django.core import signing

TICKET_LINK_SALT = "bookings.ticket-link"
BOOKINGS_LINK_SALT = "bookings.my-bookings-link"


class InvalidLink(Exception):
    """The link is not one this site signed: tampered with, cut short, or of another kind."""


def ticket_link_signature(reservation_id):
    """The signature that makes /tickets/<id>/open/<signature>/ open this booking (and no other) on any device.

    Deterministic, with no expiry: the mailed ticket must open on the day of the show. A link is as good as the
    ticket itself (it can cancel the booking), like the mail it came in.
    """
    return signing.Signer(salt=TICKET_LINK_SALT).signature(str(reservation_id))


def check_ticket_link(reservation_id, signature):
    """Nothing if `signature` is this reservation's, else InvalidLink (a constant-time comparison)."""
    try:
        signing.Signer(salt=TICKET_LINK_SALT).unsign(f"{reservation_id}:{signature}")
    except signing.BadSignature:
        raise InvalidLink from None


def bookings_link_token(link_id):
    """The token of a one-time link to an address's bookings: the BookingsLink's id, signed."""
    return signing.Signer(salt=BOOKINGS_LINK_SALT).sign(str(link_id))


def bookings_link_id(token):
    """The BookingsLink id a token names, or InvalidLink."""
    try:
        return uuid.UUID(signing.Signer(salt=BOOKINGS_LINK_SALT).unsign(token))
    except (signing.BadSignature, ValueError):
        raise InvalidLink from None


def directions_url(cinema):
    """Directions to the cinema on OpenStreetMap: a link out, nothing loaded by our pages.

    OpenStreetMap's directions page reads `route` as "from;to" points ("lat,lng", the start left empty for the
    moviegoer to fill in or locate) and shows `to` as the destination's name.
    """
    destination = f"{float(cinema.latitude):.6f},{float(cinema.longitude):.6f}"
    return "https://www.openstreetmap.org/directions?" + urlencode(
        {"to": f"{cinema.name}, {cinema.address}", "route": f";{destination}"}
    )
