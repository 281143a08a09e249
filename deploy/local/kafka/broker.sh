#!/usr/bin/env bash
# broker.sh PORT DIR [CONTROLLER_PORT] — Apache Kafka as a single-node KRaft broker+controller
# in the foreground (exec: the pid is the JVM's): clients on 127.0.0.1:PORT, the controller on
# CONTROLLER_PORT (default PORT+1), storage in DIR (formatted on first use, kept after).
# Used by `make run`, `make test` and the benchmarks (common.sh, start_kafka) and by tests that
# need a broker of their own to freeze or restart (testkit::KafkaBroker). KAFKA_LIBS: the jars
# (ensure_kafka fetches them); KAFKA_HEAP: heap size (default 512m).
set -euo pipefail

port="$1" dir="$2" controller="${3:-$(($1 + 1))}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${KAFKA_LIBS:?KAFKA_LIBS must name the directory of the Kafka jars}"
mkdir -p "$dir/data"
cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
num.io.threads=4
num.network.threads=2
PROPS
java=(java "-Xms${KAFKA_HEAP:-512m}" "-Xmx${KAFKA_HEAP:-512m}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=$here/log4j2.yaml" -cp "$KAFKA_LIBS/*")
if [ ! -f "$dir/data/meta.properties" ]; then
    "${java[@]}" kafka.tools.StorageTool format --ignore-formatted \
        -t "$("${java[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null)" \
        -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
        || { tail -5 "$dir/format.log" >&2; echo "formatting Kafka storage in $dir failed" >&2; exit 1; }
fi
exec "${java[@]}" kafka.Kafka "$dir/server.properties"
