"""Settings come from the environment, and a bad value stops the process at start, naming the variable.

Each case starts a fresh Python process (settings are read once per process), from a clean environment:
the variables these tests are about are removed from the inherited environment first, so neither the
developer's shell nor pytest's own defaults (pyproject's `env`) leak in.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP = "import django; django.setup()"
CONFIG_PREFIXES = ("DJANGO_", "TICKETING_", "DATABASE_", "REDIS_", "CELERY_")

# A development environment that starts: DJANGO_DEBUG=1 and every other value left to its default.
GOOD = {"DJANGO_DEBUG": "1"}
# Debug off needs a secret key and allowed hosts; with both it starts too.
PRODUCTION = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "x" * 50, "DJANGO_ALLOWED_HOSTS": "tickets.example"}


def start_django(extra_env, code=SETUP):
    env = {name: value for name, value in os.environ.items() if not name.startswith(CONFIG_PREFIXES)}
    env["DJANGO_SETTINGS_MODULE"] = "ticketing.settings"
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def error_line(result):
    """The last line of the traceback: the exception and its message (the code lines above it don't count)."""
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


BAD_ENVIRONMENTS = {
    "hold seconds that are not a number": ({**GOOD, "TICKETING_HOLD_SECONDS": "abc"}, "TICKETING_HOLD_SECONDS"),
    "hold seconds of zero": ({**GOOD, "TICKETING_HOLD_SECONDS": "0"}, "TICKETING_HOLD_SECONDS"),
    "debug that is not a boolean": ({**GOOD, "DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
    "a MySQL database": ({**GOOD, "DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    "a database URL that is not a URL": ({**GOOD, "DATABASE_URL": "not-a-url"}, "DATABASE_URL"),
    "a Redis URL over HTTP": ({**GOOD, "REDIS_URL": "http://x"}, "REDIS_URL"),
    "a pool smaller than its minimum": (
        {**GOOD, "DATABASE_POOL_MIN": "5", "DATABASE_POOL_MAX": "2"},
        "DATABASE_POOL_MIN",
    ),
    "a lower-case currency": ({**GOOD, "TICKETING_CURRENCY": "usd"}, "TICKETING_CURRENCY"),
    "no secret key with debug off": (
        {"DJANGO_DEBUG": "0", "DJANGO_ALLOWED_HOSTS": "tickets.example"},
        "DJANGO_SECRET_KEY",
    ),
    "empty allowed hosts with debug off": ({**PRODUCTION, "DJANGO_ALLOWED_HOSTS": ""}, "DJANGO_ALLOWED_HOSTS"),
    "no allowed hosts with debug off": (
        {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "x" * 50},
        "DJANGO_ALLOWED_HOSTS",
    ),
    "a trusted proxy that is no address": (
        {**GOOD, "TICKETING_TRUSTED_PROXIES": "10.0.0.1,proxy.example"},
        "TICKETING_TRUSTED_PROXIES",
    ),
    "trusting every proxy": ({**GOOD, "TICKETING_TRUSTED_PROXIES": "*"}, "TICKETING_TRUSTED_PROXIES"),
    "uvicorn's own trusted proxies, which our servers override": (
        {**GOOD, "FORWARDED_ALLOW_IPS": "10.0.0.5"},
        "TICKETING_TRUSTED_PROXIES",
    ),
    "HTTPS without the proxy that terminates it": (
        {**PRODUCTION, "DJANGO_HTTPS": "1"},
        "TICKETING_TRUSTED_PROXIES",
    ),
}


@pytest.mark.parametrize(("env", "variable"), BAD_ENVIRONMENTS.values(), ids=BAD_ENVIRONMENTS.keys())
def test_a_bad_environment_value_stops_django_at_start_naming_the_variable(env, variable):
    result = start_django(env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in error_line(result), result.stderr
    assert variable in error_line(result), result.stderr


def test_a_development_environment_with_defaults_starts():
    result = start_django(GOOD)

    assert result.returncode == 0, result.stderr


def test_a_production_environment_with_a_secret_key_and_hosts_starts():
    result = start_django(PRODUCTION, f"{SETUP}; from django.conf import settings; print(settings.DEBUG)")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def print_setting(expression, env):
    result = start_django(env, f"{SETUP}; from django.conf import settings; print(repr({expression}))")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_hold_seconds_are_read_as_a_number():
    assert print_setting("settings.TICKETING_HOLD_SECONDS", {**GOOD, "TICKETING_HOLD_SECONDS": "7"}) == "7"


def test_hold_seconds_default_to_five_minutes():
    assert print_setting("settings.TICKETING_HOLD_SECONDS", GOOD) == "300"


def test_debug_accepts_the_usual_spellings_of_true():
    for spelling in ("1", "true", "Yes", "ON"):
        assert print_setting("settings.DEBUG", {"DJANGO_DEBUG": spelling}) == "True"


def test_allowed_hosts_are_a_comma_separated_list():
    env = {**PRODUCTION, "DJANGO_ALLOWED_HOSTS": "a.example, b.example,"}

    assert print_setting("settings.ALLOWED_HOSTS", env) == "['a.example', 'b.example']"


def test_trusted_proxies_are_addresses_and_networks_and_none_by_default():
    env = {**GOOD, "TICKETING_TRUSTED_PROXIES": " 10.0.0.5, 10.1.0.0/16,::1,"}

    assert print_setting("settings.TICKETING_TRUSTED_PROXIES", env) == "('10.0.0.5', '10.1.0.0/16', '::1')"
    assert print_setting("settings.TICKETING_TRUSTED_PROXIES", GOOD) == "()"
    same = {**env, "FORWARDED_ALLOW_IPS": "10.0.0.5,10.1.0.0/16,::1"}  # uvicorn's variable, saying the same
    assert print_setting("settings.TICKETING_TRUSTED_PROXIES", same) == "('10.0.0.5', '10.1.0.0/16', '::1')"


def test_a_sqlite_database_url_is_accepted_for_the_migrations_check_that_reads_no_rows():
    env = {**GOOD, "DATABASE_URL": "sqlite:////tmp/demo.sqlite3"}

    assert print_setting("settings.DATABASES['default']['ENGINE']", env) == "'django.db.backends.sqlite3'"


def test_the_database_defaults_to_local_postgresql():
    assert print_setting("settings.DATABASES['default']['ENGINE']", GOOD) == "'django.db.backends.postgresql'"


def test_an_empty_redis_url_selects_the_in_process_channel_layer_and_eager_tasks():
    env = {**GOOD, "REDIS_URL": ""}

    layer = print_setting("settings.CHANNEL_LAYERS['default']['BACKEND']", env)
    eager = print_setting("settings.CELERY_TASK_ALWAYS_EAGER", env)

    assert layer == "'channels.layers.InMemoryChannelLayer'"
    assert eager == "True"


def test_a_redis_url_selects_the_redis_channel_layer_and_a_real_broker():
    env = {**GOOD, "REDIS_URL": "redis://127.0.0.1:6379/3"}

    layer = print_setting("settings.CHANNEL_LAYERS['default']['BACKEND']", env)
    eager = print_setting("settings.CELERY_TASK_ALWAYS_EAGER", env)

    assert layer == "'channels_redis.core.RedisChannelLayer'"
    assert eager == "False"


def test_the_deploy_checks_pass_with_production_settings_served_over_https():
    random_key = secrets.token_urlsafe(50)  # the check also wants a key that looks random
    result = start_django(
        {**PRODUCTION, "DJANGO_SECRET_KEY": random_key, "DJANGO_HTTPS": "1", "TICKETING_TRUSTED_PROXIES": "10.0.0.5"},
        code=f"{SETUP}; from django.core.management import call_command; "
        "call_command('check', deploy=True, fail_level='WARNING')",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_without_https_the_deploy_checks_name_what_https_would_set():
    result = start_django(
        PRODUCTION,
        code=f"{SETUP}; from django.core.management import call_command; "
        "call_command('check', deploy=True, fail_level='WARNING')",
    )
    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE" in result.stderr + result.stdout


def test_the_deploy_checks_refuse_the_reliability_tests_crash_points():
    random_key = secrets.token_urlsafe(50)
    result = start_django(
        {
            **PRODUCTION,
            "DJANGO_SECRET_KEY": random_key,
            "DJANGO_HTTPS": "1",
            "TICKETING_TRUSTED_PROXIES": "10.0.0.5",
            "TICKETING_CRASH_AT": "after_charge",
        },
        code=f"{SETUP}; from django.core.management import call_command; "
        "call_command('check', deploy=True, fail_level='WARNING')",
    )
    assert result.returncode != 0
    assert "ticketing.E001" in result.stderr + result.stdout


def test_without_a_replica_url_there_is_no_replica_and_no_router():
    assert print_setting("(sorted(settings.DATABASES), settings.DATABASE_ROUTERS)", GOOD) == ("(['default'], [])")


def test_a_replica_url_is_a_second_database_with_the_primarys_connection_policy_and_the_router():
    env = {
        **GOOD,
        "DATABASE_URL": "postgres://postgres@10.0.0.1:5432/ticketing",
        "DATABASE_REPLICA_URL": "postgres://postgres@10.0.0.2:5433,10.0.0.3:5434/ticketing",
        "DATABASE_POOL_MAX": "7",
        "DATABASE_LOCK_TIMEOUT_MS": "1500",
    }
    # The two differ in where they are, and in that tests mirror the replica on the test database: nothing else.
    apart = "('HOST', 'PORT', 'TEST')"
    same = print_setting(
        f"{{k: v for k, v in settings.DATABASES['replica'].items() if k not in {apart}}}"
        f" == {{k: v for k, v in settings.DATABASES['default'].items() if k not in {apart}}}",
        env,
    )
    assert same == "True"
    options = print_setting("settings.DATABASES['replica']['OPTIONS']", env)
    assert "'max_size': 7" in options and "lock_timeout=1500" in options, options
    assert print_setting("(settings.DATABASES['replica']['HOST'], settings.DATABASE_ROUTERS)", env) == (
        "('10.0.0.2,10.0.0.3', ['ticketing.db_routers.CatalogReplicaRouter'])"
    )
    assert print_setting("settings.DATABASES['replica']['TEST']['MIRROR']", env) == "'default'"


def test_a_malformed_replica_url_stops_django_naming_it():
    result = start_django({**GOOD, "DATABASE_REPLICA_URL": "postgres://h:1,h:x/db"}, SETUP)
    assert result.returncode != 0 and "DATABASE_REPLICA_URL" in result.stderr


def test_each_shard_url_is_a_database_with_the_primarys_policy_and_the_shard_router_comes_first():
    env = {
        **GOOD,
        "DATABASE_SHARD_URLS": "shard2=postgres://postgres@10.0.0.4:5432/ticketing shard3=postgres://postgres@h:5433/t",
        "DATABASE_REPLICA_URL": "postgres://postgres@10.0.0.2:5433/ticketing",
        "DATABASE_POOL_MAX": "7",
    }
    assert print_setting("(settings.TICKETING_SHARDS, settings.DATABASE_ROUTERS)", env) == (
        "(['shard2', 'shard3'], ['ticketing.db_routers.ShowShardRouter', 'ticketing.db_routers.CatalogReplicaRouter'])"
    )
    assert print_setting("(settings.DATABASES['shard3']['HOST'], settings.DATABASES['shard3']['NAME'])", env) == (
        "('h', 't')"
    )
    assert "'max_size': 7" in print_setting("settings.DATABASES['shard2']['OPTIONS']", env)


@pytest.mark.parametrize(
    "words",
    ["postgres://h/db", "shard2=", "2shard=postgres://h/db", "default=postgres://h/db", "replica=postgres://h/db"],
)
def test_a_shard_url_without_a_new_name_stops_django_naming_it(words):
    result = start_django(
        {**GOOD, "DATABASE_REPLICA_URL": "postgres://h/db", "DATABASE_SHARD_URLS": f"shard9=postgres://h/db {words}"},
        SETUP,
    )
    assert result.returncode != 0 and "DATABASE_SHARD_URLS" in result.stderr
