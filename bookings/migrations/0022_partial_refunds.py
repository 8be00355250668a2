"""A refund may be part of a charge: bookings_record_refund takes the amount (a buyer who cancels gets back what the
cinema's refund policy says, bookings.services.cancellations), and refuses one that would take the charge's refunds
past what was charged.

Called with two arguments it is what it was: a pending refund of the whole charge (a payment that lands after its
hold lapsed, staff cancelling). The function was (uuid, timestamptz); a third argument with a default makes a new
signature, so the old one is dropped first (plpgsql bodies that call it, bookings_fulfil_charge, look it up when
they run).
"""

from django.db import migrations

FUNCTIONS = r"""
DROP FUNCTION IF EXISTS bookings_record_refund(uuid, timestamptz);

-- A pending refund of p_amount of the charge (all of it when NULL); the caller sends it to the provider once this
-- commits. Locks the charge, so two refunds of one charge are counted one after the other. Refuses
-- refund_exceeds_charge when p_amount is not positive or this refund and the charge's other refunds (all but the
-- failed) would pass what was charged.
CREATE FUNCTION bookings_record_refund(p_charge uuid, p_at timestamptz, p_amount numeric DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_charge bookings_payment;
    v_amount numeric;
    v_refunded numeric;
    v_refund uuid;
BEGIN
    SELECT * INTO v_charge FROM bookings_payment WHERE id = p_charge AND kind = 'charge' FOR UPDATE;
    IF NOT FOUND THEN RETURN NULL; END IF;
    v_amount := coalesce(p_amount, v_charge.amount);
    SELECT coalesce(sum(amount), 0) INTO v_refunded FROM bookings_payment
     WHERE refund_of_id = p_charge AND kind = 'refund' AND status <> 'failed';
    IF v_amount <= 0 OR v_refunded + v_amount > v_charge.amount THEN
        PERFORM bookings_refuse('refund_exceeds_charge', jsonb_build_object(
            'charged', v_charge.amount::text, 'refunded', v_refunded::text, 'asked', v_amount::text));
    END IF;
    INSERT INTO bookings_payment (id, reservation_id, kind, status, amount, currency, provider, provider_reference,
                                  refund_of_id, card_last4, error_code, created_at, updated_at)
    VALUES (gen_random_uuid(), v_charge.reservation_id, 'refund', 'pending', v_amount, v_charge.currency,
            v_charge.provider, '', v_charge.id, v_charge.card_last4, '', p_at, p_at)
    RETURNING id INTO v_refund;
    RETURN v_refund;
END $$;
"""

# 0010's function, as it was.
OLD_FUNCTION = r"""
DROP FUNCTION IF EXISTS bookings_record_refund(uuid, timestamptz, numeric);

CREATE FUNCTION bookings_record_refund(p_charge uuid, p_at timestamptz) RETURNS uuid
LANGUAGE sql AS $$
    INSERT INTO bookings_payment (id, reservation_id, kind, status, amount, currency, provider, provider_reference,
                                  refund_of_id, card_last4, error_code, created_at, updated_at)
    SELECT gen_random_uuid(), charge.reservation_id, 'refund', 'pending', charge.amount, charge.currency,
           charge.provider, '', charge.id, charge.card_last4, '', p_at, p_at
      FROM bookings_payment charge WHERE charge.id = p_charge
    RETURNING id
$$;
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)


def restore_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(OLD_FUNCTION)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0021_add_ons_priced")]

    operations = [migrations.RunPython(create_functions, restore_functions)]
