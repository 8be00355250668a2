"""Promo codes (issue 18, point 2): a code takes a percentage or a fixed amount off a hold's tickets, and the
database keeps its limits exact under concurrency, as it keeps the seats.

A code is applied to a live hold by one call of bookings_apply_promo_code, which locks the hold, checks the
code (known in any case, within its window, for this show's movie, cinema and show, in the hold's currency for
a fixed amount, stackable with what the hold has), counts the use with a conditional update of the code's
`used` (a buyer racing for the last use waits for the other's commit and is then refused: the update sees the
count it left) and of the buyer's count (an upsert that only adds below the per-buyer limit), records the
redemption and prices the hold again with bookings_price_breakdown (migration 0016): the discount is a line of
the one breakdown and the amount paying charges is its new total. CHECK constraints (used <= max_uses, counts
never negative) are the backstop.

A use counts while its hold is live and once it is booked. A hold that lapses (the sweep, a takeover) or is
cancelled gives its uses back through a trigger on the reservation's status, whoever ends it; the buyer may
take a code off (bookings_remove_promo_code). A hold past its time that the sweep has not reached yet still
counts until it does. Holds without a code never run the trigger's function (its WHEN clause).
"""

import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models

FUNCTIONS = r"""
-- Give back the uses of promo codes a hold holds (all of them, or p_code's): its redemptions end at p_at and
-- the code's count and its buyer's go down. The caller has locked the hold (or is its status' trigger).
CREATE OR REPLACE FUNCTION bookings_release_promo_codes(p_reservation uuid, p_code bigint, p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH released AS (
        UPDATE bookings_promoredemption redemption SET released_at = p_at
         WHERE redemption.reservation_id = p_reservation AND redemption.released_at IS NULL
           AND (p_code IS NULL OR redemption.promo_code_id = p_code)
        RETURNING redemption.promo_code_id, redemption.buyer
    ), codes AS (
        UPDATE bookings_promocode code SET used = code.used - 1
          FROM released WHERE code.id = released.promo_code_id
    )
    UPDATE bookings_promobuyeruses uses SET used = uses.used - 1
      FROM released WHERE uses.promo_code_id = released.promo_code_id AND uses.buyer = released.buyer;
END $$;

CREATE OR REPLACE FUNCTION bookings_promo_codes_given_back() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bookings_release_promo_codes(NEW.id, NULL, coalesce(NEW.ended_at, now()));
    RETURN NULL;
END $$;

-- A hold that ends unpaid (Expired, Cancelled) gives its promo codes back, whatever ended it.
CREATE TRIGGER bookings_reservation_promo_codes
AFTER UPDATE OF status ON bookings_reservation
FOR EACH ROW
WHEN (OLD.status = 'Reserved' AND NEW.status IN ('Expired', 'Cancelled')
      AND NEW.price_breakdown #> '{terms,discounts}' <> '[]'::jsonb)
EXECUTE FUNCTION bookings_promo_codes_given_back();

-- The breakdown of a stored one priced again with these discounts (its seats and terms otherwise as they were).
CREATE OR REPLACE FUNCTION bookings_price_again(p_breakdown jsonb, p_discounts jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT bookings_price_breakdown(
        (SELECT coalesce(jsonb_agg(jsonb_build_array(listed.seat -> 'id', NULL, NULL, listed.seat ->> 'type',
                                                     listed.seat ->> 'price') ORDER BY listed.place), '[]')
           FROM jsonb_array_elements(p_breakdown -> 'seats') WITH ORDINALITY listed (seat, place)),
        jsonb_set(p_breakdown -> 'terms', '{discounts}', p_discounts))
$$;

-- The buyer's live hold, locked, still unpaid and not being paid for; or the refusal saying why not.
CREATE OR REPLACE FUNCTION bookings_lock_hold_for_pricing(
    p_reservation uuid, p_api_key bigint, p_session text, p_at timestamptz
) RETURNS bookings_reservation LANGUAGE plpgsql AS $$
DECLARE
    v_hold bookings_reservation;
BEGIN
    SELECT * INTO v_hold FROM bookings_reservation hold
     WHERE hold.id = p_reservation AND hold.api_key_id IS NOT DISTINCT FROM p_api_key AND hold.session_id = p_session
       FOR UPDATE;
    IF NOT FOUND THEN PERFORM bookings_refuse('not_found'); END IF;
    PERFORM bookings_refuse_unless_held(v_hold, p_at);
    -- The amount a pending charge is for must not change under it.
    IF EXISTS (SELECT 1 FROM bookings_payment charge WHERE charge.reservation_id = p_reservation
                  AND charge.kind = 'charge' AND charge.status IN ('pending', 'unknown')) THEN
        PERFORM bookings_refuse('payment_in_progress');
    END IF;
    IF v_hold.price_breakdown IS NULL THEN PERFORM bookings_refuse('promo_code_not_applicable'); END IF;
    RETURN v_hold;
END $$;

-- Apply promo code p_code (any case) to the buyer's live hold: see the module's docstring. Locks the hold, then
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
    v_buyer text := coalesce('key:' || p_api_key, 'site') || ':' || p_session;
    v_counted int;
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
    -- The limits. A racing redemption waits here for the other's commit, then sees the count it left.
    UPDATE bookings_promocode code SET used = code.used + 1
     WHERE code.id = v_promo.id AND (code.max_uses IS NULL OR code.used < code.max_uses);
    IF NOT FOUND THEN PERFORM bookings_refuse('promo_code_used_up'); END IF;
    INSERT INTO bookings_promobuyeruses AS uses (promo_code_id, buyer, used) VALUES (v_promo.id, v_buyer, 1)
    ON CONFLICT (promo_code_id, buyer) DO UPDATE SET used = uses.used + 1
     WHERE v_promo.max_uses_per_buyer IS NULL OR uses.used < v_promo.max_uses_per_buyer
    RETURNING uses.used INTO v_counted;
    IF v_counted IS NULL THEN PERFORM bookings_refuse('promo_code_buyer_limit'); END IF;
    INSERT INTO bookings_promoredemption (promo_code_id, reservation_id, buyer, created_at)
    VALUES (v_promo.id, p_reservation, v_buyer, p_at);
    breakdown := bookings_price_again(breakdown, v_discounts || jsonb_build_object(
        'code', v_promo.code, v_promo.kind, v_promo.value::text, 'stackable', v_promo.stackable));
    amount := (breakdown ->> 'total')::numeric;
    UPDATE bookings_reservation hold SET price_breakdown = breakdown, amount = bookings_apply_promo_code.amount
     WHERE hold.id = p_reservation;
END $$;

-- Take promo code p_code (any case) off the buyer's live hold, giving its use back, and price the hold again.
-- A code the hold doesn't have changes nothing. Locks and refuses as bookings_apply_promo_code (but for the
-- code's own refusals); returns the same.
CREATE OR REPLACE FUNCTION bookings_remove_promo_code(
    p_reservation uuid, p_api_key bigint, p_session text, p_code text, p_at timestamptz,
    OUT breakdown jsonb, OUT amount numeric
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_hold bookings_reservation;
    v_discounts jsonb;
    v_kept jsonb;
BEGIN
    v_hold := bookings_lock_hold_for_pricing(p_reservation, p_api_key, p_session, p_at);
    breakdown := v_hold.price_breakdown;
    amount := v_hold.amount;
    v_discounts := coalesce(breakdown #> '{terms,discounts}', '[]');
    SELECT coalesce(jsonb_agg(applied ORDER BY place), '[]') INTO v_kept
      FROM jsonb_array_elements(v_discounts) WITH ORDINALITY listed (applied, place)
     WHERE upper(applied ->> 'code') <> upper(btrim(p_code));
    IF v_kept = v_discounts THEN RETURN; END IF;
    PERFORM bookings_release_promo_codes(
        p_reservation, (SELECT code.id FROM bookings_promocode code WHERE upper(code.code) = upper(btrim(p_code))), p_at);
    breakdown := bookings_price_again(breakdown, v_kept);
    amount := (breakdown ->> 'total')::numeric;
    UPDATE bookings_reservation hold SET price_breakdown = breakdown, amount = bookings_remove_promo_code.amount
     WHERE hold.id = p_reservation;
END $$;
"""

DROP_FUNCTIONS = """
DROP TRIGGER IF EXISTS bookings_reservation_promo_codes ON bookings_reservation;
DROP FUNCTION IF EXISTS bookings_remove_promo_code;
DROP FUNCTION IF EXISTS bookings_apply_promo_code;
DROP FUNCTION IF EXISTS bookings_lock_hold_for_pricing;
DROP FUNCTION IF EXISTS bookings_price_again;
DROP FUNCTION IF EXISTS bookings_promo_codes_given_back;
DROP FUNCTION IF EXISTS bookings_release_promo_codes;
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_FUNCTIONS)


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0016_price_breakdown'),
        ('cinemas', '0006_cinema_money_and_policies'),
    ]

    operations = [
        migrations.CreateModel(
            name='PromoCode',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('code', models.CharField(help_text='What buyers type (any case): letters, digits, - and _.', max_length=32)),
                ('kind', models.CharField(choices=[('percent', 'Percentage of the tickets'), ('fixed', 'Fixed amount off the tickets')], default='percent', max_length=8)),
                ('value', models.DecimalField(decimal_places=2, help_text='The percentage (e.g. 20 for 20 %), or the amount off.', max_digits=8)),
                ('currency', models.CharField(blank=True, help_text='For a fixed amount: its ISO 4217 currency; it applies to holds in it.', max_length=3)),
                ('valid_from', models.DateTimeField(blank=True, null=True)),
                ('valid_until', models.DateTimeField(blank=True, null=True)),
                ('max_uses', models.PositiveIntegerField(blank=True, help_text='In all; empty: no limit.', null=True)),
                ('max_uses_per_buyer', models.PositiveIntegerField(blank=True, help_text='Empty: no limit.', null=True)),
                ('stackable', models.BooleanField(default=False, help_text='May be used together with other stackable codes.')),
                ('used', models.IntegerField(db_default=0, default=0, editable=False)),
                ('cinemas', models.ManyToManyField(blank=True, help_text='Empty: every cinema.', related_name='+', to='cinemas.cinema')),
                ('movies', models.ManyToManyField(blank=True, help_text='Empty: every movie.', related_name='+', to='cinemas.movie')),
                ('shows', models.ManyToManyField(blank=True, help_text='Empty: every show.', related_name='+', to='cinemas.show')),
            ],
            options={
                'ordering': ['code'],
            },
        ),
        migrations.CreateModel(
            name='PromoBuyerUses',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('buyer', models.CharField(max_length=160)),
                ('used', models.IntegerField()),
                ('promo_code', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='bookings.promocode')),
            ],
        ),
        migrations.CreateModel(
            name='PromoRedemption',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('buyer', models.CharField(max_length=160)),
                ('created_at', models.DateTimeField()),
                ('released_at', models.DateTimeField(blank=True, null=True)),
                ('promo_code', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='redemptions', to='bookings.promocode')),
                ('reservation', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='promo_redemptions', to='bookings.reservation')),
            ],
        ),
        migrations.AddConstraint(
            model_name='promocode',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Upper('code'), name='bookings_promocode_code_any_case', violation_error_message='A promo code with this code already exists (in any case).'),
        ),
        migrations.AddConstraint(
            model_name='promocode',
            constraint=models.CheckConstraint(condition=models.Q(('code__regex', '^[A-Za-z0-9_-]+$')), name='bookings_promocode_code_chars'),
        ),
        migrations.AddConstraint(
            model_name='promocode',
            constraint=models.CheckConstraint(condition=models.Q(('value__gt', 0)), name='bookings_promocode_value_positive'),
        ),
        migrations.AddConstraint(
            model_name='promocode',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('currency__regex', '^[A-Z]{3}$'), ('kind', 'fixed')), models.Q(('kind', 'percent'), ('value__lte', 100)), _connector='OR'), name='bookings_promocode_kind_value'),
        ),
        migrations.AddConstraint(
            model_name='promocode',
            constraint=models.CheckConstraint(condition=models.Q(('used__gte', 0)), name='bookings_promocode_used_not_negative'),
        ),
        migrations.AddConstraint(
            model_name='promocode',
            constraint=models.CheckConstraint(condition=models.Q(('max_uses__isnull', True), ('used__lte', models.F('max_uses')), _connector='OR'), name='bookings_promocode_within_max_uses'),
        ),
        migrations.AddConstraint(
            model_name='promocode',
            constraint=models.CheckConstraint(condition=models.Q(('max_uses_per_buyer__isnull', True), ('max_uses_per_buyer__gte', 1), _connector='OR'), name='bookings_promocode_buyer_limit_positive'),
        ),
        migrations.AddConstraint(
            model_name='promobuyeruses',
            constraint=models.UniqueConstraint(fields=('promo_code', 'buyer'), name='bookings_promobuyeruses_one_per_buyer'),
        ),
        migrations.AddConstraint(
            model_name='promobuyeruses',
            constraint=models.CheckConstraint(condition=models.Q(('used__gte', 0)), name='bookings_promobuyeruses_not_negative'),
        ),
        migrations.AddConstraint(
            model_name='promoredemption',
            constraint=models.UniqueConstraint(condition=models.Q(('released_at__isnull', True)), fields=('reservation', 'promo_code'), name='bookings_promoredemption_once_per_hold'),
        ),
        migrations.RunPython(create_functions, drop_functions),
    ]
