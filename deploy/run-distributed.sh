#!/usr/bin/env bash
# Run Leadrelay distributed on this machine: each service, and the web console,
# as its own `leadrelay serve SERVICE` process, against the PostgreSQL and Kafka that
# `make infra` started (deploy/postgres.sh, deploy/kafka.sh) and the topics it
# created. `make run-distributed` / `make stop-distributed` call this script.
#
# Usage: deploy/run-distributed.sh {start|stop|restart|status|logs SERVICE [tail args]}
#
#   start     start the services that are not running, then wait until every
#             one answers GET /readyz with 200 (idempotent)
#   stop      SIGTERM (graceful: consumers finish their batch, outboxes drain),
#             SIGKILL after 30 s (idempotent)
#   restart   stop, then start
#   status    one line per service; exit 0 when all are up and ready
#   logs      tail a service's log, e.g. `logs routing -f` (default -n 100)
#
# Settings (environment); any other LEADRELAY_* variable is passed on as is:
#   LEADRELAY_DATABASE_URL             (default: `deploy/postgres.sh url`)
#   LEADRELAY_KAFKA_BOOTSTRAP_SERVERS  (default: 127.0.0.1:$KAFKA_PORT, KAFKA_PORT=9092)
#   LEADRELAY_CONFIG                   (default: config/example.yaml)
#   LEADRELAY_AUTH_SIGNING_KEY         (default: a random key generated once into
#                                       .run/auth-signing-key, mode 0600)
#   LEADRELAY_CONSOLE_SECRET_KEY       (default: likewise, .run/console-secret-key)
#   SERVICES_START_TIMEOUT             seconds to wait for readiness (90)
#
# HTTP ports are the code's defaults (leadrelay.settings.DEFAULT_PORTS,
# 8001-8005, the console 8000). Pid files and logs are in .run/services/.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

SERVICES=(intake scoring routing sla-monitor feedback console)
RUN_DIR=.run/services
LEADRELAY_BIN=.venv/bin/leadrelay
PYTHON_BIN=.venv/bin/python
START_TIMEOUT="${SERVICES_START_TIMEOUT:-90}"
STOP_TIMEOUT=30

log() { printf 'run-distributed.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

pid_file() { echo "$RUN_DIR/$1.pid"; }
log_file() { echo "$RUN_DIR/$1.log"; }

is_service() {
    local s
    for s in "${SERVICES[@]}"; do [[ $s == "$1" ]] && return 0; done
    return 1
}

# The HTTP port of each service, from the code (one Python start for all of them).
declare -A PORTS=()
load_ports() {
    (( ${#PORTS[@]} )) && return 0
    [[ -x $PYTHON_BIN ]] || die "$PYTHON_BIN not found: run 'make install' first"
    local name port
    while read -r name port; do
        PORTS[$name]=$port
    done < <("$PYTHON_BIN" -c 'from leadrelay.settings import DEFAULT_PORTS
for name, port in DEFAULT_PORTS.items(): print(name, port)')
    for name in "${SERVICES[@]}"; do
        [[ -n ${PORTS[$name]:-} ]] || die "leadrelay.settings.DEFAULT_PORTS has no port for $name"
    done
}

# Where to reach the services: their bind address, or loopback for a wildcard.
probe_host() {
    local host="${LEADRELAY_HOST:-127.0.0.1}"
    case "$host" in
        0.0.0.0 | :: | "[::]") echo 127.0.0.1 ;;
        *) echo "$host" ;;
    esac
}

# Prints the service's pid if it is running, else fails. The pid file alone is
# not trusted: after a reboot or a crash the pid may belong to another process.
running_pid() {
    local file pid
    file="$(pid_file "$1")"
    [[ -f $file ]] || return 1
    pid="$(cat "$file")"
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "leadrelay serve $1 " || return 1
    echo "$pid"
}

port_open() {
    # bash's /dev/tcp: no extra tools needed. The subshell keeps the fd local.
    (exec 3<>"/dev/tcp/$(probe_host)/$1") 2>/dev/null
}

# The HTTP status of GET /readyz ("000" when nothing answers); the body goes
# to $2 if given.
readyz_status() {
    curl -s -o "${2:-/dev/null}" -w '%{http_code}' --max-time 3 \
        "http://$(probe_host):${PORTS[$1]}/readyz" 2>/dev/null || true
}

show_failure() {
    local svc=$1 body
    body="$(mktemp)"
    if [[ $(readyz_status "$svc" "$body") != 000 ]]; then
        log "$svc: GET /readyz says: $(cat "$body")"
    fi
    rm -f "$body"
    log "$svc: last lines of $(log_file "$svc"):"
    tail -n 40 "$(log_file "$svc")" >&2 2>/dev/null || true
}

# ------------------------------------------------------------------ commands

start_one() {
    local svc=$1 pid logf
    logf="$(log_file "$svc")"
    # Keep the previous run's log for post-mortems; start each run afresh.
    [[ -f $logf ]] && mv -f "$logf" "$logf.1"
    # setsid: own session, so a Ctrl-C in this terminal does not reach it; stdin
    # from /dev/null and both outputs to the log, so it holds no fd of ours.
    # --port: a LEADRELAY_PORT in the environment would give them all one port.
    setsid nohup "$LEADRELAY_BIN" serve "$svc" --port "${PORTS[$svc]}" \
        </dev/null >>"$logf" 2>&1 &
    pid=$!
    echo "$pid" >"$(pid_file "$svc")"
    log "$svc: started (pid $pid, port ${PORTS[$svc]}, log $logf)"
}

cmd_start() {
    local svc pid deadline status failed=() pending=() started=()
    [[ -x $LEADRELAY_BIN ]] || die "$LEADRELAY_BIN not found: run 'make install' first"
    command -v curl >/dev/null || die "curl not found (needed for the readiness checks)"
    load_ports
    mkdir -p "$RUN_DIR"

    if [[ -z ${LEADRELAY_DATABASE_URL:-} ]]; then
        LEADRELAY_DATABASE_URL="$(deploy/postgres.sh url)"
    fi
    export LEADRELAY_DATABASE_URL
    export LEADRELAY_KAFKA_BOOTSTRAP_SERVERS="${LEADRELAY_KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT:-9092}}"
    export LEADRELAY_CONFIG="${LEADRELAY_CONFIG:-config/example.yaml}"
    [[ -f $LEADRELAY_CONFIG ]] || die "rules file $LEADRELAY_CONFIG not found (LEADRELAY_CONFIG)"
    [[ -n ${LEADRELAY_PORT:-} ]] && log "ignoring LEADRELAY_PORT=$LEADRELAY_PORT: each service gets its own port"
    # The services refuse to start without a signing key: on this machine, make one once.
    if [[ -z ${LEADRELAY_AUTH_SIGNING_KEY:-} ]]; then
        local keyfile=.run/auth-signing-key
        if [[ ! -s $keyfile ]]; then
            (umask 077 && "$PYTHON_BIN" -c 'from leadrelay.auth import generate_key; print(generate_key())' >"$keyfile")
            log "generated a signing key into $keyfile"
        fi
        LEADRELAY_AUTH_SIGNING_KEY="$(cat "$keyfile")"
        export LEADRELAY_AUTH_SIGNING_KEY
        log "sign in with: LEADRELAY_AUTH_SIGNING_KEY=\$(cat $keyfile) $LEADRELAY_BIN token --role ops"
    fi
    # The console signs its forms' CSRF tokens with a key of its own: likewise, made once.
    if [[ -z ${LEADRELAY_CONSOLE_SECRET_KEY:-} ]]; then
        local consolekey=.run/console-secret-key
        if [[ ! -s $consolekey ]]; then
            (umask 077 && "$PYTHON_BIN" -c 'from leadrelay.auth import generate_key; print(generate_key())' >"$consolekey")
            log "generated the console's secret key into $consolekey"
        fi
        LEADRELAY_CONSOLE_SECRET_KEY="$(cat "$consolekey")"
        export LEADRELAY_CONSOLE_SECRET_KEY
    fi
    log "database $(sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$LEADRELAY_DATABASE_URL"), kafka $LEADRELAY_KAFKA_BOOTSTRAP_SERVERS, rules $LEADRELAY_CONFIG"

    local to_start=()
    for svc in "${SERVICES[@]}"; do
        if pid="$(running_pid "$svc")"; then
            log "$svc: already running (pid $pid, port ${PORTS[$svc]})"
        else
            rm -f "$(pid_file "$svc")"
            # Checked for all before starting any: fail without side effects.
            if port_open "${PORTS[$svc]}"; then
                die "port ${PORTS[$svc]} is already in use by another process: cannot start $svc"
            fi
            to_start+=("$svc")
        fi
        pending+=("$svc")
    done
    for svc in "${to_start[@]+"${to_start[@]}"}"; do
        start_one "$svc"
        started+=("$svc")
    done

    deadline=$((SECONDS + START_TIMEOUT))
    while (( ${#pending[@]} )); do
        local still=()
        for svc in "${pending[@]}"; do
            if ! running_pid "$svc" >/dev/null; then
                log "$svc: exited during startup"
                failed+=("$svc")
                continue
            fi
            status="$(readyz_status "$svc")"
            if [[ $status == 200 ]]; then
                log "$svc: ready on http://$(probe_host):${PORTS[$svc]}"
            else
                still+=("$svc")
            fi
        done
        pending=("${still[@]+"${still[@]}"}")
        (( ${#pending[@]} )) || break
        if (( SECONDS >= deadline )); then
            for svc in "${pending[@]}"; do
                log "$svc: not ready after ${START_TIMEOUT} s"
                failed+=("$svc")
            done
            break
        fi
        sleep 0.5
    done

    if (( ${#failed[@]} )); then
        for svc in "${failed[@]}"; do show_failure "$svc"; done
        # Leave nothing half-started behind: stop what this call started.
        (( ${#started[@]} )) && stop_services "${started[@]}"
        die "not started: ${failed[*]}"
    fi
    log "all services ready: intake http://$(probe_host):${PORTS[intake]} (ports ${PORTS[intake]}-${PORTS[feedback]})"
}

# SIGTERM to all at once (each drains independently), SIGKILL after STOP_TIMEOUT.
stop_services() {
    local svc pid running=() deadline
    declare -A pids=()
    for svc in "$@"; do
        if pid="$(running_pid "$svc")"; then
            log "$svc: stopping (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids[$svc]=$pid
            running+=("$svc")
        else
            rm -f "$(pid_file "$svc")"
        fi
    done
    (( ${#running[@]} )) || { log "not running"; return 0; }

    deadline=$((SECONDS + STOP_TIMEOUT))
    for svc in "${running[@]}"; do
        pid=${pids[$svc]}
        while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$svc: still running after ${STOP_TIMEOUT} s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
        rm -f "$(pid_file "$svc")"
        log "$svc: stopped"
    done
}

cmd_stop() {
    stop_services "${SERVICES[@]}"
}

cmd_status() {
    local svc pid rc=0
    load_ports
    for svc in "${SERVICES[@]}"; do
        if ! pid="$(running_pid "$svc")"; then
            printf '%-12s stopped\n' "$svc"
            rc=1
        elif [[ $(readyz_status "$svc") == 200 ]]; then
            printf '%-12s ready     pid %-8s http://%s:%s\n' "$svc" "$pid" "$(probe_host)" "${PORTS[$svc]}"
        else
            printf '%-12s not ready pid %-8s http://%s:%s (see GET /readyz)\n' "$svc" "$pid" "$(probe_host)" "${PORTS[$svc]}"
            rc=1
        fi
    done
    return "$rc"
}

cmd_logs() {
    local svc=${1:-} logf
    is_service "$svc" || die "usage: logs SERVICE [tail args], SERVICE one of: ${SERVICES[*]}"
    shift
    logf="$(log_file "$svc")"
    [[ -f $logf ]] || die "no log yet ($logf)"
    if (( $# )); then tail "$@" "$logf"; else tail -n 100 "$logf"; fi
}

usage() {
    sed -n '7,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
}

main() {
    local cmd=${1:-}
    (( $# )) && shift
    case $cmd in
        start) cmd_start ;;
        stop) cmd_stop ;;
        restart) cmd_stop; cmd_start ;;
        status) cmd_status ;;
        logs) cmd_logs "$@" ;;
        -h | --help | help) usage ;;
        *) usage; exit 2 ;;
    esac
}

main "$@"
