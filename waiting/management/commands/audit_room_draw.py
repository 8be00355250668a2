from django.core.management.base import BaseCommand, CommandError

from waiting.rooms import RoomError, audit_draw


class Command(BaseCommand):
    help = (
        "Check an on-sale's waiting-room draw: recompute the early visitors' order from the room's published "
        "secret (waiting.rooms.draw_order) and compare it with their places. Prints OK with the counts, or the "
        "first mismatch and exits 1."
    )

    def add_arguments(self, parser):
        parser.add_argument("on_sale_id", type=int)

    def handle(self, *args, on_sale_id, **options):
        try:
            audit = audit_draw(on_sale_id)
        except RoomError as refusal:
            raise CommandError(f"On-sale {on_sale_id}: {refusal.message}") from None
        if audit is None:
            raise CommandError(f"On-sale {on_sale_id}'s room is not drawn yet: its draw is when the sale opens.")
        if audit.mismatch is not None:
            raise CommandError(f"MISMATCH in on-sale {on_sale_id}'s draw: {audit.mismatch}")
        self.stdout.write(
            f"OK: on-sale {on_sale_id}'s draw of {audit.drawn} early visitors, all {audit.checked} placed as drawn"
        )
