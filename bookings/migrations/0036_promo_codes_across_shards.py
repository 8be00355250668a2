"""Promo codes apply to shows sold on any shard (ticketing.shards): a use is counted at home and moved to the shard.

A code's limits and counts are the home's. A hold on another shard takes the code from that shard's copy (its
terms, movies, cinemas and shows, without limits), by 0017's bookings_apply_promo_code, so what a code applies to,
its refusals and its giving back when a hold lapses stay where they are. Counting a use is one function now
(bookings_count_promo_use), made by applying a code at home and by sending a use to a shard; a PromoUseTransfer
moves uses between two databases as a GiftCardTransfer moves money (0035), once by its id; a use a shard no
longer needs goes home and is counted no more (bookings.services.promo_codes says who calls what, and when).
"""

from django.db import migrations, models

FUNCTIONS = r"""
-- The buyer of a hold as promo codes count them: its API key and session, or the website's session.
CREATE OR REPLACE FUNCTION bookings_promo_buyer(p_api_key bigint, p_session text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce('key:' || p_api_key, 'site') || ':' || p_session
$$;

-- Count one use of promo code p_promo by p_buyer against its limits (0017's count, which applying a code at home
-- and moving a use to a shard both make). A racing count waits here for the other's commit, then sees the count
-- it left. Locks the code's row, then the buyer's. Refuses promo_code_used_up, promo_code_buyer_limit.
CREATE OR REPLACE FUNCTION bookings_count_promo_use(p_promo bookings_promocode, p_buyer text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_counted int;
BEGIN
    UPDATE bookings_promocode code SET used = code.used + 1
     WHERE code.id = p_promo.id AND (code.max_uses IS NULL OR code.used < code.max_uses);
    IF NOT FOUND THEN PERFORM bookings_refuse('promo_code_used_up'); END IF;
    INSERT INTO bookings_promobuyeruses AS uses (promo_code_id, buyer, used) VALUES (p_promo.id, p_buyer, 1)
    ON CONFLICT (promo_code_id, buyer) DO UPDATE SET used = uses.used + 1
     WHERE p_promo.max_uses_per_buyer IS NULL OR uses.used < p_promo.max_uses_per_buyer
    RETURNING uses.used INTO v_counted;
    IF v_counted IS NULL THEN PERFORM bookings_refuse('promo_code_buyer_limit'); END IF;
END $$;

-- Apply promo code p_code (any case) to the buyer's live hold: see 0017's docstring; 0017's function, its count
-- now bookings_count_promo_use. Locks the hold, then
-- the code's row and the buyer's count of it, until commit. Applying a code the hold already has changes
-- nothing. Returns the hold's new breakdown and amount (its total). Refuses not_found, already_booked,
-- hold_expired, hold_cancelled, payment_in_progress, promo_code_invalid, promo_code_expired,
-- promo_code_not_applicable, promo_code_not_stackable, promo_code_used_up, promo_code_buyer_limit.
CREATE OR REPLACE FUNCTION bookings_apply_promo_code(
    p_reservation uuid, p_api_key bigint, p_session text, p_code text, p_at timestamptz,
    OUT breakdown jsonb, OUT amount numeric
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_hold bookings_reservation;
    v_show cinemas_show;
    v_cinema bigint;
    v_promo bookings_promocode;
    v_discounts jsonb;
    v_buyer text := bookings_promo_buyer(p_api_key, p_session);
BEGIN
    v_hold := bookings_lock_hold_for_pricing(p_reservation, p_api_key, p_session, p_at);
    breakdown := v_hold.price_breakdown;
    amount := v_hold.amount;
    SELECT * INTO v_promo FROM bookings_promocode code WHERE upper(code.code) = upper(btrim(p_code));
    IF NOT FOUND THEN PERFORM bookings_refuse('promo_code_invalid'); END IF;
    v_discounts := coalesce(breakdown #> '{terms,discounts}', '[]');
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_discounts) applied WHERE applied ->> 'code' = v_promo.code) THEN
        RETURN;
    END IF;
    IF v_promo.valid_from > p_at OR v_promo.valid_until <= p_at THEN PERFORM bookings_refuse('promo_code_expired'); END IF;
    SELECT * INTO v_show FROM cinemas_show WHERE id = v_hold.show_id;
    SELECT hall.cinema_id INTO v_cinema FROM cinemas_hall hall WHERE hall.id = v_show.hall_id;
    IF (v_promo.kind = 'fixed' AND v_promo.currency <> v_hold.currency)
       OR (EXISTS (SELECT 1 FROM bookings_promocode_movies scope WHERE scope.promocode_id = v_promo.id)
           AND NOT EXISTS (SELECT 1 FROM bookings_promocode_movies scope
                            WHERE scope.promocode_id = v_promo.id AND scope.movie_id = v_show.movie_id))
       OR (EXISTS (SELECT 1 FROM bookings_promocode_cinemas scope WHERE scope.promocode_id = v_promo.id)
           AND NOT EXISTS (SELECT 1 FROM bookings_promocode_cinemas scope
                            WHERE scope.promocode_id = v_promo.id AND scope.cinema_id = v_cinema))
       OR (EXISTS (SELECT 1 FROM bookings_promocode_shows scope WHERE scope.promocode_id = v_promo.id)
           AND NOT EXISTS (SELECT 1 FROM bookings_promocode_shows scope
                            WHERE scope.promocode_id = v_promo.id AND scope.show_id = v_show.id)) THEN
        PERFORM bookings_refuse('promo_code_not_applicable');
    END IF;
    IF v_discounts <> '[]' AND (NOT v_promo.stackable OR EXISTS (
            SELECT 1 FROM jsonb_array_elements(v_discounts) applied WHERE NOT (applied ->> 'stackable')::boolean)) THEN
        PERFORM bookings_refuse('promo_code_not_stackable');
    END IF;
    PERFORM bookings_count_promo_use(v_promo, v_buyer);
    INSERT INTO bookings_promoredemption (promo_code_id, reservation_id, buyer, created_at)
    VALUES (v_promo.id, p_reservation, v_buyer, p_at);
    breakdown := bookings_price_again(breakdown, v_discounts || jsonb_build_object(
        'code', v_promo.code, v_promo.kind, v_promo.value::text, 'stackable', v_promo.stackable));
    amount := (breakdown ->> 'total')::numeric;
    UPDATE bookings_reservation hold SET price_breakdown = breakdown, amount = bookings_apply_promo_code.amount
     WHERE hold.id = p_reservation;
END $$;

-- The terms of promo code p_promo as a shard's copy takes them (its limits stay at home).
CREATE OR REPLACE FUNCTION bookings_promo_code_terms(p_promo bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'code', code.code, 'kind', code.kind, 'value', code.value, 'currency', code.currency,
        'valid_from', code.valid_from, 'valid_until', code.valid_until, 'stackable', code.stackable,
        'movies', (SELECT coalesce(jsonb_agg(scope.movie_id), '[]') FROM bookings_promocode_movies scope
                    WHERE scope.promocode_id = code.id),
        'cinemas', (SELECT coalesce(jsonb_agg(scope.cinema_id), '[]') FROM bookings_promocode_cinemas scope
                     WHERE scope.promocode_id = code.id),
        'shows', (SELECT coalesce(jsonb_agg(scope.show_id), '[]') FROM bookings_promocode_shows scope
                   WHERE scope.promocode_id = code.id))
      FROM bookings_promocode code WHERE code.id = p_promo
$$;

-- At home: count a use of promo code p_code (any case) by the buyer (p_api_key, p_session) and send it to shard
-- p_destination, for a hold there: the transfer's id (unlanded here), the buyer and the code's terms. Locks the
-- code's row, then the buyer's. Refuses promo_code_invalid, promo_code_used_up, promo_code_buyer_limit.
CREATE OR REPLACE FUNCTION bookings_send_promo_use(
    p_code text, p_api_key bigint, p_session text, p_source text, p_destination text, p_at timestamptz,
    OUT transfer uuid, OUT buyer text, OUT terms jsonb
) LANGUAGE plpgsql AS $$
DECLARE
    v_promo bookings_promocode;
BEGIN
    SELECT * INTO v_promo FROM bookings_promocode code WHERE upper(code.code) = upper(btrim(p_code));
    IF NOT FOUND THEN PERFORM bookings_refuse('promo_code_invalid'); END IF;
    buyer := bookings_promo_buyer(p_api_key, p_session);
    PERFORM bookings_count_promo_use(v_promo, buyer);
    transfer := gen_random_uuid();
    INSERT INTO bookings_promousetransfer (id, code, buyer, uses, source, destination, created_at, landed_at)
    VALUES (transfer, v_promo.code, buyer, 1, p_source, p_destination, p_at, NULL);
    terms := bookings_promo_code_terms(v_promo.id);
END $$;

-- On a shard: receive transfer p_transfer, a use of the home's code (p_terms) by p_buyer. The copy of the code is
-- made if need be, with the home's terms and no limits (they are counted at home), its movies, cinemas and shows
-- as the home's; the use is granted to the buyer here once, however often the transfer is delivered. Returns
-- whether it was granted now. Locks the copy's row, then the buyer's.
CREATE OR REPLACE FUNCTION bookings_receive_promo_use(
    p_transfer uuid, p_terms jsonb, p_buyer text, p_source text, p_destination text, p_at timestamptz
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_copy bigint;
BEGIN
    INSERT INTO bookings_promocode AS code (code, kind, value, currency, valid_from, valid_until, max_uses,
                                            max_uses_per_buyer, stackable, used)
    VALUES (p_terms ->> 'code', p_terms ->> 'kind', (p_terms ->> 'value')::numeric, p_terms ->> 'currency',
            (p_terms ->> 'valid_from')::timestamptz, (p_terms ->> 'valid_until')::timestamptz, NULL, NULL,
            (p_terms ->> 'stackable')::boolean, 0)
    ON CONFLICT ((upper(code))) DO UPDATE
       SET code = EXCLUDED.code, kind = EXCLUDED.kind, value = EXCLUDED.value, currency = EXCLUDED.currency,
           valid_from = EXCLUDED.valid_from, valid_until = EXCLUDED.valid_until, stackable = EXCLUDED.stackable
    RETURNING code.id INTO v_copy;
    DELETE FROM bookings_promocode_movies scope WHERE scope.promocode_id = v_copy
       AND scope.movie_id NOT IN (SELECT value::bigint FROM jsonb_array_elements_text(p_terms -> 'movies'));
    INSERT INTO bookings_promocode_movies (promocode_id, movie_id)
    SELECT v_copy, value::bigint FROM jsonb_array_elements_text(p_terms -> 'movies') ON CONFLICT DO NOTHING;
    DELETE FROM bookings_promocode_cinemas scope WHERE scope.promocode_id = v_copy
       AND scope.cinema_id NOT IN (SELECT value::bigint FROM jsonb_array_elements_text(p_terms -> 'cinemas'));
    INSERT INTO bookings_promocode_cinemas (promocode_id, cinema_id)
    SELECT v_copy, value::bigint FROM jsonb_array_elements_text(p_terms -> 'cinemas') ON CONFLICT DO NOTHING;
    DELETE FROM bookings_promocode_shows scope WHERE scope.promocode_id = v_copy
       AND scope.show_id NOT IN (SELECT value::bigint FROM jsonb_array_elements_text(p_terms -> 'shows'));
    INSERT INTO bookings_promocode_shows (promocode_id, show_id)
    SELECT v_copy, value::bigint FROM jsonb_array_elements_text(p_terms -> 'shows') ON CONFLICT DO NOTHING;
    INSERT INTO bookings_promousetransfer (id, code, buyer, uses, source, destination, created_at, landed_at)
    VALUES (p_transfer, p_terms ->> 'code', p_buyer, 1, p_source, p_destination, p_at, p_at)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO bookings_promobuyeruses AS uses (promo_code_id, buyer, used, granted) VALUES (v_copy, p_buyer, 0, 1)
    ON CONFLICT (promo_code_id, buyer) DO UPDATE SET granted = uses.granted + 1;
    RETURN true;
END $$;

-- On a shard: receive the use p_transfer (as bookings_receive_promo_use) and apply the code to the buyer's hold
-- with it (bookings_apply_promo_code, on the copy), in one transaction: a refused one leaves the use unreceived.
-- Locks the hold first, then as those two do.
CREATE OR REPLACE FUNCTION bookings_apply_moved_promo_code(
    p_transfer uuid, p_terms jsonb, p_source text, p_destination text, p_reservation uuid, p_api_key bigint,
    p_session text, p_at timestamptz, OUT breakdown jsonb, OUT amount numeric
) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bookings_lock_hold_for_pricing(p_reservation, p_api_key, p_session, p_at);
    PERFORM bookings_receive_promo_use(p_transfer, p_terms, bookings_promo_buyer(p_api_key, p_session), p_source,
                                       p_destination, p_at);
    SELECT applied.breakdown, applied.amount INTO breakdown, amount
      FROM bookings_apply_promo_code(p_reservation, p_api_key, p_session, p_terms ->> 'code', p_at) applied;
END $$;

-- Whether promo code p_code (any case) is new to the buyer's live hold (false: the hold has it, and applying it
-- changes nothing). Refuses as bookings_lock_hold_for_pricing.
CREATE OR REPLACE FUNCTION bookings_promo_code_new_to_hold(
    p_reservation uuid, p_api_key bigint, p_session text, p_code text, p_at timestamptz
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_hold bookings_reservation;
BEGIN
    v_hold := bookings_lock_hold_for_pricing(p_reservation, p_api_key, p_session, p_at);
    RETURN NOT EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(v_hold.price_breakdown #> '{terms,discounts}', '[]'))
                        applied WHERE upper(applied ->> 'code') = upper(btrim(p_code)));
END $$;

-- On a shard: send home the uses of code p_code (any case; NULL: every code) granted here and no longer used,
-- one transfer a buyer. Returns them: [{transfer, code, buyer, uses}]. Locks the buyers' rows.
CREATE OR REPLACE FUNCTION bookings_send_promo_uses_back(
    p_code text, p_source text, p_destination text, p_at timestamptz, OUT transfers jsonb
) LANGUAGE plpgsql AS $$
BEGIN
    WITH spare AS (
        SELECT uses.id, uses.buyer, uses.granted - uses.used AS uses, copy.code
          FROM bookings_promobuyeruses uses JOIN bookings_promocode copy ON copy.id = uses.promo_code_id
         WHERE uses.granted > uses.used AND (p_code IS NULL OR upper(copy.code) = upper(btrim(p_code)))
           FOR UPDATE OF uses
    ), taken AS (
        UPDATE bookings_promobuyeruses uses SET granted = uses.used FROM spare WHERE uses.id = spare.id
        RETURNING spare.code, spare.buyer, spare.uses
    ), sent AS (
        INSERT INTO bookings_promousetransfer (id, code, buyer, uses, source, destination, created_at, landed_at)
        SELECT gen_random_uuid(), taken.code, taken.buyer, taken.uses, p_source, p_destination, p_at, NULL FROM taken
        RETURNING id, code, buyer, uses
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('transfer', sent.id, 'code', sent.code, 'buyer', sent.buyer,
                                                 'uses', sent.uses)), '[]')
      INTO transfers FROM sent;
END $$;

-- At home: receive transfer p_transfer, p_uses uses of code p_code by p_buyer a shard no longer needs: the code's
-- and the buyer's counts go down by them once, however often it is delivered. Returns whether they went down now.
-- Locks the code's row, then the buyer's.
CREATE OR REPLACE FUNCTION bookings_receive_promo_uses(
    p_transfer uuid, p_code text, p_buyer text, p_uses int, p_source text, p_destination text, p_at timestamptz
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_promo bigint;
BEGIN
    INSERT INTO bookings_promousetransfer (id, code, buyer, uses, source, destination, created_at, landed_at)
    VALUES (p_transfer, p_code, p_buyer, p_uses, p_source, p_destination, p_at, p_at)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE bookings_promocode code SET used = code.used - p_uses WHERE upper(code.code) = upper(p_code)
    RETURNING code.id INTO v_promo;
    UPDATE bookings_promobuyeruses uses SET used = uses.used - p_uses
     WHERE uses.promo_code_id = v_promo AND uses.buyer = p_buyer;
    RETURN true;
END $$;

-- The sender's record that transfer p_transfer has landed (the receiver has its row).
CREATE OR REPLACE FUNCTION bookings_land_promo_use_transfer(p_transfer uuid, p_at timestamptz) RETURNS void
LANGUAGE sql AS $$
    UPDATE bookings_promousetransfer SET landed_at = p_at WHERE id = p_transfer AND landed_at IS NULL
$$;
"""

COUNT_OF_0017 = """    -- The limits. A racing redemption waits here for the other's commit, then sees the count it left.
    UPDATE bookings_promocode code SET used = code.used + 1
     WHERE code.id = v_promo.id AND (code.max_uses IS NULL OR code.used < code.max_uses);
    IF NOT FOUND THEN PERFORM bookings_refuse('promo_code_used_up'); END IF;
    INSERT INTO bookings_promobuyeruses AS uses (promo_code_id, buyer, used) VALUES (v_promo.id, v_buyer, 1)
    ON CONFLICT (promo_code_id, buyer) DO UPDATE SET used = uses.used + 1
     WHERE v_promo.max_uses_per_buyer IS NULL OR uses.used < v_promo.max_uses_per_buyer
    RETURNING uses.used INTO v_counted;
    IF v_counted IS NULL THEN PERFORM bookings_refuse('promo_code_buyer_limit'); END IF;
"""
APPLY = FUNCTIONS[FUNCTIONS.index("CREATE OR REPLACE FUNCTION bookings_apply_promo_code(") :]
APPLY = APPLY[: APPLY.index("END $$;") + len("END $$;")]
# 0017's bookings_apply_promo_code, for going back: this one with its count written out again.
APPLY_OF_0017 = APPLY.replace("    PERFORM bookings_count_promo_use(v_promo, v_buyer);\n", COUNT_OF_0017).replace(
    "    v_buyer text := bookings_promo_buyer(p_api_key, p_session);\n",
    "    v_buyer text := coalesce('key:' || p_api_key, 'site') || ':' || p_session;\n    v_counted int;\n",
)

DROP_FUNCTIONS = """
DROP FUNCTION bookings_land_promo_use_transfer(uuid, timestamptz);
DROP FUNCTION bookings_receive_promo_uses(uuid, text, text, int, text, text, timestamptz);
DROP FUNCTION bookings_send_promo_uses_back(text, text, text, timestamptz);
DROP FUNCTION bookings_promo_code_new_to_hold(uuid, bigint, text, text, timestamptz);
DROP FUNCTION bookings_apply_moved_promo_code(uuid, jsonb, text, text, uuid, bigint, text, timestamptz);
DROP FUNCTION bookings_receive_promo_use(uuid, jsonb, text, text, text, timestamptz);
DROP FUNCTION bookings_send_promo_use(text, bigint, text, text, text, timestamptz);
DROP FUNCTION bookings_promo_code_terms(bigint);
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_FUNCTIONS)
        schema_editor.execute(APPLY_OF_0017)
        schema_editor.execute(
            "DROP FUNCTION bookings_count_promo_use(bookings_promocode, text); "
            "DROP FUNCTION bookings_promo_buyer(bigint, text);"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0035_gift_cards_across_shards"),
    ]

    operations = [
        migrations.AddField(
            model_name="promobuyeruses",
            name="granted",
            field=models.IntegerField(db_default=0, default=0, verbose_name="granted"),
        ),
        migrations.CreateModel(
            name="PromoUseTransfer",
            fields=[
                ("id", models.UUIDField(primary_key=True, serialize=False)),
                ("code", models.CharField(max_length=32, verbose_name="code")),
                ("buyer", models.CharField(max_length=160, verbose_name="buyer")),
                ("uses", models.IntegerField(verbose_name="uses")),
                ("source", models.CharField(max_length=64, verbose_name="from")),
                ("destination", models.CharField(max_length=64, verbose_name="to")),
                ("created_at", models.DateTimeField(verbose_name="created at")),
                ("landed_at", models.DateTimeField(blank=True, null=True, verbose_name="landed at")),
            ],
            options={
                "verbose_name": "promo code use transfer",
                "verbose_name_plural": "promo code use transfers",
                "indexes": [
                    models.Index(
                        condition=models.Q(("landed_at__isnull", True)),
                        fields=["created_at"],
                        name="bookings_putransfer_unlanded",
                    )
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("uses__gt", 0)), name="bookings_promousetransfer_positive"
                    )
                ],
            },
        ),
        migrations.RunPython(create_functions, drop_functions),
    ]
