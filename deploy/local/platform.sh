# start_platform: everything `make run` starts, as native processes on loopback. Sourced by
# run.sh and bench.sh after common.sh. Reads PROFILE, HTTP_PORT, GRPC_PORT, KAFKA_PORT,
# DATABASE_NAME, SMTP_PORT, SANDPAY_PORT, KILAT_PORT, ADMIN_EMAIL, ADMIN_PASSWORD, NGINX_RATE_PER_SECOND/BURST and
# RATE_LIMIT_PER_MINUTE, SKIP_SERVICES (names not to start) and REPLICAS (of every service and
# the gateway, default 1); appends every started process to PIDS and sets BIN.

declare -A SERVICE_PIDS=()

# state_secret NAME FILE — exports NAME: its value if set, else the random secret kept in
# $STATE_DIR/FILE (generated the first time).
state_secret() {
    local name="$1" file="$STATE_DIR/$2"
    if [ -z "${!name:-}" ]; then
        [ -s "$file" ] || head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$file"
        printf -v "$name" '%s' "$(cat "$file")"
    fi
    export "${name?}"
}

start_platform() {
    ensure_commands
    ensure_kafka
    ensure_python_tools aiosmtpd=aiosmtpd
    ensure_postgres "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
    ensure_redis "${REDIS_URL:-redis://127.0.0.1:6379/0}"

    # The platform's database on that server.
    psql "$PG_ADMIN_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE_NAME'" | grep -q 1 \
        || psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $DATABASE_NAME" >/dev/null
    export DATABASE_URL="${PG_ADMIN_URL%/*}/$DATABASE_NAME"
    # Each service connects as its own role, owning its schema and nothing else (the admin
    # URL above is for the tools: seeders, benchmarks).
    local hostport="${PG_ADMIN_URL#*@}"
    hostport="${hostport%%/*}"
    declare -gA SERVICE_DATABASE_URL=()
    while read -r role password; do
        SERVICE_DATABASE_URL["$role"]="postgres://$role:$password@$hostport/$DATABASE_NAME"
    done < <(bash "$ROOT/deploy/local/service-roles.sh" "$PG_ADMIN_URL" "$DATABASE_NAME" "$STATE_DIR/db-roles")
    export REDIS_URL="$REDIS_READY_URL"

    # Secrets generated once and kept in .state (never committed), unless set: a token
    # signing key per workload (each gets only its own, below; the gateway none), the card
    # service's CVV and card-number keys, and the key the user and email services derive
    # one-time link tokens with. The scripts' own tools (seed, bench, one-off commands) sign
    # as the seeder.
    jwt_keys "$STATE_DIR/jwt-keys"
    JWT_KEYS_DIR="$STATE_DIR/jwt-keys"
    export JWT_KEY_ID=seeder JWT_SIGNING_KEY="$(cat "$JWT_KEYS_DIR/seeder.seed")"
    state_secret CARD_CVV_KEY card_cvv_key
    state_secret CARD_PAN_KEY card_pan_key
    state_secret ONE_TIME_TOKEN_KEY one_time_token_key
    state_secret WEBHOOK_SECRETS_KEY webhook_secrets_key
    export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
    export LOG_FORMAT="${LOG_FORMAT:-text}"

    say "building ($PROFILE profile)"
    cargo build --profile "$PROFILE" --bins >&2
    BIN="$ROOT/target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"

    say "starting Apache Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (storage ${STATE_DIR#"$ROOT"/}/kafka)"
    start_kafka "$KAFKA_PORT" "$STATE_DIR/kafka" "$STATE_DIR/logs/kafka.log"
    PIDS+=("$KAFKA_PID")

    # A local mail catcher: every email the platform sends lands in .state/mail/new (Maildir).
    if port_open 127.0.0.1 "$SMTP_PORT"; then
        say "using the SMTP server already on 127.0.0.1:$SMTP_PORT"
    else
        say "starting a mail catcher on 127.0.0.1:$SMTP_PORT (emails land in ${STATE_DIR#"$ROOT"/}/mail/new)"
        "${PAYMENTS_PYTHON:-python3}" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" \
            -c aiosmtpd.handlers.Mailbox "$STATE_DIR/mail" >"$STATE_DIR/logs/smtp.log" 2>&1 &
        PIDS+=("$!")
        wait_port 127.0.0.1 "$SMTP_PORT" "mail catcher"
    fi
    export SMTP_HOST=127.0.0.1 SMTP_PORT SMTP_TLS=none
    export EMAIL_LINK_BASE_URL="${EMAIL_LINK_BASE_URL:-http://127.0.0.1:$HTTP_PORT}"

    # Two payment providers (the sandbox provider, each its own process, state in
    # .state/sandbox): every top-up is a charge at sandpay, or at kilat when sandpay cannot
    # take it. kilat speaks the other provider API (`orders`), through the other adapter.
    # Their API keys and webhook secrets are generated once into .state; each database
    # (DATABASE_NAME) has its own providers' state, as each installation has its own
    # provider accounts (so a reconciliation never meets another database's operations).
    : "${SANDPAY_PORT:=7070}" "${KILAT_PORT:=7071}"
    mkdir -p "$STATE_DIR/sandbox"
    state_secret PROVIDER_SANDPAY_API_KEY sandpay_api_key
    state_secret PROVIDER_SANDPAY_WEBHOOK_SECRET sandpay_webhook_secret
    state_secret PROVIDER_KILAT_API_KEY kilat_api_key
    state_secret PROVIDER_KILAT_WEBHOOK_SECRET kilat_webhook_secret
    local provider port upper dialect
    for provider in sandpay:$SANDPAY_PORT:sandbox kilat:$KILAT_PORT:orders; do
        IFS=: read -r provider port dialect <<<"$provider"
        upper="${provider^^}"
        local key_var="PROVIDER_${upper}_API_KEY" secret_var="PROVIDER_${upper}_WEBHOOK_SECRET"
        SANDBOX_NAME="$provider" SANDBOX_LISTEN="127.0.0.1:$port" SANDBOX_API_KEY="${!key_var}" \
            SANDBOX_WEBHOOK_SECRET="${!secret_var}" SANDBOX_STATE_FILE="$STATE_DIR/sandbox/$DATABASE_NAME-$provider.jsonl" \
            SANDBOX_DECIDE_AFTER_MS="${SANDBOX_DECIDE_AFTER_MS:-50}" SANDBOX_DIALECT="$dialect" \
            "$BIN/sandbox-provider" >"$STATE_DIR/logs/sandbox-$provider.log" 2>&1 &
        PIDS+=("$!")
        wait_http "http://127.0.0.1:$port/healthz" "sandbox provider $provider" 30 "$!" "$STATE_DIR/logs/sandbox-$provider.log"
        export "PROVIDER_${upper}_URL=http://127.0.0.1:$port" "PROVIDER_${upper}_API=$dialect"
    done
    export PROVIDERS=sandpay,kilat PROVIDER_CALLBACK_BASE_URL="http://127.0.0.1:$HTTP_PORT"
    # gopay goes to kilat first, so both provider APIs carry traffic; every other method to
    # sandpay first.
    export TOPUP_PROVIDER_ROUTES="${TOPUP_PROVIDER_ROUTES:-gopay=kilat,sandpay}" \
        WITHDRAW_PROVIDER_ROUTES="${WITHDRAW_PROVIDER_ROUTES:-gopay=kilat,sandpay}"
    say "payment providers: sandpay (127.0.0.1:$SANDPAY_PORT) and kilat (127.0.0.1:$KILAT_PORT), sandbox processes"

    start() { # name binary admin-port env... (REPLICA: which replica, 0 first)
        local name="$1" bin="$2" admin="$3"
        shift 3
        [ "${REPLICA:-0}" -gt 0 ] && name="$name-$REPLICA"
        case " ${SKIP_SERVICES:-} " in *" $name "*) say "not starting $name (SKIP_SERVICES)"; return ;; esac
        # Only its own secrets: its database role, its own token key (none for a workload
        # that signs nothing, like the gateway), and the keys of its job; everyone else's are
        # taken out of its environment.
        local own=() signing_key=""
        [ -n "${SERVICE_DATABASE_URL[${name%-*}_svc]:-}" ] && own+=(DATABASE_URL="${SERVICE_DATABASE_URL[${name%-*}_svc]}")
        [ -s "$JWT_KEYS_DIR/$bin.seed" ] && signing_key="$(cat "$JWT_KEYS_DIR/$bin.seed")"
        case "${name%-*}" in
            card) own+=(CARD_CVV_KEY="$CARD_CVV_KEY" CARD_PAN_KEY="$CARD_PAN_KEY") ;;
            user | email) own+=(ONE_TIME_TOKEN_KEY="$ONE_TIME_TOKEN_KEY") ;;
            merchant) own+=(WEBHOOK_SECRETS_KEY="$WEBHOOK_SECRETS_KEY") ;;
            topup | withdraw)
                own+=(PROVIDER_SANDPAY_API_KEY="$PROVIDER_SANDPAY_API_KEY"
                    PROVIDER_SANDPAY_WEBHOOK_SECRET="$PROVIDER_SANDPAY_WEBHOOK_SECRET"
                    PROVIDER_KILAT_API_KEY="$PROVIDER_KILAT_API_KEY"
                    PROVIDER_KILAT_WEBHOOK_SECRET="$PROVIDER_KILAT_WEBHOOK_SECRET") ;;
        esac
        env -u DATABASE_URL -u CARD_CVV_KEY -u CARD_PAN_KEY -u ONE_TIME_TOKEN_KEY -u WEBHOOK_SECRETS_KEY \
            -u PROVIDER_SANDPAY_API_KEY -u PROVIDER_SANDPAY_WEBHOOK_SECRET \
            -u PROVIDER_KILAT_API_KEY -u PROVIDER_KILAT_WEBHOOK_SECRET \
            "$@" "${own[@]}" JWT_KEY_ID="$bin" JWT_SIGNING_KEY="$signing_key" \
            ADMIN_ADDR="127.0.0.1:$admin" "$BIN/$bin" >"$STATE_DIR/logs/$name.log" 2>&1 &
        PIDS+=("$!")
        SERVICE_PIDS["$name"]="$!"
        wait_http "http://127.0.0.1:$admin/readyz" "$name" 90 "$!" "$STATE_DIR/logs/$name.log"
        say "$name ready (log: ${STATE_DIR#"$ROOT"/}/logs/$name.log)"
    }

    # gRPC ports: the manifests' 50051... lie in Linux's ephemeral port range (32768-60999),
    # where any outgoing connection (to PostgreSQL, Kafka, another service) may hold one just
    # when a service binds it. The local run uses GRPC_PORT_BASE+1... (10051...) instead,
    # below that range; the README's table lists both.
    # REPLICAS=n (default 1) runs n replicas of every service and of the gateway, sharing the
    # database, the broker's topics and consumer groups, Redis and the providers; replica r
    # listens on the ports of replica 0 plus 100·r (gRPC), 20·r (admin) and r (the gateway),
    # calls its own replica of the others, and NGINX spreads the edge over all of them.
    local b0="${GRPC_PORT_BASE:-10050}" replicas="${REPLICAS:-1}" r b a
    # Every replica has its own pools: smaller ones, so n replicas fit PostgreSQL's limit.
    : "${DATABASE_MAX_CONNECTIONS:=$((replicas > 1 ? 6 : 10))}"
    export DATABASE_MAX_CONNECTIONS
    local upstreams=(USER ROLE CARD SALDO TOPUP TRANSFER WITHDRAW MERCHANT TRANSACTION)
    declare -A UPSTREAM=()
    for ((r = 0; r < replicas; r++)); do
        b=$((b0 + 100 * r)) a=$((20 * r))
        export USER_SERVICE_URL=http://127.0.0.1:$((b + 1)) ROLE_SERVICE_URL=http://127.0.0.1:$((b + 2)) \
            CARD_SERVICE_URL=http://127.0.0.1:$((b + 3)) SALDO_SERVICE_URL=http://127.0.0.1:$((b + 4)) \
            TOPUP_SERVICE_URL=http://127.0.0.1:$((b + 5)) TRANSFER_SERVICE_URL=http://127.0.0.1:$((b + 6)) \
            WITHDRAW_SERVICE_URL=http://127.0.0.1:$((b + 7)) MERCHANT_SERVICE_URL=http://127.0.0.1:$((b + 8)) \
            TRANSACTION_SERVICE_URL=http://127.0.0.1:$((b + 9))
        export REPLICA="$r"
        start role role-service $((9102 + a)) GRPC_ADDR=127.0.0.1:$((b + 2))
        start user user-service $((9101 + a)) GRPC_ADDR=127.0.0.1:$((b + 1))
        start saldo saldo-service $((9104 + a)) GRPC_ADDR=127.0.0.1:$((b + 4))
        start card card-service $((9103 + a)) GRPC_ADDR=127.0.0.1:$((b + 3))
        start topup topup-service $((9105 + a)) GRPC_ADDR=127.0.0.1:$((b + 5))
        start transfer transfer-service $((9106 + a)) GRPC_ADDR=127.0.0.1:$((b + 6))
        start withdraw withdraw-service $((9107 + a)) GRPC_ADDR=127.0.0.1:$((b + 7))
        # A webhook receiver on this machine (http://127.0.0.1:…) may be registered locally.
        start merchant merchant-service $((9108 + a)) GRPC_ADDR=127.0.0.1:$((b + 8)) \
            WEBHOOK_ALLOW_HOSTS="${WEBHOOK_ALLOW_HOSTS:-127.0.0.1}"
        start transaction transaction-service $((9109 + a)) GRPC_ADDR=127.0.0.1:$((b + 9))
        start email email-service $((9110 + a)) GRPC_ADDR=127.0.0.1:$((b + 10))
        start gateway gateway $((9100 + a)) HTTP_ADDR=127.0.0.1:$((8000 + r))
        # `server a; server b` in each NGINX upstream.
        local i=1 sep=""
        [ "$r" -gt 0 ] && sep="; server "
        for name in "${upstreams[@]}"; do
            UPSTREAM[$name]+="$sep""127.0.0.1:$((b + i))"
            i=$((i + 1))
        done
        UPSTREAM[GATEWAY]+="$sep""127.0.0.1:$((8000 + r))"
    done
    unset REPLICA
    b="$b0"

    # TLS on every interface with a local certificate (its CA: .state/tls/ca.crt); the plain
    # ports stay on loopback for the quick-start.
    bash "$ROOT/deploy/local/tls-cert.sh" "$STATE_DIR/tls"
    # 8080/8081 → 8443/8444 (and alike for the bench and soak ports).
    : "${HTTPS_PORT:=$((HTTP_PORT + 363))}" "${GRPCS_PORT:=$((GRPC_PORT + 363))}"
    export NGINX_HTTP_PORT="127.0.0.1:$HTTP_PORT" NGINX_GRPC_PORT="127.0.0.1:$GRPC_PORT" \
        NGINX_HTTPS_PORT="$HTTPS_PORT" NGINX_GRPCS_PORT="$GRPCS_PORT" \
        NGINX_TLS_CERT="$STATE_DIR/tls/tls.crt" NGINX_TLS_KEY="$STATE_DIR/tls/tls.key" NGINX_WORKER_PROCESSES=auto \
        NGINX_PID_FILE="$STATE_DIR/nginx/nginx.pid" NGINX_ERROR_LOG="$STATE_DIR/logs/nginx-error.log" \
        NGINX_ACCESS_LOG="$STATE_DIR/logs/nginx-access.log" NGINX_RATE_PER_SECOND="${NGINX_RATE_PER_SECOND:-200}" NGINX_RATE_BURST="${NGINX_RATE_BURST:-400}" \
        GATEWAY_UPSTREAM="${UPSTREAM[GATEWAY]}" USER_GRPC_UPSTREAM="${UPSTREAM[USER]}" \
        ROLE_GRPC_UPSTREAM="${UPSTREAM[ROLE]}" CARD_GRPC_UPSTREAM="${UPSTREAM[CARD]}" \
        SALDO_GRPC_UPSTREAM="${UPSTREAM[SALDO]}" TOPUP_GRPC_UPSTREAM="${UPSTREAM[TOPUP]}" \
        TRANSFER_GRPC_UPSTREAM="${UPSTREAM[TRANSFER]}" WITHDRAW_GRPC_UPSTREAM="${UPSTREAM[WITHDRAW]}" \
        MERCHANT_GRPC_UPSTREAM="${UPSTREAM[MERCHANT]}" TRANSACTION_GRPC_UPSTREAM="${UPSTREAM[TRANSACTION]}"
    mkdir -p "$STATE_DIR/nginx"
    render_nginx "$STATE_DIR/nginx/nginx.conf"
    "$NGINX_BIN" -p "$STATE_DIR/nginx" -c "$STATE_DIR/nginx/nginx.conf" -g 'daemon off;' &
    PIDS+=("$!")
    wait_port 127.0.0.1 "$HTTP_PORT" "nginx"

    # After NGINX: the payment providers' callbacks reach the platform through it.
    # A local run: the documented demo and admin passwords are allowed here (nowhere else).
    export ALLOW_DEMO_CREDENTIALS=true
    if [ "${SEED_DEMO:-1}" = 1 ]; then
        say "seeding the admin login and the small demo data set (once; later runs skip it)"
        ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" "$BIN/seed" demo --size small >&2
    else
        say "ensuring the admin login"
        ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" "$BIN/seed" admin >&2
    fi
}

# stop_platform — stops every process in PIDS (bench and soak runs; run.sh has its own).
stop_platform() {
    trap - INT TERM EXIT
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

# start_measured_platform — for measurements: start_platform on the database DATABASE_NAME
# and the Kafka storage under STATE_DIR as they are; everything stops when the script ends.
start_measured_platform() {
    mkdir -p "$STATE_DIR/logs"
    PIDS=()
    trap stop_platform INT TERM EXIT
    start_platform
}

# start_fresh_platform — start_measured_platform on a dropped and recreated database
# DATABASE_NAME and fresh Kafka storage.
start_fresh_platform() {
    # A fresh database has no movements: the providers' records of an earlier run would all
    # be reconciliation exceptions (missing on our side), so they start afresh too.
    rm -rf "$STATE_DIR/kafka" "$STATE_DIR/mail" "$STATE_DIR/sandbox"
    ensure_postgres "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DATABASE_NAME" >/dev/null
    start_measured_platform
}
