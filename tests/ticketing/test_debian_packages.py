"""scripts/debian_packages.sh waits while another apt or dpkg run holds apt's locks, instead of failing at once."""

import fcntl
import os
import shutil
import subprocess

import pytest
from django.conf import settings

# The locks apt-get update and apt-get install take, as dpkg and apt take them (fcntl write locks).
APT_LOCKS = ["/var/lib/apt/lists/lock", "/var/lib/dpkg/lock-frontend"]

pytestmark = pytest.mark.skipif(
    shutil.which("apt-get") is None or os.geteuid() != 0, reason="needs apt-get, and root to take apt's locks"
)


def test_it_waits_for_apt_s_lock_held_by_another_run_and_gives_up_after_the_bound_saying_why():
    held = []
    try:
        for path in APT_LOCKS:
            lock = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
            held.append(lock)
            fcntl.lockf(lock, fcntl.LOCK_EX)  # what another apt-get run holds while it works
        run = subprocess.run(
            # A name no package has: were the lock not held, apt-get would say so after an update.
            ["bash", "scripts/debian_packages.sh", "ticketing-test-no-such-package"],
            cwd=settings.BASE_DIR,
            env={**os.environ, "TICKETING_APT_LOCK_WAIT_SECONDS": "6"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        for lock in held:
            os.close(lock)

    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "holds apt's lock; waiting for it" in output, output
    assert "held apt's lock for 6s" in output and "let it finish, then run make again" in output, output
    assert "Could not get lock" in output  # apt's own line, naming the process that holds it
    assert "Unable to locate package" not in output  # nothing got past the lock


def test_the_lock_wait_must_be_a_whole_number_of_seconds():
    run = subprocess.run(
        ["bash", "scripts/debian_packages.sh", "ticketing-test-no-such-package"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "TICKETING_APT_LOCK_WAIT_SECONDS": "soon"},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert run.returncode == 1
    assert "TICKETING_APT_LOCK_WAIT_SECONDS must be a whole number of seconds" in run.stderr
