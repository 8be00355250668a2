"""DATABASE_URL and its kin read into a Django DATABASES entry, with libpq's several hosts.

A URL may name several `host:port` pairs, as libpq's own URIs do:

    postgres://postgres@127.0.0.1:5433,127.0.0.1:5434/ticketing?target_session_attrs=read-write

libpq then tries them in turn and, with `target_session_attrs=read-write`, keeps the one that accepts writes: a
web process or worker reaches whichever node a failover manager made the primary, without a restart. Django
passes HOST and PORT through to libpq, which takes comma-separated lists; dj-database-url reads one host, so the
list is set aside while it reads the rest. Imported by settings: no Django model here.
"""

from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured


def parse_database_url(url, variable="DATABASE_URL"):
    """The DATABASES entry for `url`; ImproperlyConfigured, naming the environment's `variable`, when it is not a
    database URL."""
    hosts = _hosts_of(url)
    single = url if len(hosts) < 2 else _with_netloc(url, _credentials_of(url) + hosts[0])
    try:
        database = dj_database_url.parse(single)
    except Exception as exc:  # dj-database-url raises several types for a malformed URL
        raise ImproperlyConfigured(f"{variable} is not a database URL: {exc}") from None
    if len(hosts) > 1:
        names, ports = zip(*(_host_and_port(host, variable) for host in hosts), strict=True)
        database["HOST"], database["PORT"] = ",".join(names), ",".join(ports)
    return database


def _hosts_of(url):
    netloc = urlsplit(url).netloc
    return [host for host in netloc.rpartition("@")[2].split(",") if host]


def _credentials_of(url):
    netloc = urlsplit(url).netloc
    return netloc.rpartition("@")[0] + "@" if "@" in netloc else ""


def _with_netloc(url, netloc):
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=netloc))


def _host_and_port(host, variable):
    name, colon, port = host.rpartition(":")
    if not colon or name.endswith(":") or host.endswith("]"):  # no port given (an IPv6 address has colons)
        return host.strip("[]"), "5432"
    if not port.isdigit():
        raise ImproperlyConfigured(f"{variable} names a host with a port that is not a number: {host!r}")
    return name.strip("[]"), port
