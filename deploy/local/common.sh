# Shared helpers of the local runner (run.sh) and the test command (test.sh).
# Sourced, not executed. Everything it installs or starts is reported on stderr.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${STATE_DIR:-$ROOT/.state}"
TOOLS_DIR="${PAYMENTS_TOOLS_DIR:-$HOME/.cache/payments-platform/tools}"
KAFKA_VERSION="4.4.0"
KAFKA_LIBS="$TOOLS_DIR/kafka-$KAFKA_VERSION/libs"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root (or sudo) to run: $*"; fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install these yourself: $*"
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    say "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# port_open HOST PORT — true if something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_port HOST PORT WHAT [SECONDS]
wait_port() {
    local deadline=$((SECONDS + ${4:-30}))
    until port_open "$1" "$2"; do
        [ "$SECONDS" -lt "$deadline" ] || die "$3 did not open $1:$2"
        sleep 0.2
    done
}

# wait_http URL WHAT [SECONDS] — until the URL answers 2xx.
# wait_http URL NAME [SECONDS] [PID LOG] — waits for URL to answer 2xx; with PID and LOG, stops
# waiting as soon as that process exits and shows the end of its log.
wait_http() {
    local deadline=$((SECONDS + ${3:-60})) pid="${4:-}" log="${5:-}"
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            [ -n "$log" ] && grep -v '^ *at \|^ *[0-9]*: ' "$log" | tail -n 8 >&2
            die "$2 exited during start-up (log: $log)"
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "$2 did not become ready ($1)"
        sleep 0.3
    done
}

# url_host_port URL — prints "host port" of a postgres:// or redis:// URL.
url_host_port() {
    local rest="${1#*://}"
    rest="${rest#*@}"
    rest="${rest%%/*}"
    rest="${rest%%\?*}"
    local host="${rest%%:*}" port="${rest##*:}"
    [ "$port" = "$rest" ] && port=""
    echo "${host:-127.0.0.1} ${port}"
}

ensure_commands() {
    local missing=()
    command -v curl >/dev/null || missing+=(curl ca-certificates)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
    command -v psql >/dev/null || missing+=(postgresql-client)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v openssl >/dev/null || missing+=(openssl)
    if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
    command -v cargo >/dev/null || die "cargo not found: install Rust from https://rustup.rs"
    NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
    export NGINX_BIN
}

# The workloads that sign tokens, each with its own Ed25519 key (platform::auth::keys lists
# the same names, with what each may sign; a test holds the two lists equal).
JWT_SIGNERS="user-service role-service card-service merchant-service email-service topup-service withdraw-service transfer-service transaction-service seeder"

# jwt_keys DIR — one Ed25519 key pair per signer in DIR (made once with openssl; DIR/<name>.seed
# is the private key as base64 of its 32-byte seed, DIR/<name>.pub the public key); exports
# JWT_PUBLIC_KEYS (`name=<base64>,…`, every process verifies with them).
jwt_keys() {
    local dir="$1" name public=()
    mkdir -p "$dir" && chmod 700 "$dir"
    for name in $JWT_SIGNERS; do
        if [ ! -s "$dir/$name.seed" ] || [ ! -s "$dir/$name.pub" ]; then
            openssl genpkey -algorithm ed25519 -outform DER -out "$dir/$name.der"
            tail -c 32 "$dir/$name.der" | base64 -w0 >"$dir/$name.seed"
            openssl pkey -inform DER -in "$dir/$name.der" -pubout -outform DER | tail -c 32 | base64 -w0 >"$dir/$name.pub"
            rm -f "$dir/$name.der"
            chmod 600 "$dir/$name.seed"
        fi
        public+=("$name=$(cat "$dir/$name.pub")")
    done
    JWT_PUBLIC_KEYS="$(IFS=,; echo "${public[*]}")"
    export JWT_PUBLIC_KEYS
}

# ensure_python_tools MODULE=PACKAGE... — installs missing PyPI tools (e.g. the SMTP server the
# tests use) with the first python3 on PATH.
ensure_python_tools() {
    local python="${PAYMENTS_PYTHON:-python3}" spec module package missing=()
    command -v "$python" >/dev/null || apt_install python3 python3-pip
    for spec in "$@"; do
        module="${spec%%=*}" package="${spec#*=}"
        "$python" -c "import $module" 2>/dev/null || missing+=("$package")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]} from PyPI"
        "$python" -m pip install --quiet "${missing[@]}" >&2 \
            || "$python" -m pip install --quiet --break-system-packages "${missing[@]}" >&2
    fi
}

# ensure_java — a Java runtime for the broker (Debian's default JRE if there is none).
ensure_java() {
    command -v java >/dev/null || apt_install default-jre-headless
}

# ensure_kafka — Apache Kafka's jars in $KAFKA_LIBS, fetched once from Maven Central with the
# small pom in deploy/local/kafka (Maven from Debian if it is missing).
ensure_kafka() {
    ensure_java
    [ -s "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] && return
    command -v mvn >/dev/null || apt_install maven
    say "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_LIBS (one time)"
    local tmp="$KAFKA_LIBS.tmp"
    rm -rf "$tmp"
    mvn -q -B -f "$ROOT/deploy/local/kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >&2 \
        || die "could not fetch Apache Kafka's jars with Maven (see above)"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
}

# start_kafka PORT DIR LOG — deploy/local/kafka/broker.sh in the background (a single-node
# KRaft broker+controller on PORT and PORT+1, storage in DIR, kept across restarts), its
# output in LOG. Waits until it serves; sets KAFKA_PID (the JVM's pid).
start_kafka() {
    local port="$1" dir="$2" log="$3"
    port_open 127.0.0.1 "$port" && die "port $port is taken; set KAFKA_PORT to another port"
    port_open 127.0.0.1 "$((port + 1))" && die "port $((port + 1)) (Kafka's controller) is taken"
    KAFKA_LIBS="$KAFKA_LIBS" "$ROOT/deploy/local/kafka/broker.sh" "$port" "$dir" >"$log" 2>&1 &
    KAFKA_PID=$!
    local deadline=$((SECONDS + 90))
    until grep -q 'Kafka Server started' "$log" 2>/dev/null && port_open 127.0.0.1 "$port"; do
        kill -0 "$KAFKA_PID" 2>/dev/null || { tail -20 "$log" >&2; die "Kafka exited during start-up (log: $log)"; }
        [ "$SECONDS" -lt "$deadline" ] || die "Kafka did not start within 90 s (log: $log)"
        sleep 0.3
    done
}

# ensure_asyncapi_parser — the AsyncAPI initiative's parser (npm @asyncapi/parser, pinned) in
# $ASYNCAPI_PARSER_DIR, once; Node.js from Debian if missing. Sets ASYNCAPI_PARSER_DIR.
ASYNCAPI_PARSER_VERSION="3.6.6"
# Headless Chromium (Debian) and playwright-core (npm; it never downloads a browser of its own)
# for the tests that follow the emailed links in a real browser.
PLAYWRIGHT_VERSION=1.64.1
ensure_browser() {
    [ -x /usr/bin/chromium ] || apt_install chromium
    CHROMIUM_BIN=/usr/bin/chromium
    PLAYWRIGHT_DIR="$TOOLS_DIR/playwright-core-$PLAYWRIGHT_VERSION"
    command -v node >/dev/null || apt_install nodejs npm
    [ -f "$PLAYWRIGHT_DIR/node_modules/playwright-core/package.json" ] && return
    say "installing playwright-core $PLAYWRIGHT_VERSION from npm into $PLAYWRIGHT_DIR (one time)"
    mkdir -p "$PLAYWRIGHT_DIR"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
        --prefix "$PLAYWRIGHT_DIR" "playwright-core@$PLAYWRIGHT_VERSION" >&2
}

ensure_asyncapi_parser() {
    ASYNCAPI_PARSER_DIR="$TOOLS_DIR/asyncapi-parser-$ASYNCAPI_PARSER_VERSION"
    command -v node >/dev/null || apt_install nodejs npm
    [ -f "$ASYNCAPI_PARSER_DIR/node_modules/@asyncapi/parser/package.json" ] && return
    say "installing @asyncapi/parser $ASYNCAPI_PARSER_VERSION from npm into $ASYNCAPI_PARSER_DIR (one time)"
    mkdir -p "$ASYNCAPI_PARSER_DIR"
    npm install --silent --no-audit --no-fund --prefix "$ASYNCAPI_PARSER_DIR" \
        "@asyncapi/parser@$ASYNCAPI_PARSER_VERSION" >&2
}

# ensure_nextest — cargo-nextest (the test runner `make test` uses: one process per test, and
# the platform tests' test group), built once with cargo if missing.
ensure_nextest() {
    cargo nextest --version >/dev/null 2>&1 && return
    say "installing cargo-nextest (one time, a few minutes)"
    cargo install cargo-nextest --locked --quiet >&2
}

# ensure_postgres URL — uses the server at URL if reachable, otherwise starts a private
# instance under $STATE_DIR/postgres on port 55432 and rewrites PG_ADMIN_URL accordingly.
ensure_postgres() {
    local url="$1" host port
    read -r host port <<<"$(url_host_port "$url")"
    port="${port:-5432}"
    if port_open "$host" "$port"; then
        PG_ADMIN_URL="$url"
        return
    fi
    local bindir
    bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
    if [ -z "$bindir" ]; then
        apt_install postgresql
        bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    fi
    local data="$STATE_DIR/postgres" pport=55432
    local run=()
    if [ "$(id -u)" -eq 0 ]; then run=(runuser -u postgres --); fi
    mkdir -p "$data"
    [ "$(id -u)" -eq 0 ] && chown postgres "$data"
    if [ ! -f "$data/PG_VERSION" ]; then
        say "initialising a private PostgreSQL in $data"
        "${run[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust >/dev/null
    fi
    if ! port_open 127.0.0.1 "$pport"; then
        say "starting private PostgreSQL on 127.0.0.1:$pport"
        "${run[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" \
            -o "-p $pport -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
        wait_port 127.0.0.1 "$pport" "PostgreSQL"
    fi
    PG_ADMIN_URL="postgres://postgres@127.0.0.1:$pport/postgres"
}

# ensure_redis URL — uses Redis at URL if reachable, otherwise a private one on port 56379.
ensure_redis() {
    local url="$1" host port
    read -r host port <<<"$(url_host_port "$url")"
    port="${port:-6379}"
    if port_open "$host" "$port"; then
        REDIS_READY_URL="$url"
        return
    fi
    command -v redis-server >/dev/null || apt_install redis-server
    local rport=56379
    if ! port_open 127.0.0.1 "$rport"; then
        say "starting private Redis on 127.0.0.1:$rport"
        mkdir -p "$STATE_DIR/redis"
        redis-server --port "$rport" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
            --dir "$STATE_DIR/redis" --logfile "$STATE_DIR/redis/redis.log" >/dev/null
        wait_port 127.0.0.1 "$rport" "Redis"
    fi
    REDIS_READY_URL="redis://127.0.0.1:$rport/0"
}

# render_nginx OUT — substitutes the ${VARS} of nginx/nginx.conf.template from the environment.
render_nginx() {
    local out="$1" content
    content="$(cat "$ROOT/nginx/nginx.conf.template")"
    local vars
    vars="$(grep -o '\${[A-Z_]*}' "$ROOT/nginx/nginx.conf.template" | sort -u | tr -d '${}')"
    for v in $vars; do
        [ -n "${!v+x}" ] || die "nginx template variable $v is not set"
        content="${content//\$\{$v\}/${!v}}"
    done
    printf '%s\n' "$content" >"$out"
}
