"""Making on-sales and their rooms for the tests of waiting.rooms."""

from datetime import timedelta

from django.utils import timezone

from cinemas.models import OnSale
from cinemas.on_sales import mark_on_sale
from tests.factories import make_hall, make_show
from ticketing.buyers import Buyer
from waiting.rooms import join_room


def on_sale_of(show=None, *, queue_opens_in=0, opens_in=600, **fields):
    """A show (made if not given) put behind a room that opened `queue_opens_in` seconds from now (0: now) and
    whose sale opens `opens_in` seconds from now."""
    show = show or make_show(hall=make_hall(plan="R" * 20), starts_at=timezone.now() + timedelta(days=2))
    now = timezone.now()
    return mark_on_sale(
        OnSale(
            show=show,
            movie=show.movie,
            queue_opens_at=now + timedelta(seconds=queue_opens_in),
            opens_at=now + timedelta(seconds=opens_in),
            **fields,
        )
    )


def visitor(session, address=None, api_key_id=None):
    return Buyer(api_key_id=api_key_id, session_id=session, client_address=address)


def join(on_sale, session, **kwargs):
    return join_room(buyer=visitor(session), on_sale=on_sale, **kwargs)[0]
