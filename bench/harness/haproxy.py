"""HAProxy, the local load balancer of the scaled-out stack (bench/harness/balancer.py): Debian's executable, its
configuration from the committed template deploy/haproxy.cfg, and its counters read from the stats socket.
"""

import csv
import io
import os
import shutil
import socket
from pathlib import Path

from bench.harness.processes import ROOT

HAPROXY_TEMPLATE = ROOT / "deploy" / "haproxy.cfg"


class HaproxyMissing(RuntimeError):
    pass


def haproxy_executable():
    """Debian's haproxy, or HaproxyMissing saying how to install it."""
    found = shutil.which("haproxy") or next(
        (path for path in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(path, os.X_OK)), None
    )
    if found is None:
        raise HaproxyMissing(
            "haproxy is not installed: `make debian-packages` installs it (it is in the Makefile's "
            "DEBIAN_PACKAGES; `make test` runs that first)"
        )
    return found


def render_haproxy_config(*, bind, servers, stats_socket, health_host="127.0.0.1", template=HAPROXY_TEMPLATE):
    """deploy/haproxy.cfg with its fields filled in; `servers` is [(name, "host:port"), ...]."""
    lines = "\n".join(f"    server {name} {address}" for name, address in servers)
    text = Path(template).read_text()
    for placeholder, value in {
        "{{bind}}": bind,
        "{{stats_socket}}": str(stats_socket),
        "{{health_host}}": health_host,
        "{{servers}}": lines,
    }.items():
        if placeholder not in text:
            raise ValueError(f"{template} has no {placeholder}")
        text = text.replace(placeholder, value)
    return text


def web_server_stats(stats_socket):
    """HAProxy's `show stat` for the web backend's servers, from its stats socket: {server name: {column: value}}."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(5)
        connection.connect(str(stats_socket))
        connection.sendall(b"show stat\n")
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode().lstrip("# ")
    return {
        row["svname"]: row
        for row in csv.DictReader(io.StringIO(text))
        if row["pxname"] == "web" and row["svname"] not in ("BACKEND", "FRONTEND")
    }
