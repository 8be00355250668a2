"""`make test` on a shared machine: each checkout tests in databases of its own, and the start is quiet."""

import re
import shutil
import subprocess
import uuid

from django.conf import settings

from tests.helpers import make_environment

# What `make test` runs pytest with: DATABASE_URL='...' REDIS_URL='...' .venv/bin/pytest
PYTEST_LINE = re.compile(
    r"DATABASE_URL='(?P<database>[^']*)' REDIS_URL='(?P<redis>[^']*)' TICKETING_REDIS_PREFIX='(?P<prefix>[^']*)'"
    r"\s*\\?\s*\S*pytest"
)


def dry_run(directory, *arguments, **environment):
    """The commands `make test` would run in `directory`, without running them."""
    run = subprocess.run(
        ["make", "-n", "test", *arguments],
        cwd=directory,
        env=make_environment(**environment),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return run.stdout


def urls_of(directory, **environment):
    """The database and Redis URLs `make test` would run pytest with in `directory`."""
    found = PYTEST_LINE.search(dry_run(directory, **environment))
    assert found, "no pytest line in make -n test"
    return found["database"], found["redis"]


def redis_prefix_of(directory):
    found = PYTEST_LINE.search(dry_run(directory))
    assert found, "no pytest line in make -n test"
    return found["prefix"]


def checkout_at(path):
    """The parts of a checkout that decide `make test`'s commands, copied to `path`."""
    path.mkdir(parents=True)
    shutil.copy(settings.BASE_DIR / "Makefile", path)
    shutil.copytree(settings.BASE_DIR / "scripts", path / "scripts")
    return path


def test_two_checkouts_test_in_postgresql_databases_of_their_own_named_the_same_each_time(tmp_path):
    # Folders of the same name, as two clones of the project usually are.
    one = checkout_at(tmp_path / "one" / "ticketing")
    two = checkout_at(tmp_path / "two" / "ticketing")

    database_one, redis_one = urls_of(one)
    database_two, redis_two = urls_of(two)

    name_one = database_one.rsplit("/", 1)[1]
    name_two = database_two.rsplit("/", 1)[1]
    assert name_one != name_two
    for name in (name_one, name_two):
        assert re.fullmatch(r"ticketing_ticketing_[0-9a-f]{6}", name), name
    assert urls_of(one) == (database_one, redis_one)  # the same checkout, the same names
    for redis_url in (redis_one, redis_two):
        assert re.fullmatch(r"redis://127\.0\.0\.1:6379/(1|1[0-5])", redis_url), redis_url  # never make run's 0
    # Two runs in one Redis database never see each other's keys: each writes under its checkout's prefix.
    assert redis_prefix_of(one) == f"{name_one}:" and redis_prefix_of(two) == f"{name_two}:"


def test_a_checkout_folder_s_name_is_made_a_safe_database_name(tmp_path):
    checkout = checkout_at(tmp_path / "My Tickets (copy) with a very long folder name")

    database, _ = urls_of(checkout)

    assert re.fullmatch(r"ticketing_my_tickets__copy__with_a_[0-9a-f]{6}", database.rsplit("/", 1)[1]), database


def test_the_environment_s_test_urls_still_win():
    database, redis_url = urls_of(
        settings.BASE_DIR,
        TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/chosen",
        TEST_REDIS_URL="redis://127.0.0.1:6379/9",
    )

    assert (database, redis_url) == ("postgres://postgres@127.0.0.1:5432/chosen", "redis://127.0.0.1:6379/9")


def test_the_migrations_check_opens_no_database_so_a_fresh_machine_sees_no_connection_errors():
    """On a fresh machine the test database does not exist yet when `make test` checks for missing migrations."""
    absent = f"postgres://postgres@127.0.0.1:5432/ticketing_absent_{uuid.uuid4().hex[:8]}"
    commands = dry_run(settings.BASE_DIR, TEST_DATABASE_URL=absent)
    [check] = [line for line in commands.splitlines() if "makemigrations --check" in line]

    run = subprocess.run(
        ["bash", "-c", check],
        cwd=settings.BASE_DIR,
        env=make_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "No changes detected" in run.stdout
    assert run.stderr == "", run.stderr  # no "error connecting in 'pool-1'", no consistency-check warning
