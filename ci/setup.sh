#!/usr/bin/env bash
# Installs everything trustd and its tests need on a fresh Debian machine (run as root).
# Idempotent: a second run only checks. Used by the README's commands and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v softhsm2-util >/dev/null || need_apt+=(softhsm2)
command -v pkcs11-tool >/dev/null || need_apt+=(opensc)
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
# PostgreSQL's server and psql: the store tests and the replica tests run a private cluster
# (ci/test-postgres.sh).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v psql >/dev/null || need_apt+=(postgresql-client)
command -v flock >/dev/null || need_apt+=(util-linux)
# A second PKCS#11 implementation, opencryptoki's soft token (tests/second_module.rs).
[ -x /usr/sbin/pkcsslotd ] || need_apt+=(opencryptoki)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Independent checkers for the tests, pinned, in a venv of their own.
venv=${TRUSTD_TEST_VENV:-$PWD/target/pyenv}
if ! "$venv/bin/python" -c "import pkilint, asn1crypto, rfc3161_client, grpc, grpc_tools, grpc_reflection, prometheus_client, pyhanko, requests_oauthlib" 2>/dev/null; then
  echo "setup: installing Python checkers into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r ci/requirements.txt
fi
