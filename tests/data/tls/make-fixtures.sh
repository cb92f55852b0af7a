#!/usr/bin/env bash
# Regenerates the TLS test fixtures (tests/unit/api/tls_test.cc): two CAs, A and B, each with
# a server certificate for 127.0.0.1, ::1 and localhost, valid for 100 years. Test-only keys.
set -euo pipefail
cd "$(dirname "$0")"
for n in a b; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
    -subj "/CN=vigil test CA $n" -keyout "ca_$n.key" -out "ca_$n.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=vigil test server $n" \
    -keyout "server_$n.key" -out "server_$n.csr" 2>/dev/null
  openssl x509 -req -in "server_$n.csr" -CA "ca_$n.pem" -CAkey "ca_$n.key" -CAcreateserial -days 36500 \
    -extfile <(printf 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n') \
    -out "server_$n.pem" 2>/dev/null
  rm -f "server_$n.csr" "ca_$n.key" "ca_$n.srl"
done
