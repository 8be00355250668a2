"""Filters for words and numbers the pages show in the reader's language (`{% load site_format %}`).

`{{ amount|money:currency }}`: an amount in its currency (ISO 4217: a cinema's, a reservation's) as the reader's
language writes it, with the currency's symbol, through Babel (CLDR): "₹450.00", "£12.50", "$15.00" in
English; "12,00 €", "15,00 US$" in Spanish. Rounded to the currency's own decimals (Babel's currency
precision: JPY none, USD two, KWD three), half away from zero as the price breakdown rounds (bookings
migration 0016), in Decimal only. The currency is required (a page that wrote an Indian cinema's prices with
the site's default "$" would be wrong, and Django refuses a template that leaves the argument out when it
loads it); an empty one (a row written without it) falls back to settings.TICKETING_CURRENCY.

`{{ seat.type|seat_type }}`: a seat type's name (the stored words, cinemas.models.SeatType, are machine words
the API and the CSS classes use; only what people read is translated).
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision
from django import template
from django.conf import settings
from django.utils.translation import get_language, pgettext_lazy, to_locale

register = template.Library()

# cinemas.models.SeatType's values (ticketing imports no app: the words are repeated here, for people).
SEAT_TYPE_NAMES = {
    "Regular": pgettext_lazy("seat type", "Regular"),
    "Premium": pgettext_lazy("seat type", "Premium"),
    "Wheelchair": pgettext_lazy("seat type", "Wheelchair"),
    "Companion": pgettext_lazy("seat type", "Companion"),
}


def rounded_to_currency(value, currency):
    """The Decimal `value` rounded to `currency`'s own decimals (as the price breakdown rounds): "0" in dollars is
    0.00, in yen 0."""
    code = currency or settings.TICKETING_CURRENCY
    return value.quantize(Decimal(1).scaleb(-get_currency_precision(code)), rounding=ROUND_HALF_UP)


def money_text(amount, currency):
    """The `amount` (a Decimal, or its text) in `currency` (ISO 4217) in the active language; "" for none."""
    if amount is None or amount == "":
        return ""
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        return str(amount)
    code = currency or settings.TICKETING_CURRENCY
    locale = to_locale(get_language() or settings.LANGUAGE_CODE)
    return format_currency(rounded_to_currency(value, code), code, locale=locale)


def seat_type_name(word):
    """A seat type's name for people, in the active language (an unknown word as it is)."""
    return str(SEAT_TYPE_NAMES.get(word, word))


register.filter("money", money_text)
register.filter("seat_type", seat_type_name)
