from django.core.management.base import BaseCommand

from bookings.demo import ensure_demo_gift_card, ensure_demo_promo_codes


class Command(BaseCommand):
    help = "Make the demo's promo codes and gift card (bookings.demo) if they are missing, and print them."

    def handle(self, *args, **options):
        for code, about in ensure_demo_promo_codes():
            self.stdout.write(f"Promo code {code}: {about}")
        code, about = ensure_demo_gift_card()
        self.stdout.write(f"Gift card {code}: {about}")
