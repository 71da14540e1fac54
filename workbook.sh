#!/usr/bin/env bash
# DatasetEquity workbook: set-up plus the two jobs the README opens with.
#
#   bash workbook.sh main    set up what is missing, then regenerate figures/ with papermill
#   bash workbook.sh test    set up what is missing, then run the whole test suite
#   bash workbook.sh setup   only the set-up
#
# Set-up is idempotent: Debian packages are installed only when absent (as root),
# .venv is created only when absent, and pip runs only when pyproject.toml changed
# since the last successful install (a stamp file inside .venv records its hash).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.deqlib-install-stamp
DEBIAN_PACKAGES=(dataset-fashion-mnist chromium chromium-driver)

log() { printf '[workbook] %s\n' "$*" >&2; }

missing_debian_packages() {
    local pkg missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] || printf '%s\n' "${missing[@]}"
}

apt_install() {
    # Installs the named Debian packages; as root only, otherwise explains what to run.
    [ $# -gt 0 ] || return 0
    if ! command -v apt-get >/dev/null; then
        log "not a Debian system: install the equivalents of: $*"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: $* -- run: sudo apt-get install -y $*"
        return 0
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

setup() {
    local started=$SECONDS
    if command -v dpkg-query >/dev/null; then
        mapfile -t missing < <(missing_debian_packages "${DEBIAN_PACKAGES[@]}")
        # A fresh Debian has python3 but not its venv module (package python3-venv).
        if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then missing+=(python3-venv); fi
        apt_install "${missing[@]+"${missing[@]}"}"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV with $("$PYTHON" --version)"
        "$PYTHON" -m venv "$VENV"
    fi
    local want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
        log "installing deqlib and its dependencies into $VENV (torch is large: a few minutes)"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet -e '.[test]'
        echo "$want" > "$STAMP"
    else
        log "$VENV is up to date with pyproject.toml: nothing to install"
    fi
    if [ ! -f "$VENV/share/jupyter/kernels/deqlib/kernel.json" ]; then
        log "registering the Jupyter kernel 'deqlib'"
        "$VENV/bin/python" -m ipykernel install --sys-prefix --name deqlib --display-name "Python 3 (deqlib)" >/dev/null
    fi
    log "set-up done in $((SECONDS - started)) s"
}

case "${1:-}" in
    setup) setup ;;
    main)  setup; exec "$VENV/bin/deq" figures "${@:2}" ;;
    test)  setup; exec "$VENV/bin/python" -m pytest "${@:2}" ;;
    *) echo "usage: bash workbook.sh {main|test|setup} [extra arguments]" >&2; exit 2 ;;
esac
