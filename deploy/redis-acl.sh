#!/bin/sh
# Starts Redis with incident-ledger's ACL users (deploy/users.acl.in): writes the server's ACL
# file from the template with the password hashes filled in, keeps the feed users that
# `ledger feeds add` saved there before (ACL SAVE), then runs the given command with
# `--aclfile`. Passwords come from secret files (REDIS_PASSWORD_FILE,
# REDIS_ADMIN_PASSWORD_FILE) or, failing those, the environment (REDIS_PASSWORD,
# REDIS_ADMIN_PASSWORD); never from a command line, and only their SHA-256 is written.
# Without an admin password the ledger-admin user is off (no `ledger feeds add`). The key
# patterns take LEDGER_KEY_PREFIX (default ledger), as the services do. A template with a
# replicas' user (deploy/cluster-users.acl.in) takes its password from
# REDIS_REPLICA_PASSWORD_FILE (or REDIS_REPLICA_PASSWORD) too.
set -eu
ACL_FILE="${ACL_FILE:-/data/users.acl}"
ACL_TEMPLATE="${ACL_TEMPLATE:-/usr/local/etc/redis/users.acl.in}"

secret() {  # the secret named $1: the file $1_FILE names, else the variable $1
    eval "file=\${${1}_FILE:-}"
    if [ -n "$file" ]; then cat "$file"; else eval "printf '%s' \"\${${1}:-}\""; fi
}
hash() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

service="$(secret REDIS_PASSWORD)"
admin="$(secret REDIS_ADMIN_PASSWORD)"
if [ -z "$service" ]; then
    echo "redis-acl.sh: set REDIS_PASSWORD_FILE (or REDIS_PASSWORD) for the ledger user" >&2
    exit 1
fi
prefix="${LEDGER_KEY_PREFIX:-ledger}"
case "$prefix" in
    ''|*[!A-Za-z0-9_-]*)
        echo "redis-acl.sh: LEDGER_KEY_PREFIX must be letters, digits, - or _" >&2
        exit 1 ;;
esac
umask 077
tmp="$ACL_FILE.tmp"
grep -v '^#' "$ACL_TEMPLATE" \
    | sed -e "s/#@SERVICE_HASH@/#$(hash "$service")/" -e "s/@PREFIX@/$prefix/g" > "$tmp"
if grep -q '#@REPLICA_HASH@' "$tmp"; then
    replica="$(secret REDIS_REPLICA_PASSWORD)"
    if [ -z "$replica" ]; then
        echo "redis-acl.sh: set REDIS_REPLICA_PASSWORD_FILE (or REDIS_REPLICA_PASSWORD) for ledger-replica" >&2
        rm -f "$tmp"
        exit 1
    fi
    sed -i -e "s/#@REPLICA_HASH@/#$(hash "$replica")/" "$tmp"
fi
if [ -n "$admin" ]; then
    sed -i -e "s/#@ADMIN_HASH@/#$(hash "$admin")/" "$tmp"
else
    sed -i -e 's/^user ledger-admin on #@ADMIN_HASH@/user ledger-admin off resetpass/' "$tmp"
fi
if [ -f "$ACL_FILE" ]; then
    grep '^user feed-' "$ACL_FILE" >> "$tmp" || true
fi
mv "$tmp" "$ACL_FILE"
exec "$@" --aclfile "$ACL_FILE"
