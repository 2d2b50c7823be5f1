#!/usr/bin/env bash
# The protocol cores know nothing of gRPC, HTTP, SQL or PKCS#11 (ARCHITECTURE.md): they sign
# through `keys`, store through the `Store` traits and read time from `clock`. Fails, naming the
# line, when a core imports tonic, axum, sqlx or cryptoki, or reaches into the HSM layer, the API
# or the SQLite store.
set -euo pipefail
cd "$(dirname "$0")/.."
cores=(src/keys src/ca src/tsa src/ocsp src/signing src/log src/policy src/signed_data
       src/csc.rs src/oauth2.rs src/ca_certificates.rs src/revocation.rs src/ca_id.rs src/diagnostics.rs src/clock.rs src/digest.rs src/serial.rs src/incident.rs src/unix_time.rs)
forbidden='\b(tonic|tonic_health|tonic_reflection|axum|sqlx|cryptoki)::|\buse (tonic|axum|sqlx|cryptoki)\b|crate::(hsm|api|daemon|config|ceremony)\b|crate::store::sqlite|SqliteStore'
# Comment lines may name what a core does not use.
if hits=$(grep -rnE "$forbidden" "${cores[@]}" | grep -vE '^[^:]+:[0-9]+:\s*//'); then
  echo "check-boundaries: a protocol core depends on a transport, SQL or PKCS#11:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "check-boundaries: protocol cores import none of tonic, axum, sqlx, cryptoki, hsm, api"
