"""The demo's promo codes (`manage.py seed_promo_codes`, run by `make run` after seed_demo), printed in its banner."""

from decimal import Decimal

from bookings.models import PromoCode

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
