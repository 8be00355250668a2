"""The demo's promo codes and gift card (`manage.py seed_promo_codes`, run by `make run` after seed_demo), printed in
its banner."""

from decimal import Decimal

from django.utils import timezone

from bookings.models import GiftCard, PromoCode

# (code, what it is, its fields): one for every show, one for the demo's US cinemas, limited to show the limits.
DEMO_PROMO_CODES = [
    ("WELCOME10", "10 % off the tickets, any show", {"kind": "percent", "value": Decimal("10"), "stackable": True}),
    (
        "FIVEOFF",
        "$5 off in US cinemas, 100 uses, 1 per buyer",
        {
            "kind": "fixed",
            "value": Decimal("5"),
            "currency": "USD",
            "max_uses": 100,
            "max_uses_per_buyer": 1,
            "stackable": True,
        },
    ),
]


def ensure_demo_promo_codes():
    """Make the demo's promo codes that are missing (idempotent); returns [(code, what it is)]."""
    for code, _, fields in DEMO_PROMO_CODES:
        if not PromoCode.objects.filter(code__iexact=code).exists():
            PromoCode.objects.create(code=code, **fields)
    return [(code, about) for code, about, _ in DEMO_PROMO_CODES]


# A gift card anyone can try at checkout: its code is published, so it is for local demos only, like the demo API
# key. Typed in any case and with dashes ("demo-gift-card-0050"); what it pays stays paid (no top-up).
DEMO_GIFT_CARD = ("DEM0G1FTCARD0050", "USD", Decimal("50.00"), "$50 for US cinemas, typed as DEMO-GIFT-CARD-0050")


def ensure_demo_gift_card():
    """Make the demo's gift card if it is missing; returns (code as typed, what it is)."""
    code, currency, value, about = DEMO_GIFT_CARD
    GiftCard.objects.get_or_create(
        code=code,
        defaults={"currency": currency, "initial_value": value, "balance": value, "created_at": timezone.now()},
    )
    return "DEMO-GIFT-CARD-0050", about
