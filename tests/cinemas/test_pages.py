import pytest
import time_machine

from tests.cinemas.scene import NOW, build_scene

pytestmark = pytest.mark.django_db


def test_the_home_page_lists_the_cities_with_cinemas(client):
    with time_machine.travel(NOW, tick=False):
        build_scene()
        page = client.get("/")
    assert page.status_code == 200
    assert b"New York" in page.content and b"London" in page.content


def test_a_city_page_shows_its_cinemas_showtimes_in_local_time(client):
    with time_machine.travel(NOW, tick=False):
        scene = build_scene()
        page = client.get(f"/cities/{scene.cities['New York'].pk}/").content.decode()
    assert "Midtown" in page and "Brooklyn Heights" in page
    # The Quiet Harbor starts at 13:00 UTC, 08:00 in New York.
    assert "Tue 24 Nov, 08:00" in page and "The Quiet Harbor" in page
    assert "Leicester Square" not in page
