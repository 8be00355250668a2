# shellcheck shell=bash
# Shared helpers for the scripts in this folder. Sourced, never run on its own.
#
# Every script prints its own lines with a "[name]" prefix so that, in the mixed output of `make run`
# (Django, Celery and these scripts), it is clear which line came from whom.

# The repository root: the folder above this one, whatever the caller's working directory is.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT

say() {
    echo "[${SCRIPT_NAME:-scripts}] $*"
}

warn() {
    echo "[${SCRIPT_NAME:-scripts}] $*" >&2
}

die() {
    echo "[${SCRIPT_NAME:-scripts}] ERROR: $*" >&2
    exit 1
}
