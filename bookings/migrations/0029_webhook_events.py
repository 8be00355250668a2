"""Partners' webhooks about their bookings (issue 19, point 6): booking.created, booking.cancelled, booking.refunded.

A booking is made, cancelled and refunded inside SQL functions (bookings_fulfil_charge, bookings_release,
bookings_settle_refund), called from Django and from the lean path's async pool alike, each its own transaction.
So the event is owed by triggers on the rows those functions change: in the same transaction as the change,
whoever made it, with nothing to remember in each caller (ticketing_record_webhook_event, ticketing 0004, writes
the deliveries). The delivery's data is the reservation as bookings_describe_reservation gives it at that moment,
which the sender renders into the API's reservation body (bookings.serializers.reservation_event_data).

A hold never fires them: the reservation's trigger is on a change of status into or out of Booked, and only for
a partner's reservation (the website's buyers have no API key); the payment's on a refund that succeeds. When no
endpoint of the key asked for the event, the trigger reads nothing more (ticketing_wants_webhook).
"""

from django.db import migrations

FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION bookings_owe_booking_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_type text := CASE WHEN NEW.status = 'Booked' THEN 'booking.created' ELSE 'booking.cancelled' END;
BEGIN
    IF ticketing_wants_webhook(NEW.api_key_id, v_type) THEN
        PERFORM ticketing_record_webhook_event(
            NEW.api_key_id, v_type, NULL, 'reservation',
            jsonb_build_object('reservation', bookings_describe_reservation(NEW.id)),
            coalesce(CASE WHEN NEW.status = 'Booked' THEN NEW.booked_at ELSE NEW.ended_at END, now()));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER bookings_reservation_owes_webhook
    AFTER UPDATE OF status ON bookings_reservation
    FOR EACH ROW
    WHEN (NEW.api_key_id IS NOT NULL AND (OLD.status = 'Booked') IS DISTINCT FROM (NEW.status = 'Booked'))
    EXECUTE FUNCTION bookings_owe_booking_webhook();

CREATE OR REPLACE FUNCTION bookings_owe_refund_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_api_key bigint := (SELECT api_key_id FROM bookings_reservation WHERE id = NEW.reservation_id);
BEGIN
    IF v_api_key IS NOT NULL AND ticketing_wants_webhook(v_api_key, 'booking.refunded') THEN
        PERFORM ticketing_record_webhook_event(
            v_api_key, 'booking.refunded', NULL, 'reservation',
            jsonb_build_object(
                'reservation', bookings_describe_reservation(NEW.reservation_id),
                'refund', jsonb_build_object('id', NEW.id, 'amount', NEW.amount::text, 'currency', NEW.currency,
                                             'status', NEW.status)),
            NEW.updated_at);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER bookings_payment_owes_webhook
    AFTER UPDATE OF status ON bookings_payment
    FOR EACH ROW
    WHEN (NEW.kind = 'refund' AND NEW.status = 'succeeded' AND OLD.status <> 'succeeded')
    EXECUTE FUNCTION bookings_owe_refund_webhook();
"""

DROP_FUNCTIONS = """
DROP TRIGGER bookings_payment_owes_webhook ON bookings_payment;
DROP FUNCTION bookings_owe_refund_webhook();
DROP TRIGGER bookings_reservation_owes_webhook ON bookings_reservation;
DROP FUNCTION bookings_owe_booking_webhook();
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0028_hold_once_per_idempotency_key"), ("ticketing", "0004_webhooks")]

    operations = [migrations.RunPython(create_functions, drop_functions, elidable=False)]
