#!/usr/bin/env bash
# `make bench-stats`: the latency of every statistics endpoint through NGINX, on the small and
# on the large demo data set, side by side.
#
# For each size (BENCH_STATS_SIZES, default "small large"):
# 1. starts the whole platform (release build) on its own database `payments_stats_<size>` and
#    its own broker storage, both kept in .state/bench-stats/<size> so that the large seed
#    (1 000 000 payments, through the gRPC APIs: long) is paid once; later runs reuse it;
# 2. `seed demo --size <size>` (nothing to do when the data is there already);
# 3. waits until every statistics consumer has counted every completed movement and posting
#    (the rollups equal their sources' row counts);
# 4. `bench stats`: each of the 80 statistics endpoints gets warm-up requests, then
#    BENCH_STATS_REQUESTS requests from one client (latency: p50/p99/max), then as many from
#    BENCH_STATS_CONCURRENCY clients (throughput, and p99 under that load);
# 5. prints the data set's size and each process's memory, stops the platform.
# Then one table compares the sizes' p99 per endpoint (target: < 10 ms, not growing).
#
# The email service is not started: it plays no part in statistics, and the large seed's
# million payment receipts would only compete for the CPU with the seed (its events wait in
# the broker, as for any stopped consumer). Stop `make run` first: the services use their
# standard ports.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/platform.sh"

PROFILE="${PROFILE:-release}"
HTTP_PORT="${BENCH_HTTP_PORT:-8180}"
GRPC_PORT="${BENCH_GRPC_PORT:-8181}"
KAFKA_PORT="${BENCH_KAFKA_PORT:-9192}"
SMTP_PORT="${BENCH_SMTP_PORT:-1125}"
SIZES="${BENCH_STATS_SIZES:-small large}"
REQUESTS="${BENCH_STATS_REQUESTS:-1000}"
CONCURRENCY="${BENCH_STATS_CONCURRENCY:-4}"
ADMIN_EMAIL="${ADMIN_EMAIL:-admin@payments.local}"
ADMIN_PASSWORD="${ADMIN_PASSWORD:-Demo-Platform-2026!}"
SEED_DEMO=0
SKIP_SERVICES="email"
BENCH_STATE="$STATE_DIR/bench-stats"
export RUST_LOG="${RUST_LOG:-warn}" RATE_LIMIT_PER_MINUTE=100000000 \
    RATE_LIMIT_ANONYMOUS_PER_MINUTE=100000000 NGINX_RATE_PER_SECOND=100000 NGINX_RATE_BURST=100000

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
    SERVICE_PIDS=()
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# Succeeds when every rollup has counted every completed row of its source.
rollups_caught_up() {
    local line status=0
    line="$(python3 "$ROOT/deploy/local/soak_sample.py" rollups "$DATABASE_URL")" || status=$?
    say "$line"
    return "$status"
}

PG_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
RESULTS="$BENCH_STATE/results.txt"
mkdir -p "$BENCH_STATE"
: >"$RESULTS"
for size in $SIZES; do
    export STATE_DIR="$BENCH_STATE/$size"
    mkdir -p "$STATE_DIR/logs"
    DATABASE_NAME="payments_stats_$size"
    # Each data set keeps its own secrets (its cards' CVV hashes depend on CARD_CVV_KEY).
    unset CARD_CVV_KEY CARD_PAN_KEY ONE_TIME_TOKEN_KEY WEBHOOK_SECRETS_KEY
    ensure_postgres "$PG_URL"
    say "== data set $size (database $DATABASE_NAME) =="
    start_platform
    if [ "${BENCH_STATS_SEED:-1}" = 1 ]; then
        seeded=$SECONDS
        ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" "$BIN/seed" demo --size "$size"
        say "seed: $((SECONDS - seeded)) s"
    else
        say "BENCH_STATS_SEED=0: measuring the data as it is"
    fi
    waited=$SECONDS
    until rollups_caught_up; do
        if [ $((SECONDS - waited)) -gt "${BENCH_STATS_CATCH_UP_SECONDS:-900}" ]; then
            # Events the consumers never got (say, the broker's storage was lost after a crash):
            # the rollups are recomputed from the source rows, as an operator would.
            say "rollups still behind after $((SECONDS - waited)) s: rebuild-stats from the source rows"
            for svc in topup withdraw transfer transaction saldo; do
                "$BIN/$svc-service" rebuild-stats
            done
            rollups_caught_up || die "rollups still differ from their sources after a rebuild"
            break
        fi
        sleep 5
    done
    psql "$DATABASE_URL" -c "VACUUM ANALYZE" >/dev/null
    psql "$DATABASE_URL" -P footer=off -c "SELECT
        (SELECT count(*) FROM transaction_svc.payments) AS payments,
        (SELECT count(*) FROM transaction_svc.refunds) AS refunds,
        (SELECT count(*) FROM topup_svc.movements) AS topups,
        (SELECT count(*) FROM withdraw_svc.movements) AS withdraws,
        (SELECT count(*) FROM transfer_svc.movements) AS transfers,
        (SELECT count(*) FROM saldo_svc.journal_lines) AS journal_lines,
        pg_size_pretty(pg_database_size(current_database())) AS database" | tee -a "$RESULTS"
    API="http://127.0.0.1:$HTTP_PORT/api/v1"
    ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" "$BIN/bench" stats --base "$API" \
        --label "$size" --requests "$REQUESTS" --concurrency "$CONCURRENCY" | tee -a "$RESULTS"
    say "resident memory after the run"
    for name in "${!SERVICE_PIDS[@]}"; do
        printf '  %-12s %6d MiB\n' "$name" "$(( $(ps -o rss= -p "${SERVICE_PIDS[$name]}" || echo 0) / 1024 ))"
    done | sort | tee -a "$RESULTS"
    say "ledger: $("$BIN/saldo-service" reconcile 2>/dev/null | tail -1)"
    cleanup
done

echo
echo "== make bench-stats: p99 per statistics endpoint through NGINX, ms (target < 10 with one client) =="
awk -v c="$CONCURRENCY" '
    /^RESULT / {
        delete f
        for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        l = f["label"]; e = f["endpoint"]
        if (!(l in seen)) { seen[l] = 1; labels[++nl] = l }
        if (!(e in known)) { known[e] = 1; order[++ne] = e }
        one[l, e] = f["p99_ms"]; many[l, e] = f["p99_c" c "_ms"]
        if (f["p99_ms"] + 0 > worst[l]) worst[l] = f["p99_ms"] + 0
        if (f["p99_c" c "_ms"] + 0 > worst_many[l]) worst_many[l] = f["p99_c" c "_ms"] + 0
    }
    END {
        printf "  %-38s", "endpoint"
        for (k = 1; k <= nl; k++) printf " %10s", labels[k]
        for (k = 1; k <= nl; k++) printf " %12s", labels[k] " c=" c
        print ""
        for (j = 1; j <= ne; j++) {
            printf "  %-38s", order[j]
            for (k = 1; k <= nl; k++) printf " %10s", one[labels[k], order[j]]
            for (k = 1; k <= nl; k++) printf " %12s", many[labels[k], order[j]]
            print ""
        }
        printf "  %-38s", "worst p99"
        for (k = 1; k <= nl; k++) printf " %10.2f", worst[labels[k]]
        for (k = 1; k <= nl; k++) printf " %12.2f", worst_many[labels[k]]
        print ""
    }' "$RESULTS" | tee "$BENCH_STATE/summary.txt"
