"""Who acts on a request: the buyer, from a partner's API key and session id or from a browser's session.

The API, the website and the waiting line all identify buyers here, and the services take the Buyer.
"""

import secrets
from dataclasses import dataclass

from django.conf import settings

from ticketing.proxies import client_address

# The website's buyer id, kept in the browser's Django session.
BUYER_SESSION_KEY = "buyer_id"


@dataclass(frozen=True)
class Buyer:
    """Who acts: a partner's API key (None for the website) and the end user's session within it.

    The client behind the sessions, for the caps on what one client may hold of a show at once: a partner's
    key (`key_seat_cap`: its ApiKey.held_seats_per_show, None for no cap) or, on the website, the visitor's
    network address (`client_address`, capped by TICKETING_MAX_HELD_SEATS_PER_ADDRESS).
    """

    api_key_id: int | None
    session_id: str
    client_address: str | None = None
    key_seat_cap: int | None = None

    @property
    def seat_cap(self):
        """The cap on the seats this buyer's client may hold of a show, or None."""
        if self.api_key_id is not None:
            return self.key_seat_cap
        if self.client_address is not None:
            return settings.TICKETING_MAX_HELD_SEATS_PER_ADDRESS
        return None


def key_buyer(api_key, session_id):
    """A partner's end user: the session `session_id` of the ApiKey `api_key`, capped as the key is."""
    return Buyer(api_key_id=api_key.pk, session_id=session_id, key_seat_cap=api_key.held_seats_per_show)


def session_buyer(request):
    """This browser's buyer: no account, a random id kept in its session (an API partner brings its own).

    The website's buyers have no API key, so no partner's session id can ever name one of them.
    """
    buyer_id = request.session.get(BUYER_SESSION_KEY)
    if buyer_id is None:
        buyer_id = secrets.token_urlsafe(24)
        request.session[BUYER_SESSION_KEY] = buyer_id
    return Buyer(api_key_id=None, session_id=buyer_id, client_address=client_address(request))


# The waiting rooms' admission passes this browser was given, by on-sale id (cinemas.on_sales): the room's page
# keeps them, the seat map and the hold read them.
ADMISSION_PASSES_SESSION_KEY = "admission_passes"


def session_pass(request, on_sale_id):
    """The admission pass this browser was given by the on-sale's room, or None."""
    passes = request.session.get(ADMISSION_PASSES_SESSION_KEY)
    return passes.get(str(on_sale_id)) if isinstance(passes, dict) else None


def keep_pass(request, on_sale_id, token):
    """Keep the on-sale room's pass in this browser's session (a new one replaces the old)."""
    passes = request.session.get(ADMISSION_PASSES_SESSION_KEY)
    passes = dict(passes) if isinstance(passes, dict) else {}
    passes[str(on_sale_id)] = token
    request.session[ADMISSION_PASSES_SESSION_KEY] = passes
