#!/usr/bin/env bash
# `make run`: the whole platform as native processes on loopback, with demo logins.
#
# Installs what is missing (apt packages, Apache Kafka's jars from Maven Central), uses the
# PostgreSQL and Redis from DATABASE_URL / REDIS_URL when reachable or starts private ones under
# .state/, starts a single-node Kafka (KRaft, storage kept in .state/kafka), builds and starts every service,
# the gateway and NGINX, applies migrations, ensures the admin login, and prints the URL.
# Ctrl-C stops everything it started.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/platform.sh"

PROFILE="${PROFILE:-dev}"
HTTP_PORT="${HTTP_PORT:-8080}"
GRPC_PORT="${GRPC_PORT:-8081}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
SMTP_PORT="${SMTP_PORT:-1025}"
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

start_platform

cat >&2 <<MSG

  The payment platform is running.

    API (through NGINX)   http://127.0.0.1:$HTTP_PORT/api/v1
    API docs              http://127.0.0.1:$HTTP_PORT/api/v1/docs
    gRPC (through NGINX)  127.0.0.1:$GRPC_PORT   (grpcurl -plaintext -import-path proto ...)
    HTTPS, gRPC over TLS  https://localhost:$HTTPS_PORT/api/v1, localhost:$GRPCS_PORT  (CA: .state/tls/ca.crt)
    Kafka                 127.0.0.1:$KAFKA_PORT   (Apache Kafka $KAFKA_VERSION, KRaft)
    Logs                  .state/logs/

    Admin login           $ADMIN_EMAIL / $ADMIN_PASSWORD
    Demo logins           customer0001@demo.payments.local … customer0008@…, merchant001@… merchant003@…
                          password Demo-Customer-2026!
    Emails                .state/mail/new (local mail catcher on 127.0.0.1:$SMTP_PORT)

  Try:
    curl -s http://127.0.0.1:$HTTP_PORT/api/v1/auth/login -H 'content-type: application/json' \\
      -d '{"email":"$ADMIN_EMAIL","password":"$ADMIN_PASSWORD"}'

  Ctrl-C stops everything.
MSG

# Exit (and clean up) as soon as any process dies, or on Ctrl-C.
wait -n "${PIDS[@]}"
say "a process exited; see .state/logs/"
