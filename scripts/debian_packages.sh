#!/usr/bin/env bash
# Install the Debian packages named as arguments, but only those that are missing.
#
#   scripts/debian_packages.sh chromium chromium-driver
#
# The Makefile passes its DEBIAN_PACKAGES list. A fresh machine has only what its image ships, so anything
# else the tests need must be installed by the project itself; a machine that already has everything makes
# no network call at all. apt-get update runs first because apt's lists on a new machine may be empty or old.
#
# Another apt or dpkg run (unattended-upgrades on a fresh machine, a second checkout's `make test`) may hold
# apt's locks: this waits for them, up to TICKETING_APT_LOCK_WAIT_SECONDS (300) in all, instead of failing.
set -euo pipefail

SCRIPT_NAME=debian-packages
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

LOCK_WAIT_SECONDS="${TICKETING_APT_LOCK_WAIT_SECONDS:-300}"
[[ "$LOCK_WAIT_SECONDS" =~ ^[0-9]+$ ]] || die "TICKETING_APT_LOCK_WAIT_SECONDS must be a whole number of seconds"
LOCK_DEADLINE=$((SECONDS + LOCK_WAIT_SECONDS))
SUDO=()

package_is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

install_missing_packages() {
    local missing=() package
    for package in "$@"; do
        package_is_installed "$package" || missing+=("$package")
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing Debian packages (${missing[*]}) and no apt-get to install them"
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "missing Debian packages (${missing[*]}); run as root or install them: apt-get install ${missing[*]}"
        SUDO=(sudo)
    fi
    say "installing missing Debian packages: ${missing[*]}"
    apt_get_waiting_for_locks update -q || die "apt-get update failed"
    apt_get_waiting_for_locks install -y -q --no-install-recommends "${missing[@]}" ||
        die "apt-get install ${missing[*]} failed"
}

# apt-get "$@", waiting while another run holds apt's locks. DPkg::Lock::Timeout makes apt-get itself wait for
# dpkg's lock (install), but apt-get update still fails at once on the lists lock, so a run that failed on a
# lock is tried again, until LOCK_DEADLINE.
apt_get_waiting_for_locks() {
    local output status
    output="$(mktemp)"
    while true; do
        status=0
        # noninteractive: CI has no standard input, and a package asking a question would hang the run.
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get \
            -o DPkg::Lock::Timeout="$(seconds_left)" "$@" 2>&1 | tee "$output" || status=$?
        if ((status == 0)); then
            rm -f "$output"
            return 0
        fi
        if ! grep -q -e "Could not get lock" -e "Unable to acquire the dpkg frontend lock" "$output"; then
            rm -f "$output"
            return 1
        fi
        if ((SECONDS >= LOCK_DEADLINE)); then
            rm -f "$output"
            die "another apt or dpkg run held apt's lock for ${LOCK_WAIT_SECONDS}s (named above); let it finish, then run make again (TICKETING_APT_LOCK_WAIT_SECONDS sets the wait)"
        fi
        say "another apt or dpkg run holds apt's lock; waiting for it ($(seconds_left)s left)"
        sleep 2
    done
}

seconds_left() {
    local left=$((LOCK_DEADLINE - SECONDS))
    echo $((left > 0 ? left : 0))
}

install_missing_packages "$@"
