#!/usr/bin/env bash
# Run a real single-node Apache Kafka broker (KRaft, combined broker+controller)
# for development and tests, from jars resolved out of Maven Central with Maven
# and run with the machine's Java 17. No Docker and no Kafka tarball.
#
# Usage: deploy/kafka.sh {fetch|start|stop|restart|status|pid|logs [tail args]|clean}
#
# Settings (environment):
#   KAFKA_VERSION          Kafka release to run                (default below)
#   KAFKA_PORT             client listener port, 127.0.0.1     (9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port, 127.0.0.1    (9093)
#   KAFKA_PROXY_PORT       opt-in: a second listener, advertised on this port, for a
#                          TCP proxy in front of the broker (Toxiproxy in the fault
#                          tests): clients bootstrapping there are sent back there
#   KAFKA_PROXY_LISTENER_PORT  where that listener binds, the proxy's upstream
#                          (KAFKA_PROXY_PORT + 1)
#   KAFKA_DATA_DIR         config, data, pid and log files     (<repo>/.run/kafka,
#                          <repo>/.run/kafka-<port> on a port other than 9092)
#   KAFKA_HEAP_OPTS        JVM heap                            (-Xms256m -Xmx512m)
#   KAFKA_JVM_OPTS         other JVM flags                     (see below)
#   KAFKA_START_TIMEOUT    seconds to wait for the broker      (90)
#   LEADRELAY_CACHE_DIR    where the jars are cached           ($HOME/.cache/leadrelay)
#   MAVEN_OPTS             passed on to mvn, e.g. -Dmaven.repo.local=...
#
# Progress goes to stderr; `status` exits 0 if the broker is up and reachable;
# `pid` prints the running broker's pid (fails if none), for fault-injection tests.
set -euo pipefail

# 4.4.0 is the newest release on Maven Central when this was written, and works
# with aiokafka 0.14.0 (create topics, idempotent acks=all producer, consumer
# groups with manual commit). Any 4.x release should do; 3.x does not, as it
# logs through log4j 1 (reload4j) and lacks some settings used below.
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
# Must match the log4j 2 version that this Kafka release is built against
# (kafka-server's pom pulls log4j-api/log4j-core at this version).
LOG4J_VERSION="${LOG4J_VERSION:-2.25.5}"
MAVEN_DEPENDENCY_PLUGIN_VERSION="3.8.1"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/ports.sh
source "$REPO_ROOT/deploy/ports.sh"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
# A broker on another port (a test's or the soak run's own) gets its own data dir.
if [[ "$KAFKA_PORT" == 9092 ]]; then
    KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$REPO_ROOT/.run/kafka}"
else
    KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$REPO_ROOT/.run/kafka-$KAFKA_PORT}"
fi
KAFKA_PROXY_PORT="${KAFKA_PROXY_PORT:-}"
if [[ -n "$KAFKA_PROXY_PORT" ]]; then
    KAFKA_PROXY_LISTENER_PORT="${KAFKA_PROXY_LISTENER_PORT:-$((KAFKA_PROXY_PORT + 1))}"
fi
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
# The machine has 2 cores: the serial collector avoids G1's extra GC threads and
# is plenty for a 512 MiB heap; a capped metaspace keeps the footprint bounded.
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:MaxMetaspaceSize=256m -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT=30

CACHE_DIR="${LEADRELAY_CACHE_DIR:-$HOME/.cache/leadrelay}/kafka-$KAFKA_VERSION"
LIBS_DIR="$CACHE_DIR/libs"
FETCHED_MARKER="$CACHE_DIR/.fetched"

CONFIG_FILE="$KAFKA_DATA_DIR/server.properties"
LOG4J_FILE="$KAFKA_DATA_DIR/log4j2.xml"
LOG_DIRS="$KAFKA_DATA_DIR/data"
PID_FILE="$KAFKA_DATA_DIR/kafka.pid"
LOG_FILE="$KAFKA_DATA_DIR/kafka.log"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --------------------------------------------------------------------- fetch

write_pom() {
    # A pom-packaged project with no code: it only exists so that Maven resolves
    # the broker and its runtime dependencies. Besides kafka_2.13 (the broker;
    # it also contains kafka.tools.StorageTool to format the storage), we add the
    # log4j 2 binding for slf4j 1.7, which Kafka logs through; without it slf4j
    # falls back to a no-op logger and the broker writes no log at all.
    cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>leadrelay.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <!-- Pinned so that Maven does not look up (and warn about) the latest. -->
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>$MAVEN_DEPENDENCY_PLUGIN_VERSION</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
}

fetch() {
    local pom marker_want tmp_libs
    pom="$(write_pom)"
    # The marker holds a checksum of the pom, so editing the pom above (or the
    # versions) invalidates the cache instead of silently keeping old jars.
    marker_want="$(printf '%s' "$pom" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$FETCHED_MARKER" && "$(cat "$FETCHED_MARKER")" == "$marker_want" && -d "$LIBS_DIR" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (install Maven: apt-get install maven)"
    mkdir -p "$CACHE_DIR"
    printf '%s\n' "$pom" >"$CACHE_DIR/pom.xml"
    log "fetching Kafka $KAFKA_VERSION from Maven Central into $LIBS_DIR ..."
    local started=$SECONDS
    # Resolve into a temporary dir, then swap it in: an interrupted fetch never
    # leaves a half-filled libs dir behind a valid marker.
    tmp_libs="$(mktemp -d "$CACHE_DIR/libs.tmp.XXXXXX")"
    # mvn's output goes to a file, shown only on failure (even with -q -B,
    # Debian's Maven 3.8 prints stray colour-reset codes).
    if ! mvn -q -B -f "$CACHE_DIR/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp_libs" \
            </dev/null >"$CACHE_DIR/mvn.log" 2>&1; then
        rm -rf "$tmp_libs"
        cat "$CACHE_DIR/mvn.log" >&2
        die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (see above)"
    fi
    rm -rf "$LIBS_DIR"
    mv "$tmp_libs" "$LIBS_DIR"
    printf '%s\n' "$marker_want" >"$FETCHED_MARKER"
    log "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars in $((SECONDS - started)) s"
}

# ----------------------------------------------------------------- helpers

require_java() {
    command -v java >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"
}

# The command line that runs a Kafka main class with the cached jars and our
# log4j config; the *_OPTS are deliberately split into words.
java_cmd() {
    # shellcheck disable=SC2206
    JAVA_CMD=(java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS
              -Dlog4j2.configurationFile="$LOG4J_FILE" -cp "$LIBS_DIR/*")
}

# Prints the broker's pid if it is running, else fails. The pid file alone is
# not trusted: after a reboot or a crash the pid may belong to another process.
running_pid() {
    local pid
    [[ -f "$PID_FILE" ]] || return 1
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $CONFIG_FILE" || return 1
    echo "$pid"
}

port_open() {
    # bash's /dev/tcp: no extra tools needed. The subshell keeps the fd local.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_config() {
    mkdir -p "$KAFKA_DATA_DIR" "$LOG_DIRS"
    # The opt-in PROXIED listener binds on its own port but advertises the
    # proxy's: a client that bootstraps through the proxy gets metadata naming
    # the proxy, so every later connection goes through it too.
    local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT"
    local advertised="PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT"
    local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if [[ -n "$KAFKA_PROXY_PORT" ]]; then
        listeners+=",PROXIED://127.0.0.1:$KAFKA_PROXY_LISTENER_PORT"
        advertised+=",PROXIED://127.0.0.1:$KAFKA_PROXY_PORT"
        protocols+=",PROXIED:PLAINTEXT"
    fi
    cat >"$CONFIG_FILE" <<EOF
# Generated by deploy/kafka.sh on every start; edit the script, not this file.
# KRaft, one node acting as both broker and controller.
process.roles=broker,controller
node.id=1
# Dynamic quorum (KIP-853): formatted with --standalone, so the controller
# quorum is found through bootstrap servers rather than a static voter list.
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=$listeners
advertised.listeners=$advertised
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$LOG_DIRS

# Single node: every replication factor is 1.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the default 50: less startup work and fewer
# files on a 2-core test machine, still plenty for one developer's groups.
offsets.topic.num.partitions=6
transaction.state.log.num.partitions=6

# Topics are created by the application itself; typos must fail, not create.
auto.create.topics.enable=false
num.partitions=6
# Tests should not wait 3 s for every consumer group to form.
group.initial.rebalance.delay.ms=0

# Small segments and short retention: this broker holds test data only.
log.segment.bytes=16777216
log.retention.hours=24
log.retention.bytes=268435456
log.retention.check.interval.ms=60000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
    # All logging goes to stdout, which start redirects into kafka.log together
    # with anything the JVM itself prints (e.g. a crash before log4j is up).
    cat >"$LOG4J_FILE" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="stdout"/></Root>
    <!-- Chatty at INFO, useless for a dev broker. -->
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="org.apache.kafka.clients" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
  </Loggers>
</Configuration>
EOF
}

format_storage() {
    # meta.properties marks formatted storage: format on first start only, so
    # topics, messages and committed offsets survive a stop/start.
    if [[ -f "$LOG_DIRS/meta.properties" ]]; then
        return 0
    fi
    # A Kafka cluster id is 16 random bytes in URL-safe base64 without padding
    # (what `StorageTool random-uuid` prints, minus one JVM start). Like Kafka,
    # avoid a leading '-', which command lines would take for an option.
    local cluster_id="-"
    while [[ "$cluster_id" == -* ]]; do
        cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
    log "formatting storage (cluster id $cluster_id)"
    java_cmd
    "${JAVA_CMD[@]}" kafka.tools.StorageTool format --standalone \
        --cluster-id "$cluster_id" --config "$CONFIG_FILE" >>"$LOG_FILE" 2>&1 \
        || { tail -n 40 "$LOG_FILE" >&2; die "formatting the storage failed"; }
}

# ---------------------------------------------------------------- commands

start() {
    local pid
    if pid="$(running_pid)"; then
        log "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    require_java
    fetch
    local port
    reserve_ports "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" ${KAFKA_PROXY_LISTENER_PORT:-}
    for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" ${KAFKA_PROXY_LISTENER_PORT:-}; do
        if port_open "$port"; then
            die "port $port on 127.0.0.1 is already in use by another process"
        fi
        # Taken by an outgoing connection while the broker was down: wait for it to close.
        wait_port_free "$port" 60 || log "port $port is the local port of an outgoing connection (ss -tanp 'sport = :$port'); trying anyway"
    done
    write_config
    # Keep the previous run's log for post-mortems; start each run afresh.
    if [[ -f "$LOG_FILE" ]]; then
        mv -f "$LOG_FILE" "$LOG_FILE.1"
    fi
    : >"$LOG_FILE"
    format_storage

    log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (data in $KAFKA_DATA_DIR)"
    local started=$SECONDS
    # stdin from /dev/null and both outputs to the log: the broker holds no fd
    # of the caller (e.g. a pipe of a test runner that waits for EOF).
    java_cmd
    nohup "${JAVA_CMD[@]}" kafka.Kafka "$CONFIG_FILE" </dev/null >>"$LOG_FILE" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"

    # Ready = the process is alive, the client port accepts connections and
    # the broker logged that it finished starting (the port opens a little
    # before the broker has caught up with the metadata log). After a SIGKILL
    # this takes ~12 s instead of ~4 s: the controller first lets the dead
    # broker's session expire (broker.session.timeout.ms, 9 s).
    while (( SECONDS - started < KAFKA_START_TIMEOUT )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            log "the broker exited during startup; last lines of $LOG_FILE:"
            tail -n 60 "$LOG_FILE" >&2
            exit 1
        fi
        if port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$LOG_FILE"; then
            log "ready after $((SECONDS - started)) s (pid $pid)"
            return 0
        fi
        sleep 0.5
    done
    log "not ready after ${KAFKA_START_TIMEOUT} s; last lines of $LOG_FILE:"
    tail -n 60 "$LOG_FILE" >&2
    stop
    exit 1
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping (pid $pid) ..."
    # SIGTERM runs Kafka's shutdown hook: a clean shutdown means no log
    # recovery on the next start.
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null && (( waited < KAFKA_STOP_TIMEOUT * 10 )); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "still running after ${KAFKA_STOP_TIMEOUT} s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

status() {
    local pid
    if ! pid="$(running_pid)"; then
        log "not running"
        return 1
    fi
    if ! port_open "$KAFKA_PORT"; then
        log "running (pid $pid) but 127.0.0.1:$KAFKA_PORT does not accept connections"
        return 1
    fi
    log "running (pid $pid), Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT, data in $KAFKA_DATA_DIR"
}

logs() {
    [[ -f "$LOG_FILE" ]] || die "no log yet ($LOG_FILE)"
    if (( $# )); then tail "$@" "$LOG_FILE"; else tail -n 100 "$LOG_FILE"; fi
}

restart() {
    stop
    start
}

clean() {
    stop
    log "deleting $KAFKA_DATA_DIR"
    rm -rf "$KAFKA_DATA_DIR"
}

# -------------------------------------------------------------------- main

# One command at a time per data dir (e.g. two test sessions starting the
# broker at once). The broker must not inherit the lock's fd, hence 9>&- below.
with_lock() {
    mkdir -p "$KAFKA_DATA_DIR"
    exec 9>"$KAFKA_DATA_DIR/.lock"
    flock 9
    "$@" 9>&-
}

cmd="${1:-}"
if (( $# )); then shift; fi
case "$cmd" in
    fetch)   fetch ;;
    start)   with_lock start ;;
    stop)    with_lock stop ;;
    restart) with_lock restart ;;
    status)  status ;;
    pid)     running_pid ;;
    logs)    logs "$@" ;;
    clean)   with_lock clean ;;
    *)
        echo "usage: $0 {fetch|start|stop|restart|status|pid|logs [tail args]|clean}" >&2
        exit 2
        ;;
esac
