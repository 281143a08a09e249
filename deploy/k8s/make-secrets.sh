#!/usr/bin/env bash
# Writes k8s/config/secrets.env (git-ignored) with fresh random secrets, unless it exists.
# kustomize turns it into the `platform-secrets` Secret. Delete the file to rotate everything.
set -euo pipefail
out="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/k8s/config/secrets.env"
rand() { head -c 48 /dev/urandom | base64 | tr -d '\n/+=' | head -c "$1"; }
# NGINX's certificate (the nginx-tls Secret, Compose's NGINX too), signed by a local CA
# (k8s/config/tls/ca.crt: trust it in clients). Extra names: TLS_SANS="IP:192.168.49.2 DNS:…".
# shellcheck disable=SC2086
bash "$(dirname "${BASH_SOURCE[0]}")/../local/tls-cert.sh" "$(dirname "$out")/tls" ${TLS_SANS:-}
if [ -s "$out" ]; then
    # Keys added since the file was written get values; nothing else changes.
    for key in ONE_TIME_TOKEN_KEY CARD_PAN_KEY PROVIDER_SANDPAY_API_KEY PROVIDER_SANDPAY_WEBHOOK_SECRET \
        PROVIDER_KILAT_API_KEY PROVIDER_KILAT_WEBHOOK_SECRET; do
        if ! grep -q "^$key=" "$out"; then
            echo "$key=$(rand 48)" >>"$out"
            echo "$out: added $key"
        fi
    done
    echo "$out exists; keeping it"
    exit 0
fi
pg="$(rand 32)" redis="$(rand 32)"
umask 077
cat >"$out" <<SECRETS
JWT_SECRET=$(rand 48)
CARD_CVV_KEY=$(rand 48)
CARD_PAN_KEY=$(rand 48)
ONE_TIME_TOKEN_KEY=$(rand 48)
POSTGRES_PASSWORD=$pg
DATABASE_URL=postgres://payments:$pg@postgres:5432/payments
REDIS_PASSWORD=$redis
REDIS_URL=redis://:$redis@redis:6379/0
ADMIN_PASSWORD=Admin-$(rand 16)-9
PROVIDER_SANDPAY_API_KEY=$(rand 40)
PROVIDER_SANDPAY_WEBHOOK_SECRET=$(rand 48)
PROVIDER_KILAT_API_KEY=$(rand 40)
PROVIDER_KILAT_WEBHOOK_SECRET=$(rand 48)
SECRETS
echo "wrote $out (the admin password is ADMIN_PASSWORD in it)"
