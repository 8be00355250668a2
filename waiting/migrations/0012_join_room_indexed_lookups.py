"""waiting_join_room (0011) with lookups its indexes serve: the buyer's existing place was looked up with
"api_key_id IS NOT DISTINCT FROM p_api_key", which no index can serve, so each join read every visitor of the room
(bench/waiting_room at 100,000 joins: ~1 ms of PostgreSQL CPU a join at 2,000 visitors, ~11 ms at 60,000, joins/s
falling from ~240 to ~70); and the email's, under a generic plan, could not use the partial index of one place per
email (its predicate says email <> ''). Otherwise the same function.
"""

from importlib import import_module

from django.db import migrations

PREVIOUS_JOIN_ROOM = import_module("waiting.migrations.0011_join_room_function").JOIN_ROOM

JOIN_ROOM = """
CREATE OR REPLACE FUNCTION waiting_join_room(
    p_on_sale bigint, p_api_key bigint, p_session text, p_email text, p_address inet, p_at timestamptz,
    p_late boolean,
    OUT visitor_id uuid, OUT created boolean, OUT status text, OUT place bigint, OUT early boolean,
    OUT pass_expires_at timestamptz, OUT called_through bigint, OUT drawn_at timestamptz,
    OUT opens_at timestamptz, OUT admissions_per_minute integer
) LANGUAGE plpgsql AS $$
DECLARE
    v_sale cinemas_onsale;
    v_room waiting_room;
    v_visitor waiting_roomvisitor;
BEGIN
    SELECT * INTO v_sale FROM cinemas_onsale o WHERE o.id = p_on_sale;
    IF NOT FOUND THEN PERFORM bookings_refuse('not_found'); END IF;
    IF p_at < v_sale.queue_opens_at THEN
        PERFORM bookings_refuse('room_not_open', jsonb_build_object('opens_at', v_sale.queue_opens_at));
    END IF;
    IF p_at >= v_sale.closes_at THEN PERFORM bookings_refuse('room_closed'); END IF;
    INSERT INTO waiting_room (on_sale_id, secret, drawn_count, last_place, called_through, admissions_due, admitted)
    VALUES (p_on_sale, '', 0, 0, 0, 0, 0) ON CONFLICT (on_sale_id) DO NOTHING;

    early := p_at < v_sale.opens_at AND NOT p_late;
    IF early THEN
        -- Early joins side by side; the draw waits for them (it locks the row FOR NO KEY UPDATE).
        SELECT * INTO v_room FROM waiting_room r WHERE r.on_sale_id = p_on_sale FOR SHARE;
        IF v_room.drawn_at IS NOT NULL THEN PERFORM bookings_refuse('drawn_meanwhile'); END IF;
    ELSE
        SELECT * INTO v_room FROM waiting_room r WHERE r.on_sale_id = p_on_sale FOR NO KEY UPDATE;
        IF v_room.drawn_at IS NULL THEN PERFORM bookings_refuse('draw_first'); END IF;
    END IF;
    opens_at := v_sale.opens_at;
    admissions_per_minute := v_sale.admissions_per_minute;
    called_through := v_room.called_through;
    drawn_at := v_room.drawn_at;

    -- Two lookups, each on the index of one place per buyer: "api_key_id IS NOT DISTINCT FROM p_api_key" can't use
    -- it, and read every visitor of the room, each join (a plan's seq scan: O(n), 100,000 joins O(n^2)).
    IF p_api_key IS NULL THEN
        SELECT * INTO v_visitor FROM waiting_roomvisitor v
         WHERE v.room_id = p_on_sale AND v.api_key_id IS NULL AND v.session_id = p_session
           AND v.status IN ('Waiting', 'Admitted');
    ELSE
        SELECT * INTO v_visitor FROM waiting_roomvisitor v
         WHERE v.room_id = p_on_sale AND v.api_key_id = p_api_key AND v.session_id = p_session
           AND v.status IN ('Waiting', 'Admitted');
    END IF;
    IF FOUND THEN
        visitor_id := v_visitor.id; created := false; status := v_visitor.status; place := v_visitor.place;
        early := v_visitor.early; pass_expires_at := v_visitor.pass_expires_at;
        RETURN;
    END IF;
    IF p_email <> '' AND EXISTS (
        SELECT 1 FROM waiting_roomvisitor v
         -- "email <> ''" as the index of one place per email has it, so that a generic plan can use that index
         WHERE v.room_id = p_on_sale AND v.email = p_email AND v.email <> '' AND v.status IN ('Waiting', 'Admitted')
    ) THEN
        PERFORM bookings_refuse('email_in_room');
    END IF;
    IF p_api_key IS NULL AND p_address IS NOT NULL THEN
        -- The count rises only while below the cap: concurrent joins from one address can't pass it.
        INSERT INTO waiting_roomaddress AS counted (room_id, address, joins) VALUES (p_on_sale, p_address, 1)
        ON CONFLICT (room_id, address) DO UPDATE SET joins = counted.joins + 1
         WHERE counted.joins < v_sale.joins_per_address;
        IF NOT FOUND THEN PERFORM bookings_refuse('room_address_cap'); END IF;
    END IF;
    place := NULL;
    IF NOT early THEN
        UPDATE waiting_room r SET last_place = r.last_place + 1 WHERE r.on_sale_id = p_on_sale
        RETURNING r.last_place INTO place;
    END IF;
    visitor_id := gen_random_uuid();
    INSERT INTO waiting_roomvisitor (
        id, room_id, api_key_id, session_id, email, client_address, early, place, status, joined_at
    ) VALUES (visitor_id, p_on_sale, p_api_key, p_session, p_email, p_address, early, place, 'Waiting', p_at);
    created := true;
    status := 'Waiting';
    pass_expires_at := NULL;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("waiting", "0011_join_room_function")]

    # Back to 0011's body: its migration's SQL, run again.
    operations = [migrations.RunSQL(JOIN_ROOM, PREVIOUS_JOIN_ROOM)]
