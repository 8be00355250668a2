"""The sandbox provider as a separate HTTP service: the same contract as in-process, and faults of its own.

Every test talks to a real `python -m sandbox.payment_service` process through SandboxHttpProvider, the client
the site uses when TICKETING_PAYMENT_PROVIDER names it.
"""

import uuid
from decimal import Decimal

import httpx
import pytest
from django.conf import settings

from bookings.providers import Card, CardDeclined, InvalidCard, PaymentError, ProviderTimeout
from bookings.providers.sandbox_http import SandboxHttpProvider
from tests.conftest import payment_sandbox

GOOD = "4242424242424242"
DECLINED = "4000000000000002"
TIMES_OUT = "4000000000009995"
CLIENT_TIMEOUT = 1


@pytest.fixture(scope="module")
def sandbox_url():
    with payment_sandbox(settings) as (url, service):
        yield url, service


@pytest.fixture
def provider(sandbox_url):
    url, _ = sandbox_url
    httpx.delete(f"{url}/v1/faults")
    return SandboxHttpProvider(base_url=url, timeout=CLIENT_TIMEOUT)


def queue_faults(provider, *faults):
    provider.client.post("/v1/faults", json={"faults": list(faults)}).raise_for_status()


def card(number=GOOD):
    return Card(number=number, exp_month=12, exp_year=2099, cvc="123")


def charge(provider, key, *, number=GOOD, amount="25.50"):
    return provider.charge(amount=Decimal(amount), currency="usd", card=card(number), idempotency_key=key)


def new_key():
    return f"http-{uuid.uuid4().hex}"


def test_a_good_card_is_charged_once_per_key_and_can_be_found_and_listed(provider):
    key = new_key()

    first = charge(provider, key)
    replay = charge(provider, key)

    assert first == replay
    assert (first.amount, first.currency, first.refunded) == (Decimal("25.50"), "USD", False)
    assert provider.find_charge(idempotency_key=key) == first
    assert [found for found in provider.charges() if found.idempotency_key == key] == [first]


def test_the_sandbox_cards_decline_and_time_out_and_other_numbers_are_invalid(provider):
    with pytest.raises(CardDeclined):
        charge(provider, new_key(), number=DECLINED)
    with pytest.raises(ProviderTimeout):
        charge(provider, new_key(), number=TIMES_OUT)
    with pytest.raises(InvalidCard) as invalid:
        charge(provider, new_key(), number="4111111111111111")

    assert "card_number" in invalid.value.fields


def test_a_key_reused_with_another_amount_is_refused(provider):
    key = new_key()
    charge(provider, key)

    with pytest.raises(PaymentError) as refused:
        charge(provider, key, amount="99.00")

    assert refused.value.code == "idempotency_mismatch"


def test_a_refund_is_made_once_per_key_and_marks_a_charge_refunded_in_full(provider):
    made = charge(provider, new_key())
    refund_key = new_key()

    refund = provider.refund(charge_id=made.charge_id, amount=Decimal("25.50"), idempotency_key=refund_key)
    again = provider.refund(charge_id=made.charge_id, amount=Decimal("25.50"), idempotency_key=refund_key)

    assert refund == again and refund.amount == Decimal("25.50")
    assert provider.find_charge(idempotency_key=made.idempotency_key).refunded
    with pytest.raises(PaymentError) as refused:
        provider.refund(charge_id=made.charge_id, amount=Decimal("1"), idempotency_key=new_key())
    assert refused.value.code == "refund_exceeds_charge"


def test_an_unknown_key_finds_no_charge(provider):
    assert provider.find_charge(idempotency_key=new_key()) is None


def test_a_failing_provider_is_an_unknown_outcome_and_charged_nothing(provider):
    key = new_key()
    queue_faults(provider, {"on": "charge", "do": "fail"})

    with pytest.raises(ProviderTimeout):
        charge(provider, key)

    assert provider.find_charge(idempotency_key=key) is None


def test_a_provider_that_times_out_before_charging_charged_nothing(provider):
    key = new_key()
    queue_faults(provider, {"on": "charge", "do": "timeout", "seconds": CLIENT_TIMEOUT + 1})

    with pytest.raises(ProviderTimeout):
        charge(provider, key)

    assert provider.find_charge(idempotency_key=key) is None


@pytest.mark.parametrize("fault", [{"do": "late", "seconds": CLIENT_TIMEOUT + 1}, {"do": "drop"}])
def test_an_answer_that_comes_late_or_never_still_left_a_charge_that_a_retry_gets_back(provider, fault):
    key = new_key()
    queue_faults(provider, {"on": "charge", **fault})

    with pytest.raises(ProviderTimeout):
        charge(provider, key)

    made = provider.find_charge(idempotency_key=key)
    assert made is not None
    assert charge(provider, key) == made  # the retry with the same key: no second charge
    assert [found for found in provider.charges() if found.idempotency_key == key] == [made]


def test_a_request_delivered_twice_charges_once(provider):
    key = new_key()
    queue_faults(provider, {"on": "charge", "do": "twice"})

    made = charge(provider, key)

    assert [found for found in provider.charges() if found.idempotency_key == key] == [made]


def test_a_failing_lookup_is_not_read_as_no_charge(provider):
    key = new_key()
    charge(provider, key)
    queue_faults(provider, {"on": "find", "do": "fail"})

    with pytest.raises(ProviderTimeout):
        provider.find_charge(idempotency_key=key)


def test_a_provider_that_is_down_is_an_unknown_outcome(provider):
    with pytest.raises(ProviderTimeout):
        SandboxHttpProvider(base_url="http://127.0.0.1:9", timeout=CLIENT_TIMEOUT).charge(
            amount=Decimal("1"), currency="USD", card=card(), idempotency_key=new_key()
        )


def test_faults_are_checked_and_unknown_endpoints_are_404(provider):
    bad = provider.client.post("/v1/faults", json={"faults": [{"on": "charge", "do": "explode"}]})
    missing = provider.client.get("/v1/nothing")

    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_fault"
    assert missing.status_code == 404


def test_the_service_writes_no_card_number_anywhere(provider, sandbox_url):
    _, service = sandbox_url
    charge(provider, new_key())
    with pytest.raises(CardDeclined):
        charge(provider, new_key(), number=DECLINED)

    service.log.seek(0)
    written = service.log.read().decode()
    assert GOOD not in written and DECLINED not in written
