#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) on 127.0.0.1, no Docker.
#
#   deploy/local/kafka.sh up            fetch jars (once), format storage (once), start, wait until ready
#   deploy/local/kafka.sh start-only    same as up but without waiting for readiness
#   deploy/local/kafka.sh down [--purge] SIGTERM (then SIGKILL); --purge also deletes data and logs
#   deploy/local/kafka.sh kill9         SIGKILL the broker (fault-injection tests)
#   deploy/local/kafka.sh status        exit 0 when running and answering, 3 when stopped, 1 otherwise
#   deploy/local/kafka.sh wait          wait (bounded) until the broker answers
#   deploy/local/kafka.sh version       print the Kafka version used
#
# Env: CITYBASE_INFRA_DIR (default ~/.cache/citybase/infra), KAFKA_VERSION (default 4.4.0),
#      KAFKA_HEAP (default "-Xmx512m -Xms256m"), KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
#      KAFKA_START_TIMEOUT (seconds of startup without progress in the broker log, default 90),
#      KAFKA_START_MAX (seconds, hard bound on one startup, default 900; loading many partitions
#      after a crash can take minutes), KAFKA_STOP_TIMEOUT (seconds, default 30).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=kafka
# shellcheck source=deploy/local/lib/common.sh
. "$HERE/lib/common.sh"

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx512m -Xms256m}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_START_MAX="${KAFKA_START_MAX:-900}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
BOOTSTRAP="127.0.0.1:${KAFKA_PORT}"

POM="$HERE/kafka/pom.xml"
DIST_DIR="$CITYBASE_INFRA_DIR/kafka-$KAFKA_VERSION"   # jar cache, one per version
LIB_DIR="$DIST_DIR/lib"
STATE_DIR="$CITYBASE_INFRA_DIR/kafka"                 # config, data, logs, pid, probe (version independent)
CLASSES_DIR="$STATE_DIR/classes-$KAFKA_VERSION"       # compiled KafkaReady probe (state: --purge removes it)
DATA_DIR="$STATE_DIR/data"
LOGS_DIR="$STATE_DIR/logs"
CONF="$STATE_DIR/server.properties"
PID_FILE="$STATE_DIR/kafka.pid"
OUT_FILE="$LOGS_DIR/kafka.out"

usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

ensure_java() {
  if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
    apt_install openjdk-17-jdk-headless
  fi
  if ! command -v mvn >/dev/null 2>&1 && [ ! -f "$LIB_DIR/.complete" ]; then
    apt_install maven
  fi
}

pom_stamp() { printf '%s %s\n' "$KAFKA_VERSION" "$(sha256sum "$POM" | cut -d' ' -f1)"; }

# Jar cache: mvn copy-dependencies into $LIB_DIR, skipped when a complete copy for this pom exists.
ensure_jars() {
  if [ -f "$LIB_DIR/.complete" ] && [ "$(cat "$LIB_DIR/.complete")" = "$(pom_stamp)" ]; then
    return 0
  fi
  ensure_java
  mkdir -p "$DIST_DIR"
  local tmp="$DIST_DIR/lib.tmp.$$" mvn_log="$DIST_DIR/mvn.log"
  rm -rf "$tmp"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIB_DIR"
  if ! mvn -B -q -U -Dstyle.color=never -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
    rm -rf "$tmp"
    printf '%s\n' "----- mvn output ($mvn_log) -----" >&2
    sed 's/\x1b\[[0-9;]*m//g' "$mvn_log" >&2
    printf '%s\n' "---------------------------------" >&2
    die "mvn could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (is Maven Central reachable? another version: KAFKA_VERSION=...)"
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "mvn succeeded but no kafka_2.13 jar in $tmp"
  pom_stamp >"$tmp/.complete"
  rm -rf "$LIB_DIR" "$CLASSES_DIR"
  mv "$tmp" "$LIB_DIR"
}

# Compile the readiness probe once per jar cache.
ensure_probe() {
  local src="$HERE/kafka/KafkaReady.java"
  if [ -f "$CLASSES_DIR/KafkaReady.class" ] && [ "$CLASSES_DIR/KafkaReady.class" -nt "$src" ] \
     && [ "$CLASSES_DIR/KafkaReady.class" -nt "$LIB_DIR/.complete" ]; then
    return 0
  fi
  ensure_java
  mkdir -p "$CLASSES_DIR"
  javac -nowarn -cp "$LIB_DIR/*" -d "$CLASSES_DIR" "$src" >&2 || die "javac KafkaReady.java failed (classpath $LIB_DIR)"
}

jar_version() {
  local j
  j="$(find "$LIB_DIR" -maxdepth 1 -name 'kafka_2.13-*.jar' -print -quit 2>/dev/null || true)"
  [ -n "$j" ] || { echo "$KAFKA_VERSION"; return; }
  j="${j##*/kafka_2.13-}"
  echo "${j%.jar}"
}

tool_java() {
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j2.configurationFile="$HERE/kafka/log4j2-tools.xml" \
    -cp "$LIB_DIR/*:$CLASSES_DIR" "$@"
}

write_config() {
  mkdir -p "$DATA_DIR" "$LOGS_DIR"
  cat >"$CONF" <<EOF
# Written by deploy/local/kafka.sh; regenerated on every start. Single node, KRaft combined mode.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${DATA_DIR}
num.network.threads=2
num.io.threads=4
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# After a kill -9 the restarted broker must wait for its old session to expire before it can
# re-register (default 9 s); shorter keeps fault-test restarts quick on this single local node.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
log.retention.hours=168
log.segment.bytes=104857600
EOF
}

format_storage() {
  if [ -f "$DATA_DIR/meta.properties" ]; then
    return 0
  fi
  local cid
  if [ -s "$STATE_DIR/cluster.id" ]; then
    cid="$(cat "$STATE_DIR/cluster.id")"
  else
    local out
    out="$(tool_java kafka.tools.StorageTool random-uuid 2>&1)" \
      || { printf '%s\n' "$out" >&2; die "kafka.tools.StorageTool random-uuid failed"; }
    cid="$(printf '%s\n' "$out" | tail -n1)"
    [ -n "$cid" ] || die "kafka.tools.StorageTool random-uuid printed nothing"
    echo "$cid" >"$STATE_DIR/cluster.id"
  fi
  log "formatting $DATA_DIR (cluster.id=$cid, standalone KRaft quorum)"
  tool_java kafka.tools.StorageTool format --standalone -t "$cid" -c "$CONF" >"$LOGS_DIR/format.log" 2>&1 \
    || { cat "$LOGS_DIR/format.log" >&2; die "kafka storage format failed"; }
}

# Prints the broker pid when the pid file names a live kafka.Kafka process.
running_pid() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

probe() { # $1 = timeout seconds
  local t="$1"
  ensure_probe
  timeout $((t + 15)) java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j2.configurationFile="$HERE/kafka/log4j2-tools.xml" \
    -cp "$LIB_DIR/*:$CLASSES_DIR" KafkaReady "$BOOTSTRAP" $((t * 1000))
}

show_log_tail() {
  local f
  for f in "$OUT_FILE" "$LOGS_DIR/server.log"; do
    [ -s "$f" ] || continue
    printf '%s\n' "----- last lines of $f -----" >&2
    tail -n 40 "$f" >&2
  done
}

start_broker() {
  local pid
  if pid="$(running_pid)"; then
    log "broker already running (pid $pid)"
    return 0
  fi
  if port_open "$KAFKA_PORT"; then
    # Not ours (no live pid file) but something answers: reuse it when it is a Kafka broker.
    ensure_jars
    if probe 10 >/dev/null; then
      log "a Kafka broker not started by this script already answers on $BOOTSTRAP; reusing it"
      return 0
    fi
    die "127.0.0.1:$KAFKA_PORT is taken by something that is not a ready Kafka broker"
  fi
  if port_open "$KAFKA_CONTROLLER_PORT"; then
    die "controller port 127.0.0.1:$KAFKA_CONTROLLER_PORT is already in use"
  fi
  ensure_jars
  ensure_probe
  write_config
  format_storage
  rm -f "$PID_FILE"
  local heap
  read -r -a heap <<<"$KAFKA_HEAP"   # KAFKA_HEAP holds several JVM flags
  log "starting Kafka $(jar_version) (heap: $KAFKA_HEAP) on $BOOTSTRAP"
  # New session so the broker outlives this shell and its process group; the inner bash records
  # its own pid, then execs java, so the pid file names the JVM.
  # shellcheck disable=SC2016
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    java "${heap[@]}" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dkafka.logs.dir="$LOGS_DIR" \
    -Dlog4j2.configurationFile="$HERE/kafka/log4j2.xml" \
    -cp "$LIB_DIR/*" kafka.Kafka "$CONF" \
    >>"$OUT_FILE" 2>&1 </dev/null &
  for _ in $(seq 1 50); do
    [ -s "$PID_FILE" ] && break
    sleep 0.1
  done
  [ -s "$PID_FILE" ] || die "broker process did not start (see $OUT_FILE)"
}

# Bytes the broker has logged so far: growth means it is still making progress (loading logs).
# On a fresh state dir the broker has not created server.log yet: a missing file counts as 0 bytes
# (a bare `cat missing | wc -c` fails the pipeline under pipefail and ends the script silently).
log_bytes() {
  local f total=0 n
  for f in "$OUT_FILE" "$LOGS_DIR/server.log"; do
    [ -f "$f" ] || continue
    n="$(wc -c <"$f" 2>/dev/null || echo 0)"
    total=$((total + n))
  done
  echo "$total"
}

wait_ready() {
  local started now deadline hard pid size last_size
  started=$(date +%s)
  deadline=$((started + KAFKA_START_TIMEOUT))
  hard=$((started + KAFKA_START_MAX))
  last_size="$(log_bytes)"
  # Cheap TCP wait first, watching that the JVM stays alive, then one bounded metadata probe.
  # The deadline moves while the broker log grows: a broker loading thousands of partitions is
  # slow but not stuck; KAFKA_START_MAX bounds the whole wait.
  until port_open "$KAFKA_PORT"; do
    if ! pid="$(running_pid)"; then
      show_log_tail
      die "broker exited during startup (logs: $LOGS_DIR)"
    fi
    now=$(date +%s)
    size="$(log_bytes)"
    if [ "$size" != "$last_size" ]; then
      last_size="$size"
      deadline=$((now + KAFKA_START_TIMEOUT))
      [ "$deadline" -le "$hard" ] || deadline="$hard"
    fi
    if [ "$now" -ge "$deadline" ]; then
      show_log_tail
      if [ "$now" -ge "$hard" ]; then
        die "broker did not open $BOOTSTRAP within ${KAFKA_START_MAX}s (logs: $LOGS_DIR)"
      fi
      die "broker did not open $BOOTSTRAP and logged nothing for ${KAFKA_START_TIMEOUT}s (logs: $LOGS_DIR)"
    fi
    sleep 0.3
  done
  local left=$((KAFKA_START_TIMEOUT))
  local out
  if ! out="$(probe "$left")"; then
    show_log_tail
    die "broker on $BOOTSTRAP did not answer a metadata request within ${left}s of opening its port"
  fi
  log "$out (after $(($(date +%s) - started))s)"
}

cmd_up() {
  local t0 pid
  t0="$(now_s)"
  if pid="$(running_pid)" && port_open "$KAFKA_PORT"; then
    ensure_jars
    log "Kafka $(jar_version) already running (pid $pid) on $BOOTSTRAP"
    wait_ready
    log "up in $(elapsed "$t0")s"
    return 0
  fi
  start_broker
  wait_ready
  log "Kafka $(jar_version) up on $BOOTSTRAP (pid $(running_pid || echo external), data $DATA_DIR) in $(elapsed "$t0")s"
}

# A pid counts as gone once /proc has no entry, or only a zombie thread-group leader with no
# other threads is left (a SIGKILLed JVM's leader turns zombie while its threads still hold sockets).
alive() {
  local state threads
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [ -n "$state" ] || return 1
  if [ "$state" = Z ] || [ "$state" = X ]; then
    threads="$( { find "/proc/$1/task" -mindepth 1 -maxdepth 1 2>/dev/null || true; } | wc -l)"
    [ "$threads" -gt 1 ]
    return
  fi
  return 0
}

# Waits (bounded, $1 seconds) until neither Kafka port accepts connections.
wait_ports_closed() {
  local deadline=$(($(date +%s) + $1))
  while port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

stop_pid() { # $1 pid, $2 signal; waits (bounded) for the process to go
  local pid="$1" sig="$2" n
  kill "-$sig" "$pid" 2>/dev/null || true
  if [ "$sig" = KILL ]; then n=50; else n=$((KAFKA_STOP_TIMEOUT * 5)); fi
  for _ in $(seq 1 "$n"); do
    alive "$pid" || return 0
    sleep 0.2
  done
  return 1
}

cmd_down() {
  local purge=0 pid
  [ "${1:-}" = "--purge" ] && purge=1
  if pid="$(running_pid)"; then
    log "stopping broker (pid $pid)"
    if ! stop_pid "$pid" TERM; then
      warn "broker did not stop within ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
      stop_pid "$pid" KILL || die "could not kill pid $pid"
    fi
    wait_ports_closed 10 || warn "ports $KAFKA_PORT/$KAFKA_CONTROLLER_PORT still open after the broker stopped"
    log "stopped"
  else
    log "not running"
    if port_open "$KAFKA_PORT"; then
      warn "something still listens on 127.0.0.1:$KAFKA_PORT that this script did not start; left alone"
    fi
  fi
  rm -f "$PID_FILE"
  if [ "$purge" -eq 1 ]; then
    log "purging $STATE_DIR (data, logs, config, cluster id); jar cache kept"
    rm -rf "$STATE_DIR"
  fi
}

cmd_kill9() {
  local pid
  if pid="$(running_pid)"; then
    log "SIGKILL broker (pid $pid)"
    stop_pid "$pid" KILL || die "pid $pid survived SIGKILL"
    rm -f "$PID_FILE"
    wait_ports_closed 10 || warn "ports $KAFKA_PORT/$KAFKA_CONTROLLER_PORT still open after SIGKILL"
  else
    log "not running"
  fi
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    if [ -f "$LIB_DIR/.complete" ] && port_open "$KAFKA_PORT" && probe 5 >/dev/null 2>&1; then
      echo "kafka: running, ready (pid $pid, $BOOTSTRAP, version $(jar_version))"
      return 0
    fi
    echo "kafka: running, NOT ready (pid $pid, $BOOTSTRAP; logs: $LOGS_DIR)"
    return 1
  fi
  if port_open "$KAFKA_PORT"; then
    echo "kafka: not started by this script, but 127.0.0.1:$KAFKA_PORT is open"
    return 1
  fi
  echo "kafka: stopped"
  return 3
}

main() {
  local cmd="${1:-}"
  [ $# -gt 0 ] && shift
  case "$cmd" in
    up) cmd_up ;;
    start-only) start_broker ;;
    wait) ensure_jars; wait_ready ;;
    down|stop) cmd_down "$@" ;;
    kill9) cmd_kill9 ;;
    status) cmd_status ;;
    version) ensure_jars; jar_version ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
