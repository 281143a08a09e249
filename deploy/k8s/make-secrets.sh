#!/usr/bin/env bash
# Writes the platform's secrets for Kubernetes and Compose (all git-ignored, never committed):
#
# * k8s/config/secrets.env — the master list of random values, made once (delete it to rotate
#   everything; values added since an older file was written are added, nothing else changes).
#   No workload reads it.
# * k8s/config/secrets/<workload>.env — what each workload gets, and nothing more (kustomize
#   makes one Secret `<workload>-secrets` of each; Compose reads it as that service's env
#   file): its own PostgreSQL role's DATABASE_URL, its own token signing key, and only the keys
#   its job needs (the card keys for the card service, the provider keys for the topup and
#   withdraw services and each sandbox, …). Rewritten from the master list on every run.
# * k8s/config/jwt-public-keys.env — JWT_PUBLIC_KEYS, every signer's public key (not secret:
#   the `jwt-public-keys` ConfigMap every workload reads).
# * k8s/config/tls/ — NGINX's certificate, signed by a local CA (trust tls/ca.crt in clients;
#   extra names: TLS_SANS="IP:192.168.49.2 DNS:…").
set -euo pipefail
config="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/k8s/config"
master="$config/secrets.env"
rand() { head -c 48 /dev/urandom | base64 | tr -d '\n/+=' | head -c "$1"; }
# shellcheck disable=SC2086
bash "$(dirname "${BASH_SOURCE[0]}")/../local/tls-cert.sh" "$config/tls" ${TLS_SANS:-}
# shellcheck source=../local/common.sh
JWT_SIGNERS="$(grep '^JWT_SIGNERS=' "$(dirname "${BASH_SOURCE[0]}")/../local/common.sh" | cut -d'"' -f2)"
SERVICES="user role card saldo topup withdraw transfer merchant transaction email"
umask 077

# The master list: every value once.
fresh=true
[ -s "$master" ] && fresh=false
touch "$master"
have() { grep -q "^$1=" "$master"; }
add() {
    have "$1" && return
    echo "$1=$2" >>"$master"
    "$fresh" || echo "$master: added $1"
}
add CARD_CVV_KEY "$(rand 48)"
add CARD_PAN_KEY "$(rand 48)"
add ONE_TIME_TOKEN_KEY "$(rand 48)"
add WEBHOOK_SECRETS_KEY "$(rand 48)"
add POSTGRES_PASSWORD "$(rand 32)"
add REDIS_PASSWORD "$(rand 32)"
add ADMIN_PASSWORD "Admin-$(rand 16)-9"
for provider in SANDPAY KILAT; do
    add "PROVIDER_${provider}_API_KEY" "$(rand 40)"
    add "PROVIDER_${provider}_WEBHOOK_SECRET" "$(rand 48)"
done
for service in $SERVICES; do add "DB_PASSWORD_${service^^}_SVC" "$(rand 32)"; done
for signer in $JWT_SIGNERS; do
    var="JWT_SEED_$(echo "$signer" | tr 'a-z-' 'A-Z_')"
    if ! have "$var"; then
        der="$(mktemp)"
        openssl genpkey -algorithm ed25519 -outform DER -out "$der"
        add "$var" "$(tail -c 32 "$der" | base64 -w0)"
        add "JWT_PUBLIC_$(echo "$signer" | tr 'a-z-' 'A-Z_')" \
            "$(openssl pkey -inform DER -in "$der" -pubout -outform DER | tail -c 32 | base64 -w0)"
        rm -f "$der"
    fi
done
# An older file's single shared signing secret is gone for good.
sed -i '/^JWT_SECRET=/d; /^DATABASE_URL=/d; /^REDIS_URL=/d' "$master"
# shellcheck disable=SC1090
set -a && . "$master" && set +a

# Per workload: only what it needs.
mkdir -p "$config/secrets"
rm -f "$config/secrets/"*.env
redis_url="redis://:$REDIS_PASSWORD@redis:6379/0"
database_url() { local role="${1}_svc" var; var="DB_PASSWORD_${role^^}"; echo "postgres://$role:${!var}@postgres:5432/payments"; }
signing_key() { local var; var="JWT_SEED_$(echo "$1" | tr 'a-z-' 'A-Z_')"; echo "JWT_SIGNING_KEY=${!var}"; }
providers() {
    echo "PROVIDER_SANDPAY_API_KEY=$PROVIDER_SANDPAY_API_KEY"
    echo "PROVIDER_SANDPAY_WEBHOOK_SECRET=$PROVIDER_SANDPAY_WEBHOOK_SECRET"
    echo "PROVIDER_KILAT_API_KEY=$PROVIDER_KILAT_API_KEY"
    echo "PROVIDER_KILAT_WEBHOOK_SECRET=$PROVIDER_KILAT_WEBHOOK_SECRET"
}
for service in $SERVICES; do
    {
        echo "DATABASE_URL=$(database_url "$service")"
        echo "REDIS_URL=$redis_url"
        case " $JWT_SIGNERS " in *" $service-service "*) signing_key "$service-service" ;; esac
        case "$service" in
            card) echo "CARD_CVV_KEY=$CARD_CVV_KEY"; echo "CARD_PAN_KEY=$CARD_PAN_KEY" ;;
            user | email) echo "ONE_TIME_TOKEN_KEY=$ONE_TIME_TOKEN_KEY" ;;
            merchant) echo "WEBHOOK_SECRETS_KEY=$WEBHOOK_SECRETS_KEY" ;;
            topup | withdraw) providers ;;
        esac
    } >"$config/secrets/$service.env"
done
echo "REDIS_URL=$redis_url" >"$config/secrets/gateway.env"
{ signing_key seeder; echo "ADMIN_PASSWORD=$ADMIN_PASSWORD"; } >"$config/secrets/seeder.env"
# Compose's Grafana signs in with the platform's admin password.
echo "ADMIN_PASSWORD=$ADMIN_PASSWORD" >"$config/secrets/grafana.env"
{
    for service in $SERVICES; do echo "${service}_DATABASE_URL=$(database_url "$service")"; done
} >"$config/secrets/migrate.env"
{
    echo "POSTGRES_PASSWORD=$POSTGRES_PASSWORD"
    for service in $SERVICES; do
        var="DB_PASSWORD_${service^^}_SVC"
        echo "PASSWORD_${service^^}_SVC=${!var}"
    done
} >"$config/secrets/postgres.env"
echo "REDIS_PASSWORD=$REDIS_PASSWORD" >"$config/secrets/redis.env"
for provider in sandpay kilat; do
    key="PROVIDER_${provider^^}_API_KEY" secret="PROVIDER_${provider^^}_WEBHOOK_SECRET"
    { echo "SANDBOX_API_KEY=${!key}"; echo "SANDBOX_WEBHOOK_SECRET=${!secret}"; } \
        >"$config/secrets/$provider.env"
done
public=()
for signer in $JWT_SIGNERS; do
    var="JWT_PUBLIC_$(echo "$signer" | tr 'a-z-' 'A-Z_')"
    public+=("$signer=${!var}")
done
(IFS=,; echo "JWT_PUBLIC_KEYS=${public[*]}") >"$config/jwt-public-keys.env"
chmod 644 "$config/jwt-public-keys.env"
echo "wrote $config/secrets/ (one env file per workload) and jwt-public-keys.env; the admin password is ADMIN_PASSWORD in $master"
