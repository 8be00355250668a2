#!/usr/bin/env bash
# Names of this checkout's own test databases, so that two checkouts on one machine can run `make test` at
# once: with one shared name, each run's pytest-django drops the database the other is testing in.
#
#   scripts/checkout.sh database   ticketing_<folder>_<hash> (pytest-django tests in test_ plus that name)
#   scripts/checkout.sh redis-db   a Redis database number
#
# <folder> is the checkout folder's name (lowercase letters, digits and _, at most 24) for people reading
# `psql -l`; <hash> is 6 hex digits of the SHA-256 of the checkout's absolute path, so checkouts in folders of
# the same name differ too. The same checkout always gets the same names.
#
# Redis has only 16 numbered databases, so two checkouts share one about once in seven; the number is drawn
# from those the benchmarks and `make run` don't take (0 is `make run`'s; benchmarks take 2-9 and flush
# them). Sharing one is harmless: `make test` also gives each checkout a key prefix (TICKETING_REDIS_PREFIX),
# and every key the site writes carries it.
set -euo pipefail

SCRIPT_NAME=checkout
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FREE_REDIS_DATABASES=(1 10 11 12 13 14 15)

path_hash() {
    printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-6
}

database_name() {
    local folder
    folder="$(basename "$REPO_ROOT")"
    folder="$(printf '%s' "$folder" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9_' '_' | cut -c1-24)"
    echo "ticketing_${folder}_$(path_hash)"
}

redis_database() {
    echo "${FREE_REDIS_DATABASES[$((16#$(path_hash) % ${#FREE_REDIS_DATABASES[@]}))]}"
}

case "${1:-}" in
    database) database_name ;;
    redis-db) redis_database ;;
    *) die "usage: $0 database|redis-db" ;;
esac
