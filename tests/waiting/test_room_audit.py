"""manage.py audit_room_draw: anyone with the room's published secret and its early visitors' ids can recompute
the draw; the command does, compares with the places in the database, and fails on the first that differs."""

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from tests.waiting.rooms import join, on_sale_of
from waiting.management.commands.audit_room_draw import Command
from waiting.models import Room, RoomVisitor
from waiting.rooms import admit_from_room, draw_order

pytestmark = pytest.mark.django_db


def exit_status(on_sale_id):
    """The command's exit status as manage.py runs it."""
    with pytest.raises(SystemExit) as exited:
        Command().run_from_argv(["manage.py", "audit_room_draw", str(on_sale_id)])
    return exited.value.code


@pytest.fixture
def drawn_room():
    """A room with 12 early visitors and 3 late ones, drawn at the opening."""
    with time_machine.travel(timezone.now(), tick=False) as clock:
        on_sale = on_sale_of(opens_in=60)
        early = [join(on_sale, f"early-{number}").pk for number in range(12)]
        clock.move_to(on_sale.opens_at + timedelta(seconds=1))
        admit_from_room(on_sale_id=on_sale.pk)
        late = [join(on_sale, f"late-{number}").pk for number in range(3)]
    return on_sale, early, late


def test_a_drawn_room_passes_the_audit_with_its_counts(drawn_room, capsys):
    on_sale, early, _ = drawn_room
    room = Room.objects.get(pk=on_sale.pk)
    assert room.drawn_count == 12

    call_command("audit_room_draw", on_sale.pk)

    assert capsys.readouterr().out.strip() == (
        f"OK: on-sale {on_sale.pk}'s draw of 12 early visitors, all 12 placed as drawn"
    )
    # What it recomputed, here by hand: the published secret alone orders the early visitors.
    by_place = RoomVisitor.objects.filter(room=room, early=True).order_by("place").values_list("pk", flat=True)
    assert list(by_place) == draw_order(room.secret, early)


def test_a_visitor_admitted_or_gone_since_still_counts_in_the_draw(drawn_room, capsys):
    on_sale, early, _ = drawn_room
    RoomVisitor.objects.filter(pk=early[0]).update(status=RoomVisitor.Status.LEFT)

    call_command("audit_room_draw", on_sale.pk)

    assert capsys.readouterr().out.startswith("OK")


def swap_places(first, second):
    with transaction.atomic():
        a, b = RoomVisitor.objects.get(pk=first).place, RoomVisitor.objects.get(pk=second).place
        RoomVisitor.objects.filter(pk=first).update(place=-1)
        RoomVisitor.objects.filter(pk=second).update(place=a)
        RoomVisitor.objects.filter(pk=first).update(place=b)
    return a, b


def test_the_audit_fails_on_a_tampered_place_and_names_the_first_that_differs(drawn_room, capsys):
    """The negative control: two early visitors' places swapped in the database (someone moved up)."""
    on_sale, _, _ = drawn_room
    room = Room.objects.get(pk=on_sale.pk)
    third, seventh = (
        RoomVisitor.objects.filter(room=room, place__in=[3, 7]).order_by("place").values_list("pk", flat=True)
    )
    swap_places(third, seventh)

    with pytest.raises(CommandError, match=f"place 3: the draw gives {third}, the database {seventh}"):
        call_command("audit_room_draw", on_sale.pk)
    assert exit_status(on_sale.pk) == 1  # manage.py exits non-zero
    assert "MISMATCH" in capsys.readouterr().err


def test_the_audit_fails_when_a_drawn_place_is_missing_or_the_secret_changed(drawn_room):
    on_sale, early, _ = drawn_room
    Room.objects.filter(pk=on_sale.pk).update(secret="0" * 64)
    with pytest.raises(CommandError, match="MISMATCH"):
        call_command("audit_room_draw", on_sale.pk)

    RoomVisitor.objects.filter(pk=early[0]).update(early=False)  # one drawn visitor passed off as a late one
    with pytest.raises(CommandError, match="11 early visitors hold places"):
        call_command("audit_room_draw", on_sale.pk)


def test_a_room_not_drawn_yet_or_an_unknown_on_sale_is_an_error_not_a_crash():
    on_sale = on_sale_of(opens_in=600)
    join(on_sale, "early")
    with pytest.raises(CommandError, match="not drawn yet"):
        call_command("audit_room_draw", on_sale.pk)
    with pytest.raises(CommandError, match=f"On-sale {on_sale.pk + 1000}"):
        call_command("audit_room_draw", on_sale.pk + 1000)
