"""A buyer may make a hold's countdown longer once, before it lapses (issue 18, point 5: WCAG 2.2.1, Timing
Adjustable).

`extensions` counts how often a hold was extended; the check says "once at most" to every writer, and
bookings_extend_hold decides who extends: it locks the hold's row, so of two buyers' clicks at once the second
finds it extended. It pushes `expires_at` (the countdown) out by p_extension and `held_until` with it, never
back: while a payment is in flight `held_until` may already be later (bookings_start_charge's extension), and
it keeps the later of the two. A declined card gives the hold back its own clock (bookings_settle_failed_charge,
from `expires_at`), which is the extended one.
"""

from django.db import migrations, models

FUNCTION = r"""
-- ExtendHold: a live hold's countdown made p_extension longer, once. Only while its own time runs (its
-- expires_at plus p_grace, the hold's lapse without a payment): past it, a hold kept only by a payment in
-- flight is the payment's to end (payment_in_progress). Locks the reservation row. Refuses not_found,
-- already_booked, hold_expired, hold_cancelled, payment_in_progress, show_started, hold_already_extended.
-- Returns what the answer shows of the hold: its show, amount, currency, clock, seats (map order) and price
-- breakdown (bookings 0016).
CREATE OR REPLACE FUNCTION bookings_extend_hold(
    p_reservation uuid, p_api_key bigint, p_session text, p_extension interval, p_grace interval, p_at timestamptz,
    OUT show_id bigint, OUT amount numeric, OUT currency text, OUT created_at timestamptz,
    OUT expires_at timestamptz, OUT seats jsonb, OUT breakdown jsonb
) LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_hold bookings_reservation;
BEGIN
    SELECT * INTO v_hold FROM bookings_reservation hold
     WHERE hold.id = p_reservation AND hold.api_key_id IS NOT DISTINCT FROM p_api_key AND hold.session_id = p_session
       FOR UPDATE;
    IF NOT FOUND THEN PERFORM bookings_refuse('not_found'); END IF;
    PERFORM bookings_refuse_unless_held(v_hold, p_at);
    IF v_hold.expires_at + p_grace <= p_at THEN PERFORM bookings_refuse('payment_in_progress'); END IF;
    IF (SELECT the_show.starts_at FROM cinemas_show the_show WHERE the_show.id = v_hold.show_id) <= p_at THEN
        PERFORM bookings_refuse('show_started');
    END IF;
    IF v_hold.extensions > 0 THEN PERFORM bookings_refuse('hold_already_extended'); END IF;
    UPDATE bookings_reservation hold
       SET extensions = hold.extensions + 1, expires_at = hold.expires_at + p_extension,
           held_until = greatest(hold.held_until, hold.expires_at + p_extension + p_grace)
     WHERE hold.id = p_reservation
    RETURNING hold.show_id, hold.amount, hold.currency, hold.created_at, hold.expires_at, hold.price_breakdown
         INTO show_id, amount, currency, created_at, expires_at, breakdown;
    seats := bookings_describe_reservation(p_reservation) -> 'seats';
END $$;
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION bookings_extend_hold")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0019_gift_cards")]

    operations = [
        migrations.AddField(
            model_name="reservation",
            name="extensions",
            field=models.PositiveSmallIntegerField(db_default=0, default=0, editable=False),
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.CheckConstraint(
                condition=models.Q(("extensions__lte", 1)), name="bookings_reservation_extended_once"
            ),
        ),
        migrations.RunPython(create_function, drop_function),
    ]
