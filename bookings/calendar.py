"""A booking as a calendar event (an .ics file, RFC 5545), for the ticket page's "Add to calendar" and the ticket mail.

The event is in UTC (every calendar shows it in its own zone) from the show's start to its end, at the cinema (its
name and address, and its coordinates as GEO), and says the movie, hall, seats and booking code.
"""

from datetime import UTC
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext
from icalendar import Calendar, Event, vGeo

PRODUCT_ID = "-//Movie tickets//Bookings//EN"


def booking_calendar(reservation, *, seats):
    """The .ics bytes of a booked reservation (its show, hall and cinema read with it) and its `seats` labels."""
    show = reservation.show
    cinema = show.hall.cinema
    event = Event()
    event.add("uid", f"booking-{reservation.pk}@{_host()}")
    event.add("dtstamp", _utc(timezone.now()))
    event.add("dtstart", _utc(show.starts_at))
    event.add("dtend", _utc(show.ends_at))
    event.add("summary", show.movie.title)
    event.add("location", f"{cinema.name}, {cinema.address}")
    event.add("geo", vGeo((float(cinema.latitude), float(cinema.longitude))))
    event.add(
        "description",
        "\n".join(
            [
                f"{cinema.name} · {show.hall.name}",
                gettext("Seats: %(seats)s") % {"seats": ", ".join(seats)},
                gettext("Booking code: %(code)s") % {"code": reservation.booking_code},
            ]
        ),
    )
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    calendar.add_component(event)
    return calendar.to_ical()


def _utc(moment):
    """A moment in UTC to the second, as iCalendar writes it ("20261208T190000Z")."""
    return moment.astimezone(UTC).replace(microsecond=0)


def calendar_file_name(reservation):
    return f"booking-{reservation.booking_code}.ics"


def _host():
    return urlsplit(settings.TICKETING_SITE_URL).hostname or "localhost"
