"""The staff's roles (cinemas.roles): who may do what, and at which cinemas."""

import pytest
from django.contrib.auth.models import AnonymousUser

from cinemas.models import Cinema, StaffRole
from cinemas.roles import ROLE_ACTIONS, StaffAction, cinema_ids_for, may, within_reach
from tests.factories import make_cinema, make_staff_member

pytestmark = pytest.mark.django_db

STAFF_ACTIONS = {
    StaffAction.SELL_AT_BOX_OFFICE,
    StaffAction.HOLD_HOUSE_SEATS,
    StaffAction.CHECK_IN,
    StaffAction.SEE_SALES,
    StaffAction.CANCEL_BOOKINGS,
}
MANAGER_ACTIONS = STAFF_ACTIONS | {StaffAction.SET_PRICES, StaffAction.SCHEDULE_SHOWS}


@pytest.fixture
def own():
    return make_cinema(name="Own")


@pytest.fixture
def other():
    return make_cinema(name="Other")


def test_the_staff_sell_check_in_see_sales_and_cancel_at_their_own_cinema_only(own, other):
    member = make_staff_member(roles=[(own, StaffRole.STAFF)])
    for action in StaffAction:
        assert may(member, action, own.pk) is (action in STAFF_ACTIONS), action
        assert may(member, action, other.pk) is False, action


def test_managers_also_set_prices_and_schedule_at_their_own_cinema_only(own, other):
    manager = make_staff_member(roles=[(own, StaffRole.MANAGER)])
    for action in StaffAction:
        assert may(manager, action, own.pk) is (action in MANAGER_ACTIONS), action
        assert may(manager, action, other.pk) is False, action


def test_running_the_chain_is_no_cinema_roles_business():
    assert all(StaffAction.RUN_CHAIN not in actions for actions in ROLE_ACTIONS.values())


def test_the_chains_admins_do_everything_everywhere(own, other):
    admin = make_staff_member(chain_admin=True)
    assert all(may(admin, action, cinema.pk) for action in StaffAction for cinema in (own, other))
    assert cinema_ids_for(admin, StaffAction.SEE_SALES) is None


def test_one_person_may_have_different_roles_at_different_cinemas(own, other):
    person = make_staff_member(roles=[(own, StaffRole.MANAGER), (other, StaffRole.STAFF)])
    assert cinema_ids_for(person, StaffAction.SCHEDULE_SHOWS) == {own.pk}
    assert cinema_ids_for(person, StaffAction.CHECK_IN) == {own.pk, other.pk}


def test_lists_are_narrowed_to_the_cinemas_within_reach(own, other):
    member = make_staff_member(roles=[(own, StaffRole.STAFF)])
    assert list(within_reach(Cinema.objects.all(), member, StaffAction.SEE_SALES, "id")) == [own]
    assert not within_reach(Cinema.objects.all(), member, StaffAction.SET_PRICES, "id").exists()


@pytest.mark.parametrize("who", ["inactive", "not staff", "anonymous"])
def test_a_role_counts_only_for_an_active_member_of_the_staff(own, who):
    if who == "anonymous":
        user = AnonymousUser()
    else:
        user = make_staff_member(roles=[(own, StaffRole.MANAGER)])
        user.is_active = who != "inactive"
        user.is_staff = who != "not staff"
    assert not any(may(user, action, own.pk) for action in StaffAction)
