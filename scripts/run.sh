#!/usr/bin/env bash
# `make run`: the whole site on this machine, on http://127.0.0.1:8000.
#
# 1. .venv with requirements.txt (scripts/venv.sh).
# 2. PostgreSQL and Redis: started if installed but down (scripts/services.sh). PostgreSQL gets database
#    `ticketing`; Redis carries the channel layer, the cache and Celery's broker.
#    Without PostgreSQL it stops and says so: holds are SQL functions (bookings migration 0009) that only
#    PostgreSQL runs, so there is no SQLite demo.
#    Without Redis: PostgreSQL, but an in-memory channel layer and cache, and Celery tasks run in-process.
#    Either way a "FALLBACK: ..." line says what is missing and what it means.
# 3. migrate, seed_demo (idempotent), then the ASGI server (daphne's runserver: HTTP and WebSockets, static
#    files in debug) and, with Redis, a Celery worker with beat for the clocks.
# 4. Ctrl-C or SIGTERM stops all of it: each server runs in its own process group, which is stopped whole
#    (runserver's autoreloader child, Celery's pool and beat included), and this script reaps whatever its
#    servers leave behind, so nothing is left running, not even a zombie; then it exits 0. A server that
#    exits on its own stops the rest too, and the script then exits 1.
#
# `make serve` (TICKETING_MODE=serve) runs the production setup instead, on the same machine: PostgreSQL and
# Redis required (no fallback), DJANGO_DEBUG off, uvicorn with WEB_WORKERS processes (2) serving HTTP,
# WebSockets and static files, a Celery worker and a separate Celery beat; no demo data unless
# TICKETING_SEED_DEMO=1. The benchmarks start their servers the same way (bench/harness/).
#
# Environment:
#   DATABASE_URL, REDIS_URL     used as given when set (REDIS_URL= empty means in-process), else detected
#   TICKETING_PG_HOST/_PORT, TICKETING_REDIS_HOST/_PORT   where the detection looks (see services.sh)
#   TICKETING_PORT              HTTP port (8000)
#   TICKETING_SITE_URL          the address mailed links use (http://127.0.0.1:TICKETING_PORT)
#   DJANGO_DEBUG (1), DJANGO_SECRET_KEY (generated once into var/secret_key)

# The stop functions are reached through traps, which shellcheck does not follow.
# shellcheck disable=SC2317
set -euo pipefail

SCRIPT_NAME=run
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=scripts/services.sh
source "$REPO_ROOT/scripts/services.sh"

cd "$REPO_ROOT"
PYTHON="$REPO_ROOT/.venv/bin/python"
HTTP_HOST=127.0.0.1
HTTP_PORT="${TICKETING_PORT:-8000}"
URL="http://$HTTP_HOST:$HTTP_PORT/"
DEMO_DATABASE="ticketing"
# How long the servers get to stop on their own (Celery finishes running tasks) before they are killed.
STOP_SECONDS=15

MODE="${TICKETING_MODE:-run}"
WEB_WORKERS="${WEB_WORKERS:-2}"
USE_CELERY=0
CHILD_PIDS=()
CHILD_NAMES=()

# --- Choosing the database and Redis -------------------------------------------------------------------

fallback() {
    echo "FALLBACK: $*"
}

ensure_postgres_database() {
    local exists
    exists="$(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DEMO_DATABASE'")" ||
        die "could not ask PostgreSQL at $PG_HOST:$PG_PORT for its databases as user postgres"
    if [[ "$exists" != "1" ]]; then
        say "creating database $DEMO_DATABASE"
        createdb -h "$PG_HOST" -p "$PG_PORT" -U postgres "$DEMO_DATABASE" ||
            die "could not create database $DEMO_DATABASE"
    fi
}

choose_backends() {
    local pg_ok=0 redis_ok=0

    if [[ -n "${DATABASE_URL:-}" ]]; then
        say "using DATABASE_URL from the environment"
        pg_ok=1
    elif start_postgres_if_down; then
        ensure_postgres_database
        export DATABASE_URL="postgres://postgres@$PG_HOST:$PG_PORT/$DEMO_DATABASE"
        pg_ok=1
    fi

    if [[ -n "${REDIS_URL+set}" ]]; then
        if [[ -n "$REDIS_URL" ]]; then
            say "using REDIS_URL from the environment"
            redis_ok=1
        else
            say "REDIS_URL is empty in the environment: no Redis"
        fi
    elif ((pg_ok)) && start_redis_if_down; then
        export REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT/0"
        redis_ok=1
    fi

    if ((!pg_ok)); then
        die "PostgreSQL does not answer at $PG_HOST:$PG_PORT and could not be started: the site needs it (every hold is a SQL function of bookings migration 0009). Install PostgreSQL (apt-get install postgresql) or set DATABASE_URL."
    elif ((!redis_ok)); then
        export REDIS_URL=""
        fallback "Redis does not answer at $REDIS_HOST:$REDIS_PORT: in-memory channel layer and cache, Celery tasks and the beat schedule run inside the web process. Live seat-map pushes and API quotas are only consistent within this one web process."
    else
        USE_CELERY=1
    fi
}

# --- Django ----------------------------------------------------------------------------------------------

prepare_environment() {
    if [[ "$MODE" == serve ]]; then
        export DJANGO_DEBUG="${DJANGO_DEBUG:-0}"
        export DJANGO_ALLOWED_HOSTS="${DJANGO_ALLOWED_HOSTS:-127.0.0.1,localhost}"
    fi
    export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"
    export DJANGO_SETTINGS_MODULE=ticketing.settings
    # Links in mail (tickets) point where this run serves, whatever its port.
    export TICKETING_SITE_URL="${TICKETING_SITE_URL:-http://$HTTP_HOST:$HTTP_PORT}"
    if [[ -z "${DJANGO_SECRET_KEY:-}" ]]; then
        # Kept in var/ (ignored by git) so admin sessions survive a restart of `make run`.
        local key_file="$REPO_ROOT/var/secret_key"
        if [[ ! -s "$key_file" ]]; then
            mkdir -p "$(dirname "$key_file")"
            (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(50))' >"$key_file")
        fi
        DJANGO_SECRET_KEY="$(cat "$key_file")"
        export DJANGO_SECRET_KEY
    fi
}

seed_demo_exists() {
    compgen -G "$REPO_ROOT/*/management/commands/seed_demo.py" >/dev/null
}

migrate_and_seed() {
    say "applying migrations"
    "$PYTHON" manage.py migrate --noinput
    if [[ "$MODE" == serve && "${TICKETING_SEED_DEMO:-0}" != 1 ]]; then
        return
    fi
    if seed_demo_exists; then
        say "seeding the demo data"
        "$PYTHON" manage.py seed_demo
        "$PYTHON" manage.py seed_promo_codes >/dev/null
    else
        warn "no seed_demo command yet: the site starts empty (no admin user, no demo API key)"
    fi
}

# Prints the demo API key, or nothing when cinemas/demo.py (or its DEMO_API_KEY) isn't there.
demo_api_key() {
    "$PYTHON" -c 'import django; django.setup(); from cinemas.demo import DEMO_API_KEY; print(DEMO_API_KEY)' \
        2>/dev/null || true
}

# --- The servers -----------------------------------------------------------------------------------------

port_is_taken() {
    (exec 3<>"/dev/tcp/$HTTP_HOST/$HTTP_PORT") 2>/dev/null
}

# Start "$@" in a new session, so it and everything it forks form one process group (its id is the pid)
# that can be stopped whole, and so a Ctrl-C in the terminal reaches only this script, which then stops
# the servers in order. (The child is not a group leader, so setsid does not fork: $! is the server.)
start_server() {
    local name="$1"
    shift
    setsid "$@" </dev/null &
    CHILD_PIDS+=("$!")
    CHILD_NAMES+=("$name")
    say "started $name (process group $!)"
}

# True while process "$1" exists and has not exited (a zombie waiting to be reaped has exited).
process_is_live() {
    local state
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != "Z" ]]
}

# True while process group "$1" has a live process.
group_has_live_processes() {
    local pid
    for pid in $(pgrep -g "$1" 2>/dev/null); do
        process_is_live "$pid" && return 0
    done
    return 1
}

any_leader_alive() {
    local pid
    for pid in "${CHILD_PIDS[@]}"; do
        process_is_live "$pid" && return 0
    done
    return 1
}

any_group_alive() {
    local pgid
    for pgid in "${CHILD_PIDS[@]}"; do
        group_has_live_processes "$pgid" && return 0
    done
    return 1
}

# Poll "$2" (a function) every 0.2s while it succeeds, for at most "$1" seconds.
wait_while() {
    local seconds="$1" check="$2" ticks=0
    while "$check" && ((ticks < seconds * 5)); do
        sleep 0.2
        ticks=$((ticks + 1))
    done
}

STOPPED=0
stop_servers() {
    ((STOPPED)) && return 0
    STOPPED=1
    ((${#CHILD_PIDS[@]})) || return 0
    say "stopping ${CHILD_NAMES[*]}"
    local pid
    # First the leaders alone: Celery's main process then shuts down its pool and beat in order (a warm
    # shutdown, letting running tasks finish), and runserver's autoreloader takes its server child along.
    for pid in "${CHILD_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait_while "$STOP_SECONDS" any_leader_alive
    # Then whatever is left in their groups, politely and then not.
    for pid in "${CHILD_PIDS[@]}"; do
        group_has_live_processes "$pid" && { kill -TERM -- "-$pid" 2>/dev/null || true; }
    done
    wait_while 3 any_group_alive
    for pid in "${CHILD_PIDS[@]}"; do
        if group_has_live_processes "$pid"; then
            warn "process group $pid did not stop; killing it"
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
    done
    # Reap our direct children so none is left as a zombie.
    wait "${CHILD_PIDS[@]}" 2>/dev/null || true
    say "stopped"
}

on_signal() {
    trap - INT TERM
    echo
    say "got SIG$1"
    stop_servers
    # Stopping is what Ctrl-C asks for, and it went as asked: success, so make adds no "Error 130" to it.
    exit 0
}

wait_until_http_answers() {
    local waited=0
    until port_is_taken; do
        if ! group_has_live_processes "${CHILD_PIDS[0]}"; then
            die "the web server exited before answering on $URL (see its output above)"
        fi
        if ((waited >= 600)); then
            die "the web server did not answer on $URL within 60s"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

print_banner() {
    local api_key="$1"
    echo
    echo "================================================================================"
    echo "  Movie ticketing is running: $URL"
    if [[ "$MODE" == serve && "${TICKETING_SEED_DEMO:-0}" != 1 ]]; then
        echo "  Admin:        ${URL}admin/  (staff users: manage.py createsuperuser)"
    elif seed_demo_exists; then
        echo "  Admin:        ${URL}admin/  (login admin / admin)"
        echo "  Staff:        ${URL}staff/box-office/  (manager / manager, boxoffice / boxoffice)"
    else
        echo "  Admin:        ${URL}admin/  (no admin user: seed_demo is not there yet)"
    fi
    if [[ -n "$api_key" ]]; then
        echo "  Demo API key: $api_key   (send it as the X-API-Key header)"
    else
        echo "  Demo API key: not available (cinemas/demo.py has no DEMO_API_KEY yet)"
    fi
    if [[ "$MODE" != serve || "${TICKETING_SEED_DEMO:-0}" == 1 ]]; then
        "$PYTHON" -c 'import django; django.setup(); from bookings.demo import DEMO_GIFT_CARD, DEMO_PROMO_CODES
for code, about, _ in DEMO_PROMO_CODES: print(f"  Promo code:   {code} ({about})")
print(f"  Gift card:    {DEMO_GIFT_CARD[3]}")' 2>/dev/null || true
    fi
    echo "  Database:     ${DATABASE_URL}"
    echo "  Redis:        ${REDIS_URL:-none (in-process channel layer, cache and tasks)}"
    if [[ "$MODE" == serve ]]; then
        echo "  Served by:    uvicorn, $WEB_WORKERS worker processes (DJANGO_DEBUG=$DJANGO_DEBUG)"
        echo "  Celery:       a worker and a separate beat"
    elif ((USE_CELERY)); then
        echo "  Celery:       worker with beat"
    else
        echo "  Celery:       no worker; tasks run inside the web process"
    fi
    echo "  Stop with Ctrl-C."
    echo "================================================================================"
    echo
}

# Re-run this script as a "child subreaper" (Linux prctl), keeping its pid. A server's helper process
# that outlives its parent (Celery's embedded beat does, by a moment) is then handed to this script,
# which reaps it, instead of to PID 1, where it would linger as a zombie after `make run` has returned.
become_subreaper() {
    exec "$PYTHON" -c '
import ctypes, os, sys
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
os.execv(sys.argv[1], sys.argv[1:])
' "$BASH" "${BASH_SOURCE[0]}" --as-subreaper "$@"
}

main() {
    bash "$REPO_ROOT/scripts/venv.sh"
    if [[ "${1:-}" != "--as-subreaper" ]]; then
        become_subreaper "$@"
    fi
    if port_is_taken; then
        die "something already listens on $HTTP_HOST:$HTTP_PORT; stop it or choose another port with TICKETING_PORT=8001"
    fi
    choose_backends
    prepare_environment
    migrate_and_seed
    local api_key
    api_key="$(demo_api_key)"

    trap 'on_signal INT' INT
    trap 'on_signal TERM' TERM
    trap stop_servers EXIT

    if [[ "$MODE" == serve ]]; then
        mkdir -p "$REPO_ROOT/var"
        # Forwarding headers only from the proxies the settings name (none by default), never uvicorn's default of
        # 127.0.0.1 (ticketing/proxies.py); a bad value stops `migrate` above.
        start_server web "$PYTHON" -m uvicorn ticketing.asgi:application --host "$HTTP_HOST" --port "$HTTP_PORT" \
            --workers "$WEB_WORKERS" --no-access-log --forwarded-allow-ips "${TICKETING_TRUSTED_PROXIES:-}" \
            --ws-per-message-deflate false  # as ticketing/proxies.py's uvicorn_options says why
        start_server celery "$REPO_ROOT/.venv/bin/celery" -A ticketing worker --loglevel=info --concurrency=2
        start_server beat "$REPO_ROOT/.venv/bin/celery" -A ticketing beat --loglevel=info \
            --schedule "$REPO_ROOT/var/celerybeat-schedule"
    elif ((USE_CELERY)); then
        start_server web "$PYTHON" manage.py runserver "$HTTP_HOST:$HTTP_PORT"
    else
        # No worker or beat: the web process runs the clocks itself, in one process (no autoreloader child).
        start_server web env TICKETING_IN_PROCESS_CLOCKS=1 "$PYTHON" manage.py runserver --noreload "$HTTP_HOST:$HTTP_PORT"
    fi
    if ((USE_CELERY)) && [[ "$MODE" != serve ]]; then
        # The beat schedule file goes to var/ (ignored by git) instead of the repository root.
        start_server celery "$REPO_ROOT/.venv/bin/celery" -A ticketing worker -B --loglevel=info --concurrency=2 \
            --schedule-filename "$REPO_ROOT/var/celerybeat-schedule"
    fi

    wait_until_http_answers
    print_banner "$api_key"

    # Runs until a signal arrives (the traps above) or a server exits on its own, which stops the rest.
    local exited_pid="" status=0
    wait -n -p exited_pid "${CHILD_PIDS[@]}" || status=$?
    local index name="a server"
    for index in "${!CHILD_PIDS[@]}"; do
        [[ "${CHILD_PIDS[$index]}" == "$exited_pid" ]] && name="${CHILD_NAMES[$index]}"
    done
    warn "$name exited (status $status); stopping the rest"
    exit 1
}

main "$@"
