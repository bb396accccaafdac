#!/bin/sh
# pgwarden refuses tokens sent in cleartext by non-loopback clients, and seen from inside a
# container every client is non-loopback: without TLS nobody could log in. A certificate mounted
# at /etc/pgwarden/tls (tls.crt, tls.key) is used as is; otherwise a self-signed pair is made,
# good for trying pgwarden out (clients use sslmode=require; verify-full needs a real certificate).
set -eu
tls_dir=/etc/pgwarden/tls
if [ ! -f "$tls_dir/tls.crt" ] || [ ! -f "$tls_dir/tls.key" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=${PGWARDEN_TLS_CN:-localhost}" \
    -keyout "$tls_dir/tls.key" -out "$tls_dir/tls.crt" 2>/dev/null
  echo "pgwarden-entrypoint: no certificate in $tls_dir, generated a self-signed one" >&2
fi
exec node /app/bin/pgwarden.js "$@"
