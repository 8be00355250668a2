"""Who a request comes from: the peer's own address, unless the peer is a proxy the settings name.

The rule: forwarding headers (X-Forwarded-For, X-Forwarded-Proto) are believed only from the addresses in
TICKETING_TRUSTED_PROXIES, nobody by default. uvicorn applies it (its ProxyHeadersMiddleware rewrites the ASGI
scope's client and scheme from a trusted peer's headers, and leaves them alone otherwise), so every server we
start passes it `--forwarded-allow-ips` from that setting (`uvicorn_options`): uvicorn's own default trusts
127.0.0.1, which under `make serve` let anyone on the machine, or anything relaying for them, name any address.
Django then reads the result as REMOTE_ADDR and `request.scheme`; nothing of ours reads the headers themselves.
Daphne (`make run`'s runserver) reads no forwarding header at all: it is started without --proxy-headers.

Pure Python (no Django), so the settings and the scripts that start servers can import it.
"""

import ipaddress
import os

SETTING = "TICKETING_TRUSTED_PROXIES"


def parse_trusted_proxies(raw):
    """The comma-separated addresses and networks (CIDR) of `raw`, normalized; ValueError names a bad one.

    "*" (uvicorn's "trust everyone") is refused: a proxy is trusted by name, never by default.
    """
    proxies = []
    for item in (part.strip() for part in (raw or "").split(",")):
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item, strict=False) if "/" in item else ipaddress.ip_address(item)
        except ValueError:
            raise ValueError(
                f"{SETTING} must list IP addresses or networks (e.g. 10.0.0.5,10.1.0.0/16), got {item!r}"
            ) from None
        proxies.append(str(network))
    return tuple(proxies)


# A seat-map push is one frame written to every socket watching the show; compressed (permessage-deflate, on
# by default) it is compressed again for each socket, with that socket's own compression state: in a waiting
# surge with 1,000 watchers that was 45 % of what the pushes cost the web process (docs/performance/README.md,
# issue 16 sitting 6). The frames are a few hundred bytes of JSON; they go uncompressed.
WEBSOCKET_OPTIONS = ("--ws-per-message-deflate", "false")


def uvicorn_options(environment=None):
    """uvicorn's arguments for every server we start: trust exactly the proxies of `environment` (default
    os.environ), and send WebSocket frames uncompressed (WEBSOCKET_OPTIONS).

    The proxies are always given, also when the setting is empty: an empty --forwarded-allow-ips trusts nobody,
    while leaving it out would fall back to $FORWARDED_ALLOW_IPS or uvicorn's 127.0.0.1.
    """
    environment = os.environ if environment is None else environment
    return [
        "--forwarded-allow-ips",
        ",".join(parse_trusted_proxies(environment.get(SETTING, ""))),
        *WEBSOCKET_OPTIONS,
    ]


def client_address(request):
    """The address a request comes from, as the server established it (see the module's docstring).

    The one place the website's per-address limits (the hold cap, the admin's login throttle) read it.
    """
    return request.META.get("REMOTE_ADDR") or None
