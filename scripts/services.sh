#!/usr/bin/env bash
# PostgreSQL and Redis: check that they answer, and start the machine's own servers when they don't.
#
#   scripts/services.sh ensure   start what is down and wait for it; exit non-zero with a clear error if
#                                either still doesn't answer (what `make test` needs: tests run on PostgreSQL)
#   scripts/services.sh status   only report whether each answers
#
# scripts/run.sh sources this file for the same functions, but treats a missing service as "use the
# single-process demo" instead of an error.
#
# Where the checks look (overridable, so the fallback of `make run` can be tried on a port where nothing
# listens): TICKETING_PG_HOST / TICKETING_PG_PORT (127.0.0.1 / 5432) and TICKETING_REDIS_HOST /
# TICKETING_REDIS_PORT (127.0.0.1 / 6379). The start commands below only ever start the local servers on
# their standard ports, so they are tried only when the checks point there.
# TICKETING_SERVICE_WAIT_SECONDS (30) bounds the wait for a server that was just started.
set -euo pipefail

SCRIPT_NAME=${SCRIPT_NAME:-services}
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PG_HOST="${TICKETING_PG_HOST:-127.0.0.1}"
PG_PORT="${TICKETING_PG_PORT:-5432}"
REDIS_HOST="${TICKETING_REDIS_HOST:-127.0.0.1}"
REDIS_PORT="${TICKETING_REDIS_PORT:-6379}"
SERVICE_WAIT_SECONDS="${TICKETING_SERVICE_WAIT_SECONDS:-30}"

# --- Checks --------------------------------------------------------------------------------------------

postgres_answers() {
    command -v pg_isready >/dev/null 2>&1 || return 1
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 3 >/dev/null 2>&1
}

redis_answers() {
    command -v redis-cli >/dev/null 2>&1 || return 1
    [[ "$(timeout 5 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]
}

is_local_address() {
    [[ "$1" == "127.0.0.1" || "$1" == "localhost" ]]
}

# Poll "$2" (a check function) once a second until it succeeds or SERVICE_WAIT_SECONDS pass.
wait_until_answers() {
    local name="$1" check="$2" waited=0
    while ! "$check"; do
        if ((waited >= SERVICE_WAIT_SECONDS)); then
            warn "$name did not answer within ${SERVICE_WAIT_SECONDS}s after being started"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

# --- Starting the machine's servers ---------------------------------------------------------------------
# Each returns 0 when the service answers (already, or after starting it) and 1 with a reason otherwise.

start_postgres_if_down() {
    postgres_answers && return 0
    if ! is_local_address "$PG_HOST" || [[ "$PG_PORT" != "5432" ]]; then
        warn "PostgreSQL does not answer at $PG_HOST:$PG_PORT (not starting anything: only the local server on 5432 is started here)"
        return 1
    fi
    if ! command -v pg_isready >/dev/null 2>&1; then
        warn "PostgreSQL client tools (pg_isready, createdb) are not installed"
        return 1
    fi
    local clusters=(/etc/postgresql/*/main)
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ ! -d "${clusters[0]}" ]]; then
        warn "PostgreSQL is not installed here (no pg_ctlcluster or /etc/postgresql/*/main)"
        return 1
    fi
    local cluster version
    for cluster in "${clusters[@]}"; do
        version="$(basename "$(dirname "$cluster")")"
        say "PostgreSQL is down; starting cluster $version/main"
        # A cluster that is already starting makes this fail; the wait below decides.
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    wait_until_answers "PostgreSQL at $PG_HOST:$PG_PORT" postgres_answers
}

start_redis_if_down() {
    redis_answers && return 0
    if ! is_local_address "$REDIS_HOST" || [[ "$REDIS_PORT" != "6379" ]]; then
        warn "Redis does not answer at $REDIS_HOST:$REDIS_PORT (not starting anything: only the local server on 6379 is started here)"
        return 1
    fi
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        warn "Redis is not installed here (no redis-server or redis-cli)"
        return 1
    fi
    say "Redis is down; starting redis-server"
    # The machine's own command: nothing kept on disk, as the servers started before a session.
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    wait_until_answers "Redis at $REDIS_HOST:$REDIS_PORT" redis_answers
}

# --- Commands ---------------------------------------------------------------------------------------------

ensure_services() {
    start_postgres_if_down ||
        die "PostgreSQL is needed at $PG_HOST:$PG_PORT and does not answer. Start it with: pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start"
    start_redis_if_down ||
        die "Redis is needed at $REDIS_HOST:$REDIS_PORT and does not answer. Start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
    say "PostgreSQL answers at $PG_HOST:$PG_PORT, Redis at $REDIS_HOST:$REDIS_PORT"
}

report_status() {
    if postgres_answers; then say "PostgreSQL: answers at $PG_HOST:$PG_PORT"; else say "PostgreSQL: no answer at $PG_HOST:$PG_PORT"; fi
    if redis_answers; then say "Redis: answers at $REDIS_HOST:$REDIS_PORT"; else say "Redis: no answer at $REDIS_HOST:$REDIS_PORT"; fi
}

main() {
    case "${1:-ensure}" in
        ensure) ensure_services ;;
        status) report_status ;;
        *) die "usage: $0 [ensure|status]" ;;
    esac
}

# Run main only when executed, not when sourced by run.sh.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
