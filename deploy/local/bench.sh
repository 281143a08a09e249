#!/usr/bin/env bash
# `make bench`: transfers per second and latency percentiles through NGINX, against the
# ceiling of the same SQL work run directly in PostgreSQL with pgbench.
#
# 1. starts the whole platform (release build) on a fresh database `payments_bench`;
# 2. closed loop: BENCH_CONCURRENCY clients send transfers back to back for BENCH_SECONDS
#    (new customers and cards, funded through the API) -> our maximum throughput;
# 3. once the outboxes have drained to Kafka, open loop at half that throughput -> latency
#    percentiles at half load (and at a quarter);
# 4. waits until every consumer group is at zero lag (from the services' own watchdogs) and
#    prints how long that took; prints each service's resident memory, stops the services;
# 5. pgbench runs deploy/local/bench/transfer.sql (the SQL of one transfer) with the same
#    concurrency -> the ceiling; prints our throughput as a fraction of it.
# Stop `make run` first: the services use their standard ports.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/platform.sh"

PROFILE="${PROFILE:-release}"
HTTP_PORT="${BENCH_HTTP_PORT:-8180}"
GRPC_PORT="${BENCH_GRPC_PORT:-8181}"
KAFKA_PORT="${BENCH_KAFKA_PORT:-9192}"
SMTP_PORT="${BENCH_SMTP_PORT:-1125}"
CONCURRENCY="${BENCH_CONCURRENCY:-32}"
SECONDS_PER_RUN="${BENCH_SECONDS:-20}"
CUSTOMERS="${BENCH_CUSTOMERS:-40}"
ADMIN_EMAIL="${ADMIN_EMAIL:-admin@payments.local}"
ADMIN_PASSWORD="${ADMIN_PASSWORD:-Demo-Platform-2026!}"
DATABASE_NAME=payments_bench
SEED_DEMO=0
export STATE_DIR="$STATE_DIR/bench"
# No per-request info logs, no rate limits: measure the platform, not its log volume.
export RUST_LOG="${RUST_LOG:-warn}" RATE_LIMIT_PER_MINUTE=100000000 \
    RATE_LIMIT_ANONYMOUS_PER_MINUTE=100000000 NGINX_RATE_PER_SECOND=100000 NGINX_RATE_BURST=100000

start_fresh_platform

API="http://127.0.0.1:$HTTP_PORT/api/v1"

# Waits until every service's outbox is published, so that a run does not measure the
# broker and the relays digesting the previous run's events.
drain_outboxes() {
    local started=$SECONDS unsent
    while :; do
        unsent="$(psql "$DATABASE_URL" -tAc "SELECT
            (SELECT count(*) FROM user_svc.outbox WHERE sent_at IS NULL) +
            (SELECT count(*) FROM role_svc.outbox WHERE sent_at IS NULL) +
            (SELECT count(*) FROM card_svc.outbox WHERE sent_at IS NULL) +
            (SELECT count(*) FROM saldo_svc.outbox WHERE sent_at IS NULL) +
            (SELECT count(*) FROM topup_svc.outbox WHERE sent_at IS NULL) +
            (SELECT count(*) FROM transfer_svc.outbox WHERE sent_at IS NULL) +
            (SELECT count(*) FROM withdraw_svc.outbox WHERE sent_at IS NULL)")"
        [ "$unsent" = 0 ] && break
        [ $((SECONDS - started)) -gt 300 ] && { say "outboxes still hold $unsent events after 300 s"; break; }
        sleep 1
    done
    say "outboxes drained to Kafka in $((SECONDS - started)) s"
    sleep 5 # and let autovacuum and checkpoints settle
}
RESULTS="$STATE_DIR/results.txt"
: >"$RESULTS"
say "closed loop: $CONCURRENCY concurrent clients for ${SECONDS_PER_RUN}s"
ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" "$BIN/bench" transfers --base "$API" --customers "$CUSTOMERS" --concurrency "$CONCURRENCY" \
    --duration "$SECONDS_PER_RUN" | tee -a "$RESULTS"
MAX_TPS="$(grep '^RESULT' "$RESULTS" | tail -1 | sed -E 's/.*throughput=([0-9.]+).*/\1/')"
HALF="$(awk -v t="$MAX_TPS" 'BEGIN { printf "%d", t / 2 }')"
drain_outboxes
say "open loop at half of that: $HALF transfers/s for ${SECONDS_PER_RUN}s"
ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" "$BIN/bench" transfers --base "$API" --customers "$CUSTOMERS" --rate "$HALF" \
    --duration "$SECONDS_PER_RUN" | tee -a "$RESULTS"
P99_HALF="$(grep '^RESULT' "$RESULTS" | tail -1 | sed -E 's/.*p99_ms=([0-9.]+).*/\1/')"
QUARTER="$(awk -v t="$MAX_TPS" 'BEGIN { printf "%d", t / 4 }')"
drain_outboxes
say "open loop at a quarter, for the shape of the latency curve: $QUARTER transfers/s for ${SECONDS_PER_RUN}s"
ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" "$BIN/bench" transfers --base "$API" --customers "$CUSTOMERS" --rate "$QUARTER" \
    --duration "$SECONDS_PER_RUN" | tee -a "$RESULTS"
P99_QUARTER="$(grep '^RESULT' "$RESULTS" | tail -1 | sed -E 's/.*p99_ms=([0-9.]+).*/\1/')"
LOAD_DONE=$SECONDS
say "waiting for every consumer group to reach zero lag"
if python3 "$ROOT/deploy/local/soak_sample.py" settle "$DATABASE_URL" 600; then
    ZERO_LAG="every consumer at zero lag $((SECONDS - LOAD_DONE)) s after the last run"
else
    ZERO_LAG="consumers NOT at zero lag 600 s after the last run"
fi
say "$ZERO_LAG"

say "resident memory and CPU time of each process after the runs"
cpu_seconds() { # pid -> CPU seconds used so far
    awk '{ printf "%.1f", ($14 + $15) / 100 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
for name in "${!SERVICE_PIDS[@]}"; do
    pid="${SERVICE_PIDS[$name]}"
    printf '  %-10s %6d MiB  %7s s CPU\n' "$name" "$(( $(ps -o rss= -p "$pid" || echo 0) / 1024 ))" "$(cpu_seconds "$pid")"
done | sort
printf '  %-10s %6d MiB  %7s s CPU\n' kafka "$(( $(ps -o rss= -p "$KAFKA_PID" || echo 0) / 1024 ))" "$(cpu_seconds "$KAFKA_PID")"
for proc in nginx postgres redis-server; do
    total=0
    for pid in $(pgrep -x "$proc" || true); do total="$(awk -v a="$total" -v b="$(cpu_seconds "$pid")" 'BEGIN { print a + b }')"; done
    printf '  %-10s %14s  %7s s CPU (all processes of that name)\n' "$proc" "" "$total"
done
RECONCILE="$("$BIN/saldo-service" reconcile 2>/dev/null | tail -1)"
say "ledger after the runs: $RECONCILE"

say "stopping the services; pgbench gets the machine to itself"
stop_platform
psql "$DATABASE_URL" -q <<SQL
DROP SCHEMA IF EXISTS bench_ceiling CASCADE;
CREATE SCHEMA bench_ceiling;
CREATE TABLE bench_ceiling.cards AS
  SELECT row_number() OVER (ORDER BY a.id)::int AS i, a.card_id, a.id AS account_id,
         a.owner_user_id AS user_id, c.number
  FROM saldo_svc.accounts a JOIN card_svc.cards c ON c.id = a.card_id
  WHERE a.kind = 'card' AND a.balance > 1000000;
CREATE UNIQUE INDEX ON bench_ceiling.cards (i);
SQL
NCARDS="$(psql "$DATABASE_URL" -tAc 'SELECT count(*) FROM bench_ceiling.cards')"
say "pgbench: the SQL of one transfer, $CONCURRENCY clients, ${SECONDS_PER_RUN}s, $NCARDS cards"
pgbench -n -c "$CONCURRENCY" -j 2 -T "$SECONDS_PER_RUN" -D ncards="$NCARDS" \
    -f "$ROOT/deploy/local/bench/transfer.sql" "$DATABASE_URL" | tee "$STATE_DIR/pgbench.txt"
CEILING="$(grep -E '^tps' "$STATE_DIR/pgbench.txt" | sed -E 's/tps = ([0-9.]+).*/\1/' | head -1)"

cat <<SUMMARY

== make bench: transfers through NGINX -> gateway -> transfer -> card + saldo -> PostgreSQL ==
  our maximum throughput      $MAX_TPS transfers/s   (closed loop, $CONCURRENCY clients)
  ceiling (pgbench, same SQL) $CEILING transactions/s
  fraction of the ceiling     $(awk -v a="$MAX_TPS" -v b="$CEILING" 'BEGIN { printf "%.2f", a / b }')   (target >= 0.5)
  p99 at half load ($HALF/s)   $P99_HALF ms   (target < 25 ms)
  p99 at quarter load ($QUARTER/s) $P99_QUARTER ms
  event consumers             $ZERO_LAG
  ledger                      $RECONCILE
SUMMARY
