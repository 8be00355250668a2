"""waiter.served: a partner's waiter given seats is told to the partner's endpoints, in the serving transaction
(waiting.services.serve_waiting_line; ticketing.webhooks)."""

from bookings.services import cancel_hold
from tests.waiting.conftest import held_out_show
from ticketing.buyers import Buyer
from ticketing.models import WebhookDelivery, WebhookEndpoint
from ticketing.services import create_api_key
from waiting.models import Waiter
from waiting.services import join_waiting_line, serve_waiting_line


def test_a_partners_waiter_served_is_told_to_its_endpoint_and_a_website_waiters_to_nobody(
    db, django_capture_on_commit_callbacks
):
    api_key, _ = create_api_key(name="cinema-app")
    theirs = WebhookEndpoint.objects.create(api_key=api_key, url="https://app.example/hooks", events=["waiter.served"])
    other_key, _ = create_api_key(name="other-app")
    WebhookEndpoint.objects.create(api_key=other_key, url="https://other.example/hooks", events=["waiter.served"])
    show, holds = held_out_show()
    partners, _ = join_waiting_line(buyer=Buyer(api_key.pk, "alice"), show=show, seats_wanted=2)
    websites, _ = join_waiting_line(buyer=Buyer(None, "bob"), show=show, seats_wanted=1)
    with django_capture_on_commit_callbacks(execute=False):  # freed, but nobody wakes the line yet
        for hold in holds[:3]:
            cancel_hold(buyer=Buyer(None, hold.session_id), reservation_id=hold.pk)
        assert serve_waiting_line(show_id=show.pk) == 2

    partners.refresh_from_db()
    (delivery,) = WebhookDelivery.objects.all()
    assert (delivery.endpoint, delivery.event_type) == (theirs, "waiter.served")
    assert delivery.payload == {
        "waiter_id": str(partners.pk),
        "show_id": show.pk,
        "session_id": "alice",
        "status": "Seats Available",
        "seats_wanted": 2,
        "reservation_id": str(partners.reservation_id),
    }
    assert Waiter.objects.get(pk=websites.pk).status == "Seats Available"
