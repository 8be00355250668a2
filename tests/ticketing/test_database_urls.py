"""DATABASE_URL read into Django's settings, with one host or libpq's several."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from ticketing.database_urls import parse_database_url


def test_one_host_is_read_as_dj_database_url_reads_it():
    database = parse_database_url("postgres://postgres@127.0.0.1:5432/ticketing")
    assert (database["HOST"], database["PORT"], database["NAME"], database["USER"]) == (
        "127.0.0.1",
        5432,
        "ticketing",
        "postgres",
    )


def test_several_hosts_become_libpqs_lists_of_hosts_and_ports_with_the_urls_options():
    database = parse_database_url(
        "postgres://app:secret@10.0.0.1:5433,10.0.0.2:5434/ticketing?target_session_attrs=read-write"
    )
    assert (database["HOST"], database["PORT"]) == ("10.0.0.1,10.0.0.2", "5433,5434")
    assert (database["USER"], database["PASSWORD"], database["NAME"]) == ("app", "secret", "ticketing")
    assert database["OPTIONS"] == {"target_session_attrs": "read-write"}


def test_a_host_without_a_port_and_an_ipv6_address_among_several_are_read_as_libpq_reads_them():
    database = parse_database_url("postgres://postgres@[::1]:5433,db.internal/ticketing")
    assert (database["HOST"], database["PORT"]) == ("::1,db.internal", "5433,5432")


@pytest.mark.parametrize("url", ["postgres://postgres@127.0.0.1:5433,127.0.0.1:x/ticketing", "not a url at all"])
def test_a_malformed_url_is_a_configuration_error_that_says_so(url):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        parse_database_url(url)
