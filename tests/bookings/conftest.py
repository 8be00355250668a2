import pytest

from bookings.services import Buyer
from tests.factories import make_hall, make_show


@pytest.fixture
def show(db):
    """A show tomorrow in a 13-seat hall (see tests.factories.SMALL_PLAN)."""
    return make_show(hall=make_hall())


@pytest.fixture
def alice():
    return Buyer(api_key_id=None, session_id="alice")


@pytest.fixture
def bob():
    return Buyer(api_key_id=None, session_id="bob")
