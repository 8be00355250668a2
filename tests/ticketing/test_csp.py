"""Every answer carries the site's Content-Security-Policy, and the one inline style and script left carry its nonce.

What the policy lets a page do is tried in Chromium (tests/ticketing/test_browser_csp.py, and every browser test
fails on a violation); here, through Django's test client, that every kind of answer has the header: pages, the
seat grid fragment, error pages, the API's JSON, the admin, the login's lockout page.
"""

import re

import pytest
from django.test import Client

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; "
    "form-action 'self'"
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/search/?q=harbor",
        "/shows/{show}/",
        "/shows/{show}/map",
        "/no-such-page/",
        "/api/v1/cities",
        "/api/v1/schema/",
        "/admin/login/",
        "/staff/check-in/",
    ],
)
def test_every_kind_of_answer_carries_the_policy_without_a_nonce_where_nothing_inline_needs_one(show, path):
    response = Client().get(path.format(show=show.pk))

    assert response["Content-Security-Policy"] == POLICY


def test_the_check_in_pages_style_sheet_carries_the_nonce_the_header_allows(admin_client):
    response = admin_client.get("/staff/check-in/")

    nonce = re.search(r"style-src 'self' 'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    assert f'<style nonce="{nonce}">' in response.content.decode()


def test_the_api_docs_inline_style_and_script_carry_the_nonce_the_header_allows():
    response = Client().get("/api/docs/")

    policy = response["Content-Security-Policy"]
    page = response.content.decode()
    nonce = re.search(r"script-src 'self' 'nonce-([^']+)'", policy).group(1)
    assert f"style-src 'self' 'nonce-{nonce}'" in policy
    assert f'<style nonce="{nonce}">' in page and f'<script nonce="{nonce}">' in page
    assert not re.search(r"<(script|style)>", page)  # nothing inline without it


def test_the_nonce_is_new_for_every_answer(admin_client):
    nonces = {
        re.search(r"'nonce-([^']+)'", admin_client.get("/staff/check-in/")["Content-Security-Policy"]).group(1)
        for _ in range(3)
    }

    assert len(nonces) == 3


def test_the_logins_lockout_page_carries_the_policy_too():
    for _ in range(5):
        refused = Client().post("/admin/login/", {"username": "nobody", "password": "wrong"})

    assert refused.status_code == 429
    assert refused["Content-Security-Policy"] == POLICY
