"""What a reservation costs, line by line, as every page, mail and answer shows it.

The rule that makes the lines (per-seat prices, the convenience fee, the tax, the promo codes' discounts and
the total) lives in one place, the SQL function bookings_price_breakdown (bookings migration 0016), which the
hold functions call in the same round trip as the hold and store on the reservation with the total as its
amount (what paying charges). This module only reads that stored breakdown into PriceBreakdown, for the
checkout page, the ticket, the mail, the API and the admin alike: nothing here adds up money.
"""

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from django.utils.translation import gettext_lazy

# The fee names bookings_price_breakdown writes (the API's words), as people read them.
FEE_NAMES = {"Convenience fee": gettext_lazy("Convenience fee")}
TAX_FALLBACK_NAME = "Tax"


@dataclass(frozen=True)
class SeatLine:
    id: int
    type: str
    price: Decimal


@dataclass(frozen=True)
class CategoryLine:
    """The seats of one type at one price, as the pages group them ("2 × Premium 22.00")."""

    type: str
    count: int
    price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class FeeLine:
    name: str
    amount: Decimal

    @property
    def label(self):
        return str(FEE_NAMES.get(self.name, self.name))


@dataclass(frozen=True)
class TaxLine:
    name: str
    rate: Decimal
    amount: Decimal
    included: bool


@dataclass(frozen=True)
class DiscountLine:
    code: str
    amount: Decimal


@dataclass(frozen=True)
class AddOnLine:
    """Food or drink: `quantity` of one menu item, for `amount` in all."""

    id: int
    name: str
    quantity: int
    amount: Decimal


@dataclass(frozen=True)
class PriceBreakdown:
    seats: tuple[SeatLine, ...]
    fees: tuple[FeeLine, ...]
    taxes: tuple[TaxLine, ...]
    discounts: tuple[DiscountLine, ...]
    add_ons: tuple[AddOnLine, ...]
    total: Decimal
    currency: str
    # The API's words, exactly as the database wrote them (amounts with the currency's decimals).
    stored: dict

    @property
    def categories(self):
        """The seat lines grouped by type and price, in the order the seats come (map order)."""
        counts = Counter((seat.type, seat.price) for seat in self.seats)
        return [CategoryLine(seat_type, count, price, price * count) for (seat_type, price), count in counts.items()]

    def as_api(self):
        return api_price_breakdown(self.stored)


API_KEYS = ("seats", "fees", "taxes", "discounts", "total", "currency")


def api_price_breakdown(stored):
    """API.md's price_breakdown of a stored breakdown: {"seats", "fees", "taxes", "discounts", "total", "currency"},
    and the food and drink ("add_ons": [{"id", "name", "quantity", "amount"}]) that bookings migration 0021 added.
    Straight from the stored words, with no PriceBreakdown built: the API answers every hold with it."""
    return {key: stored[key] for key in API_KEYS} | {"add_ons": stored.get("add_ons", [])}


def breakdown_of(stored):
    """The PriceBreakdown of a stored breakdown (a reservation's price_breakdown), or None for none."""
    if not stored:
        return None
    return PriceBreakdown(
        seats=tuple(SeatLine(line["id"], line["type"], Decimal(line["price"])) for line in stored["seats"]),
        fees=tuple(FeeLine(line["name"], Decimal(line["amount"])) for line in stored["fees"]),
        taxes=tuple(
            TaxLine(line["name"] or TAX_FALLBACK_NAME, Decimal(line["rate"]), Decimal(line["amount"]), line["included"])
            for line in stored["taxes"]
        ),
        discounts=tuple(DiscountLine(line["code"], Decimal(line["amount"])) for line in stored["discounts"]),
        add_ons=tuple(
            AddOnLine(line["id"], line["name"], line["quantity"], Decimal(line["amount"]))
            for line in stored.get("add_ons", [])
        ),
        total=Decimal(stored["total"]),
        currency=stored["currency"],
        stored=stored,
    )


def price_breakdown(reservation):
    """The reservation's price breakdown as the hold functions computed and stored it (PriceBreakdown), or None
    for a reservation written around them. Reads nothing: the breakdown is on the reservation."""
    return breakdown_of(reservation.price_breakdown)
