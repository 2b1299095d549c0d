# Sourced by deploy/kafka.sh and deploy/postgres.sh: keeping a server's port its own.
#
# Linux hands out local ports for outgoing connections from a range
# (net.ipv4.ip_local_port_range, 32768-60999 by default). A server whose port lies
# in that range and that is restarted (the fault tests stop and start Kafka and
# PostgreSQL) can find its port taken in between by some client's outgoing
# connection, and then fails to bind ("Address already in use").

# reserve_ports PORT...: ask the kernel never to hand these ports out to outgoing
# connections (net.ipv4.ip_local_reserved_ports). Needs root and a writable
# /proc/sys; silently does nothing otherwise (wait_port_free still helps).
reserve_ports() {
    local file=/proc/sys/net/ipv4/ip_local_reserved_ports current port add=""
    [[ -w $file ]] || return 0
    current=$(cat "$file" 2>/dev/null) || return 0
    for port in "$@"; do
        [[ -n $port ]] || continue
        if ! _port_in_list "$port" "$current"; then
            add="$add${add:+,}$port"
        fi
    done
    [[ -n $add ]] || return 0
    echo "${current:+$current,}$add" >"$file" 2>/dev/null || true
}

# _port_in_list PORT LIST: whether PORT is in a list like "8080,9000-9010".
_port_in_list() {
    local port=$1 item lo hi
    local IFS=,
    for item in $2; do
        lo=${item%-*}
        hi=${item#*-}
        if (( port >= lo && port <= hi )); then
            return 0
        fi
    done
    return 1
}

# wait_port_free PORT SECONDS: wait until no outgoing connection (established or
# connecting) has PORT as its local port; 1 if one still has after SECONDS. (The
# old server's closing sockets do not count: a server binds with SO_REUSEADDR.)
wait_port_free() {
    local port=$1 deadline=$((SECONDS + $2))
    command -v ss >/dev/null 2>&1 || return 0
    while [[ -n $(ss -Htan state established state syn-sent "( sport = :$port )" 2>/dev/null) ]]; do
        (( SECONDS < deadline )) || return 1
        sleep 0.5
    done
    return 0
}
