"""One settings module, read from the environment.

Defaults run on one machine: PostgreSQL and Redis on their local ports. Every value that can be wrong
is checked here, so a bad environment stops the process at start instead of misbehaving later.
"""

import hashlib
import os
import re
import warnings
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from ticketing.database_urls import parse_database_url
from ticketing.proxies import parse_trusted_proxies

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default):
    return os.environ.get(name, default)


def env_bool(name, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false/1/0/yes/no), got {raw!r}")


def env_int(name, default, *, minimum=0):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name, default):
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-used-with-DJANGO_DEBUG-on"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must name at least one host when DJANGO_DEBUG is off")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served as our own static files
    "channels",
    "axes",
    "django_altcha_widget",  # the waiting room's proof of work before joining (its widget served from /static/)
    "ticketing",
    "cinemas",
    "bookings",
    "waiting",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",  # SECURE_CSP below
    "ticketing.middleware.refuse_nul_characters",
    "ticketing.middleware.add_rate_limit_headers",  # the API key's quota, on every answer the quota counted
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "ticketing.middleware.SiteLocaleMiddleware",  # after sessions, before common: the page's language (i18n below)
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "ticketing.middleware.read_your_writes",  # after auth: staff who wrote read the primary (no replica: not used)
    "ticketing.middleware.in_the_shows_database",  # the show's shard, from the URL (unsharded: not used)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as axes wants: it turns a lockout into its answer (AXES_* below)
]

ROOT_URLCONF = "ticketing.urls"
ASGI_APPLICATION = "ticketing.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",  # {{ csp_nonce }}
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------------


def database_from(url, variable):
    """The DATABASES entry for `url` (the environment's `variable`), with the site's connection policy: a pool
    per process, no persistent connections, the lock timeout. One policy for the primary and its replica."""
    database = parse_database_url(url, variable)  # one host, or several (a primary and its standbys)
    if database.get("ENGINE") not in {"django.db.backends.postgresql", "django.db.backends.sqlite3"}:
        # sqlite:// only for `makemigrations --check` (make test), which compares files and reads no rows: the
        # site needs PostgreSQL, whose SQL functions decide every hold (bookings migration 0009).
        raise ImproperlyConfigured(f"{variable} must be a postgres:// URL (sqlite:// only to check migrations)")
    # Under ASGI, persistent connections leak one per thread; PostgreSQL gets a real pool instead.
    database["CONN_MAX_AGE"] = 0
    database["CONN_HEALTH_CHECKS"] = True
    if database["ENGINE"] == "django.db.backends.postgresql":
        pool_min = env_int("DATABASE_POOL_MIN", 2, minimum=0)
        pool_max = env_int("DATABASE_POOL_MAX", max(10, pool_min), minimum=1)
        if pool_min > pool_max:
            raise ImproperlyConfigured(f"DATABASE_POOL_MIN ({pool_min}) is above DATABASE_POOL_MAX ({pool_max})")
        pool_timeout = env_int("DATABASE_POOL_TIMEOUT", 10, minimum=1)
        pool = {"min_size": pool_min, "max_size": pool_max, "timeout": pool_timeout}
        database.setdefault("OPTIONS", {})["pool"] = pool
        # A statement waiting this long for a lock gives up (503 with Retry-After, ticketing.errors) instead of
        # queueing behind a process that froze holding it: the wait of the requests behind it stays bounded.
        lock_timeout_ms = env_int("DATABASE_LOCK_TIMEOUT_MS", 3000, minimum=0)
        database["OPTIONS"]["options"] = f"-c lock_timeout={lock_timeout_ms}"
    return database


DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ticketing")
_database = database_from(DATABASE_URL, "DATABASE_URL")
DATABASES = {"default": _database}
DATABASE_ROUTERS = []
# Catalog reads from a streaming replica (docs/scaling.md, "Catalog reads on a replica"): optional. Without it
# there is no "replica" alias and every read goes to the primary. Only the catalog's pages and API read from it,
# through ticketing.db_routers, and only while it answers within TICKETING_REPLICA_MAX_LAG_SECONDS of the
# primary (checked once a TICKETING_REPLICA_CHECK_SECONDS per process); migrations run on the primary alone.
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL", "")
TICKETING_REPLICA_MAX_LAG_SECONDS = env_int("TICKETING_REPLICA_MAX_LAG_SECONDS", 5, minimum=0)
TICKETING_REPLICA_CHECK_SECONDS = env_int("TICKETING_REPLICA_CHECK_SECONDS", 1, minimum=1)
if DATABASE_REPLICA_URL:
    # In tests the alias is the test database itself (pytest-django makes no second one).
    DATABASES["replica"] = database_from(DATABASE_REPLICA_URL, "DATABASE_REPLICA_URL")
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS.append("ticketing.db_routers.CatalogReplicaRouter")
# The split by show id (docs/scaling.md, "What runs: the split by show id"; ticketing.shards): more PostgreSQL
# primaries, each the home of the sales of the shows the ring maps to it, as "name=url" words
# ("shard2=postgres://..."), a name a Python identifier. "default" (DATABASE_URL) is a shard too, and the only one
# without this.
DATABASE_SHARD_URLS = env_str("DATABASE_SHARD_URLS", "")
TICKETING_SHARDS = []
for _word in DATABASE_SHARD_URLS.split():
    _name, _, _url = _word.partition("=")
    if not (_name.isidentifier() and _url) or _name in DATABASES:
        raise ImproperlyConfigured(f"DATABASE_SHARD_URLS: {_word!r} is not name=url with a new name")
    DATABASES[_name] = database_from(_url, "DATABASE_SHARD_URLS")
    TICKETING_SHARDS.append(_name)
if TICKETING_SHARDS:
    DATABASE_ROUTERS.insert(0, "ticketing.db_routers.ShowShardRouter")

# Requests inside Django at once per web process; the rest wait their turn, in order, as coroutines on the
# event loop (ticketing.asgi.handler). Past the pool's size, a request's thread would only queue for a
# connection, and a burst of a thousand buyers would time out there with 500s.
WEB_CONCURRENT_REQUESTS = env_int(
    "WEB_CONCURRENT_REQUESTS",
    _database["OPTIONS"]["pool"]["max_size"] if "pool" in _database.get("OPTIONS", {}) else 10,
    minimum=1,
)
# The queue in front of them (ticketing.asgi.handler): past this many waiting requests, or this long waiting,
# a request is answered 503 with Retry-After at once rather than left to hang.
WEB_ADMISSION_QUEUE = env_int("WEB_ADMISSION_QUEUE", 2000, minimum=0)
WEB_ADMISSION_WAIT_SECONDS = env_int("WEB_ADMISSION_WAIT_SECONDS", 10, minimum=1)
DATABASE_IS_POSTGRES = _database["ENGINE"] == "django.db.backends.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, cache (quotas) and Celery broker -----------------------------------------------
# An empty REDIS_URL selects the single-process demo: in-memory channel layer and cache, tasks in-process.
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
if REDIS_URL and not re.match(r"^rediss?://", REDIS_URL):
    raise ImproperlyConfigured(f"REDIS_URL must start with redis:// or rediss://, got {REDIS_URL!r}")

# Put before every key this site writes in Redis (cache, channel layer, Celery's queues): processes with
# different prefixes share one Redis database without seeing each other's keys, as two checkouts' test runs
# do (`make test` sets one per checkout), and each test that starts its own workers.
REDIS_KEY_PREFIX = env_str("TICKETING_REDIS_PREFIX", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 times reads out after 5 s, as long as channels_redis's blocking receive: an idle
                # WebSocket's consumer would die with it. A longer socket timeout keeps idle sockets alive.
                # redis-py 8 refuses a command at once when its pool has no connection left (100 by default):
                # a thousand seat maps closing together (a bench's end, a deploy) each leave their groups at
                # once. Redis takes 10,000 clients; a burst borrows connections only for its length.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 10, "max_connections": 2000}],
                # Messages waiting for one process, shared by all its channels: one seat change watched by
                # 1,000 seat maps on a process is 1,000 messages, and a serving wave makes dozens of changes a
                # second. Past this the layer drops messages without a word. (A few hundred bytes each: 100,000
                # waiting is tens of MB in Redis, only while a process falls behind.)
                "capacity": 100_000,
                "prefix": f"{REDIS_KEY_PREFIX}asgi",
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "ticketing.asgi.redis_cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
        },
        # The hot reads built once and shared by every process (ticketing.cached_reads): seat maps, catalog
        # answers and the generations they are keyed by. Apart from "default" so that it can go to its own
        # Redis (one with an eviction policy) and so that tests keep their quota counters apart without
        # keeping their servers' reads apart from their own.
        "reads": {
            "BACKEND": "ticketing.asgi.redis_cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{REDIS_KEY_PREFIX}reads",
        },
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "reads": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "reads"},
    }

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": REDIS_KEY_PREFIX} if REDIS_URL and REDIS_KEY_PREFIX else {}
# Without Redis (the single-process demo) tasks run in the process that sends them; tests set it too.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"

# --- Product clocks and limits (API.md, "Operating settings") ------------------------------------------
TICKETING_HOLD_SECONDS = env_int("TICKETING_HOLD_SECONDS", 300, minimum=1)
TICKETING_HOLD_GRACE_SECONDS = env_int("TICKETING_HOLD_GRACE_SECONDS", 5, minimum=0)
# How much longer a buyer's hold lasts when they ask for more time, once, before it lapses (WCAG 2.2.1).
TICKETING_HOLD_EXTENSION_SECONDS = env_int("TICKETING_HOLD_EXTENSION_SECONDS", 120, minimum=1)
TICKETING_MAX_WAIT_SECONDS = env_int("TICKETING_MAX_WAIT_SECONDS", 3600, minimum=1)
TICKETING_MAX_SEATS = env_int("TICKETING_MAX_SEATS", 10, minimum=1)
# The on-sale waiting room (waiting.rooms): how many visitors a room admits per minute unless staff set it, a
# third of the hold path's measured capacity (docs/performance: ~275 granted holds/s at 200 clients; an admitted
# buyer makes a hold or two and reads the map a few times), and how long a visitor may be away and keep a place.
TICKETING_ROOM_ADMISSIONS_PER_MINUTE = env_int("TICKETING_ROOM_ADMISSIONS_PER_MINUTE", 6000, minimum=1)
TICKETING_ROOM_GRACE_SECONDS = env_int("TICKETING_ROOM_GRACE_SECONDS", 300, minimum=1)
# The proof of work a browser does before joining a room (django-altcha-widget): PBKDF2 iterations per try, a
# second or two of a phone's time at the default; tests and benchmarks lower it. Its key signs the challenges.
ALTCHA_ALGORITHM = "PBKDF2/SHA-256"
ALTCHA_COST = env_int("TICKETING_ROOM_CHALLENGE_COST", 5000, minimum=1)
ALTCHA_HMAC_KEY = (
    os.environ.get("TICKETING_ROOM_CHALLENGE_KEY")
    or hashlib.sha256(f"room-challenge:{SECRET_KEY}".encode()).hexdigest()
)
# The widget's words in Spanish (English is built in); the page picks the language (waiting.views).
ALTCHA_TRANSLATIONS = "es-es"
# Caps on one client's unpaid held seats of a show over all its sessions (a "hold everything" attack): the
# website's visitors from one network address, and each new API key (staff change a key's cap in the admin).
# Generous, as many people can share an address behind a carrier's NAT.
TICKETING_MAX_HELD_SEATS_PER_ADDRESS = env_int("TICKETING_MAX_HELD_SEATS_PER_ADDRESS", 40, minimum=1)
TICKETING_DEFAULT_KEY_HELD_SEATS = env_int("TICKETING_DEFAULT_KEY_HELD_SEATS", 200, minimum=1)
# The currency of amounts that name none and of the demo's cinemas where it has no other: every cinema has its own
# (cinemas.Cinema.currency), which its holds, bookings and payments are in.
TICKETING_CURRENCY = env_str("TICKETING_CURRENCY", "USD")
if not re.fullmatch(r"[A-Z]{3}", TICKETING_CURRENCY):
    raise ImproperlyConfigured(f"TICKETING_CURRENCY must be an ISO 4217 code such as USD, got {TICKETING_CURRENCY!r}")
# Tickets carry an Ed25519 signature that scanners verify offline with the public key. The private key is
# a base64url 32-byte seed; without one, a key is derived from DJANGO_SECRET_KEY (fine for one site).
TICKETING_TICKET_SIGNING_KEY = env_str("TICKETING_TICKET_SIGNING_KEY", "")
# The payment provider: a dotted path to a class (the sandbox acts like an external card processor).
# The providers live in bookings/providers/ (bookings.providers.get_provider reads this).
TICKETING_PAYMENT_PROVIDER = env_str("TICKETING_PAYMENT_PROVIDER", "bookings.providers.sandbox.SandboxProvider")
if TICKETING_PAYMENT_PROVIDER.startswith("bookings.payments."):  # where the providers were until issue 17
    raise ImproperlyConfigured(
        f"TICKETING_PAYMENT_PROVIDER: {TICKETING_PAYMENT_PROVIDER!r} has moved to bookings.providers "
        "(bookings.providers.sandbox.SandboxProvider, bookings.providers.sandbox_http.SandboxHttpProvider)."
    )
# bookings.providers.sandbox_http.SandboxHttpProvider reaches the sandbox as a service of its own
# (`python -m sandbox.payment_service`, which production doesn't ship) at this address.
TICKETING_PAYMENT_SANDBOX_URL = env_str("TICKETING_PAYMENT_SANDBOX_URL", "http://127.0.0.1:8765")
# How long a call to the provider may take before its outcome counts as unknown (the reconciler settles it).
TICKETING_PAYMENT_TIMEOUT_SECONDS = env_int("TICKETING_PAYMENT_TIMEOUT_SECONDS", 10, minimum=1)
# A charge left pending (its process died) or unknown (a timeout) is looked up at the provider once it is this
# old, by the buyer's retry or by the reconciler, which runs every TICKETING_RECONCILE_SECONDS: every charge
# is settled within their sum (45 s by default), the minute the reliability plan allows.
TICKETING_PAYMENT_SETTLE_SECONDS = env_int("TICKETING_PAYMENT_SETTLE_SECONDS", 30, minimum=1)
TICKETING_RECONCILE_SECONDS = env_int("TICKETING_RECONCILE_SECONDS", 15, minimum=1)
# An Idempotency-Key whose first call never answered (its process died) may be taken over after this long.
TICKETING_IDEMPOTENCY_TAKEOVER_SECONDS = env_int("TICKETING_IDEMPOTENCY_TAKEOVER_SECONDS", 60, minimum=1)
# Reliability tests only: the paying steps at which the process dies at once (ticketing/faults.py). Never set
# it in a deployment; `check --deploy` says so if it is.
TICKETING_CRASH_AT = env_list("TICKETING_CRASH_AT", [])
# Requests per minute for a key created without --rate.
TICKETING_DEFAULT_API_RATE = env_int("TICKETING_DEFAULT_API_RATE", 600, minimum=1)
# Each process keeps the API keys it has read for this long (every call names one): a key revoked or given
# a new quota in the admin takes effect at once in the process that did it and within this time elsewhere.
TICKETING_API_KEY_CACHE_SECONDS = env_int("TICKETING_API_KEY_CACHE_SECONDS", 5, minimum=0)

# Partners' webhooks (ticketing.webhooks, docs/webhooks.md): each attempt may take this long to connect and again
# to answer; a failed one is retried after TICKETING_WEBHOOK_RETRY_SECONDS, doubling each time (plus up to a
# quarter at random), up to TICKETING_WEBHOOK_MAX_ATTEMPTS in all (about 17 hours with the defaults); then it is
# marked failed for staff to see and send again. Beat's sweep looks for due deliveries this often.
TICKETING_WEBHOOK_TIMEOUT_SECONDS = env_int("TICKETING_WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
TICKETING_WEBHOOK_RETRY_SECONDS = env_int("TICKETING_WEBHOOK_RETRY_SECONDS", 30, minimum=1)
TICKETING_WEBHOOK_MAX_ATTEMPTS = env_int("TICKETING_WEBHOOK_MAX_ATTEMPTS", 12, minimum=1)
TICKETING_WEBHOOK_SWEEP_SECONDS = env_int("TICKETING_WEBHOOK_SWEEP_SECONDS", 2, minimum=1)
# What moves between shards (gift cards' money, promo codes' uses: bookings.services.gift_cards, promo_codes):
# beat tends it this often; a move not landed for this long is delivered again, and a shard's copy of a gift
# card unmoved for twice this long sends its money home.
TICKETING_SHARD_MOVES_SECONDS = env_int("TICKETING_SHARD_MOVES_SECONDS", 30, minimum=1)
# Whether webhooks may go to addresses off the public internet (loopback, private networks, link-local): off in
# production, where a partner's endpoint must never reach inside our network; on with DEBUG (tests, the demo).
TICKETING_WEBHOOK_LOCAL_ADDRESSES = env_bool("TICKETING_WEBHOOK_LOCAL_ADDRESSES", DEBUG)

# The clocks. A tick missed while beat or the workers are down is not replayed, and needn't be: each run
# works from what the database says now. `expires` drops ticks that queued up behind a stopped worker.
# The single-process demo has no worker or beat: its web process runs the same schedule in a thread.
TICKETING_IN_PROCESS_CLOCKS = env_bool("TICKETING_IN_PROCESS_CLOCKS", False)
CELERY_BEAT_SCHEDULE = {
    "release-lapsed-holds": {"task": "bookings.release_lapsed_holds", "schedule": 1.0, "options": {"expires": 5}},
    "reconcile-payments": {
        "task": "bookings.reconcile_payments",
        "schedule": float(TICKETING_RECONCILE_SECONDS),
        "options": {"expires": 2 * TICKETING_RECONCILE_SECONDS},
    },
    "tend-waiting-lines": {"task": "waiting.tend_waiting_lines", "schedule": 2.0, "options": {"expires": 10}},
    # The on-sales' waiting rooms admit at their rates, a second's worth at a time.
    "tend-rooms": {"task": "waiting.tend_rooms", "schedule": 1.0, "options": {"expires": 2}},
    # Mail whose task never ran (a process died before queueing it, the broker lost it) is queued again.
    "requeue-overdue-mail": {"task": "bookings.requeue_overdue_mail", "schedule": 60.0, "options": {"expires": 60}},
    # The sales tally's rows of a show, one per database session that sold it, folded into one for the report.
    "fold-sales-tally": {"task": "bookings.fold_sales_tally", "schedule": 300.0, "options": {"expires": 300}},
    # Across shards: gift cards' money and promo codes' uses whose sender died delivered, what copies keep sent home.
    "move-gift-card-money": {
        "task": "bookings.move_gift_card_money",
        "schedule": float(TICKETING_SHARD_MOVES_SECONDS),
        "options": {"expires": TICKETING_SHARD_MOVES_SECONDS},
    },
    "move-promo-code-uses": {
        "task": "bookings.move_promo_code_uses",
        "schedule": float(TICKETING_SHARD_MOVES_SECONDS),
        "options": {"expires": TICKETING_SHARD_MOVES_SECONDS},
    },
    # Partners' webhooks that are due: recorded by the database, waiting for a retry, or whose task was lost.
    "dispatch-due-webhooks": {
        "task": "ticketing.dispatch_due_webhooks",
        "schedule": float(TICKETING_WEBHOOK_SWEEP_SECONDS),
        "options": {"expires": 2 * TICKETING_WEBHOOK_SWEEP_SECONDS},
    },
}

# --- Internationalisation: UTC in the database, each cinema shows its own local time ------------------
# The website speaks the languages below: the one chosen with the header's switcher (Django's set_language,
# remembered in the django_language cookie), else the browser's Accept-Language, else English. Dates, times and
# numbers follow the language's formats (Django formats localized values by default). The API always answers
# in English (ticketing.middleware.SiteLocaleMiddleware): it is a contract for programs. Catalogs: locale/.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# The admin shows a new API key once in a message: keep messages server-side, not in a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves /static/ from every web process; without a collectstatic run it reads the source folders.
WHITENOISE_USE_FINDERS = True
# ...and says so once per process when STATIC_ROOT has not been collected: expected outside production.
warnings.filterwarnings("ignore", message="No directory at: ")

# --- Media: movie posters uploaded by staff ---------------------------------------------------------------
# Written under MEDIA_ROOT by cinemas.services.upload_poster, named by their content's hash, and served from every
# web process (cinemas.views.poster_file, a year's cache) in DEBUG and in production alike. Several web machines
# need MEDIA_ROOT on storage they share.
MEDIA_ROOT = Path(env_str("TICKETING_MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "/media/"

# --- The website's buyers and their mail ----------------------------------------------------------------
# Tickets are mailed to the address given at checkout. The console backend prints them (development).
EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25, minimum=1)
# The site's public address, for links in mail (tickets).
TICKETING_SITE_URL = env_str("TICKETING_SITE_URL", "http://127.0.0.1:8000").rstrip("/")
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "Movie tickets <tickets@localhost>")
# Each SMTP step gives up after this long, so a hung mail server fails an attempt (which is retried) instead
# of holding a worker for ever.
EMAIL_TIMEOUT = env_int("DJANGO_EMAIL_TIMEOUT", 30, minimum=1)
# Every mail is a row (bookings.OutgoingMail) sent by a task: a failed attempt is retried after
# TICKETING_MAIL_RETRY_SECONDS, doubling each time, up to TICKETING_MAIL_MAX_ATTEMPTS attempts in all; then the
# mail is marked failed for staff to see and send again. A queued mail whose attempt is this many seconds
# overdue (its task was lost) is queued again by beat.
TICKETING_MAIL_MAX_ATTEMPTS = env_int("TICKETING_MAIL_MAX_ATTEMPTS", 6, minimum=1)
TICKETING_MAIL_RETRY_SECONDS = env_int("TICKETING_MAIL_RETRY_SECONDS", 30, minimum=1)
TICKETING_MAIL_REQUEUE_SECONDS = env_int("TICKETING_MAIL_REQUEUE_SECONDS", 300, minimum=1)

# --- Staff at the door ----------------------------------------------------------------------------------
# Check-in admits a ticket from this many minutes before its show starts until the show ends.
TICKETING_CHECK_IN_OPENS_MINUTES = env_int("TICKETING_CHECK_IN_OPENS_MINUTES", 60, minimum=0)
# A moviegoer's session (its holds, tickets and place in line) lasts a fortnight without an account.
SESSION_COOKIE_AGE = 14 * 24 * 3600
SESSION_COOKIE_HTTPONLY = True

# --- Limits that can't be walked around: trusted proxies --------------------------------------------------
# The proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or CIDR networks, comma-
# separated); nobody by default, so a client's address is its own connection's. Every uvicorn we start is
# given them as --forwarded-allow-ips (ticketing/proxies.py); the shipped HAProxy setup names its address.
try:
    TICKETING_TRUSTED_PROXIES = parse_trusted_proxies(env_str("TICKETING_TRUSTED_PROXIES", ""))
except ValueError as bad:
    raise ImproperlyConfigured(str(bad)) from None
# uvicorn's own variable, which our servers' --forwarded-allow-ips overrides: set apart from ours, it would be
# silently ignored (behind a proxy, every buyer would then share the proxy's address and its hold cap).
_uvicorns_own = os.environ.get("FORWARDED_ALLOW_IPS")
if _uvicorns_own is not None:
    try:
        _same = set(parse_trusted_proxies(_uvicorns_own)) == set(TICKETING_TRUSTED_PROXIES)
    except ValueError:  # "*" or a name: not something ours could say
        _same = False
    if not _same:
        raise ImproperlyConfigured(
            "FORWARDED_ALLOW_IPS is set but our servers take the trusted proxies from TICKETING_TRUSTED_PROXIES: "
            "name them there (and unset FORWARDED_ALLOW_IPS)"
        )

# --- Limits that can't be walked around: failed logins (django-axes) ----------------------------------------
# The one login is the admin's (staff check-in sends staff there). After TICKETING_LOGIN_FAILURE_LIMIT failed
# logins for one username, or from one address, within TICKETING_LOGIN_COOLOFF_MINUTES of each other, every
# login for that username or from that address is refused, the right password too, until that long has passed
# since the last try (a try while locked out starts it again): 429 with Retry-After and a page saying so.
# A success resets nothing (else one's own account would wipe the count of the account being guessed); staff
# unlock an account early by deleting its access attempts in the admin (Axes). The address is the peer's, as
# for the hold cap (ticketing/proxies.py), never a header the client wrote.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before any password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("TICKETING_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("TICKETING_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one reaching the limit locks
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "ticketing.proxies.client_address"
AXES_LOCKOUT_CALLABLE = "ticketing.views.login_locked_out"
AXES_VERBOSE = False  # no banner from every process at start; lockouts are still logged as warnings

# --- Limits that can't be walked around: Content-Security-Policy (Django's own) -------------------------------
# What a page may load and run: only this site's own files, so markup that slipped past escaping can't run a
# script or send data elsewhere. Scripts only from /static/ (no inline script, no eval; a template that must
# inline one gives it {{ csp_nonce }}, as the Swagger page does). Style sheets from /static/ or with the nonce
# (the check-in page's). Style *attributes* are allowed (style-src-attr, the narrow form): the seat map places
# each seat with style="grid-column: ...; grid-row: ...", numbers the server writes, thousands a hall; a nonce
# can't cover an attribute, and classes for every column and row would need a style sheet per hall. An
# attribute can't run code, and what it could load is still held to img-src and the rest. connect-src 'self'
# covers the site's own ws:/wss: (CSP Level 3; Chromium, Firefox, Safari 15.4+). Images:
# ours, and data: URLs. No plugins, no <base> elsewhere, no framing, forms post only here. Outermost but for
# SecurityMiddleware, so every answer carries it, also the early refusals of the middleware below it.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "style-src-attr": [CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# --- HTTPS ----------------------------------------------------------------------------------------------
# On where the site is served over HTTPS by a proxy or balancer that terminates TLS and says so in
# X-Forwarded-Proto. Off for `make serve` on http://127.0.0.1. The header is believed only from the proxies
# of TICKETING_TRUSTED_PROXIES (uvicorn sets the request's scheme from it; see ticketing/proxies.py), so
# HTTPS needs them named: else every request would look like plain HTTP and be redirected for ever.
HTTPS = env_bool("DJANGO_HTTPS", False)
if HTTPS:
    if not TICKETING_TRUSTED_PROXIES:
        raise ImproperlyConfigured(
            "DJANGO_HTTPS needs TICKETING_TRUSTED_PROXIES: the address of the proxy that terminates TLS and sets "
            "X-Forwarded-Proto"
        )
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^health/"]  # the balancer's checks come over plain HTTP from inside
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    # Browsers remember it for this long and refuse plain HTTP meanwhile: start small, raise once sure.
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 3600, minimum=1)
    # The site owns its domain: its subdomains are HTTPS too. Preload only asks to be listed (the owner
    # submits the domain, with a max-age of a year); turn either off where that is not so.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)

# --- REST framework -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["ticketing.api_keys.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["ticketing.api_keys.HasApiKey"],
    "DEFAULT_THROTTLE_CLASSES": ["ticketing.api_keys.ApiKeyQuota"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["ticketing.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "ticketing.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Movie ticketing API",
    "DESCRIPTION": "The public API for partners: catalog, SearchMovies, reservations, the waiting line and webhooks.",
    "VERSION": "1.0.0",
    # 3.1 for its `webhooks`: the events a partner's endpoints receive and how they are signed (ticketing.openapi).
    "OAS_VERSION": "3.1.0",
    "WEBHOOKS": [
        f"ticketing.openapi.{name}"
        for name in ("BOOKING_CREATED", "BOOKING_CANCELLED", "BOOKING_REFUNDED", "SHOW_CHANGED", "WAITER_SERVED")
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # drf-spectacular's own hook, and the RateLimit-* headers every keyed answer carries.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "ticketing.api_keys.describe_rate_limit_headers",
    ],
    # /api/docs/ loads Swagger UI from our own static files at the version requirements.txt pins, not from a
    # CDN: it works offline and shows the same page tomorrow.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"quiet_clock_tasks": {"()": "ticketing.log_filters.QuietClockTasks"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own logging gives "django" a console handler in debug besides the root's: every request's
        # line was printed twice. Its lines go to the root's handler alone (Celery's, in a worker).
        "django": {"handlers": [], "propagate": True},
        # The clocks' ticks, every second or two, would bury everything else: beat says only what goes wrong,
        # and a worker leaves out its lines about ticks that did nothing (ticketing.log_filters).
        "celery.beat": {"level": "WARNING"},
        "celery.worker.strategy": {"filters": ["quiet_clock_tasks"]},
        "celery.app.trace": {"filters": ["quiet_clock_tasks"]},
        # A line per webhook POST would bury the rest; each attempt's answer is on its row (ticketing.webhooks).
        "httpx": {"level": "WARNING"},
    },
}
