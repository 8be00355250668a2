"""The website's error pages are the site's own (its header, styles and a way home), with DEBUG off as deployed;
the API keeps its JSON error body."""

import pytest
from django.core.exceptions import PermissionDenied
from django.db import OperationalError
from django.template import loader
from django.test import Client, override_settings
from django.urls import path

import ticketing.urls

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def fails(request):
    raise RuntimeError("a fault of ours")


def forbids(request):
    raise PermissionDenied


def loses_the_database(request):
    raise OperationalError("the database went away")


# The site's own URLs and error handlers, and views that fail, for these tests only.
urlpatterns = [
    path("failing-page/", fails),
    path("api/v1/failing", fails),
    path("forbidden-page/", forbids),
    path("database-down/", loses_the_database),
    *ticketing.urls.urlpatterns,
]
handler404 = ticketing.urls.handler404
handler500 = ticketing.urls.handler500


def assert_branded(response, status, heading):
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert f"<h1>{heading}</h1>" in html
    assert 'href="/static/css/site.css"' in html  # the site's styles
    assert 'class="brand" href="/"' in html and 'class="button" href="/"' in html  # the way home


@override_settings(DEBUG=False)
def test_an_unknown_page_is_the_site_s_own_404(client):
    assert_branded(client.get("/no-such-page/"), 404, "We can't find that page")


@override_settings(DEBUG=False)
def test_a_page_of_something_that_does_not_exist_is_the_site_s_own_404(client):
    assert_branded(client.get("/shows/999999999/"), 404, "We can't find that page")


@override_settings(DEBUG=False)
def test_a_page_that_fails_is_the_site_s_own_500():
    client = Client(raise_request_exception=False)

    assert_branded(client.get("/failing-page/"), 500, "Something went wrong on our side")


@override_settings(DEBUG=False)
def test_a_page_refused_is_the_site_s_own_403(client):
    assert_branded(client.get("/forbidden-page/"), 403, "You can't open this page")


@override_settings(DEBUG=False)
def test_a_request_for_another_host_is_the_site_s_own_400(client):
    assert_branded(client.get("/", HTTP_HOST="elsewhere.example"), 400, "We couldn't understand that request")


@override_settings(DEBUG=False)
def test_a_form_posted_without_its_csrf_token_is_the_site_s_own_403():
    client = Client(enforce_csrf_checks=True)

    assert_branded(client.post("/search/"), 403, "This form has expired")


@pytest.mark.parametrize("template", ["500.html", "400.html"])
def test_the_pages_django_renders_without_a_request_need_neither_context_nor_the_database(
    template, django_assert_num_queries
):
    with django_assert_num_queries(0):
        html = loader.get_template(template).render()

    assert 'href="/static/css/site.css"' in html and 'class="button" href="/"' in html


@override_settings(DEBUG=False)
def test_the_api_keeps_its_json_error_body_for_an_unknown_address_and_a_failure():
    client = Client(raise_request_exception=False)

    missing = client.get("/api/v1/nothing-here")
    failing = client.get("/api/v1/failing")

    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert failing.status_code == 500 and failing.json()["error"]["code"] == "server_error"


@override_settings(DEBUG=False)
def test_a_page_while_a_component_is_down_is_the_site_s_own_503_with_retry_after():
    client = Client(raise_request_exception=False)

    response = client.get("/database-down/")

    assert_branded(response, 503, "Please retry in a moment")
    assert response["Retry-After"] == "5" and response["Cache-Control"] == "no-store"
