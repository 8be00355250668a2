"""Gift cards as a means of payment: a balance that pays what it can of a hold, the rest by card; given back when
the hold ends unpaid or the booking is cancelled; and never spent past its balance, however many holds race."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from bookings.models import GIFT_CARD_BALANCE_CHECK, GiftCard, GiftCardRedemption, Payment, Reservation
from bookings.providers import get_provider, parse_card
from bookings.services import (
    BookingError,
    cancel_booking,
    cancel_own_booking,
    hold_seats,
    pay_for_reservation,
    release_lapsed_holds,
)
from bookings.services.gift_cards import issue_gift_card, redeem_gift_card
from tests.bookings.helpers import DECLINED_CARD, GOOD_CARD, TIMEOUT_CARD, reserve, seat_ids
from tests.factories import make_api_key, make_cinema, make_hall, make_show
from tests.helpers import assert_api_error, run_at_once
from ticketing.buyers import Buyer

ALICE = Buyer(None, "alice")


def balance_of(card):
    return GiftCard.objects.values_list("balance", flat=True).get(pk=card.pk)


def charges_of(reservation):
    """The card charges the provider has for the reservation's payments."""
    keys = {str(pk) for pk in Payment.objects.filter(reservation=reservation).values_list("pk", flat=True)}
    return [charge.amount for charge in get_provider().charges() if charge.idempotency_key in keys]


@pytest.fixture
def show(db):
    return make_show(hall=make_hall(plan="R" * 30))  # every seat 10.00


def hold_of(show, count=3, buyer=ALICE, first=0):
    return hold_seats(buyer=buyer, show=show, seat_ids=seat_ids(show)[first : first + count])


@pytest.mark.django_db
class TestPayingWithAGiftCard:
    def test_a_card_worth_more_than_the_hold_pays_it_all_and_the_provider_is_not_called(self, show):
        gift = issue_gift_card(currency="USD", value=Decimal("50.00"))
        hold = hold_of(show)
        booked = pay_for_reservation(buyer=ALICE, reservation_id=hold.pk, card=None, gift_card=gift.code.lower())
        assert booked.status == Reservation.Status.BOOKED
        assert balance_of(gift) == Decimal("20.00")
        assert charges_of(hold) == []
        assert Payment.objects.get(reservation=hold).amount == 0

    def test_a_card_worth_less_pays_its_balance_and_the_card_the_rest(self, show):
        gift = issue_gift_card(currency="USD", value=Decimal("12.50"))
        hold = hold_of(show)
        pay_for_reservation(buyer=ALICE, reservation_id=hold.pk, card=parse_card(GOOD_CARD), gift_card=gift.code)
        assert balance_of(gift) == 0
        assert charges_of(hold) == [Decimal("17.50")]

    def test_a_declined_card_keeps_the_gift_cards_share_and_a_retry_charges_only_the_rest(self, show):
        gift = issue_gift_card(currency="USD", value=Decimal("10.00"))
        hold = hold_of(show)
        with pytest.raises(BookingError) as refusal:
            pay_for_reservation(
                buyer=ALICE, reservation_id=hold.pk, card=parse_card(DECLINED_CARD), gift_card=gift.code
            )
        assert refusal.value.code == "card_declined"
        assert balance_of(gift) == 0
        pay_for_reservation(buyer=ALICE, reservation_id=hold.pk, card=parse_card(GOOD_CARD), gift_card=gift.code)
        assert balance_of(gift) == 0 and charges_of(hold) == [Decimal("20.00")]

    def test_without_a_card_for_the_rest_nothing_is_charged_and_the_hold_stands(self, show):
        gift = issue_gift_card(currency="USD", value=Decimal("10.00"))
        hold = hold_of(show)
        with pytest.raises(BookingError) as refusal:
            pay_for_reservation(buyer=ALICE, reservation_id=hold.pk, card=None, gift_card=gift.code)
        assert refusal.value.code == "invalid_card"
        assert Reservation.objects.get(pk=hold.pk).status == Reservation.Status.RESERVED
        assert not Payment.objects.filter(reservation=hold, status=Payment.Status.PENDING).exists()

    @pytest.mark.parametrize(
        ("code", "refused"),
        [("not a code", "gift_card_invalid"), ("0000-0000-0000-0000", "gift_card_invalid")],
    )
    def test_a_code_that_is_no_gift_card_is_refused(self, show, code, refused):
        hold = hold_of(show)
        with pytest.raises(BookingError) as refusal:
            redeem_gift_card(buyer=ALICE, reservation_id=hold.pk, code=code)
        assert refusal.value.code == refused

    def test_an_expired_card_one_in_another_currency_and_an_empty_one_are_refused_and_keep_their_balance(self, show):
        hold = hold_of(show)
        expired = issue_gift_card(currency="USD", value=Decimal("5"), expires_at=timezone.now() - timedelta(days=1))
        rupees = issue_gift_card(currency="INR", value=Decimal("500"))
        spent = issue_gift_card(currency="USD", value=Decimal("5"))
        GiftCard.objects.filter(pk=spent.pk).update(balance=0)
        for card, code in (
            (expired, "gift_card_expired"),
            (rupees, "gift_card_other_currency"),
            (spent, "gift_card_empty"),
        ):
            with pytest.raises(BookingError) as refusal:
                redeem_gift_card(buyer=ALICE, reservation_id=hold.pk, code=card.code)
            assert refusal.value.code == code
        assert "INR" in BookingError("gift_card_other_currency", currency="INR").message
        assert [balance_of(card) for card in (expired, rupees, spent)] == [5, 500, 0]
        assert not GiftCardRedemption.objects.exists()

    def test_no_card_pays_while_a_charge_of_the_hold_is_of_unknown_outcome(self, show):
        """The provider timed out: the card may have been charged the amount; a gift card must not pay it too."""
        gift = issue_gift_card(currency="USD", value=Decimal("50.00"))
        hold = hold_of(show)
        with pytest.raises(BookingError):
            pay_for_reservation(buyer=ALICE, reservation_id=hold.pk, card=parse_card(TIMEOUT_CARD))
        with pytest.raises(BookingError) as refusal:
            redeem_gift_card(buyer=ALICE, reservation_id=hold.pk, code=gift.code)
        assert refusal.value.code == "payment_in_progress"
        assert balance_of(gift) == 50

    def test_only_the_holder_may_redeem_for_a_hold(self, show):
        gift = issue_gift_card(currency="USD", value=Decimal("50.00"))
        hold = hold_of(show)
        with pytest.raises(BookingError) as refusal:
            redeem_gift_card(buyer=Buyer(None, "mallory"), reservation_id=hold.pk, code=gift.code)
        assert refusal.value.code == "not_found"
        assert balance_of(gift) == 50


@pytest.mark.django_db
class TestTheBalanceComesBack:
    def test_when_the_hold_lapses_unpaid(self, show):
        gift = issue_gift_card(currency="USD", value=Decimal("50.00"))
        hold = hold_of(show)
        assert redeem_gift_card(buyer=ALICE, reservation_id=hold.pk, code=gift.code) == (30, 0)
        assert Reservation.objects.get(pk=hold.pk).gift_cards_paid == 30
        release_lapsed_holds(at=timezone.now() + timedelta(minutes=10))
        assert balance_of(gift) == 50
        assert GiftCardRedemption.objects.get().returned_at is not None
        assert Reservation.objects.get(pk=hold.pk).gift_cards_paid == 0

    def test_when_the_booking_is_cancelled_and_the_card_gets_back_only_its_own_share(self, show):
        gift = issue_gift_card(currency="USD", value=Decimal("12.00"))
        hold = hold_of(show)
        pay_for_reservation(buyer=ALICE, reservation_id=hold.pk, card=parse_card(GOOD_CARD), gift_card=gift.code)
        cancel_booking(reservation_id=hold.pk)
        assert balance_of(gift) == 12
        refund = Payment.objects.get(reservation=hold, kind=Payment.Kind.REFUND)
        assert refund.amount == Decimal("18.00")

    def test_a_booking_paid_in_full_by_gift_card_is_cancelled_without_a_refund_at_the_provider(self, show):
        gift = issue_gift_card(currency="USD", value=Decimal("30.00"))
        hold = hold_of(show)
        pay_for_reservation(buyer=ALICE, reservation_id=hold.pk, card=None, gift_card=gift.code)
        cancel_booking(reservation_id=hold.pk)
        assert balance_of(gift) == 30
        assert not Payment.objects.filter(reservation=hold, kind=Payment.Kind.REFUND).exists()


def paying_through_the_api(show, seats, **payment):
    """A partner holds `seats` of the show and pays with `payment` (gift_card, payment); the pay call's answer."""
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=make_api_key())
    hold = reserve(api, show, seat_ids(show)[:seats], session="s1").json()
    return api.post(
        f"/api/v1/reservations/{hold['reservation_id']}/pay",
        {"session_id": "s1", **payment},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )


@pytest.mark.django_db
class TestTheApi:
    def test_partners_pay_with_a_gift_card_alone_when_it_covers_the_hold(self, show):
        gift = issue_gift_card(currency="USD", value=Decimal("40.00"))
        response = paying_through_the_api(show, 2, gift_card=gift.code)
        assert response.status_code == 200 and response.json()["status"] == "Booked"
        assert balance_of(gift) == 20

    def test_a_pay_call_with_neither_card_nor_gift_card_is_a_400_naming_payment(self, show):
        assert_api_error(paying_through_the_api(show, 1), 400, "invalid_request", field="payment")

    def test_a_bad_gift_card_code_is_a_400_and_charges_nothing(self, show):
        response = paying_through_the_api(show, 1, gift_card="nope", payment=GOOD_CARD)
        assert_api_error(response, 400, "gift_card_invalid")
        assert not Payment.objects.exists()


# Racers at once: below the connection pool's size (DATABASE_POOL_MAX, 10), with the test's own connection.
HOLDS = 8
FULL_HOLDS = 3


def card_row_locked_until_all_wait(card, waiters, race):
    """Run `race` while another connection holds the card's row lock, and let go only once `waiters` sessions wait
    for it: every racer has read the balance as it was before any of them spent it. Returns the race's result."""
    database = connection.settings_dict
    locker = psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=database["NAME"]
    )
    outcome = []
    try:
        locker.execute("SELECT id FROM bookings_giftcard WHERE id = %s FOR UPDATE", [card.pk])
        runner = threading.Thread(target=lambda: outcome.append(race()))
        runner.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            waiting = locker.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s",
                [database["NAME"]],
            ).fetchone()[0]
            if waiting >= waiters:
                break
            time.sleep(0.05)
        locker.rollback()
        runner.join()
    finally:
        locker.close()
    return outcome[0]


def connections_held_together():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.5)")


def holds_redeeming_at_once(show, card):
    holds = [hold_of(show, count=1, buyer=Buyer(None, f"buyer-{n}"), first=n) for n in range(HOLDS)]

    def redeem(n):
        def attempt():
            try:
                return redeem_gift_card(buyer=Buyer(None, f"buyer-{n}"), reservation_id=holds[n].pk, code=card.code)[0]
            except BookingError as refusal:
                return refusal.code

        return attempt

    # Every racer's connection open before the race (the pool starts with two and grows one at a time), so none
    # is still waiting for one when the lock is let go.
    run_at_once([connections_held_together] * HOLDS)
    return card_row_locked_until_all_wait(card, HOLDS, lambda: run_at_once([redeem(n) for n in range(HOLDS)]))


@pytest.mark.django_db(transaction=True)
class TestHoldsRacingToSpendOneCard:
    def test_negative_control_without_the_balance_check_the_racers_spend_more_than_the_card_holds(self, show):
        """Proves the race can see an overspend: without the CHECK, every racer spends from the balance it read."""
        card = issue_gift_card(currency="USD", value=Decimal("10.00") * FULL_HOLDS)
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE bookings_giftcard DROP CONSTRAINT {GIFT_CARD_BALANCE_CHECK}")
        try:
            outcomes = holds_redeeming_at_once(show, card)
            assert outcomes == [Decimal("10.00")] * HOLDS
            assert balance_of(card) == Decimal("10.00") * (FULL_HOLDS - HOLDS)
        finally:
            GiftCard.objects.filter(pk=card.pk).update(balance=0)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"ALTER TABLE bookings_giftcard ADD CONSTRAINT {GIFT_CARD_BALANCE_CHECK}"
                    " CHECK (balance >= 0 AND balance <= initial_value)"
                )

    def test_with_the_real_schema_the_card_pays_exactly_its_balance(self, show):
        card = issue_gift_card(currency="USD", value=Decimal("10.00") * FULL_HOLDS)
        outcomes = holds_redeeming_at_once(show, card)
        assert sorted(outcomes, key=str) == [Decimal("10.00")] * FULL_HOLDS + ["gift_card_empty"] * (HOLDS - FULL_HOLDS)
        assert balance_of(card) == 0
        assert sum(GiftCardRedemption.objects.values_list("amount", flat=True)) == Decimal("10.00") * FULL_HOLDS


CARD_FORM = {"card_number": "4242 4242 4242 4242", "exp_month": "12", "exp_year": "2035", "cvc": "123"}


def checkout(client, show, seats=3):
    response = client.post(f"/shows/{show.pk}/hold", {"seats": seat_ids(show)[:seats]})
    assert response.status_code == 302
    return response["Location"], response["Location"].split("/")[2]


@pytest.mark.django_db
class TestCheckoutsGiftCardForm:
    def test_a_gift_card_worth_less_leaves_the_rest_to_the_card_and_the_pay_button_says_how_much(self, client, show):
        gift = issue_gift_card(currency="USD", value=Decimal("12.00"))
        page, reservation_id = checkout(client, show)
        response = client.post(f"/holds/{reservation_id}/gift-card", {"code": gift.code.lower()})
        assert response.status_code == 302 and response["Location"] == page
        html = client.get(page).content.decode()
        assert f"Gift card ending {gift.code[-4:]}" in html and 'id="amount-due"' in html
        assert "Pay $18.00" in html or "Pay 18.00" in html
        response = client.post(f"/holds/{reservation_id}/pay", {**CARD_FORM, "email": "ann@example.com"})
        assert response.status_code == 302
        assert charges_of(Reservation.objects.get(pk=reservation_id)) == [Decimal("18.00")]

    def test_a_gift_card_that_pays_it_all_books_with_only_an_email(self, client, show):
        gift = issue_gift_card(currency="USD", value=Decimal("100.00"))
        page, reservation_id = checkout(client, show)
        client.post(f"/holds/{reservation_id}/gift-card", {"code": gift.code})
        html = client.get(page).content.decode()
        assert "Your gift cards pay it all." in html and 'name="card_number"' not in html and "Book now" in html
        response = client.post(f"/holds/{reservation_id}/pay", {"email": "ann@example.com"})
        assert response.status_code == 302 and response["Location"] == f"/tickets/{reservation_id}/"
        assert Reservation.objects.get(pk=reservation_id).status == Reservation.Status.BOOKED
        assert balance_of(gift) == Decimal("70.00")

    def test_a_wrong_code_says_so_and_changes_nothing(self, client, show):
        _, reservation_id = checkout(client, show)
        response = client.post(f"/holds/{reservation_id}/gift-card", {"code": "ABCD"})
        assert response.status_code == 400
        assert "This gift card code is not valid" in response.content.decode()
        assert not GiftCardRedemption.objects.exists()


@pytest.mark.django_db
class TestStaffIssueGiftCards:
    def test_staff_issue_a_card_and_its_code_is_drawn_for_them(self, admin_client):
        response = admin_client.post(
            reverse("admin:bookings_giftcard_add"), {"currency": "inr", "initial_value": "1000.00", "expires_at": ""}
        )
        assert response.status_code == 302
        card = GiftCard.objects.get()
        assert (card.currency, card.balance, len(card.code)) == ("INR", Decimal("1000.00"), 16)

    def test_a_card_of_nothing_or_of_no_currency_is_refused(self, admin_client):
        response = admin_client.post(
            reverse("admin:bookings_giftcard_add"), {"currency": "rupees", "initial_value": "0", "expires_at": ""}
        )
        assert response.status_code == 200
        assert set(response.context["adminform"].form.errors) == {"currency", "initial_value"}
        assert not GiftCard.objects.exists()

    def test_a_cards_balance_is_never_edited_by_hand(self, admin_client):
        card = issue_gift_card(currency="USD", value=Decimal("25.00"))
        response = admin_client.post(
            reverse("admin:bookings_giftcard_change", args=[card.pk]), {"currency": "USD", "initial_value": "999"}
        )
        assert response.status_code == 403
        assert balance_of(card) == Decimal("25.00")


@pytest.mark.django_db
class TestABuyerCancellingWhatAGiftCardPaid:
    def test_the_refund_goes_back_the_way_it_was_paid_the_card_first_then_the_gift_card(self):
        cinema = make_cinema(convenience_fee=Decimal("1.50"), refund_policy="fee_kept")
        show = make_show(hall=make_hall(cinema=cinema, plan="R" * 10))
        gift = issue_gift_card(currency="USD", value=Decimal("10.00"))
        hold = hold_of(show)  # 3 × 10.00 + 3 × 1.50 = 34.50
        pay_for_reservation(buyer=ALICE, reservation_id=hold.pk, card=parse_card(GOOD_CARD), gift_card=gift.code)
        assert charges_of(hold) == [Decimal("24.50")]
        cancel_own_booking(reservation_id=hold.pk)
        # 30.00 back (the fees kept): the card's 24.50, and 5.50 on the gift card.
        refund = Payment.objects.get(reservation=hold, kind=Payment.Kind.REFUND)
        assert refund.amount == Decimal("24.50")
        assert balance_of(gift) == Decimal("5.50")
