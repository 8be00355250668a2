"""show.changed: staff change a show's time, hall or format, and every partner's endpoint that asked hears of it
(cinemas.services.reschedule_show, in the change's transaction; ticketing.webhooks)."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from cinemas.models import ShowFormat
from cinemas.services import reschedule_show
from tests.factories import make_hall, make_show, prices_for
from ticketing.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from ticketing.services import create_api_key

pytestmark = pytest.mark.django_db


def endpoint(name, events):
    api_key, _ = create_api_key(name=name)
    return WebhookEndpoint.objects.create(api_key=api_key, url=f"https://{name}.example/hooks", events=events)


def reschedule(show, **changes):
    fields = {"movie": show.movie, "hall": show.hall, "starts_at": show.starts_at, "format": show.format}
    fields.update(changes)
    prices = changes.pop("prices", None) or prices_for(fields["hall"])
    fields.pop("prices", None)
    return reschedule_show(show=show, prices=prices, **fields)


def test_a_show_moved_to_another_time_is_told_to_every_endpoint_that_asked():
    show = make_show(hall=make_hall())
    first, second = endpoint("one", ["show.changed"]), endpoint("two", WebhookEvent.values)
    endpoint("bookings-only", ["booking.created"])

    moved = reschedule(show, starts_at=show.starts_at + timedelta(hours=2))

    deliveries = WebhookDelivery.objects.order_by("endpoint_id")
    assert [delivery.endpoint for delivery in deliveries] == [first, second]
    assert len({delivery.event_id for delivery in deliveries}) == 1  # one event, one id, at each endpoint
    assert deliveries[0].payload == {
        "show_id": show.pk,
        "movie_id": show.movie_id,
        "cinema_id": show.hall.cinema_id,
        "hall_id": show.hall_id,
        "hall": show.hall.name,
        "start_time": moved.starts_at.isoformat().replace("+00:00", "Z"),
        "end_time": moved.ends_at.isoformat().replace("+00:00", "Z"),
        "format": show.format,
    }


def test_a_new_hall_or_format_is_a_change_and_new_prices_alone_are_not():
    show = make_show(hall=make_hall())
    endpoint("one", ["show.changed"])
    reschedule(show, prices=dict.fromkeys(prices_for(show.hall), "99.00"))
    assert not WebhookDelivery.objects.exists()

    reschedule(show, format=ShowFormat.IMAX)
    reschedule(show, hall=make_hall(cinema=show.hall.cinema))
    assert WebhookDelivery.objects.count() == 2


def test_a_change_refused_owes_nothing():
    show = make_show(hall=make_hall())
    other = make_show(hall=show.hall, starts_at=show.ends_at + timedelta(hours=1))
    endpoint("one", ["show.changed"])
    with pytest.raises(ValidationError), transaction.atomic():
        reschedule(other, starts_at=show.starts_at)
    assert not WebhookDelivery.objects.exists()
