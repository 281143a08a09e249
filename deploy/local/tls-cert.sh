#!/usr/bin/env bash
# Writes a local certificate authority and a server certificate signed by it into DIR (once:
# existing files are kept), for NGINX's TLS listeners in `make run`, the tests, Compose and
# Minikube (`make kube-secrets`). Trust DIR/ca.crt in a client to talk HTTPS/gRPC-TLS to it:
#   curl --cacert DIR/ca.crt https://localhost:8443/api/v1/openapi.json
#
#   tls-cert.sh DIR [extra subjectAltName entries, e.g. IP:192.168.49.2 DNS:payments.example]
# Files: ca.crt, ca.key (the local CA), tls.crt (server certificate + CA), tls.key.
set -euo pipefail
dir="$1"
shift
mkdir -p "$dir"
[ -s "$dir/tls.crt" ] && [ -s "$dir/tls.key" ] && [ -s "$dir/ca.crt" ] && exit 0
command -v openssl >/dev/null || { echo "tls-cert.sh: openssl is needed" >&2; exit 1; }
umask 077
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
san="DNS:localhost,IP:127.0.0.1,DNS:nginx,DNS:nginx.payments.svc,DNS:nginx.payments.svc.cluster.local"
for extra in "$@"; do san="$san,$extra"; done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=payments-platform local CA" -keyout "$tmp/ca.key" -out "$tmp/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=localhost" -keyout "$tmp/tls.key" -out "$tmp/tls.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
    "$san" >"$tmp/ext.cnf"
openssl x509 -req -in "$tmp/tls.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 825 -extfile "$tmp/ext.cnf" -out "$tmp/server.crt" 2>/dev/null
cat "$tmp/server.crt" "$tmp/ca.crt" >"$tmp/tls.crt"
mv "$tmp/ca.key" "$tmp/ca.crt" "$tmp/tls.key" "$tmp/tls.crt" "$dir/"
chmod 644 "$dir/ca.crt" "$dir/tls.crt"
