#!/usr/bin/env bash
# Run Shopify's Toxiproxy (a TCP proxy whose faults are set over an HTTP API)
# for the network-fault tests and the soak run. The server is built from source
# with the machine's Go toolchain into a cache dir the first time it is needed.
#
# Usage: deploy/toxiproxy.sh {build|start|stop|restart|status|pid|url|logs [tail args]}
#
# Settings (environment):
#   TOXIPROXY_VERSION    release to build                      (v2.12.0)
#   TOXIPROXY_PORT       HTTP API port, 127.0.0.1              (8474)
#   TOXIPROXY_DATA_DIR   pid and log files        (<repo>/.run/toxiproxy-<port>)
#   LEADRELAY_CACHE_DIR  where the binary is cached            ($HOME/.cache/leadrelay)
#
# Proxies and their faults are created over the API (tests/toxiproxy.py); the
# server starts with none. Progress goes to stderr; `url` prints the API's URL.
set -euo pipefail

TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.12.0}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOXIPROXY_PORT="${TOXIPROXY_PORT:-8474}"
TOXIPROXY_DATA_DIR="${TOXIPROXY_DATA_DIR:-$REPO_ROOT/.run/toxiproxy-$TOXIPROXY_PORT}"
START_TIMEOUT=20

CACHE_DIR="${LEADRELAY_CACHE_DIR:-$HOME/.cache/leadrelay}/toxiproxy-$TOXIPROXY_VERSION"
BINARY="$CACHE_DIR/toxiproxy-server"
PID_FILE="$TOXIPROXY_DATA_DIR/toxiproxy.pid"
LOG_FILE="$TOXIPROXY_DATA_DIR/toxiproxy.log"

log() { printf 'toxiproxy.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if ! [[ $TOXIPROXY_PORT =~ ^[0-9]+$ ]]; then
    die "TOXIPROXY_PORT must be a TCP port number, not '$TOXIPROXY_PORT'"
fi

build() {
    if [[ -x "$BINARY" ]]; then
        return 0
    fi
    command -v go >/dev/null || die "go not found (Toxiproxy is built from source with Go 1.22+)"
    mkdir -p "$CACHE_DIR"
    log "building Toxiproxy $TOXIPROXY_VERSION into $CACHE_DIR ..."
    local started=$SECONDS tmp
    # Build into a temporary dir, then move the binary in: an interrupted build
    # never leaves a half-written binary behind.
    tmp="$(mktemp -d "$CACHE_DIR/build.XXXXXX")"
    if ! GOBIN="$tmp" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" \
            </dev/null >"$CACHE_DIR/build.log" 2>&1; then
        rm -rf "$tmp"
        cat "$CACHE_DIR/build.log" >&2
        die "go install github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION failed (see above)"
    fi
    mv -f "$tmp/server" "$BINARY"
    rm -rf "$tmp"
    log "built in $((SECONDS - started)) s"
}

# The running server's pid, else fails (the pid file alone is not trusted).
running_pid() {
    local pid
    [[ -f "$PID_FILE" ]] || return 1
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-port $TOXIPROXY_PORT" || return 1
    echo "$pid"
}

api_up() {
    # The API's /version answers once the server listens; bash's /dev/tcp plus a
    # minimal HTTP request, so that no curl is needed.
    local reply
    reply="$( (exec 3<>"/dev/tcp/127.0.0.1/$TOXIPROXY_PORT" &&
               printf 'GET /version HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
               timeout 2 cat <&3) 2>/dev/null || true)"
    [[ "$reply" == "HTTP/1."*" 200 "* ]]
}

start() {
    local pid
    if pid="$(running_pid)"; then
        log "already running (pid $pid), API on 127.0.0.1:$TOXIPROXY_PORT"
        return 0
    fi
    build
    if (exec 3<>"/dev/tcp/127.0.0.1/$TOXIPROXY_PORT") 2>/dev/null; then
        die "port $TOXIPROXY_PORT on 127.0.0.1 is already in use by another process"
    fi
    mkdir -p "$TOXIPROXY_DATA_DIR"
    if [[ -f "$LOG_FILE" ]]; then
        mv -f "$LOG_FILE" "$LOG_FILE.1"
    fi
    # Warnings only: at info level it logs every connection and toxic.
    LOG_LEVEL="${LOG_LEVEL:-warn}" nohup "$BINARY" -host 127.0.0.1 -port "$TOXIPROXY_PORT" \
        </dev/null >>"$LOG_FILE" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"
    local started=$SECONDS
    while (( SECONDS - started < START_TIMEOUT )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            tail -n 30 "$LOG_FILE" >&2
            die "toxiproxy exited during startup"
        fi
        if api_up; then
            log "ready (pid $pid), API on 127.0.0.1:$TOXIPROXY_PORT"
            return 0
        fi
        sleep 0.2
    done
    tail -n 30 "$LOG_FILE" >&2
    stop
    die "not ready after $START_TIMEOUT s"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null && (( waited < 100 )); do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    log "stopped"
}

status() {
    local pid
    if pid="$(running_pid)" && api_up; then
        log "running (pid $pid), API on 127.0.0.1:$TOXIPROXY_PORT"
        return 0
    fi
    log "not running"
    return 1
}

logs() {
    [[ -f "$LOG_FILE" ]] || die "no log yet ($LOG_FILE)"
    if (( $# )); then tail "$@" "$LOG_FILE"; else tail -n 100 "$LOG_FILE"; fi
}

cmd="${1:-}"
if (( $# )); then shift; fi
case "$cmd" in
    build)   build ;;
    start)   start ;;
    stop)    stop ;;
    restart) stop; start ;;
    status)  status ;;
    pid)     running_pid ;;
    url)     echo "http://127.0.0.1:$TOXIPROXY_PORT" ;;
    logs)    logs "$@" ;;
    *)
        echo "usage: $0 {build|start|stop|restart|status|pid|url|logs [tail args]}" >&2
        exit 2
        ;;
esac
