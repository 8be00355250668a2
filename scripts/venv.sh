#!/usr/bin/env bash
# Make sure .venv exists with Python >= 3.12 and has requirements.txt installed.
#
# Installing is skipped when requirements.txt has not changed since the last successful install: a stamp
# file inside .venv holds the checksum of requirements.txt and the venv's Python version. Deleting .venv
# (or the stamp) forces a fresh install.
#
# Which Python creates the venv: $PYTHON if set, else python3.13, else pyenv's 3.13, else 3.12 the same
# way, else python3. Every candidate is actually run, because pyenv puts shims on PATH for versions that
# are installed but not selected (`command -v python3.13` finds a shim that then refuses to run).
set -euo pipefail

SCRIPT_NAME=venv
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VENV_DIR="$REPO_ROOT/.venv"
REQUIREMENTS="$REPO_ROOT/requirements.txt"
STAMP="$VENV_DIR/.requirements.stamp"
MINIMUM_PYTHON="3.12"

# True when "$1" runs and is at least MINIMUM_PYTHON.
python_is_usable() {
    "$1" -c "import sys; sys.exit(0 if sys.version_info >= (${MINIMUM_PYTHON/./, }) else 1)" >/dev/null 2>&1
}

# Print the candidates in order of preference, one per line (names on PATH or absolute paths).
python_candidates() {
    if [[ -n "${PYTHON:-}" ]]; then
        echo "$PYTHON"
    fi
    local minor
    for minor in 3.13 3.12; do
        echo "python$minor"
        # pyenv's own builds, newest patch release first (an unmatched glob just fails to run below).
        printf '%s\n' /root/.pyenv/versions/"$minor".*/bin/python"$minor" | sort -rV
    done
    echo python3
}

find_python() {
    local candidate
    while IFS= read -r candidate; do
        if python_is_usable "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done < <(python_candidates)
    return 1
}

ensure_venv() {
    if [[ -x "$VENV_DIR/bin/python" ]] && python_is_usable "$VENV_DIR/bin/python"; then
        return 0
    fi
    if [[ -e "$VENV_DIR" ]]; then
        # A venv whose Python is gone or too old (for example made by another pyenv version) can't be repaired.
        say "$VENV_DIR does not run Python >= $MINIMUM_PYTHON; creating it again"
        rm -rf "$VENV_DIR"
    fi
    local python
    python="$(find_python)" ||
        die "no Python >= $MINIMUM_PYTHON found (tried \$PYTHON, python3.13, /root/.pyenv/versions/3.13.*, python3.12, /root/.pyenv/versions/3.12.*, python3). Install one, or point PYTHON at it: PYTHON=/path/to/python3.13 make ..."
    say "creating $VENV_DIR with $python ($("$python" --version 2>&1))"
    "$python" -m venv "$VENV_DIR" || die "could not create $VENV_DIR with $python (is its venv module installed?)"
}

# The stamp's content: what must match for the installed packages to still be right.
expected_stamp() {
    echo "requirements $(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
    echo "python $("$VENV_DIR/bin/python" -c 'import sys; print(sys.version.split()[0])')"
}

ensure_requirements() {
    local expected
    expected="$(expected_stamp)"
    if [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$expected" ]]; then
        return 0
    fi
    say "installing requirements.txt into $VENV_DIR"
    "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check --no-input --quiet -r "$REQUIREMENTS" ||
        die "pip could not install requirements.txt (see pip's output above)"
    # Written only after a successful install, so a failed one is retried next time.
    echo "$expected" >"$STAMP"
}

[[ -f "$REQUIREMENTS" ]] || die "$REQUIREMENTS not found"
ensure_venv
ensure_requirements
