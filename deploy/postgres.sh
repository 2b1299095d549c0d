#!/usr/bin/env bash
# Run a local PostgreSQL server for development and tests, from Debian's
# `postgresql` package. It is a dedicated server with its own data directory
# and port, never Debian's default cluster (which may or may not exist, and is
# left alone either way).
#
# Usage: deploy/postgres.sh {install|start|stop|restart|status|url|psql [ARGS...]|clean}
#
#   install   install Debian's postgresql package if no server binaries exist
#   start     install if needed, init the data dir if needed, start the server,
#             ensure role and database `leadrelay` (password `leadrelay`)
#   stop      fast shutdown (nothing to do if not running)
#   restart   stop, then start
#   status    exit 0 when the server accepts connections on 127.0.0.1:PG_PORT
#   url       print the SQLAlchemy/asyncpg URL of the database
#   psql      open psql as leadrelay on the leadrelay database, passing ARGS on
#   clean     stop and delete the data directory
#
# Settings (environment):
#   PG_PORT      TCP port, on 127.0.0.1 only                 (55432)
#   PG_DATA_DIR  data directory, also holds the log file      (<repo>/.run/postgres,
#                <repo>/.run/postgres-<port> on a port other than 55432)
#
# Progress goes to stderr; stdout carries only what was asked for (url, psql).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck source=deploy/ports.sh
source "$REPO_ROOT/deploy/ports.sh"
PG_PORT="${PG_PORT:-55432}"
PG_START_TIMEOUT=60
PG_STOP_TIMEOUT=60

DB_NAME=leadrelay
DB_USER=leadrelay
DB_PASSWORD=leadrelay
# Bootstrap superuser; it has no password and is only reachable over the Unix
# socket (trust), which the script uses to create the role and the database.
SUPERUSER=postgres
# OS user that runs the server when this script runs as root (PostgreSQL
# refuses to run as root). Created by Debian's postgresql-common package.
SERVER_OS_USER=postgres

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if ! [[ $PG_PORT =~ ^[0-9]+$ ]] || (( PG_PORT < 1 || PG_PORT > 65535 )); then
    die "PG_PORT must be a TCP port number, not '$PG_PORT'"
fi

is_root() { [[ $(id -u) -eq 0 ]]; }

# Run a command as the OS user that owns the data dir and runs the server.
# `cd /` first: the server user may not be allowed into the caller's working
# directory (e.g. /root), and initdb/pg_ctl/psql complain about that.
as_server() {
    if is_root; then
        (cd / && runuser -u "$SERVER_OS_USER" -- "$@")
    else
        "$@"
    fi
}

# ------------------------------------------------------------------ binaries

# Newest PostgreSQL major version whose server binaries are installed, or "".
newest_version() {
    local p versions=()
    for p in /usr/lib/postgresql/*/bin/postgres; do
        if [[ -x $p ]]; then
            p=${p#/usr/lib/postgresql/}
            versions+=("${p%%/*}")
        fi
    done
    if (( ${#versions[@]} )); then
        printf '%s\n' "${versions[@]}" | sort -V | tail -n 1
    fi
}

# Set PG_BIN for the client tools (psql, pg_isready): any version will do.
select_client_bin() {
    local v
    v=$(newest_version)
    [[ -n $v ]] || die "PostgreSQL is not installed: run 'deploy/postgres.sh install' (or start)"
    PG_BIN=/usr/lib/postgresql/$v/bin
}

# Set PG_BIN for the server tools. An existing data dir pins the major version
# it was created with: binaries of a newer package installed since cannot run it.
select_server_bin() {
    local v
    if [[ -f $DATA_DIR/PG_VERSION ]]; then
        v=$(<"$DATA_DIR/PG_VERSION")
        [[ -x /usr/lib/postgresql/$v/bin/postgres ]] ||
            die "$DATA_DIR was created by PostgreSQL $v, whose binaries are not installed; run 'deploy/postgres.sh clean' to start afresh"
        PG_BIN=/usr/lib/postgresql/$v/bin
    else
        select_client_bin
    fi
}

# ------------------------------------------------------------------ data dir

# Can the server's OS user reach (traverse into) DIR? Checked by really
# trying as that user on the deepest part of DIR that exists; the parts still
# missing will be created world-traversable by prepare_data_dir.
server_user_can_reach() {
    local d=$1
    while [[ ! -e $d ]]; do d=$(dirname "$d"); done
    as_server test -d "$d" && as_server test -x "$d"
}

# Set DATA_DIR (absolute) from PG_DATA_DIR or the default under the repo.
resolve_data_dir() {
    if [[ -n ${PG_DATA_DIR:-} ]]; then
        DATA_DIR=$(realpath -m -- "$PG_DATA_DIR")
    elif [[ $PG_PORT == 55432 ]]; then
        DATA_DIR=$REPO_ROOT/.run/postgres
    else
        # A server on another port (a test's or the soak run's own) gets its own.
        DATA_DIR=$REPO_ROOT/.run/postgres-$PG_PORT
    fi
    # As root the server runs as the `postgres` user, which may not be able to
    # traverse the directories above the repo (e.g. a checkout under /root,
    # mode 700). In that case the default data dir moves to the postgres user's
    # home, /var/lib/postgresql, keyed by port so that servers on different
    # ports don't share it. An explicit PG_DATA_DIR is never moved.
    # (Before the package is installed there is no postgres user to ask, but
    # then there is no server either, and `start` installs before resolving.)
    if is_root && id -u "$SERVER_OS_USER" >/dev/null 2>&1 &&
            ! server_user_can_reach "$DATA_DIR"; then
        if [[ -n ${PG_DATA_DIR:-} ]]; then
            die "the $SERVER_OS_USER user, which runs the server, cannot reach PG_DATA_DIR=$DATA_DIR (a parent directory is not traversable); choose another PG_DATA_DIR"
        fi
        log "the $SERVER_OS_USER user cannot reach $DATA_DIR; using /var/lib/postgresql/leadrelay-$PG_PORT instead"
        DATA_DIR=/var/lib/postgresql/leadrelay-$PG_PORT
    fi
}

# Serialise start/stop/clean on the same data dir (e.g. parallel test workers
# each running `start`), by locking its parent directory: a lock file next to
# the data dir would need to be writable by whoever runs the script, and one
# inside it would be deleted by `clean`. Holds fd 9 until the script exits.
lock_data_dir() {
    local parent
    parent=$(dirname "$DATA_DIR")
    (umask 022; mkdir -p -- "$parent")
    exec 9<"$parent"
    flock 9
}

# Unix socket directory. Socket paths are limited to 107 bytes, which a deep
# checkout can exceed; /tmp is the fallback. With trust auth on the socket, a
# socket in /tmp lets any local user in as superuser: fine for a dev/test box.
socket_dir() {
    if (( ${#DATA_DIR} + ${#PG_PORT} + 10 > 107 )); then
        echo /tmp
    else
        echo "$DATA_DIR"
    fi
}

# Create and initdb the data dir unless it already holds a cluster.
prepare_data_dir() {
    local owner expected locale locales out
    if is_root; then expected=$SERVER_OS_USER; else expected=$(id -un); fi
    if [[ -f $DATA_DIR/PG_VERSION ]]; then
        owner=$(stat -c %U -- "$DATA_DIR")
        [[ $owner == "$expected" ]] ||
            die "$DATA_DIR belongs to $owner, but the server would run as $expected; use another PG_DATA_DIR or run as $owner"
        return
    fi

    # Missing parents are made world-traversable (umask 022) so that the
    # postgres user can reach the data dir when root created them.
    (umask 022; mkdir -p -- "$DATA_DIR")
    [[ -z $(ls -A -- "$DATA_DIR") ]] ||
        die "$DATA_DIR is not empty and holds no PostgreSQL cluster; remove it or choose another PG_DATA_DIR"
    if is_root; then
        chown "$SERVER_OS_USER:" "$DATA_DIR"
    fi
    chmod 700 "$DATA_DIR"

    # UTF8 with the C.UTF-8 locale: byte-order collation (fast, the same on
    # every machine) with Unicode-aware upper()/lower(); C.UTF-8 is built into
    # Debian's glibc but fall back to plain C if a system lacks it.
    locale=C
    locales=$(locale -a 2>/dev/null || true)
    if grep -qixE 'c\.utf-?8' <<<"$locales"; then
        locale=C.UTF-8
    fi
    log "initialising a new cluster in $DATA_DIR (PostgreSQL $(basename "$(dirname "$PG_BIN")"), UTF8, $locale)"
    if ! out=$(as_server "$PG_BIN/initdb" --pgdata="$DATA_DIR" --username="$SUPERUSER" \
            --encoding=UTF8 --locale="$locale" \
            --auth-local=trust --auth-host=scram-sha-256 2>&1); then
        printf '%s\n' "$out" >&2
        die "initdb failed"
    fi
    # Our settings live in their own file, rewritten on every start (see
    # write_config); postgresql.conf just includes it, last so that it wins.
    printf "\n# Leadrelay's settings, written by deploy/postgres.sh on every start.\ninclude = 'leadrelay.conf'\n" |
        as_server tee -a "$DATA_DIR/postgresql.conf" >/dev/null
}

# Rewritten on every start so that PG_PORT and changes to these settings apply
# to an existing data dir.
write_config() {
    local sock=${1//\'/\'\'}
    as_server tee "$DATA_DIR/leadrelay.conf" >/dev/null <<EOF
# Written by deploy/postgres.sh on every start: edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
# Sized for a test server on a 2-core box; parallel test workers and pools
# add up, hence more connections than the default 100.
max_connections = 200
shared_buffers = 128MB
# Durability stays on: the test suite kills processes and checks that nothing
# acknowledged is lost, so no fsync=off or synchronous_commit=off shortcuts.
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
}

# PID recorded in postmaster.pid if the server is running or was killed, else "".
postmaster_pid() {
    if [[ -f $DATA_DIR/postmaster.pid ]]; then
        head -n 1 "$DATA_DIR/postmaster.pid"
    fi
}

is_zombie() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} == Z ]]
}

# A zombie postmaster counts as stopped. Where PID 1 reaps orphans lazily (as
# on this project's machines, where it takes a second or two), a postmaster
# that was killed lingers as a zombie; pg_ctl status and the new postmaster's
# own lock-file check both use kill(pid, 0) and take it for a live server.
server_running() {
    local pid
    [[ -f $DATA_DIR/PG_VERSION ]] &&
        as_server "$PG_BIN/pg_ctl" status --pgdata="$DATA_DIR" >/dev/null 2>&1 &&
        pid=$(postmaster_pid) && ! is_zombie "$pid"
}

# Wait (until DEADLINE, in $SECONDS) for a killed postmaster's zombie to be
# reaped, as a new postmaster refuses to start while it exists (see above).
wait_for_zombie_postmaster() {
    local deadline=$1 pid
    pid=$(postmaster_pid)
    if [[ -n $pid ]] && is_zombie "$pid"; then
        log "waiting for the killed postmaster (PID $pid) to be reaped"
        while is_zombie "$pid"; do
            (( SECONDS < deadline )) || die "PID $pid is still a zombie after ${PG_START_TIMEOUT}s; cannot start"
            sleep 0.1
        done
    fi
}

# Create (or reset) the application role and database, as the superuser over
# the Unix socket.
ensure_role_and_db() {
    as_server "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -h "$(socket_dir)" -p "$PG_PORT" -U "$SUPERUSER" -d postgres >&2 <<EOF
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
        CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
    ELSE
        ALTER ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
    END IF;
END
\$\$;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME') \gexec
EOF
}

# ------------------------------------------------------------------ commands

cmd_install() {
    local v sudo=()
    v=$(newest_version)
    if [[ -n $v ]]; then
        log "PostgreSQL $v server binaries are installed"
        return
    fi
    if ! is_root; then
        command -v sudo >/dev/null 2>&1 ||
            die "PostgreSQL is not installed, and installing it needs root but sudo is missing: run 'deploy/postgres.sh install' as root"
        sudo=(sudo)
    fi
    # Note: on a machine with an init system the package's postinst also
    # creates and starts Debian's default cluster on port 5432; it does not get
    # in the way of ours.
    log "installing Debian's postgresql package"
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
    v=$(newest_version)
    [[ -n $v ]] || die "the postgresql package is installed but /usr/lib/postgresql/*/bin/postgres is missing"
    log "installed PostgreSQL $v"
}

cmd_start() {
    local running_port sock logfile deadline
    cmd_install
    resolve_data_dir
    lock_data_dir
    select_server_bin
    sock=$(socket_dir)

    if server_running; then
        running_port=$(sed -n 4p "$DATA_DIR/postmaster.pid")
        [[ $running_port == "$PG_PORT" ]] ||
            die "the server of $DATA_DIR is running on port $running_port, not $PG_PORT: run 'deploy/postgres.sh restart'"
        log "already running on 127.0.0.1:$PG_PORT (data dir $DATA_DIR)"
    else
        prepare_data_dir
        write_config "$sock"
        logfile=$DATA_DIR/postgres.log
        log "starting on 127.0.0.1:$PG_PORT (data dir $DATA_DIR, log $logfile)"
        deadline=$((SECONDS + PG_START_TIMEOUT))
        wait_for_zombie_postmaster "$deadline"
        reserve_ports "$PG_PORT"
        # Taken by an outgoing connection while the server was down: wait for it to close.
        wait_port_free "$PG_PORT" "$PG_START_TIMEOUT" ||
            log "port $PG_PORT is the local port of an outgoing connection (ss -tanp 'sport = :$PG_PORT'); trying anyway"
        # pg_ctl forks the postmaster into its own session, in the background.
        # fd 9 (our lock) is closed for it, else the postmaster would inherit
        # it and hold the lock for as long as it runs.
        if ! as_server "$PG_BIN/pg_ctl" start --pgdata="$DATA_DIR" --log="$logfile" \
                --wait --timeout="$PG_START_TIMEOUT" --silent 9<&- >&2; then
            tail -n 20 "$logfile" >&2 || true
            die "the server did not start (see $logfile)"
        fi
        # pg_ctl waited on the Unix socket; make sure TCP answers too.
        until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1; do
            (( SECONDS < deadline )) || die "no answer on 127.0.0.1:$PG_PORT after ${PG_START_TIMEOUT}s (see $logfile)"
            sleep 0.2
        done
    fi

    ensure_role_and_db
    log "ready: $(cmd_url)"
}

cmd_stop() {
    resolve_data_dir
    if [[ ! -f $DATA_DIR/PG_VERSION ]]; then
        log "no cluster in $DATA_DIR: nothing to stop"
        return
    fi
    lock_data_dir
    select_server_bin
    if ! server_running; then
        log "not running (data dir $DATA_DIR)"
        return
    fi
    log "stopping (fast shutdown, data dir $DATA_DIR)"
    as_server "$PG_BIN/pg_ctl" stop --pgdata="$DATA_DIR" --mode=fast \
        --wait --timeout="$PG_STOP_TIMEOUT" --silent >&2
    log "stopped"
}

cmd_status() {
    local rc=0
    select_client_bin
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 5 || rc=$?
    case $rc in
        0) log "accepting connections on 127.0.0.1:$PG_PORT" ;;
        1) log "running on 127.0.0.1:$PG_PORT but rejecting connections (starting up or shutting down)" ;;
        *) log "not running on 127.0.0.1:$PG_PORT" ;;
    esac
    return "$rc"
}

cmd_url() {
    echo "postgresql+asyncpg://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME"
}

# Over TCP with the password, like the services connect.
cmd_psql() {
    select_client_bin
    PGPASSWORD=$DB_PASSWORD exec "$PG_BIN/psql" \
        -h 127.0.0.1 -p "$PG_PORT" -U "$DB_USER" -d "$DB_NAME" "$@"
}

cmd_clean() {
    cmd_stop
    # DATA_DIR is set by cmd_stop. Only delete what is clearly ours.
    if [[ -e $DATA_DIR ]]; then
        if [[ -f $DATA_DIR/PG_VERSION || -z $(ls -A -- "$DATA_DIR") ]]; then
            log "removing $DATA_DIR"
            rm -rf -- "$DATA_DIR"
        else
            die "$DATA_DIR holds no PostgreSQL cluster: not removing it"
        fi
    else
        log "$DATA_DIR does not exist: nothing to remove"
    fi
}

usage() {
    sed -n '7,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
}

main() {
    local cmd=${1:-}
    (( $# )) && shift
    case $cmd in
        install) cmd_install ;;
        start) cmd_start ;;
        stop) cmd_stop ;;
        restart) cmd_stop; cmd_start ;;
        status) cmd_status ;;
        url) cmd_url ;;
        psql) cmd_psql "$@" ;;
        clean) cmd_clean ;;
        -h|--help|help) usage ;;
        *) usage; exit 2 ;;
    esac
}

main "$@"
