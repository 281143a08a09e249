#!/usr/bin/env bash
# `make run`: the whole platform as native processes on loopback, with demo logins.
#
# Installs what is missing (apt packages, tansu via cargo install --locked), uses the
# PostgreSQL and Redis from DATABASE_URL / REDIS_URL when reachable or starts private ones under
# .state/, starts tansu (SQLite storage, survives restarts), builds and starts every service,
# the gateway and NGINX, applies migrations, ensures the admin login, and prints the URL.
# Ctrl-C stops everything it started.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PROFILE="${PROFILE:-dev}"
HTTP_PORT="${HTTP_PORT:-8080}"
GRPC_PORT="${GRPC_PORT:-8081}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
ADMIN_EMAIL="${ADMIN_EMAIL:-admin@payments.local}"
ADMIN_PASSWORD="${ADMIN_PASSWORD:-Demo-Platform-2026!}"
DATABASE_NAME="${DATABASE_NAME:-payments}"

mkdir -p "$STATE_DIR/logs"
PIDS=()
cleanup() {
    trap - INT TERM EXIT
    say "stopping"
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

ensure_commands
ensure_tansu
ensure_postgres "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
ensure_redis "${REDIS_URL:-redis://127.0.0.1:6379/0}"

# The platform's database on that server.
psql "$PG_ADMIN_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE_NAME'" | grep -q 1 \
    || psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $DATABASE_NAME" >/dev/null
export DATABASE_URL="${PG_ADMIN_URL%/*}/$DATABASE_NAME"
export REDIS_URL="$REDIS_READY_URL"

# A JWT secret generated once and kept in .state (never committed).
if [ -z "${JWT_SECRET:-}" ]; then
    [ -s "$STATE_DIR/jwt_secret" ] || head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$STATE_DIR/jwt_secret"
    JWT_SECRET="$(cat "$STATE_DIR/jwt_secret")"
fi
export JWT_SECRET
export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export LOG_FORMAT="${LOG_FORMAT:-text}"

say "building ($PROFILE profile)"
cargo build --profile "$PROFILE" --bins >&2
BIN="$ROOT/target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"

say "starting tansu on 127.0.0.1:$KAFKA_PORT (storage $STATE_DIR/tansu.db)"
start_tansu "$KAFKA_PORT" "$STATE_DIR/tansu.db" "$STATE_DIR/logs/tansu.log"
PIDS+=("$TANSU_PID")

start() { # name binary admin-port env...
    local name="$1" bin="$2" admin="$3"
    shift 3
    env "$@" ADMIN_ADDR="127.0.0.1:$admin" "$BIN/$bin" >"$STATE_DIR/logs/$name.log" 2>&1 &
    PIDS+=("$!")
    wait_http "http://127.0.0.1:$admin/readyz" "$name" 90
    say "$name ready (log: .state/logs/$name.log)"
}

start role role-service 9102 GRPC_ADDR=127.0.0.1:50052 USER_SERVICE_URL=http://127.0.0.1:50051
start user user-service 9101 GRPC_ADDR=127.0.0.1:50051 ROLE_SERVICE_URL=http://127.0.0.1:50052
start gateway gateway 9100 HTTP_ADDR=127.0.0.1:8000 \
    USER_SERVICE_URL=http://127.0.0.1:50051 ROLE_SERVICE_URL=http://127.0.0.1:50052

say "ensuring the admin login"
ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    USER_SERVICE_URL=http://127.0.0.1:50051 ROLE_SERVICE_URL=http://127.0.0.1:50052 "$BIN/seed" admin >&2

export NGINX_HTTP_PORT="$HTTP_PORT" NGINX_GRPC_PORT="$GRPC_PORT" NGINX_WORKER_PROCESSES=auto \
    NGINX_PID_FILE="$STATE_DIR/nginx/nginx.pid" NGINX_ERROR_LOG="$STATE_DIR/logs/nginx-error.log" \
    NGINX_ACCESS_LOG="$STATE_DIR/logs/nginx-access.log" NGINX_RATE_PER_SECOND=200 NGINX_RATE_BURST=400 \
    GATEWAY_UPSTREAM=127.0.0.1:8000 USER_GRPC_UPSTREAM=127.0.0.1:50051 ROLE_GRPC_UPSTREAM=127.0.0.1:50052
mkdir -p "$STATE_DIR/nginx"
render_nginx "$STATE_DIR/nginx/nginx.conf"
"$NGINX_BIN" -p "$STATE_DIR/nginx" -c "$STATE_DIR/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=("$!")
wait_port 127.0.0.1 "$HTTP_PORT" "nginx"

cat >&2 <<MSG

  The payment platform is running.

    API (through NGINX)   http://127.0.0.1:$HTTP_PORT/api/v1
    API docs              http://127.0.0.1:$HTTP_PORT/api/v1/docs
    gRPC (through NGINX)  127.0.0.1:$GRPC_PORT   (grpcurl -plaintext -import-path proto ...)
    Kafka (tansu)         127.0.0.1:$KAFKA_PORT
    Logs                  .state/logs/

    Admin login           $ADMIN_EMAIL / $ADMIN_PASSWORD

  Try:
    curl -s http://127.0.0.1:$HTTP_PORT/api/v1/auth/login -H 'content-type: application/json' \\
      -d '{"email":"$ADMIN_EMAIL","password":"$ADMIN_PASSWORD"}'

  Ctrl-C stops everything.
MSG

# Exit (and clean up) as soon as any process dies, or on Ctrl-C.
wait -n "${PIDS[@]}"
say "a process exited; see .state/logs/"
