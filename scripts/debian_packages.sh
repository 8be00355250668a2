#!/usr/bin/env bash
# Install the Debian packages named as arguments, but only those that are missing.
#
#   scripts/debian_packages.sh chromium chromium-driver
#
# The Makefile passes its DEBIAN_PACKAGES list. A fresh machine has only what its image ships, so anything
# else the tests need must be installed by the project itself; a machine that already has everything makes
# no network call at all. apt-get update runs first because apt's lists on a new machine may be empty or old.
set -euo pipefail

SCRIPT_NAME=debian-packages
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

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
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "missing Debian packages (${missing[*]}); run as root or install them: apt-get install ${missing[*]}"
        sudo=(sudo)
    fi
    say "installing missing Debian packages: ${missing[*]}"
    # noninteractive: CI has no standard input, and a package asking a question would hang the run.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
        die "apt-get update failed"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        die "apt-get install ${missing[*]} failed"
}

install_missing_packages "$@"
