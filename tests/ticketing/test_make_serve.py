"""`make serve`: the production setup on one machine starts, serves, and stops leaving nothing behind."""

import os
import time

import httpx
import pytest

from bench.harness.processes import process_tree
from tests.helpers import make_serve_running

pytestmark = pytest.mark.django_db(transaction=True)


def command_lines(pids):
    lines = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                lines.append(cmdline.read().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return lines


def test_make_serve_runs_uvicorn_workers_a_celery_worker_and_beat_and_ctrl_c_stops_them_all():
    with make_serve_running() as (serve, banner, url):
        assert any("uvicorn, 2 worker processes (DJANGO_DEBUG=0)" in line for line in banner)

        assert httpx.get(f"{url}/").status_code == 200
        assert httpx.get(f"{url}/static/css/site.css").status_code == 200  # WhiteNoise, with DEBUG off
        assert httpx.get(f"{url}/api/v1/cities").status_code == 401
        running = command_lines(process_tree(serve.pid))
        assert sum("multiprocessing" in line and "spawn" in line for line in running) >= 2, running  # workers
        assert any("celery -A ticketing worker" in line for line in running), running
        assert any("celery -A ticketing beat" in line for line in running), running
        tree = process_tree(serve.pid)
    time.sleep(1)
    assert not [pid for pid in tree if os.path.exists(f"/proc/{pid}") and command_lines([pid])], "left running"
