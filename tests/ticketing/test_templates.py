"""Every template of the site loads: a filter given the wrong number of arguments (an amount with `money` but no
currency, which would write an Indian cinema's prices in dollars) is refused when Django compiles it."""

from pathlib import Path

import pytest
from django.conf import settings
from django.template import TemplateSyntaxError, engines
from django.template.loader import get_template

TEMPLATES = sorted(
    path.relative_to(folder).as_posix()
    for folder in (Path(settings.BASE_DIR) / "templates",)
    for path in folder.rglob("*")
    if path.suffix in {".html", ".txt"}
)


def test_there_are_templates_to_check():
    assert len(TEMPLATES) > 30


@pytest.mark.parametrize("name", TEMPLATES)
def test_each_template_compiles(name):
    get_template(name)


def test_an_amount_without_its_currency_is_refused_when_the_template_loads():
    with pytest.raises(TemplateSyntaxError):
        engines["django"].from_string("{% load site_format %}{{ amount|money }}")
