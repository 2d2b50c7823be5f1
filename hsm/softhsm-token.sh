#!/usr/bin/env bash
# Creates a SoftHSM2 token for `trustd init` / `trustd serve` outside `trustd dev`:
#   hsm/softhsm-token.sh DIR [LABEL [PINS]]
# writes DIR/softhsm2.conf, DIR/tokens/, and random PINs in DIR/PINS-pin and DIR/PINS-so-pin
# (PINS is "hsm" by default; mode 0600), then initialises the token. Export
# SOFTHSM2_CONF=DIR/softhsm2.conf for trustd. A second token in the same DIR (the offline root's,
# say: `softhsm-token.sh DIR trustd-root root`) takes PINs of its own.
# Production HSMs are initialised with their vendor's tooling instead.
set -euo pipefail
dir=${1:?usage: softhsm-token.sh DIR [LABEL [PINS]]}
label=${2:-trustd}
pins=${3:-hsm}
mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
conf="$dir/softhsm2.conf"
[ -f "$conf" ] || printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir" > "$conf"
umask 077
for f in "$pins-pin" "$pins-so-pin"; do
  [ -f "$dir/$f" ] || head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/$f"
done
export SOFTHSM2_CONF="$conf"
if softhsm2-util --show-slots | grep -q "Label:.*\b$label\b"; then
  echo "token '$label' exists in $dir" >&2
  exit 0
fi
# pkcs11-tool (OpenSC) reads a PIN given as env:NAME from the environment, so no PIN is ever an
# argument (softhsm2-util would take them only as arguments or from a terminal). SoftHSM keeps
# one uninitialised token in its last slot: initialise that one and no other.
module=${TRUSTD_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
slot=$(pkcs11-tool --module "$module" --list-slots | awk '/^Slot/ {id = $3} /token state: +uninitialized/ {gsub(/[():]/, "", id); print id; exit}')
[ -n "$slot" ] || { echo "no free SoftHSM slot in $dir" >&2; exit 1; }
TRUSTD_SO_PIN=$(cat "$dir/$pins-so-pin") TRUSTD_USER_PIN=$(cat "$dir/$pins-pin") sh -c '
  pkcs11-tool --module "$0" --slot "$1" --init-token --label "$2" --so-pin env:TRUSTD_SO_PIN >/dev/null &&
  pkcs11-tool --module "$0" --token-label "$2" --login --login-type so --so-pin env:TRUSTD_SO_PIN \
    --init-pin --pin env:TRUSTD_USER_PIN >/dev/null' "$module" "$slot" "$label"
echo "token '$label' created; SOFTHSM2_CONF=$conf, PIN in $dir/$pins-pin" >&2
