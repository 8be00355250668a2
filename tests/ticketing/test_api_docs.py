"""The interactive API docs (/api/docs/) come from our own static files: nothing from a CDN, so they work offline."""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect


class _References(HTMLParser):
    """Every src and href in a page."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]


def references(html):
    parser = _References()
    parser.feed(html)
    return parser.urls


def test_the_docs_page_names_only_files_of_this_site_and_each_is_served(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    urls = references(html)
    assert any(url.endswith("swagger-ui-bundle.js") for url in urls), urls
    assert any(url.endswith("swagger-ui.css") for url in urls), urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{url} is on another host"
        served = client.get(url)
        assert served.status_code == 200, url
        assert b"".join(served.streaming_content if served.streaming else [served.content]), url
    # The schema Swagger UI fetches is ours too.
    [schema_url] = re.findall(r'url: "([^"]*)"', html)
    assert not urlsplit(schema_url).netloc
    assert client.get(schema_url).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_docs_render_every_operation_in_chromium_with_every_other_host_cut_off(site, new_page):
    page = new_page(base_url=site)
    elsewhere = []

    def refuse(route):
        elsewhere.append(route.request.url)
        route.abort()

    page.route(lambda url: not url.startswith(site), refuse)

    page.goto("/api/docs/")

    expect(page.get_by_role("heading", name=re.compile("Movie ticketing API"))).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/movies/search")).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/reservations/{reservation_id}/pay")).to_be_visible()
    assert elsewhere == []
