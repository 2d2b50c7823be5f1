#!/usr/bin/env bash
# A fresh token in opencryptoki's soft token (Debian's opencryptoki, slot 3 under pkcsslotd):
# the second PKCS#11 implementation the tests run trustd against.
#   hsm/opencryptoki-token.sh DIR LABEL
# wipes the soft token, initialises it as LABEL with random PINs (the user PIN in DIR/hsm-pin,
# mode 0600), starts pkcsslotd if needed, and prints the module's path. Needs root (the token's
# files are root's and the pkcs11 group's). The module has one soft token: the caller holds
# /tmp/trustd-opencryptoki.lock while it uses it. PINs go to pkcs11-tool through the
# environment (env:NAME), never as arguments.
set -euo pipefail
dir=${1:?usage: opencryptoki-token.sh DIR LABEL}
label=${2:?usage: opencryptoki-token.sh DIR LABEL}
module=$(ls /usr/lib/*/pkcs11/libopencryptoki.so 2>/dev/null | head -1 || true)
if [ -z "$module" ] || ! command -v pkcsslotd >/dev/null 2>&1 && [ ! -x /usr/sbin/pkcsslotd ]; then
  echo "opencryptoki-token: opencryptoki is not installed (ci/setup.sh installs it)" >&2
  exit 1
fi
slot=3
store=/var/lib/opencryptoki/swtok
# A wiped soft token is uninitialised, with the default SO PIN (opencryptoki's documented
# 87654321); the slot daemon and the token's shared memory are restarted with it.
pkill -x pkcsslotd 2>/dev/null || true
for _ in $(seq 50); do pgrep -x pkcsslotd >/dev/null || break; sleep 0.1; done
rm -rf "${store:?}"/* /dev/shm/var.lib.opencryptoki.swtok
mkdir -p /run/opencryptoki "$store/TOK_OBJ"
chown root:pkcs11 "$store" "$store/TOK_OBJ" /run/opencryptoki
chmod 0770 "$store" "$store/TOK_OBJ"
/usr/sbin/pkcsslotd
umask 077
pin() { head -c 8 /dev/urandom | od -An -tu1 | tr -d ' \n' | cut -c1-8; }
export OCK_DEFAULT_SO=87654321 OCK_SO=$(pin) OCK_USER=$(pin)
p11() { pkcs11-tool --module "$module" --slot "$slot" "$@" >/dev/null; }
p11 --init-token --label "$label" --so-pin env:OCK_DEFAULT_SO
p11 --login --login-type so --so-pin env:OCK_DEFAULT_SO --change-pin --new-pin env:OCK_SO
p11 --login --login-type so --so-pin env:OCK_SO --init-pin --new-pin env:OCK_USER
printf '%s' "$OCK_USER" > "$dir/hsm-pin"
echo "$module"
