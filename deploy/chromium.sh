#!/usr/bin/env bash
# Debian's Chromium for the console's browser tests (driven by pytest-playwright through
# executable_path=/usr/bin/chromium; `playwright install`, which downloads browsers of its own,
# is never used), with CJK fonts so that names in Chinese render.
#
# Usage: deploy/chromium.sh {install|path}
#
#   install   install the `chromium` and `fonts-noto-cjk` packages when missing (as root, or
#             with sudo); nothing to do when both are there
#   path      print the browser's path (exit 1 if it is not installed)
#
# Progress goes to stderr; stdout carries only what was asked for (path).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

log() { printf 'chromium.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# Debian packages still missing, one per line.
missing() {
    [[ -x $CHROMIUM ]] || echo chromium
    if ! command -v fc-list >/dev/null 2>&1 || [[ -z $(fc-list :lang=zh 2>/dev/null | head -n 1) ]]; then
        echo fonts-noto-cjk
    fi
}

cmd_install() {
    local need=() sudo=()
    mapfile -t need < <(missing)
    if (( ${#need[@]} == 0 )); then
        log "$("$CHROMIUM" --version 2>/dev/null | head -n 1 || echo chromium) and CJK fonts are installed"
        return
    fi
    if ! is_root; then
        command -v sudo >/dev/null 2>&1 ||
            die "missing ${need[*]}; installing needs root but sudo is missing: run 'deploy/chromium.sh install' as root"
        sudo=(sudo)
    fi
    log "installing Debian's ${need[*]}"
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2
    [[ -x $CHROMIUM ]] || die "the chromium package is installed but $CHROMIUM is missing"
    log "installed: $("$CHROMIUM" --version 2>/dev/null | head -n 1)"
}

case "${1:-}" in
    install) cmd_install ;;
    path)
        [[ -x $CHROMIUM ]] || die "$CHROMIUM is not installed: run 'deploy/chromium.sh install'"
        echo "$CHROMIUM"
        ;;
    *)
        echo "usage: $0 {install|path}" >&2
        exit 2
        ;;
esac
