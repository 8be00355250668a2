from django.conf import settings
from django.db import transaction

from ticketing.api_keys import forget_api_key
from ticketing.models import ApiKey, hash_api_key

DEFAULT_HOLD_CAP = object()


@transaction.atomic
def create_api_key(*, name, rate_per_minute=None, held_seats_per_show=DEFAULT_HOLD_CAP, raw_key=None):
    """Create a partner's API key and return `(api_key, raw_key)`.

    `held_seats_per_show` caps what the key's sessions may hold of one show at once (None: no cap; by
    default TICKETING_DEFAULT_KEY_HELD_SEATS). The raw key exists only in the return value (pass `raw_key`
    to install a known key, as the demo does). Raises IntegrityError if the name is taken.
    """
    raw_key = raw_key or ApiKey.generate_raw_key()
    if held_seats_per_show is DEFAULT_HOLD_CAP:
        held_seats_per_show = settings.TICKETING_DEFAULT_KEY_HELD_SEATS
    api_key = ApiKey.objects.create(
        name=name,
        prefix=raw_key[:10],
        key_hash=hash_api_key(raw_key),
        rate_per_minute=rate_per_minute or settings.TICKETING_DEFAULT_API_RATE,
        held_seats_per_show=held_seats_per_show,
    )
    return api_key, raw_key


def revoke_api_key(*, api_key):
    """Revoke a key: every call with it gets 403, at once in this process and within
    TICKETING_API_KEY_CACHE_SECONDS in the others. Idempotent."""
    ApiKey.objects.filter(pk=api_key.pk).update(is_revoked=True)
    forget_api_key(api_key.key_hash)
