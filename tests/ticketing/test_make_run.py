"""`make run` as a newcomer meets it: nothing the tests alone need, the README's example answered from its demo data,
readable output, mail links to its own port, and Ctrl-C in the terminal ends it without an error."""

import os
import re
import signal
import subprocess
import threading
import time

import httpx
import pytest
from django.conf import settings

from bench.harness.processes import free_port, process_tree
from tests import conftest
from tests.helpers import ctrl_c_as_in_a_terminal, make_environment


def readme_curl_example():
    """The key and URL of the README's `curl -H 'X-API-Key: ...' 'http://...'` example."""
    readme = (settings.BASE_DIR / "README.md").read_text()
    found = re.search(r"curl -H 'X-API-Key: (?P<key>[^']+)' \\\n\s*'(?P<url>http[^']+)'", readme)
    assert found, "no curl example in README.md"
    return found["key"], found["url"]


def commands_of(target):
    run = subprocess.run(
        ["make", "-n", target], cwd=settings.BASE_DIR, env=make_environment(), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_make_run_installs_no_debian_packages_which_only_the_tests_and_benchmarks_need():
    assert "debian_packages.sh" not in commands_of("run")
    for target in ("test", "chaos", "bench-sweep"):
        assert "debian_packages.sh chromium haproxy" in commands_of(target), target


def process_environment(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            pairs = environ.read().split(b"\0")
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            command = cmdline.read().replace(b"\0", b" ").decode()
    except OSError:
        return "", {}
    return command, dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


@pytest.mark.django_db(transaction=True)
def test_make_run_answers_the_readme_s_example_logs_each_line_once_mails_its_own_address_and_stops_on_ctrl_c():
    port = free_port()
    environment = make_environment(
        TICKETING_PORT=str(port),
        DATABASE_URL=conftest.test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        DJANGO_DEBUG="1",
    )
    environment.pop("TICKETING_SITE_URL", None)
    # A session of its own, as a terminal's foreground job: Ctrl-C there signals make and the script together.
    run = subprocess.Popen(
        ["make", "run"],
        cwd=settings.BASE_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    output = []
    reader = threading.Thread(target=lambda: output.extend(run.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any("Stop with Ctrl-C" in line for line in output):
            assert run.poll() is None, "make run exited:\n" + "".join(output)
            assert time.monotonic() < deadline, "make run did not start:\n" + "".join(output)
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/").status_code == 200
        key, example = readme_curl_example()
        assert example.startswith("http://127.0.0.1:8000/")
        found = httpx.get(example.replace(":8000", f":{port}", 1), headers={"X-API-Key": key})
        assert found.status_code == 200 and found.json()["results"], found.text  # shows from the demo data
        assert httpx.get(f"{url}/no-such-page/").status_code == 404
        time.sleep(4)  # beat's clocks tick every second or two meanwhile

        servers = [process_environment(pid) for pid in process_tree(run.pid)]
        servers = [(command, env) for command, env in servers if "runserver" in command or "celery" in command]
        assert any("runserver" in command for command, _ in servers) and any("celery" in c for c, _ in servers)
        for command, env in servers:
            assert env.get("TICKETING_SITE_URL") == url, command  # where the mailed links point
        tree = process_tree(run.pid)
    finally:
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in the terminal
        run.wait(timeout=90)
        reader.join(timeout=10)

    log = "".join(output)
    assert sum("GET /no-such-page/" in line for line in output) == 1, log  # daphne's line about the request
    assert sum("Not Found: /no-such-page/" in line for line in output) == 1, log  # Django's
    assert "celery@" in log and " ready." in log, log  # the worker still says what it does...
    assert "Sending due task" not in log, log  # ...but beat's ticks
    assert "Task bookings.release_lapsed_holds[" not in log and "Task waiting.tend_waiting_lines[" not in log, log
    assert "Promo code:   WELCOME10 (10 % off the tickets, any show)" in log, log  # the demo's codes, in the banner
    assert "[run] stopped" in log, log
    assert "make: ***" not in log, log  # no "Error 130"
    time.sleep(1)
    assert not [pid for pid in tree if process_environment(pid)[0]], "left running"
