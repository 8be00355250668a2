"""Paying as SQL functions: each database step of PayReservation is one call, whoever makes it.

The API's lean path (async, psycopg's pool), the website, the reconciler, staff and Celery call these same
functions (bookings.services.payments), so the rules of paying live here once: which Idempotency-Key answer a
call gets, whether a hold may be charged, how long it is kept while the provider works, booking or refunding
when the charge lands, and giving a declined hold its own clock back. The provider is called between the
calls, never while a row is locked. Refusals are bookings_refuse's (SQLSTATE TKR01), as for holds.
"""

from django.db import migrations

FUNCTIONS = r"""
-- A hold still live, or the refusal saying why not (a hold past its time reads as expired before the sweep).
CREATE OR REPLACE FUNCTION bookings_refuse_unless_held(p_hold bookings_reservation, p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_hold.status = 'Booked' THEN PERFORM bookings_refuse('already_booked'); END IF;
    IF p_hold.status = 'Expired' OR (p_hold.status = 'Reserved' AND p_hold.held_until <= p_at) THEN
        PERFORM bookings_refuse('hold_expired');
    END IF;
    IF p_hold.status = 'Cancelled' THEN PERFORM bookings_refuse('hold_cancelled'); END IF;
END $$;

-- What an answer shows of a reservation, so that no caller reads it back: its clock, booking, show start (for
-- the ticket) and seats in map order ([id, row, number, type, price]; once ended, those it had then).
CREATE OR REPLACE FUNCTION bookings_describe_reservation(p_reservation uuid) RETURNS jsonb
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    SELECT jsonb_build_object(
        'id', hold.id, 'show', hold.show_id, 'show_starts_at', the_show.starts_at, 'status', hold.status,
        'amount', hold.amount::text, 'currency', hold.currency, 'created_at', hold.created_at,
        'expires_at', hold.expires_at, 'held_until', hold.held_until, 'ended_at', hold.ended_at,
        'booking_code', hold.booking_code, 'booked_at', hold.booked_at, 'email', hold.email,
        'seats', (SELECT coalesce(jsonb_agg(jsonb_build_array(seat.id, seat.row_label, seat.number,
                                                              claim.seat_type, claim.price::text)
                                            ORDER BY seat.y, seat.x), '[]')
                    FROM bookings_seatclaim claim JOIN cinemas_seat seat ON seat.id = claim.seat_id
                   WHERE claim.reservation_id = hold.id AND claim.released_at IS NOT DISTINCT FROM hold.ended_at))
      FROM bookings_reservation hold JOIN cinemas_show the_show ON the_show.id = hold.show_id
     WHERE hold.id = p_reservation
$$;

-- Claim an Idempotency-Key for a call. p_reservation, when the call has one: not_found unless it is the
-- buyer's, before the key is spent. Returns the request's id and, for a replay, the first call's answer.
-- Refuses idempotency_mismatch (the key was used for another request) or idempotency_in_flight (its first
-- call still runs; one unanswered after p_takeover_after is taken over: `resumed`).
CREATE OR REPLACE FUNCTION bookings_begin_idempotent_request(
    p_api_key bigint, p_session text, p_key text, p_fingerprint text, p_takeover_after interval,
    p_at timestamptz, p_reservation uuid,
    OUT request_id bigint, OUT resumed boolean, OUT response_status int, OUT response_body text
) LANGUAGE plpgsql AS $$
DECLARE
    v_request bookings_idempotentrequest;
BEGIN
    IF p_reservation IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM bookings_reservation hold WHERE hold.id = p_reservation
           AND hold.api_key_id IS NOT DISTINCT FROM p_api_key AND hold.session_id = p_session) THEN
        PERFORM bookings_refuse('not_found');
    END IF;
    resumed := false;
    -- A conflicting insert waits for the first call's to commit, then reads its row below.
    INSERT INTO bookings_idempotentrequest (api_key_id, session_id, key, fingerprint, started_at)
    VALUES (p_api_key, p_session, p_key, p_fingerprint, p_at)
    ON CONFLICT DO NOTHING RETURNING id INTO request_id;
    IF request_id IS NOT NULL THEN RETURN; END IF;
    SELECT * INTO v_request FROM bookings_idempotentrequest request
     WHERE request.api_key_id IS NOT DISTINCT FROM p_api_key AND request.session_id = p_session
       AND request.key = p_key
       FOR UPDATE;
    request_id := v_request.id;
    IF v_request.fingerprint <> p_fingerprint THEN PERFORM bookings_refuse('idempotency_mismatch'); END IF;
    IF v_request.finished_at IS NOT NULL THEN
        response_status := v_request.response_status;
        response_body := v_request.response_body;
        RETURN;
    END IF;
    IF v_request.started_at > p_at - p_takeover_after THEN PERFORM bookings_refuse('idempotency_in_flight'); END IF;
    UPDATE bookings_idempotentrequest SET started_at = p_at WHERE id = v_request.id;
    resumed := true;
END $$;

-- Store the answer a replay of the key gets.
CREATE OR REPLACE FUNCTION bookings_finish_idempotent_request(
    p_request bigint, p_status int, p_body text, p_at timestamptz
) RETURNS void LANGUAGE sql AS $$
    UPDATE bookings_idempotentrequest SET response_status = p_status, response_body = p_body, finished_at = p_at
     WHERE id = p_request
$$;

-- The key's call ended without a final answer (a provider timeout): a retry may take it over at once.
CREATE OR REPLACE FUNCTION bookings_abandon_idempotent_request(
    p_request bigint, p_takeover_after interval, p_at timestamptz
) RETURNS void LANGUAGE sql AS $$
    UPDATE bookings_idempotentrequest SET started_at = p_at - p_takeover_after
     WHERE id = p_request AND finished_at IS NULL
$$;

-- Step 1 of paying: the buyer's hold, checked live, kept p_extension longer while the provider works, and a
-- pending charge (its id is the provider's idempotency key). Locks the reservation row.
-- With p_look_up, first returns `unsettled` ([[payment id, status], ...]) if the hold has charges whose outcome
-- nobody waits for (a provider timeout, or one pending past p_settle_after: its process died), writing
-- nothing: the caller asks the provider about them before calling again without p_look_up, so a retry never
-- charges twice. p_resuming (the same Idempotency-Key, its first call died): a booked hold is the answer,
-- returned as `reservation`. Refuses not_found, already_booked, hold_expired, hold_cancelled,
-- payment_in_progress.
CREATE OR REPLACE FUNCTION bookings_start_charge(
    p_reservation uuid, p_api_key bigint, p_session text, p_resuming boolean, p_look_up boolean,
    p_settle_after interval, p_extension interval, p_provider text, p_card_last4 text, p_at timestamptz,
    OUT payment uuid, OUT amount numeric, OUT currency text, OUT unsettled jsonb, OUT reservation jsonb
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_hold bookings_reservation;
BEGIN
    SELECT * INTO v_hold FROM bookings_reservation hold
     WHERE hold.id = p_reservation AND hold.api_key_id IS NOT DISTINCT FROM p_api_key AND hold.session_id = p_session;
    IF NOT FOUND THEN PERFORM bookings_refuse('not_found'); END IF;
    IF p_look_up AND NOT (p_resuming AND v_hold.status = 'Booked') THEN
        SELECT jsonb_agg(jsonb_build_array(charge.id, charge.status) ORDER BY charge.created_at) INTO unsettled
          FROM bookings_payment charge
         WHERE charge.reservation_id = p_reservation AND charge.kind = 'charge'
           AND (charge.status = 'unknown' OR (charge.status = 'pending' AND charge.updated_at <= p_at - p_settle_after));
        IF unsettled IS NOT NULL THEN RETURN; END IF;
    END IF;
    SELECT * INTO v_hold FROM bookings_reservation hold WHERE hold.id = p_reservation FOR UPDATE;
    IF p_resuming AND v_hold.status = 'Booked' THEN
        reservation := bookings_describe_reservation(p_reservation);
        RETURN;
    END IF;
    PERFORM bookings_refuse_unless_held(v_hold, p_at);
    IF EXISTS (SELECT 1 FROM bookings_payment charge WHERE charge.reservation_id = p_reservation
                  AND charge.kind = 'charge' AND charge.status = 'pending') THEN
        PERFORM bookings_refuse('payment_in_progress');
    END IF;
    UPDATE bookings_reservation hold SET held_until = greatest(hold.held_until, p_at + p_extension)
     WHERE hold.id = p_reservation;
    payment := gen_random_uuid();
    amount := v_hold.amount;
    currency := v_hold.currency;
    INSERT INTO bookings_payment (id, reservation_id, kind, status, amount, currency, provider, provider_reference,
                                  card_last4, error_code, created_at, updated_at)
    VALUES (payment, p_reservation, 'charge', 'pending', amount, currency, p_provider, '', p_card_last4, '',
            p_at, p_at);
END $$;

-- A charge that did not (or may not have) gone through: p_status (declined, failed, or unknown for a timeout)
-- if it is still p_was. A hold that is no longer being paid for gets its own clock back (the extension was
-- for the provider's answer). Locks the reservation row, then the payment's. Returns whether it settled it.
CREATE OR REPLACE FUNCTION bookings_settle_failed_charge(
    p_payment uuid, p_was text, p_status text, p_error_code text, p_grace interval, p_at timestamptz
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_reservation uuid := (SELECT reservation_id FROM bookings_payment WHERE id = p_payment);
BEGIN
    PERFORM 1 FROM bookings_reservation WHERE id = v_reservation FOR UPDATE;
    UPDATE bookings_payment SET status = p_status, error_code = p_error_code, updated_at = p_at
     WHERE id = p_payment AND status = p_was;
    IF NOT FOUND THEN RETURN false; END IF;
    IF p_status <> 'unknown' THEN
        UPDATE bookings_reservation hold SET held_until = hold.expires_at + p_grace
         WHERE hold.id = v_reservation AND hold.status = 'Reserved' AND hold.held_until > hold.expires_at + p_grace;
    END IF;
    RETURN true;
END $$;

-- A pending refund of the whole charge; the caller sends it to the provider once this commits.
CREATE OR REPLACE FUNCTION bookings_record_refund(p_charge uuid, p_at timestamptz) RETURNS uuid
LANGUAGE sql AS $$
    INSERT INTO bookings_payment (id, reservation_id, kind, status, amount, currency, provider, provider_reference,
                                  refund_of_id, card_last4, error_code, created_at, updated_at)
    SELECT gen_random_uuid(), charge.reservation_id, 'refund', 'pending', charge.amount, charge.currency,
           charge.provider, '', charge.id, charge.card_last4, '', p_at, p_at
      FROM bookings_payment charge WHERE charge.id = p_charge
    RETURNING id
$$;

-- The provider answered a refund: record it, once.
CREATE OR REPLACE FUNCTION bookings_settle_refund(p_refund uuid, p_provider_reference text, p_at timestamptz)
RETURNS void LANGUAGE sql AS $$
    UPDATE bookings_payment SET status = 'succeeded', provider_reference = p_provider_reference, updated_at = p_at
     WHERE id = p_refund AND status = 'pending'
$$;

-- Step 3 of paying (and the reconciler's): the provider took the money. Books a hold still Reserved (its
-- claims intact) with p_booking_code, marking its claims booked; otherwise records a pending refund, returned
-- as `refund` (with what the provider needs) for the caller to send after commit. Idempotent: a charge
-- already fulfilled changes nothing. Locks the reservation row, then the payment's. Returns the reservation as
-- bookings_describe_reservation does, and the booked seats and their version to push. Refuses
-- booking_code_taken on a code collision (one in a trillion): the caller draws another code.
CREATE OR REPLACE FUNCTION bookings_fulfil_charge(
    p_payment uuid, p_provider_reference text, p_booking_code text, p_at timestamptz,
    OUT reservation jsonb, OUT version bigint, OUT booked jsonb, OUT refund jsonb
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_hold bookings_reservation;
    v_charge bookings_payment;
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
                PERFORM bookings_refuse('booking_code_taken');
            END;
            version := nextval('bookings_seat_version');
            WITH marked AS (
                UPDATE bookings_seatclaim SET version = bookings_fulfil_charge.version, booked = true
                 WHERE reservation_id = v_hold.id AND released_at IS NULL
                RETURNING seat_id
            )
            SELECT coalesce(jsonb_agg(seat_id ORDER BY seat_id), '[]') INTO booked FROM marked;
        ELSE
            refund := jsonb_build_object('id', bookings_record_refund(p_payment, p_at),
                                         'charge', p_provider_reference, 'amount', v_charge.amount::text);
        END IF;
    END IF;
    reservation := bookings_describe_reservation(v_hold.id);
END $$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS bookings_fulfil_charge;
DROP FUNCTION IF EXISTS bookings_settle_refund;
DROP FUNCTION IF EXISTS bookings_record_refund;
DROP FUNCTION IF EXISTS bookings_settle_failed_charge;
DROP FUNCTION IF EXISTS bookings_start_charge;
DROP FUNCTION IF EXISTS bookings_abandon_idempotent_request;
DROP FUNCTION IF EXISTS bookings_finish_idempotent_request;
DROP FUNCTION IF EXISTS bookings_begin_idempotent_request;
DROP FUNCTION IF EXISTS bookings_describe_reservation;
DROP FUNCTION IF EXISTS bookings_refuse_unless_held;
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0009_hold_functions")]

    operations = [migrations.RunPython(create_functions, drop_functions)]
