import asyncio
import threading
import time
import uuid
from decimal import Decimal

import pytest
import time_machine

from bookings import providers
from bookings.providers import get_provider, parse_card
from bookings.providers import sandbox as ledger
from bookings.providers.sandbox import SandboxProvider
from ticketing.lean import close_connections

GOOD = "4242424242424242"
DECLINED = "4000000000000002"
TIMES_OUT = "4000000000009995"


def card(number=GOOD, **fields):
    return providers.Card(
        number=number, exp_month=fields.get("exp_month", 12), exp_year=fields.get("exp_year", 2099), cvc="123"
    )


def new_key():
    return f"pay-{uuid.uuid4().hex}"


@pytest.fixture
def sandbox():
    return SandboxProvider()


def pay(sandbox, *, amount="25.50", currency="USD", number=GOOD, key=None):
    return sandbox.charge(
        amount=Decimal(amount), currency=currency, card=card(number), idempotency_key=key or new_key()
    )


# --- parse_card ---------------------------------------------------------------------------------------------


def test_it_reads_the_api_payment_object_ignoring_spaces_in_the_number():
    parsed = parse_card({"card_number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2030, "cvc": "123"})

    assert parsed == providers.Card(number=GOOD, exp_month=12, exp_year=2030, cvc="123")
    assert parsed.last4 == "4242"


def test_a_card_never_shows_its_number_or_cvc_in_its_repr():
    shown = repr(providers.Card(number=GOOD, exp_month=1, exp_year=2031, cvc="987"))

    assert GOOD not in shown
    assert "987" not in shown
    assert "4242" in shown


def test_it_names_every_missing_field():
    with pytest.raises(providers.InvalidCard) as raised:
        parse_card({})

    assert raised.value.code == "invalid_card"
    assert set(raised.value.fields) == {"card_number", "exp_month", "exp_year", "cvc"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("card_number", "4242 4242 4242 4241"),  # fails the checksum
        ("card_number", "4242abcd42424242"),
        ("card_number", "42424242"),
        ("card_number", 4242424242424242),
        ("exp_month", 13),
        ("exp_month", 0),
        ("exp_month", True),
        ("exp_month", "twelve"),
        ("exp_month", "²"),  # a Unicode digit str.isdigit() accepts and int() refuses (found by schemathesis)
        ("card_number", "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢"),  # Arabic-Indic digits
        ("cvc", "１２３"),  # full-width digits
        ("exp_year", 30),
        ("cvc", "12"),
        ("cvc", "12a"),
        ("cvc", 123),
    ],
)
def test_it_refuses_a_malformed_field_naming_only_that_field(field, value):
    data = {"card_number": GOOD, "exp_month": 12, "exp_year": 2030, "cvc": "123", field: value}

    with pytest.raises(providers.InvalidCard) as raised:
        parse_card(data)

    assert list(raised.value.fields) == [field]


def test_it_refuses_something_that_is_not_an_object():
    with pytest.raises(providers.InvalidCard) as raised:
        parse_card(["4242424242424242"])

    assert list(raised.value.fields) == ["payment"]


def test_a_card_is_good_through_the_end_of_its_expiry_month():
    data = {"card_number": GOOD, "exp_month": 12, "exp_year": 2030, "cvc": "123"}

    with time_machine.travel("2030-12-31 23:59:00+00:00", tick=False):
        assert parse_card(data).exp_year == 2030
    with time_machine.travel("2031-01-01 00:00:00+00:00", tick=False), pytest.raises(providers.InvalidCard) as raised:
        parse_card(data)

    assert raised.value.fields == {"exp_year": ["This card has expired."]}


def test_it_accepts_month_and_year_as_digit_strings():
    parsed = parse_card({"card_number": GOOD, "exp_month": "07", "exp_year": "2030", "cvc": "0123"})

    assert (parsed.exp_month, parsed.exp_year, parsed.cvc) == (7, 2030, "0123")


# --- charge -------------------------------------------------------------------------------------------------


def test_the_success_card_is_charged_and_lands_in_the_ledger(sandbox):
    key = new_key()

    charge = pay(sandbox, amount="25.50", currency="usd", key=key)

    assert charge.charge_id.startswith("ch_")
    assert charge == providers.Charge(
        charge_id=charge.charge_id, amount=Decimal("25.50"), currency="USD", idempotency_key=key
    )
    assert sandbox.charges() == [charge]


def test_the_decline_card_is_declined_and_nothing_is_charged(sandbox):
    key = new_key()

    with pytest.raises(providers.CardDeclined) as raised:
        pay(sandbox, number=DECLINED, key=key)

    assert raised.value.code == "card_declined"
    assert sandbox.charges() == []
    assert sandbox.find_charge(idempotency_key=key) is None


def test_the_timeout_card_times_out_without_a_charge(sandbox):
    key = new_key()

    with pytest.raises(providers.ProviderTimeout) as raised:
        pay(sandbox, number=TIMES_OUT, key=key)

    assert raised.value.code == "payment_timeout"
    assert sandbox.find_charge(idempotency_key=key) is None
    assert sandbox.charges() == []


def test_a_key_that_timed_out_times_out_again_rather_than_sticking(sandbox):
    key = new_key()
    with pytest.raises(providers.ProviderTimeout):
        pay(sandbox, number=TIMES_OUT, key=key)

    with pytest.raises(providers.ProviderTimeout):
        pay(sandbox, number=TIMES_OUT, key=key)


def test_a_declined_attempt_leaves_its_key_free_for_another_card(sandbox):
    key = new_key()
    with pytest.raises(providers.CardDeclined):
        pay(sandbox, number=DECLINED, key=key)

    charge = pay(sandbox, number=GOOD, key=key)

    assert sandbox.charges() == [charge]


@pytest.mark.parametrize("number", ["4111111111111111", "5555555555554444", "4242424242424241"])
def test_any_other_number_is_an_invalid_card(sandbox, number):
    with pytest.raises(providers.InvalidCard) as raised:
        pay(sandbox, number=number)

    assert raised.value.code == "invalid_card"
    assert "card_number" in raised.value.fields
    assert sandbox.charges() == []


def test_an_expired_card_is_refused_by_the_provider_too(sandbox):
    with pytest.raises(providers.InvalidCard) as raised:
        sandbox.charge(
            amount=Decimal("5"), currency="USD", card=card(exp_month=1, exp_year=2001), idempotency_key=new_key()
        )

    assert "exp_year" in raised.value.fields


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-1"), Decimal("NaN"), 5, "5.00"])
def test_it_refuses_an_amount_that_is_not_a_positive_decimal(sandbox, amount):
    with pytest.raises(providers.PaymentError) as raised:
        sandbox.charge(amount=amount, currency="USD", card=card(), idempotency_key=new_key())

    assert raised.value.code == "invalid_amount"


def test_a_replay_with_the_same_key_returns_the_first_charge(sandbox):
    key = new_key()

    first = pay(sandbox, amount="10.00", key=key)
    again = pay(sandbox, amount="10", key=key)  # the same amount, written differently

    assert again == first
    assert sandbox.charges() == [first]


@pytest.mark.parametrize(
    "change",
    [{"amount": "10.01"}, {"currency": "EUR"}, {"number": DECLINED}],
)
def test_a_replay_with_other_details_is_refused(sandbox, change):
    key = new_key()
    first = pay(sandbox, amount="10.00", key=key)

    with pytest.raises(providers.PaymentError) as raised:
        pay(sandbox, **{"amount": "10.00", "key": key, **change})

    assert raised.value.code == "idempotency_mismatch"
    assert sandbox.charges() == [first]


def test_fifty_concurrent_charges_with_one_key_make_one_charge(sandbox):
    key = new_key()
    start = threading.Barrier(50)
    answers = []
    failures = []

    def charge_once():
        start.wait()
        try:
            answers.append(pay(sandbox, amount="42.00", key=key).charge_id)
        except Exception as error:  # any error at all is a failure; the assert shows it
            failures.append(error)

    threads = [threading.Thread(target=charge_once) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len(answers) == 50
    assert len(set(answers)) == 1
    assert [charge.charge_id for charge in sandbox.charges()] == answers[:1]


def test_a_caller_that_loses_the_race_times_out_while_the_winner_is_still_charging(sandbox, monkeypatch):
    key = new_key()
    monkeypatch.setattr(ledger, "WAIT_SECONDS", 0.2)
    inside, release = threading.Event(), threading.Event()
    next_number = ledger._next_number

    def slow_next_number():
        inside.set()
        release.wait(5)
        return next_number()

    monkeypatch.setattr(ledger, "_next_number", slow_next_number)
    winner = []
    thread = threading.Thread(target=lambda: winner.append(pay(sandbox, amount="42.00", key=key)))
    thread.start()
    assert inside.wait(5)

    with pytest.raises(providers.ProviderTimeout):
        pay(sandbox, amount="42.00", key=key)
    assert sandbox.find_charge(idempotency_key=key) is None  # in flight: not charged yet

    release.set()
    thread.join()
    assert sandbox.find_charge(idempotency_key=key) == winner[0]


def test_a_key_whose_caller_died_mid_charge_frees_itself(sandbox, monkeypatch):
    key = new_key()
    monkeypatch.setattr(ledger, "CLAIM_SECONDS", 1)
    next_number = ledger._next_number

    def crash():
        raise SystemExit("the process died here")

    monkeypatch.setattr(ledger, "_next_number", crash)
    with pytest.raises(SystemExit):
        pay(sandbox, key=key)
    monkeypatch.setattr(ledger, "_next_number", next_number)
    time.sleep(1.2)

    charge = pay(sandbox, key=key)

    assert sandbox.charges() == [charge]


def test_a_ledger_it_cannot_reach_is_a_timeout_not_an_answer(sandbox, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }

    with pytest.raises(providers.ProviderTimeout):
        pay(sandbox)
    with pytest.raises(providers.ProviderTimeout):
        sandbox.find_charge(idempotency_key=new_key())


# --- find_charge --------------------------------------------------------------------------------------------


def test_find_charge_finds_a_charge_by_its_key(sandbox):
    key = new_key()
    charge = pay(sandbox, key=key)

    assert sandbox.find_charge(idempotency_key=key) == charge


def test_find_charge_returns_none_for_an_unknown_key(sandbox):
    pay(sandbox)

    assert sandbox.find_charge(idempotency_key=new_key()) is None


# --- refund -------------------------------------------------------------------------------------------------


def test_a_full_refund_marks_the_charge_refunded(sandbox):
    charge = pay(sandbox, amount="30.00")

    refund = sandbox.refund(charge_id=charge.charge_id, amount=Decimal("30.00"), idempotency_key=new_key())

    assert refund.refund_id.startswith("re_")
    assert refund == providers.Refund(refund_id=refund.refund_id, charge_id=charge.charge_id, amount=Decimal("30.00"))
    assert sandbox.find_charge(idempotency_key=charge.idempotency_key).refunded is True
    assert [listed.refunded for listed in sandbox.charges()] == [True]


def test_a_partial_refund_leaves_the_charge_not_fully_refunded(sandbox):
    charge = pay(sandbox, amount="30.00")

    sandbox.refund(charge_id=charge.charge_id, amount=Decimal("10.00"), idempotency_key=new_key())

    assert sandbox.find_charge(idempotency_key=charge.idempotency_key).refunded is False


def test_a_refund_replayed_with_its_key_refunds_once(sandbox):
    charge = pay(sandbox, amount="30.00")
    key = new_key()

    first = sandbox.refund(charge_id=charge.charge_id, amount=Decimal("20.00"), idempotency_key=key)
    again = sandbox.refund(charge_id=charge.charge_id, amount=Decimal("20.00"), idempotency_key=key)

    assert again == first
    # Had the replay refunded again, 20 + 20 would pass 30; a third 10 fits only if it did not.
    sandbox.refund(charge_id=charge.charge_id, amount=Decimal("10.00"), idempotency_key=new_key())
    assert sandbox.find_charge(idempotency_key=charge.idempotency_key).refunded is True


def test_a_refund_key_replayed_with_another_amount_is_refused(sandbox):
    charge = pay(sandbox, amount="30.00")
    key = new_key()
    sandbox.refund(charge_id=charge.charge_id, amount=Decimal("20.00"), idempotency_key=key)

    with pytest.raises(providers.PaymentError) as raised:
        sandbox.refund(charge_id=charge.charge_id, amount=Decimal("5.00"), idempotency_key=key)

    assert raised.value.code == "idempotency_mismatch"


def test_refunds_can_not_add_up_to_more_than_the_charge(sandbox):
    charge = pay(sandbox, amount="30.00")
    sandbox.refund(charge_id=charge.charge_id, amount=Decimal("25.00"), idempotency_key=new_key())

    with pytest.raises(providers.PaymentError) as raised:
        sandbox.refund(charge_id=charge.charge_id, amount=Decimal("5.01"), idempotency_key=new_key())

    assert raised.value.code == "refund_exceeds_charge"
    assert sandbox.find_charge(idempotency_key=charge.idempotency_key).refunded is False


def test_concurrent_refunds_with_different_keys_never_pass_the_charge(sandbox):
    charge = pay(sandbox, amount="30.00")
    start = threading.Barrier(10)
    refunded = []
    refused = []

    def refund_ten():
        start.wait()
        try:
            sandbox.refund(charge_id=charge.charge_id, amount=Decimal("10.00"), idempotency_key=new_key())
            refunded.append(1)
        except providers.PaymentError as error:
            refused.append(error.code)

    threads = [threading.Thread(target=refund_ten) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(refunded) == 3
    assert len(refunded) + len(refused) == 10
    assert set(refused) == {"refund_exceeds_charge"}


def test_refunding_an_unknown_charge_is_refused(sandbox):
    with pytest.raises(providers.PaymentError) as raised:
        sandbox.refund(charge_id="ch_nothere", amount=Decimal("1.00"), idempotency_key=new_key())

    assert raised.value.code == "unknown_charge"


# --- get_provider -------------------------------------------------------------------------------------------


class TinyProvider:
    name = "tiny"


def test_get_provider_defaults_to_the_sandbox():
    assert isinstance(get_provider(), SandboxProvider)


def test_get_provider_instantiates_the_configured_class_once(settings):
    settings.TICKETING_PAYMENT_PROVIDER = f"{__name__}.TinyProvider"

    provider = get_provider()

    assert isinstance(provider, TinyProvider)
    assert get_provider() is provider


# --- the async calls (the lean path's) -----------------------------------------------------------------------


def test_the_async_calls_keep_one_ledger_with_the_sync_ones_replays_and_refunds_included(sandbox):
    key, refund_key = new_key(), new_key()

    async def charge_find_and_refund():
        try:
            charged = await sandbox.acharge(amount=Decimal("25.50"), currency="USD", card=card(), idempotency_key=key)
            replayed = await sandbox.acharge(amount=Decimal("25.50"), currency="USD", card=card(), idempotency_key=key)
            found = await sandbox.afind_charge(idempotency_key=key)
            refund = await sandbox.arefund(
                charge_id=charged.charge_id, amount=Decimal("25.50"), idempotency_key=refund_key
            )
            return charged, replayed, found, refund
        finally:
            await close_connections()

    charged, replayed, found, refund = asyncio.run(charge_find_and_refund())

    assert replayed == charged and found.charge_id == charged.charge_id
    assert pay(sandbox, key=key).charge_id == charged.charge_id  # the sync way replays the async charge
    assert sandbox.find_charge(idempotency_key=key).refunded
    assert refund == sandbox.refund(charge_id=charged.charge_id, amount=Decimal("25.50"), idempotency_key=refund_key)
    assert [charge.charge_id for charge in sandbox.charges()] == [charged.charge_id]


def test_the_async_calls_decline_and_time_out_as_the_sync_ones_do(sandbox):
    async def charge(number):
        try:
            return await sandbox.acharge(
                amount=Decimal("1"), currency="USD", card=card(number), idempotency_key=new_key()
            )
        finally:
            await close_connections()

    with pytest.raises(providers.CardDeclined):
        asyncio.run(charge(DECLINED))
    with pytest.raises(providers.ProviderTimeout):
        asyncio.run(charge(TIMES_OUT))
    assert asyncio.run(sandbox_finds_nothing(sandbox)) is None


async def sandbox_finds_nothing(sandbox):
    try:
        return await sandbox.afind_charge(idempotency_key=new_key())
    finally:
        await close_connections()
