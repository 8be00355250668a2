"""The addresses the README gives a newcomer exist. Read from README.md, so the README and the tests can't drift
(its API example is tried against `make run`'s demo data in tests/ticketing/test_make_run.py)."""

import re

import httpx
import pytest
from django.conf import settings

README = (settings.BASE_DIR / "README.md").read_text()


@pytest.mark.django_db(transaction=True)
def test_every_health_address_the_readme_names_exists(site):
    paths = set(re.findall(r"/health/[\w/]*", README))

    assert paths, "README.md names no health address"
    for path in sorted(paths):
        # Through a real server: /health/live is answered ahead of Django (ticketing.asgi.liveness).
        assert httpx.get(f"{site}{path}").status_code != 404, path
