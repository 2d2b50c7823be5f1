#!/usr/bin/env bash
# Creates a SoftHSM2 token for `trustd init` / `trustd serve` outside `trustd dev`:
#   hsm/softhsm-token.sh DIR [LABEL]
# writes DIR/softhsm2.conf, DIR/tokens/, and random PINs in DIR/hsm-pin and DIR/hsm-so-pin
# (mode 0600), then initialises the token. Export SOFTHSM2_CONF=DIR/softhsm2.conf for trustd.
# Production HSMs are initialised with their vendor's tooling instead.
set -euo pipefail
dir=${1:?usage: softhsm-token.sh DIR [LABEL]}
label=${2:-trustd}
mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
conf="$dir/softhsm2.conf"
[ -f "$conf" ] || printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir" > "$conf"
umask 077
for f in hsm-pin hsm-so-pin; do
  [ -f "$dir/$f" ] || head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/$f"
done
export SOFTHSM2_CONF="$conf"
if softhsm2-util --show-slots | grep -q "Label:.*\b$label\b"; then
  echo "token '$label' exists in $dir" >&2
  exit 0
fi
softhsm2-util --init-token --free --label "$label" --so-pin "$(cat "$dir/hsm-so-pin")" --pin "$(cat "$dir/hsm-pin")" >/dev/null
echo "token '$label' created; SOFTHSM2_CONF=$conf, PIN in $dir/hsm-pin" >&2
