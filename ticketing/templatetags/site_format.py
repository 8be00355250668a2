"""Filters for words and numbers the pages show in the reader's language (`{% load site_format %}`).

`{{ amount|money }}`: a price as the language writes it ("$15.00" in English, "15,00 US$" in Spanish). Prices
are Decimal in TICKETING_CURRENCY (dollars in the demo); the digits follow the language's decimal separator
(Django's number formats) and the sign's place is a sentence of the catalog (locale/).

`{{ seat.type|seat_type }}`: a seat type's name (the stored words, cinemas.models.SeatType, are machine words
the API and the CSS classes use; only what people read is translated).
"""

from decimal import Decimal, InvalidOperation

from django import template
from django.utils import formats
from django.utils.translation import gettext, pgettext_lazy

register = template.Library()

# cinemas.models.SeatType's values (ticketing imports no app: the words are repeated here, for people).
SEAT_TYPE_NAMES = {
    "Regular": pgettext_lazy("seat type", "Regular"),
    "Premium": pgettext_lazy("seat type", "Premium"),
    "Wheelchair": pgettext_lazy("seat type", "Wheelchair"),
    "Companion": pgettext_lazy("seat type", "Companion"),
}


def money_text(amount):
    """The price `amount` (a Decimal, or its text) in the active language; "" for none."""
    if amount is None or amount == "":
        return ""
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        return str(amount)
    # Translators: a price; %(amount)s is the number with its two decimals, already in the language's digits.
    return gettext("$%(amount)s") % {"amount": formats.number_format(value, 2, use_l10n=True)}


def seat_type_name(word):
    """A seat type's name for people, in the active language (an unknown word as it is)."""
    return str(SEAT_TYPE_NAMES.get(word, word))


register.filter("money", money_text)
register.filter("seat_type", seat_type_name)
