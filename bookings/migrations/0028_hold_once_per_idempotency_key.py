"""A ReserveSeats with an Idempotency-Key holds once even when its process dies between the hold and storing the
answer: bookings_hold_seats_once makes the hold and writes its reservation on the key's row in one transaction, so
a retry that takes the key over finds the hold (bookings.api.answered_once) instead of holding again."""

import django.db.models.deletion
from django.db import migrations, models


# bookings_hold_seats with the key's row first: the hold, then its reservation on the row, one transaction.
HOLD_ONCE = """
CREATE OR REPLACE FUNCTION bookings_hold_seats_once(
    p_request bigint,
    p_show bigint, p_movie bigint, p_api_key bigint, p_session text, p_address inet, p_cap int,
    p_count int, p_seats bigint[], p_best boolean, p_seat_type text, p_check_line boolean,
    p_open_types text[], p_max_seats int, p_hold interval, p_grace interval, p_at timestamptz,
    p_accessible_confirmed boolean,
    OUT reservation_id uuid, OUT version bigint, OUT amount numeric, OUT seats jsonb, OUT freed jsonb,
    OUT breakdown jsonb
) LANGUAGE plpgsql AS $$
BEGIN
    SELECT * INTO reservation_id, version, amount, seats, freed, breakdown
    FROM bookings_hold_seats(
        p_show, p_movie, p_api_key, p_session, p_address, p_cap, p_count, p_seats, p_best, p_seat_type,
        p_check_line, p_open_types, p_max_seats, p_hold, p_grace, p_at, p_accessible_confirmed
    );
    UPDATE bookings_idempotentrequest r SET reservation_id = bookings_hold_seats_once.reservation_id
    WHERE r.id = p_request;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0027_reservation_house_note"),
    ]

    operations = [
        migrations.AddField(
            model_name="idempotentrequest",
            name="reservation",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="bookings.reservation",
                verbose_name="reservation",
            ),
        ),
        migrations.RunSQL(HOLD_ONCE, "DROP FUNCTION IF EXISTS bookings_hold_seats_once"),
    ]
