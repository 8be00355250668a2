"""Gift cards pay for shows sold on any shard (ticketing.shards): a card's money moves to the show's shard first.

A card's balance is the home's. A hold on another shard is paid from that shard's copy of the card (same code and
terms, made by the first move there), by 0019's bookings_redeem_gift_card unchanged, so what a card may pay, its
refusals and its giving back when a hold lapses or a booking is refunded stay where they are. What moves between
two databases is a GiftCardTransfer, sent and received in a transaction on each (the functions below), exactly
once by its id (bookings.services.gift_cards says who calls them and when).
"""

from django.db import migrations, models

FUNCTIONS = r"""
-- Send up to p_amount of card p_code's balance from this database (p_source) to p_destination: takes it from the
-- balance and records the transfer, unlanded; returns the transfer's id (NULL when nothing is sent) and the card's
-- terms, which the receiver copies. Sends nothing when p_unmoved_since is given and money came or went since.
-- Locks the card's row. Refuses gift_card_invalid for a code this database has no card of.
CREATE OR REPLACE FUNCTION bookings_send_gift_card(
    p_code text, p_amount numeric, p_source text, p_destination text, p_unmoved_since timestamptz, p_at timestamptz,
    OUT transfer uuid, OUT sent numeric, OUT card_currency text, OUT card_initial_value numeric,
    OUT card_expires_at timestamptz, OUT card_created_at timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    v_card bookings_giftcard;
BEGIN
    SELECT * INTO v_card FROM bookings_giftcard card WHERE card.code = p_code FOR UPDATE;
    IF NOT FOUND THEN PERFORM bookings_refuse('gift_card_invalid'); END IF;
    sent := least(v_card.balance, greatest(p_amount, 0));
    IF p_unmoved_since IS NOT NULL AND v_card.moved_at > p_unmoved_since THEN
        sent := 0;
    END IF;
    IF sent > 0 THEN
        transfer := gen_random_uuid();
        UPDATE bookings_giftcard card SET balance = card.balance - sent, moved_at = p_at WHERE card.id = v_card.id;
        INSERT INTO bookings_giftcardtransfer (id, code, amount, source, destination, created_at, landed_at)
        VALUES (transfer, p_code, sent, p_source, p_destination, p_at, NULL);
    END IF;
    card_currency := v_card.currency;
    card_initial_value := v_card.initial_value;
    card_expires_at := v_card.expires_at;
    card_created_at := v_card.created_at;
END $$;

-- Receive transfer p_transfer (NULL: nothing sent) of card p_code here. With p_copy (a shard, which keeps a copy of
-- a home card), the copy is made with no balance if this database has none and its terms follow the sender's.
-- The amount is added to the card's balance once, however often the transfer is delivered: the transfer's row,
-- written here landed, is the proof. Returns whether it was added now. Locks the card's row.
CREATE OR REPLACE FUNCTION bookings_receive_gift_card(
    p_transfer uuid, p_code text, p_amount numeric, p_currency text, p_initial_value numeric,
    p_expires_at timestamptz, p_created_at timestamptz, p_source text, p_destination text, p_copy boolean,
    p_at timestamptz
) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF p_copy THEN
        INSERT INTO bookings_giftcard AS card (code, currency, initial_value, balance, expires_at, created_at, moved_at)
        VALUES (p_code, p_currency, p_initial_value, 0, p_expires_at, p_created_at, p_at)
        ON CONFLICT (code) DO UPDATE
           SET currency = EXCLUDED.currency, initial_value = EXCLUDED.initial_value,
               expires_at = EXCLUDED.expires_at, moved_at = EXCLUDED.moved_at;
    END IF;
    IF p_transfer IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO bookings_giftcardtransfer (id, code, amount, source, destination, created_at, landed_at)
    VALUES (p_transfer, p_code, p_amount, p_source, p_destination, p_at, p_at)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE bookings_giftcard card SET balance = card.balance + p_amount, moved_at = p_at WHERE card.code = p_code;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'a gift card transfer came to a card this database has no row of' USING DETAIL = p_transfer;
    END IF;
    RETURN true;
END $$;

-- The sender's record that transfer p_transfer has landed (the receiver has its row).
CREATE OR REPLACE FUNCTION bookings_land_gift_card_transfer(p_transfer uuid, p_at timestamptz) RETURNS void
LANGUAGE sql AS $$
    UPDATE bookings_giftcardtransfer SET landed_at = p_at WHERE id = p_transfer AND landed_at IS NULL
$$;

-- What a hold still owes that card p_code's copy here can't pay now: what to bring from home before redeeming it
-- (0 for a hold that is not live, which the redemption then refuses).
CREATE OR REPLACE FUNCTION bookings_gift_card_wanted(p_reservation uuid, p_code text) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT greatest(
        coalesce((SELECT hold.amount - hold.gift_cards_paid FROM bookings_reservation hold
                   WHERE hold.id = p_reservation AND hold.status = 'Reserved'), 0)
        - coalesce((SELECT card.balance FROM bookings_giftcard card WHERE card.code = p_code), 0),
        0)
$$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION bookings_gift_card_wanted(uuid, text);
DROP FUNCTION bookings_land_gift_card_transfer(uuid, timestamptz);
DROP FUNCTION bookings_receive_gift_card(uuid, text, numeric, text, numeric, timestamptz, timestamptz, text, text,
                                         boolean, timestamptz);
DROP FUNCTION bookings_send_gift_card(text, numeric, text, text, timestamptz, timestamptz);
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0034_booking_code_collision_only"),
    ]

    operations = [
        migrations.AddField(
            model_name="giftcard",
            name="moved_at",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="moved at"),
        ),
        migrations.CreateModel(
            name="GiftCardTransfer",
            fields=[
                ("id", models.UUIDField(primary_key=True, serialize=False)),
                ("code", models.CharField(max_length=16, verbose_name="code")),
                ("amount", models.DecimalField(decimal_places=2, max_digits=10, verbose_name="amount")),
                ("source", models.CharField(max_length=64, verbose_name="from")),
                ("destination", models.CharField(max_length=64, verbose_name="to")),
                ("created_at", models.DateTimeField(verbose_name="created at")),
                ("landed_at", models.DateTimeField(blank=True, null=True, verbose_name="landed at")),
            ],
            options={
                "verbose_name": "gift card transfer",
                "verbose_name_plural": "gift card transfers",
                "indexes": [
                    models.Index(
                        condition=models.Q(("landed_at__isnull", True)),
                        fields=["created_at"],
                        name="bookings_gctransfer_unlanded",
                    )
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("amount__gt", 0)), name="bookings_giftcardtransfer_positive"
                    )
                ],
            },
        ),
        migrations.RunPython(create_functions, drop_functions),
    ]
