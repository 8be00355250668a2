"""Every change to holds, bookings and payments.

The rules that keep a sale correct live here, each in one transaction:
- a seat of a show has at most one live claim: the partial unique index on SeatClaim decides every race,
  so holds of different seats never wait on each other and no lock covers a whole show;
- a hold takes all its seats or none (one transaction; a conflict rolls it back);
- a hold past its `held_until` is free for every new claim at once: a claimer that meets one expires it
  on the spot, so no seat waits for the sweep;
- seat-map pushes, the news of freed or booked seats (bookings.notices: the waiting line's wake-up) and
  provider refunds are sent after commit, never from inside a transaction that may roll back; the provider is
  never called while a row is locked.

The functions live in holds.py, payments.py, box_office.py (the staff's counter and house seats), cancellations.py,
prices.py, promo_codes.py, add_ons.py (food and drink), gift_cards.py, tickets.py, mail.py, my_bookings.py and
sales_tally.py (the sales report's tally); they are all importable from here.
"""

from bookings.services.add_ons import choose_add_ons
from bookings.services.box_office import (
    CounterSale,
    PaidBy,
    find_counter_sale,
    give_up_counter_hold,
    hold_at_box_office,
    hold_house_seats,
    house_holds_of,
    release_house_seats,
    sell_at_box_office,
)
from bookings.services.cancellations import (
    CancellationTerms,
    cancel_booking,
    cancel_own_booking,
    cancellation_refusal,
    cancellation_terms,
    refund_due,
)
from bookings.services.errors import BookingError
from bookings.services.gift_cards import issue_gift_card, move_gift_card_money, redeem_gift_card
from bookings.services.holds import (
    AT_THE_COUNTER,
    BestAvailable,
    acancel_hold,
    achange_seats,
    aextend_hold,
    ahold_seats,
    cancel_hold,
    change_seats,
    extend_hold,
    find_reservation,
    hold_seats,
    hold_seats_for_waiter,
    refuse_unadmitted,
    release_lapsed_holds,
)
from bookings.services.mail import (
    MailNotSent,
    email_ticket,
    header_text,
    queue_mail,
    requeue_overdue_mail,
    resend_mail,
    send_outgoing_mail,
    site_link,
)
from bookings.services.my_bookings import (
    bookings_of,
    find_booking_by_code,
    open_bookings_link,
    request_bookings_link,
)
from bookings.services.payments import (
    aabandon_idempotent_request,
    abandon_idempotent_request,
    abegin_idempotent_request,
    afinish_idempotent_request,
    apay_for_reservation,
    begin_idempotent_request,
    finish_idempotent_request,
    fulfil_charge,
    hold_made_for,
    pay_for_reservation,
    reconcile_payments,
    settle_refund,
)
from bookings.services.prices import PriceBreakdown, price_breakdown
from bookings.services.promo_codes import apply_promo_code, move_promo_code_uses, remove_promo_code
from bookings.services.sales_tally import fold_sales_tally
from bookings.services.tickets import check_in_ticket, find_ticket, ticket_token

__all__ = [
    "sell_at_box_office",
    "release_house_seats",
    "house_holds_of",
    "hold_house_seats",
    "hold_at_box_office",
    "give_up_counter_hold",
    "find_counter_sale",
    "AT_THE_COUNTER",
    "BestAvailable",
    "BookingError",
    "CancellationTerms",
    "CounterSale",
    "MailNotSent",
    "PaidBy",
    "PriceBreakdown",
    "aabandon_idempotent_request",
    "abandon_idempotent_request",
    "abegin_idempotent_request",
    "acancel_hold",
    "achange_seats",
    "aextend_hold",
    "afinish_idempotent_request",
    "ahold_seats",
    "apay_for_reservation",
    "apply_promo_code",
    "begin_idempotent_request",
    "hold_made_for",
    "bookings_of",
    "cancel_booking",
    "cancel_hold",
    "cancel_own_booking",
    "cancellation_refusal",
    "cancellation_terms",
    "change_seats",
    "check_in_ticket",
    "choose_add_ons",
    "email_ticket",
    "extend_hold",
    "find_booking_by_code",
    "find_reservation",
    "find_ticket",
    "finish_idempotent_request",
    "fulfil_charge",
    "header_text",
    "hold_seats",
    "hold_seats_for_waiter",
    "issue_gift_card",
    "move_gift_card_money",
    "move_promo_code_uses",
    "open_bookings_link",
    "pay_for_reservation",
    "price_breakdown",
    "queue_mail",
    "reconcile_payments",
    "redeem_gift_card",
    "refund_due",
    "refuse_unadmitted",
    "release_lapsed_holds",
    "remove_promo_code",
    "request_bookings_link",
    "requeue_overdue_mail",
    "resend_mail",
    "send_outgoing_mail",
    "settle_refund",
    "site_link",
    "ticket_token",
    "fold_sales_tally",
]
