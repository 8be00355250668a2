"""bookings_fulfil_charge calls a booking code taken only when the booking code's own constraint is broken.

0019's EXCEPTION block took every unique_violation raised while the reservation became Booked for a code drawn
twice, but the triggers of that update (the sales tally's, 0032) write other tables in the same statement: a
unique violation there was answered "booking code taken" and drawn again five times, hiding the real fault. Now
any other constraint's violation goes up as it is. The function is otherwise 0019's.
"""

from django.db import migrations

FULFIL_CHARGE = r"""
CREATE OR REPLACE FUNCTION bookings_fulfil_charge(
    p_payment uuid, p_provider_reference text, p_booking_code text, p_at timestamptz,
    OUT reservation jsonb, OUT version bigint, OUT booked jsonb, OUT refund jsonb
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_hold bookings_reservation;
    v_charge bookings_payment;
    v_constraint text;
BEGIN
    SELECT * INTO v_hold FROM bookings_reservation hold
     WHERE hold.id = (SELECT reservation_id FROM bookings_payment WHERE id = p_payment) FOR UPDATE;
    SELECT * INTO v_charge FROM bookings_payment WHERE id = p_payment FOR UPDATE;
    IF v_charge.status <> 'succeeded' THEN
        UPDATE bookings_payment SET status = 'succeeded', provider_reference = p_provider_reference, updated_at = p_at
         WHERE id = p_payment;
        IF v_hold.status = 'Reserved' THEN
            BEGIN
                UPDATE bookings_reservation SET status = 'Booked', booking_code = p_booking_code, booked_at = p_at
                 WHERE id = v_hold.id;
            EXCEPTION WHEN unique_violation THEN
                GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
                IF v_constraint <> 'bookings_reservation_booking_code_key' THEN
                    RAISE;  -- another row's uniqueness, broken by a trigger of this update: not a code's collision
                END IF;
                PERFORM bookings_refuse('booking_code_taken');
            END;
            version := nextval('bookings_seat_version');
            WITH marked AS (
                UPDATE bookings_seatclaim SET version = bookings_fulfil_charge.version, booked = true
                 WHERE reservation_id = v_hold.id AND released_at IS NULL
                RETURNING seat_id
            )
            SELECT coalesce(jsonb_agg(seat_id ORDER BY seat_id), '[]') INTO booked FROM marked;
        ELSIF v_charge.amount > 0 THEN  -- a charge of nothing (gift cards paid it all) has nothing to refund
            refund := jsonb_build_object('id', bookings_record_refund(p_payment, p_at),
                                         'charge', p_provider_reference, 'amount', v_charge.amount::text);
        END IF;
    END IF;
    reservation := bookings_describe_reservation(v_hold.id);
END $$;
"""

CONSTRAINT_CHECK = """                GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
                IF v_constraint <> 'bookings_reservation_booking_code_key' THEN
                    RAISE;  -- another row's uniqueness, broken by a trigger of this update: not a code's collision
                END IF;
"""
# 0019's function: this one without the check.
FULFIL_CHARGE_OF_0019 = FULFIL_CHARGE.replace(CONSTRAINT_CHECK, "").replace("    v_constraint text;\n", "")


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FULFIL_CHARGE)


def restore_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FULFIL_CHARGE_OF_0019)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0033_sales_tally_folding")]

    operations = [migrations.RunPython(create_function, restore_function)]
