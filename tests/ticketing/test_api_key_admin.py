import re

import pytest
from django.urls import reverse

from tests.factories import make_api_key
from ticketing.models import ApiKey, hash_api_key

pytestmark = pytest.mark.django_db

RAW_KEY = re.compile(r"tk_[A-Za-z0-9_-]{20,}")


def test_adding_a_key_shows_the_raw_key_once_and_stores_only_its_hash(admin_client):
    response = admin_client.post(
        reverse("admin:ticketing_apikey_add"), {"name": "Fandango", "rate_per_minute": "120"}, follow=True
    )

    assert response.status_code == 200
    shown = RAW_KEY.findall(response.text)
    assert len(shown) == 1
    raw_key = shown[0]
    api_key = ApiKey.objects.get(name="Fandango")
    assert api_key.key_hash == hash_api_key(raw_key)
    assert api_key.prefix == raw_key[:10]
    assert api_key.rate_per_minute == 120
    assert raw_key not in str(ApiKey.objects.values().get())  # nothing stored holds the key itself

    again = admin_client.get(reverse("admin:ticketing_apikey_change", args=[api_key.pk]))
    assert raw_key not in again.text


def test_the_add_form_starts_from_the_default_rate(admin_client, settings):
    settings.TICKETING_DEFAULT_API_RATE = 321

    response = admin_client.get(reverse("admin:ticketing_apikey_add"))

    assert response.context["adminform"].form.initial["rate_per_minute"] == 321


def test_the_key_hash_is_never_shown_but_the_prefix_is(admin_client):
    make_api_key(name="Fandango")
    api_key = ApiKey.objects.get(name="Fandango")

    listing = admin_client.get(reverse("admin:ticketing_apikey_changelist"), {"q": "Fandango", "is_revoked__exact": 0})
    page = admin_client.get(reverse("admin:ticketing_apikey_change", args=[api_key.pk]))

    assert listing.context["cl"].result_count == 1
    for response in (listing, page):
        assert api_key.prefix in response.text
        assert api_key.key_hash not in response.text


def test_editing_a_key_does_not_undo_a_revocation_made_meanwhile(admin_client):
    make_api_key(name="Fandango")
    api_key = ApiKey.objects.get(name="Fandango")
    form_page = admin_client.get(reverse("admin:ticketing_apikey_change", args=[api_key.pk]))
    assert form_page.status_code == 200
    ApiKey.objects.filter(pk=api_key.pk).update(is_revoked=True)

    admin_client.post(
        reverse("admin:ticketing_apikey_change", args=[api_key.pk]), {"name": "Fandango", "rate_per_minute": "60"}
    )

    api_key.refresh_from_db()
    assert (api_key.rate_per_minute, api_key.is_revoked) == (60, True)


def test_the_revoke_action_revokes_the_selected_keys(admin_client):
    make_api_key(name="Fandango")
    make_api_key(name="Atom")
    fandango = ApiKey.objects.get(name="Fandango")

    response = admin_client.post(
        reverse("admin:ticketing_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [fandango.pk]},
        follow=True,
    )

    assert "Revoked 1 key." in response.text
    assert dict(ApiKey.objects.values_list("name", "is_revoked")) == {"Fandango": True, "Atom": False}
