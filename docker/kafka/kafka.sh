#!/usr/bin/env bash
# Run a real single-node Apache Kafka 4.1.1 broker (KRaft, broker+controller in one JVM) without Docker,
# from jars gathered from Maven Central.
#
#   docker/kafka/kafka.sh fetch            gather the broker jars into the cache (idempotent)
#   docker/kafka/kafka.sh up [--fresh]     start a broker (or report the one already running); the last line
#                                          of stdout is KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:<port>
#   docker/kafka/kafka.sh down             stop it (SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT seconds)
#   docker/kafka/kafka.sh status           "running ..." (exit 0) or "not running" (exit 3)
#   docker/kafka/kafka.sh logs [N]         last N (default 50) lines of the broker's server.log
#
# Environment:
#   KAFKA_DATA_DIR         broker state, config, logs and pid file (default <repo>/.run/kafka). One broker per dir.
#   KAFKA_PORT             client (PLAINTEXT) port on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default KAFKA_PORT+1)
#   OFFERSTREAM_CACHE      cache root (default ~/.cache/offerstream); jars go to <cache>/kafka-4.1.1/libs
#   KAFKA_LIBS_DIR         use this jar directory instead of the cache (must hold a complete set)
#   KAFKA_HEAP_OPTS        default "-Xms256m -Xmx768m";  KAFKA_OPTS: extra JVM options
#   KAFKA_START_TIMEOUT    seconds to wait for "Kafka Server started" (default 90)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   MAVEN_REPO_LOCAL       passed to mvn as -Dmaven.repo.local (default: Maven's own, ~/.m2/repository)
#   JAVA_HOME              java to use (default: java on PATH); needs Java 17+
#
# Progress goes to stderr; stdout of `up` is only the KAFKA_BOOTSTRAP_SERVERS=... line, so
#   eval "$(docker/kafka/kafka.sh up)" && export KAFKA_BOOTSTRAP_SERVERS
# works. Two brokers can run at once with different KAFKA_DATA_DIR and KAFKA_PORT.
set -euo pipefail

KAFKA_VERSION=4.1.1
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
POM="$SCRIPT_DIR/pom.xml"
TEMPLATE="$SCRIPT_DIR/server.properties.template"
LOG4J_CONF="$SCRIPT_DIR/log4j2.xml"

CACHE_ROOT="${OFFERSTREAM_CACHE:-$HOME/.cache/offerstream}"
LIBS_DIR="${KAFKA_LIBS_DIR:-$CACHE_ROOT/kafka-$KAFKA_VERSION/libs}"
DATA_DIR="${KAFKA_DATA_DIR:-$REPO_ROOT/.run/kafka}"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"

MARKER_NAME=".offerstream-complete"   # in LIBS_DIR: sha256 of the pom that produced it
DIR_MARKER=".offerstream-kafka"       # in DATA_DIR: says this dir is ours (so --fresh may wipe it)
READY_LINE="Kafka Server started"

log() { printf '[kafka.sh] %s\n' "$*" >&2; }
die() { printf '[kafka.sh] error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------------------------------------- helpers

make_abs() {  # make_abs PATH -> absolute path (the dir need not exist yet)
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$(pwd)" "$1" ;;
    esac
}
DATA_DIR="$(make_abs "$DATA_DIR")"
LIBS_DIR="$(make_abs "$LIBS_DIR")"
PID_FILE="$DATA_DIR/kafka.pid"
PORTS_FILE="$DATA_DIR/broker.env"
SERVER_LOG="$DATA_DIR/server.log"
CONSOLE_LOG="$DATA_DIR/console.log"
PROPS="$DATA_DIR/server.properties"

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
    else shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then printf '%s\n' "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then command -v java
    else die "java not found (Kafka $KAFKA_VERSION needs Java 17+; set JAVA_HOME or put java on PATH)"
    fi
}

check_java_version() {
    local java="$1" ver major
    ver="$("$java" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
    major="${ver%%.*}"
    [[ "$major" == 1 ]] && major="$(cut -d. -f2 <<<"$ver")"
    if ! is_uint "${major:-x}" || (( major < 17 )); then
        die "Kafka $KAFKA_VERSION needs Java 17+, but $java is version '${ver:-unknown}'"
    fi
}

port_in_use() {  # port_in_use PORT: true if something accepts connections on 127.0.0.1:PORT
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

process_cmdline() {  # process_cmdline PID -> its command line (empty if gone)
    if [[ -r "/proc/$1/cmdline" ]]; then tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
    elif command -v ps >/dev/null 2>&1; then ps -o args= -p "$1" 2>/dev/null || true
    fi
}

pid_is_our_broker() {  # pid_is_our_broker PID: alive and running kafka.Kafka with this data dir's config
    local pid="$1" cmd
    is_uint "$pid" || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmd="$(process_cmdline "$pid")"
    [[ -z "$cmd" ]] && return 0   # cannot inspect (no /proc, no ps): trust the pid file
    [[ "$cmd" == *kafka.Kafka* && "$cmd" == *"$PROPS"* ]]
}

running_pid() {  # prints the pid of this data dir's broker if it is running; removes a stale pid file
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && pid_is_our_broker "$pid"; then
        printf '%s\n' "$pid"
        return 0
    fi
    log "removing stale pid file $PID_FILE (pid ${pid:-?} is not a running broker)"
    rm -f "$PID_FILE"
    return 1
}

running_port() {  # port of the broker that runs (or ran) for this data dir
    local p=""
    [[ -f "$PORTS_FILE" ]] && p="$(sed -n 's/^KAFKA_PORT=//p' "$PORTS_FILE" | head -n1)"
    printf '%s\n' "${p:-$PORT}"
}

libs_complete() {
    [[ -f "$LIBS_DIR/$MARKER_NAME" ]] && [[ "$(cat "$LIBS_DIR/$MARKER_NAME")" == "$(sha256_of "$POM")" ]]
}

# ---------------------------------------------------------------------------------------------- fetch

cmd_fetch() {
    if libs_complete; then
        log "jars already in $LIBS_DIR"
        return 0
    fi
    if [[ -n "${KAFKA_LIBS_DIR:-}" && -d "$LIBS_DIR" ]] && compgen -G "$LIBS_DIR/kafka_2.13-*.jar" >/dev/null; then
        # A directory supplied by the user (e.g. a Kafka tarball's libs/): take it as it is.
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn (Maven 3) not found; it is needed once to fetch the broker jars"
    local parent lock_fd=""
    parent="$(dirname "$LIBS_DIR")"
    mkdir -p "$parent"
    # Serialise concurrent fetches (e.g. parallel test sessions) where flock exists.
    if command -v flock >/dev/null 2>&1; then
        exec {lock_fd}>"$parent/.fetch.lock"
        flock "$lock_fd"
        if libs_complete; then
            log "jars already in $LIBS_DIR (fetched by a concurrent run)"
            exec {lock_fd}>&-
            return 0
        fi
    fi
    local tmp="$LIBS_DIR.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log "fetching Kafka $KAFKA_VERSION broker jars from Maven Central into $LIBS_DIR ..."
    local mvn_args=(-B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime "-DoutputDirectory=$tmp")
    [[ -n "${MAVEN_REPO_LOCAL:-}" ]] && mvn_args+=("-Dmaven.repo.local=$MAVEN_REPO_LOCAL")
    # Maven 3.8 prints stray ANSI resets even with -B -q; keep its output unless it fails.
    if ! mvn "${mvn_args[@]}" >"$parent/fetch.log" 2>&1; then
        cat "$parent/fetch.log" >&2
        rm -rf "$tmp"
        die "mvn failed to fetch the broker jars (is Maven Central reachable? log: $parent/fetch.log)"
    fi
    compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null || { rm -rf "$tmp"; die "fetch incomplete: no kafka_2.13-$KAFKA_VERSION.jar"; }
    compgen -G "$tmp/log4j-slf4j-impl-*.jar" >/dev/null || { rm -rf "$tmp"; die "fetch incomplete: no log4j-slf4j-impl jar"; }
    sha256_of "$POM" >"$tmp/$MARKER_NAME"
    rm -rf "$LIBS_DIR.old"
    [[ -d "$LIBS_DIR" ]] && mv "$LIBS_DIR" "$LIBS_DIR.old"
    mv "$tmp" "$LIBS_DIR"
    rm -rf "$LIBS_DIR.old"
    if [[ -n "${lock_fd:-}" ]]; then exec {lock_fd}>&-; fi
    log "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l | tr -d ' ') jars ($(du -sh "$LIBS_DIR" | cut -f1))"
}

# ---------------------------------------------------------------------------------------------- up

wipe_data_dir() {
    [[ -e "$DATA_DIR" ]] || return 0
    case "$DATA_DIR" in
        / | "$HOME" | "$REPO_ROOT") die "refusing to wipe $DATA_DIR" ;;
    esac
    if [[ -f "$DATA_DIR/$DIR_MARKER" ]] || [[ -z "$(ls -A "$DATA_DIR" 2>/dev/null)" ]]; then
        log "wiping $DATA_DIR"
        rm -rf "$DATA_DIR"
    else
        die "--fresh: $DATA_DIR was not created by kafka.sh (no $DIR_MARKER); remove it yourself"
    fi
}

render_properties() {
    local log_dir="$DATA_DIR/data" esc
    # Escape for sed replacement (paths may hold & or |).
    esc="$(printf '%s' "$log_dir" | sed -e 's/[&|\\]/\\&/g')"
    sed -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" -e "s|@LOG_DIR@|$esc|g" \
        "$TEMPLATE" >"$PROPS.tmp"
    mv "$PROPS.tmp" "$PROPS"
}

format_storage() {
    local java="$1" cluster_id
    if [[ -f "$DATA_DIR/data/meta.properties" ]]; then
        return 0   # already formatted (--ignore-formatted would skip it too, but this saves a JVM start)
    fi
    if [[ -s "$DATA_DIR/cluster.id" ]]; then
        cluster_id="$(cat "$DATA_DIR/cluster.id")"
    else
        cluster_id="$("$java" -cp "$LIBS_DIR/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
        [[ -n "$cluster_id" ]] || die "StorageTool random-uuid printed nothing"
        printf '%s\n' "$cluster_id" >"$DATA_DIR/cluster.id"
    fi
    log "formatting storage (cluster id $cluster_id)"
    # No log4j2 config here: log4j2's default (ERROR to console) keeps the tool's output in format.log.
    if ! "$java" -cp "$LIBS_DIR/*" kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$PROPS" --ignore-formatted \
            >"$DATA_DIR/format.log" 2>&1; then
        cat "$DATA_DIR/format.log" >&2
        die "formatting storage failed"
    fi
}

print_log_tail() {
    local f
    for f in "$SERVER_LOG" "$CONSOLE_LOG"; do
        if [[ -s "$f" ]]; then
            printf '\n----- last 40 lines of %s -----\n' "$f" >&2
            tail -n 40 "$f" >&2
        fi
    done
}

wait_ready() {  # wait_ready PID
    local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        if [[ -f "$SERVER_LOG" ]] && grep -q "$READY_LINE" "$SERVER_LOG" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            print_log_tail
            die "broker process $pid exited during startup (see $SERVER_LOG)"
        fi
        if (( SECONDS >= deadline )); then
            print_log_tail
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$PID_FILE"
            die "broker did not log '$READY_LINE' within ${START_TIMEOUT}s; killed pid $pid"
        fi
        sleep 0.2
    done
}

cmd_up() {
    local fresh=0 arg
    for arg in "$@"; do
        case "$arg" in
            --fresh) fresh=1 ;;
            -h | --help) usage; return 0 ;;
            *) die "up: unknown argument '$arg' (only --fresh)" ;;
        esac
    done
    if ! is_uint "$PORT" || (( PORT < 1 || PORT > 65535 )); then
        die "KAFKA_PORT must be a port number, got '$PORT'"
    fi
    if ! is_uint "$CONTROLLER_PORT" || (( CONTROLLER_PORT < 1 || CONTROLLER_PORT > 65535 )); then
        die "KAFKA_CONTROLLER_PORT must be a port number, got '$CONTROLLER_PORT'"
    fi
    (( PORT != CONTROLLER_PORT )) || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"

    # One `up` at a time per data dir (e.g. parallel test workers sharing one broker), where flock exists.
    # The lock file sits beside the data dir so that --fresh can wipe the dir while holding it.
    UP_LOCK_FD=""
    if command -v flock >/dev/null 2>&1; then
        local lock_file
        lock_file="$(dirname "$DATA_DIR")/.$(basename "$DATA_DIR").kafka-sh.lock"
        mkdir -p "$(dirname "$DATA_DIR")"
        exec {UP_LOCK_FD}>"$lock_file"
        flock -w $((START_TIMEOUT + STOP_TIMEOUT + 60)) "$UP_LOCK_FD" \
            || die "another 'kafka.sh up' for $DATA_DIR holds $lock_file"
    fi

    local pid
    if pid="$(running_pid)"; then
        if (( fresh )); then
            log "--fresh: stopping the running broker (pid $pid) first"
            cmd_down
        else
            local rport
            rport="$(running_port)"
            if [[ -n "${KAFKA_PORT:-}" && "$rport" != "$PORT" ]]; then
                log "warning: the broker for $DATA_DIR already runs on port $rport, not KAFKA_PORT=$PORT"
            fi
            wait_ready "$pid"
            log "already running (pid $pid, data dir $DATA_DIR)"
            printf 'KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:%s\n' "$rport"
            return 0
        fi
    fi
    (( fresh )) && wipe_data_dir

    local p
    for p in "$PORT" "$CONTROLLER_PORT"; do
        if port_in_use "$p"; then
            die "port 127.0.0.1:$p is already in use by another process (not a broker started by this script for $DATA_DIR). Stop it, or pick other ports: KAFKA_PORT=<port> [KAFKA_DATA_DIR=<dir>] $0 up"
        fi
    done

    libs_complete || cmd_fetch
    local java
    java="$(java_bin)"
    check_java_version "$java"

    mkdir -p "$DATA_DIR/data"
    touch "$DATA_DIR/$DIR_MARKER"
    render_properties
    printf 'KAFKA_PORT=%s\nKAFKA_CONTROLLER_PORT=%s\n' "$PORT" "$CONTROLLER_PORT" >"$PORTS_FILE"
    format_storage "$java"

    # Keep the previous run's log apart, so the readiness check only sees this run's lines.
    [[ -f "$SERVER_LOG" ]] && mv -f "$SERVER_LOG" "$DATA_DIR/server.previous.log"
    rm -f "$SERVER_LOG".[0-9]*

    local jvm_opts=()
    # shellcheck disable=SC2206  # word splitting of the option strings is intended
    jvm_opts=($HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=$LOG4J_CONF" "-Dkafka.logs.dir=$DATA_DIR" ${KAFKA_OPTS:-})

    log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$PORT (controller $CONTROLLER_PORT), data dir $DATA_DIR"
    rm -f "$PID_FILE"
    # The child writes its own pid and then execs java, so the pid file holds the JVM's pid. setsid (where
    # present) puts it in its own session: Ctrl-C in the calling terminal and the caller exiting leave it alone.
    local launcher=(nohup)
    command -v setsid >/dev/null 2>&1 && launcher=(setsid nohup)
    # It also closes the `up` lock's fd, which the JVM must not inherit (it would hold the lock for its lifetime).
    # shellcheck disable=SC2016  # $$ and $@ are for the inner bash
    "${launcher[@]}" bash -c 'echo $$ >"$1"; [[ -n "$2" ]] && eval "exec $2>&-"; shift 2; exec "$@"' \
        kafka-launch "$PID_FILE" "${UP_LOCK_FD:-}" \
        "$java" "${jvm_opts[@]}" -cp "$LIBS_DIR/*" kafka.Kafka "$PROPS" \
        >"$CONSOLE_LOG" 2>&1 </dev/null &
    local launched=$!
    local _
    for _ in $(seq 1 50); do
        [[ -s "$PID_FILE" ]] && break
        sleep 0.1
    done
    pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
    [[ -n "$pid" ]] || { pid="$launched"; printf '%s\n' "$pid" >"$PID_FILE"; }

    local t0=$SECONDS
    wait_ready "$pid"
    log "ready after $((SECONDS - t0))s (pid $pid; logs: $SERVER_LOG)"
    printf 'KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:%s\n' "$PORT"
}

# ---------------------------------------------------------------------------------------------- down / status / logs

cmd_down() {
    local pid
    if ! pid="$(running_pid)"; then
        log "not running (data dir $DATA_DIR)"
        return 0
    fi
    log "stopping broker pid $pid (SIGTERM, up to ${STOP_TIMEOUT}s)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null; do
        if (( SECONDS >= deadline )); then
            log "still alive after ${STOP_TIMEOUT}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            local _
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            break
        fi
        sleep 0.2
    done
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    local pid
    if pid="$(running_pid 2>/dev/null)"; then
        echo "running: pid $pid, KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(running_port), data dir $DATA_DIR"
        return 0
    fi
    echo "not running (data dir $DATA_DIR)"
    return 3
}

cmd_logs() {
    local n="${1:-50}"
    [[ -f "$SERVER_LOG" ]] || die "no log yet at $SERVER_LOG"
    tail -n "$n" "$SERVER_LOG"
}

main() {
    local cmd="${1:-help}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        fetch) cmd_fetch "$@" ;;
        up | start) cmd_up "$@" ;;
        down | stop) cmd_down "$@" ;;
        status) cmd_status "$@" ;;
        logs) cmd_logs "$@" ;;
        help | -h | --help) usage ;;
        *) usage >&2; die "unknown command '$cmd'" ;;
    esac
}

main "$@"
