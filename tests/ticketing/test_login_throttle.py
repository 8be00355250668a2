"""Failed logins are throttled per account and per address (django-axes): the admin's login, which is also the one
staff check-in sends staff to, stops trying passwords after 5 failures for a username or from an address, for 15
minutes after the last try.

Before: the admin login accepted 30 wrong passwords in 16 s with no slowdown. The address is the peer's, as for the
hold cap (ticketing/proxies.py): a header the client wrote can't give it a fresh count.
"""

import re
from datetime import timedelta

import httpx
import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from tests import conftest

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
PASSWORD = "the-right-password-42"
ATTACKER, STAFF_DESK, ELSEWHERE = "203.0.113.66", "198.51.100.10", "192.0.2.20"


@pytest.fixture
def staff():
    """Two staff accounts: `admin`, the one attacked, and `bob`, another member of staff."""
    users = get_user_model().objects
    return {
        name: users.create_user(name, password=PASSWORD, is_staff=True, is_superuser=name == "admin")
        for name in ("admin", "bob")
    }


def log_in(username, password, *, address, path=LOGIN, **headers):
    """One try at the admin's login form from `address`, in a browser of its own; the response."""
    return Client(REMOTE_ADDR=address, headers=headers).post(path, {"username": username, "password": password})


def logged_in(response):
    return response.status_code == 302 and "_auth_user_id" in response.client.session


def wrong(username, *, address, tries=1, **headers):
    return [log_in(username, f"guess-{n}", address=address, **headers).status_code for n in range(tries)]


def test_thirty_wrong_passwords_stop_being_tried_after_five_and_then_the_right_one_is_refused_too(staff):
    codes = wrong("admin", address=ATTACKER, tries=30)

    assert codes == [200] * 4 + [429] * 26
    refused = log_in("admin", PASSWORD, address=ATTACKER)
    assert refused.status_code == 429 and not logged_in(refused)
    assert refused["Retry-After"] == str(15 * 60)
    page = refused.content.decode()
    assert "Too many failed logins" in page and "Try again in 15 minutes" in page
    assert 'name="password"' not in page


def test_a_locked_account_is_refused_from_every_address_and_a_locked_address_for_every_account(staff):
    wrong("admin", address=ATTACKER, tries=5)

    # The account, from anywhere: its own staff at their desk too.
    assert not logged_in(log_in("admin", PASSWORD, address=STAFF_DESK))
    # The address, for any account: another member of staff's right password from there.
    assert not logged_in(log_in("bob", PASSWORD, address=ATTACKER))
    # Neither: another account from another address goes on.
    assert logged_in(log_in("bob", PASSWORD, address=ELSEWHERE))


def test_guessing_many_accounts_from_one_address_is_stopped_by_the_address_count(staff):
    codes = [log_in(f"user{n}", "guess", address=ATTACKER).status_code for n in range(5)]

    assert codes == [200] * 4 + [429]
    assert not logged_in(log_in("admin", PASSWORD, address=ATTACKER))


def test_the_staff_check_in_login_is_the_same_throttled_login(staff):
    check_in = Client(REMOTE_ADDR=ATTACKER).get("/staff/check-in/")
    assert check_in.status_code == 302
    login_page = check_in["Location"]
    assert login_page.startswith(LOGIN)

    codes = [log_in("admin", "guess", address=ATTACKER, path=login_page).status_code for _ in range(6)]

    assert codes == [200] * 4 + [429] * 2
    assert not logged_in(log_in("admin", PASSWORD, address=ATTACKER, path=login_page))


def test_after_the_cool_off_the_right_password_gets_in_again_and_a_try_while_locked_starts_it_again(staff):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        wrong("admin", address=ATTACKER, tries=5)
    with time_machine.travel(start + timedelta(minutes=14, seconds=59), tick=False):
        assert log_in("admin", PASSWORD, address=ATTACKER).status_code == 429  # tried while locked: again 15 min
    with time_machine.travel(start + timedelta(minutes=29, seconds=58), tick=False):
        assert log_in("admin", PASSWORD, address=ATTACKER).status_code == 429
    with time_machine.travel(start + timedelta(minutes=44, seconds=59), tick=False):
        assert logged_in(log_in("admin", PASSWORD, address=ATTACKER))


def test_failures_further_apart_than_the_cool_off_never_add_up_to_a_lockout(staff):
    start = timezone.now()
    for round_number in range(3):
        with time_machine.travel(start + timedelta(minutes=16 * round_number), tick=False):
            assert wrong("admin", address=ATTACKER, tries=4) == [200] * 4
    with time_machine.travel(start + timedelta(minutes=48), tick=False):
        assert logged_in(log_in("admin", PASSWORD, address=ATTACKER))


def test_a_success_before_the_limit_resets_nobody_elses_count(staff):
    """An attacker with an account of their own can't wipe the count of the account they guess at (nor of their
    address) by logging in between guesses."""
    wrong("admin", address=ATTACKER, tries=4)
    assert logged_in(log_in("bob", PASSWORD, address=ATTACKER))

    assert wrong("admin", address=ATTACKER) == [429]
    assert not logged_in(log_in("admin", PASSWORD, address=STAFF_DESK))


def test_a_made_up_x_forwarded_for_does_not_give_an_address_a_fresh_count(staff):
    codes = [log_in(f"user{n}", "guess", address=ATTACKER, x_forwarded_for=f"10.9.8.{n}").status_code for n in range(5)]

    assert codes == [200] * 4 + [429]
    assert not logged_in(log_in("bob", PASSWORD, address=ATTACKER, x_forwarded_for="10.9.8.200"))


def test_negative_control_an_address_read_from_x_forwarded_for_is_walked_around(staff, settings):
    """Proves the test above would see it: with the address taken from the header (what django-ipware would do
    behind no proxy), every forged value starts a fresh count."""
    settings.AXES_CLIENT_IP_CALLABLE = lambda request: request.META.get("HTTP_X_FORWARDED_FOR")
    codes = [log_in(f"user{n}", "guess", address=ATTACKER, x_forwarded_for=f"10.9.8.{n}").status_code for n in range(5)]

    assert codes == [200] * 5
    assert logged_in(log_in("bob", PASSWORD, address=ATTACKER, x_forwarded_for="10.9.8.200"))


@pytest.mark.django_db(transaction=True)
def test_on_a_real_server_forged_x_forwarded_for_values_share_the_peers_count(settings):
    get_user_model().objects.create_user("bob", password=PASSWORD, is_staff=True)
    with conftest.serving(settings, workers=1) as (url, _):

        def try_login(username, password, forwarded_for):
            with httpx.Client(base_url=url, headers={"X-Forwarded-For": forwarded_for}) as browser:
                form = browser.get(LOGIN)
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
                data = {"username": username, "password": password, "csrfmiddlewaretoken": token}
                return browser.post(LOGIN, data=data).status_code

        codes = [try_login(f"user{n}", "guess", f"10.9.8.{n}") for n in range(5)]
        right = try_login("bob", PASSWORD, "10.9.8.200")

    assert codes == [200] * 4 + [429]
    assert right == 429
