#!/usr/bin/env bash
# `make soak`: the event backbone under sustained load, with a broker restart in the middle.
#
# 1. starts the whole platform (PROFILE, default release) on a fresh database `payments_soak`
#    and a fresh Kafka;
# 2. runs the demo seed (SOAK_SIZE, default small; `large` is ≈ 1.1 M operations; stopped after
#    SOAK_SEED_SECONDS if set) and, beside it, SOAK_RATE transfers/s through NGINX for
#    SOAK_SECONDS;
# 3. halfway through SOAK_SECONDS restarts the broker (SIGTERM, then start again on the same
#    storage);
# 4. after the load, waits until every outbox is drained and every consumer group is at zero
#    lag;
# 5. prints, from samples taken every 5 s (deploy/local/soak_sample.py): events produced per
#    topic and consumed per group (total and per second), peak and final lag per group, the
#    broker's CPU time and peak RSS, and how long the lag took to return to zero; then
#    reconciles the ledger;
# 6. checks what the events built against the rows they came from: every card's ledger
#    account, every user's role and account email, every completed movement and payment and
#    every journal line counted once in the statistics, balances equal to the statistics'
#    sums, every claimed email sent (soak_sample.py books; a mismatch exits non-zero).
# The figures are not asserted: they go in README.
# SOAK_RESUME=1 starts on the last soak's database and broker storage instead of fresh ones
# and lets the seed finish what it had not (a large seed longer than one sitting, or cut by
# SOAK_SEED_SECONDS or a crash); steps 2–6 as above.
# Stop `make run` first: the services use their standard admin ports.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/platform.sh"

PROFILE="${PROFILE:-release}"
HTTP_PORT="${SOAK_HTTP_PORT:-8380}"
GRPC_PORT="${SOAK_GRPC_PORT:-8381}"
KAFKA_PORT="${SOAK_KAFKA_PORT:-9392}"
SMTP_PORT="${SOAK_SMTP_PORT:-1325}"
SIZE="${SOAK_SIZE:-small}"
RATE="${SOAK_RATE:-50}"
DURATION="${SOAK_SECONDS:-120}"
# Stop the seed after this many seconds (0: let it finish). For a slice of the large seed when
# its ≈ 1.1 M operations do not fit the time at hand; a later `seed demo --size large` against
# the same database resumes it.
SEED_LIMIT="${SOAK_SEED_SECONDS:-0}"
ADMIN_EMAIL="${ADMIN_EMAIL:-admin@payments.local}"
ADMIN_PASSWORD="${ADMIN_PASSWORD:-Demo-Platform-2026!}"
DATABASE_NAME=payments_soak
SEED_DEMO=0
export STATE_DIR="$STATE_DIR/soak"
export RUST_LOG="${RUST_LOG:-warn}" RATE_LIMIT_PER_MINUTE=100000000 \
    RATE_LIMIT_ANONYMOUS_PER_MINUTE=100000000 NGINX_RATE_PER_SECOND=100000 NGINX_RATE_BURST=100000

if [ "${SOAK_RESUME:-0}" = 1 ]; then
    # The database and broker storage of the last soak, as it left them (stopped, or killed
    # with the machine): the platform restarts on them, relays what was never sent, every
    # group resumes from its committed offsets, and the seed below goes on with the months it
    # had not finished. The final checks then cover both runs.
    [ -d "$STATE_DIR/kafka" ] || die "SOAK_RESUME=1: no earlier soak under ${STATE_DIR#"$ROOT"/}"
    start_measured_platform
    if [ -s "$STATE_DIR/samples.jsonl" ]; then
        mv "$STATE_DIR/samples.jsonl" "$STATE_DIR/samples.$(date +%s).jsonl"
    fi
else
    start_fresh_platform
fi
API="http://127.0.0.1:$HTTP_PORT/api/v1"
SAMPLES="$STATE_DIR/samples.jsonl"
: >"$SAMPLES"

echo "$KAFKA_PID" >"$STATE_DIR/kafka.pid"
python3 "$ROOT/deploy/local/soak_sample.py" sample "$DATABASE_URL" "$SAMPLES" "$STATE_DIR/kafka.pid" &
SAMPLER=$!
PIDS+=("$SAMPLER")
T0=$SECONDS

say "load: demo seed ($SIZE) and $RATE transfers/s for ${DURATION}s, the broker restarted at $((DURATION / 2))s"
ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" "$BIN/seed" demo --size "$SIZE" \
    >"$STATE_DIR/logs/seed.out" 2>&1 &
SEED=$!
if [ "$SEED_LIMIT" -gt 0 ]; then
    (sleep "$SEED_LIMIT" && kill "$SEED" 2>/dev/null) &
    PIDS+=("$!")
fi
ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" "$BIN/bench" transfers --base "$API" \
    --customers 40 --rate "$RATE" --duration "$DURATION" >"$STATE_DIR/logs/transfers.out" 2>&1 &
TRAFFIC=$!

sleep $((DURATION / 2))
say "restarting the broker (SIGTERM, then start on the same storage)"
kill "$KAFKA_PID"
wait "$KAFKA_PID" 2>/dev/null || true
RESTART_AT=$((SECONDS - T0))
start_kafka "$KAFKA_PORT" "$STATE_DIR/kafka" "$STATE_DIR/logs/kafka-2.log"
PIDS+=("$KAFKA_PID")
echo "$KAFKA_PID" >"$STATE_DIR/kafka.pid"
say "broker back after $((SECONDS - T0 - RESTART_AT)) s"

wait "$TRAFFIC" || say "the transfer load reported an error (see $STATE_DIR/logs/transfers.out)"
if ! wait "$SEED"; then
    [ "$SEED_LIMIT" -gt 0 ] && [ $((SECONDS - T0)) -ge "$SEED_LIMIT" ] \
        || die "the seed failed (see $STATE_DIR/logs/seed.out)"
    say "the seed was stopped after SOAK_SEED_SECONDS=$SEED_LIMIT (a slice of it)"
fi
LOAD_END=$((SECONDS - T0))
say "load over after ${LOAD_END}s; waiting for zero lag"
# Not at zero after 10 minutes: the report still shows where every group stands.
if python3 "$ROOT/deploy/local/soak_sample.py" settle "$DATABASE_URL" 600; then
    SETTLED=$((SECONDS - T0))
else
    SETTLED=-1
    say "lag did not return to zero within 600 s of the load's end (see the final lags)"
fi
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true

grep '^RESULT' "$STATE_DIR/logs/transfers.out" || true
tail -1 "$STATE_DIR/logs/seed.out"
python3 "$ROOT/deploy/local/soak_sample.py" report "$SAMPLES" "$LOAD_END" "$SETTLED" "$RESTART_AT"
say "ledger: $("$BIN/saldo-service" reconcile 2>/dev/null | tail -1)"
# Correctness, unlike speed, is checked: what the consumers built from events must equal the
# rows the events came from (lag at zero first; a failure exits non-zero).
python3 "$ROOT/deploy/local/soak_sample.py" books "$DATABASE_URL"
