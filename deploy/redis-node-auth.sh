#!/bin/sh
# Starts a Redis Cluster node of deploy/docker-compose.cluster.yml with the cluster's ACL users
# (deploy/cluster-users.acl.in, written with the password hashes by redis-acl.sh beside this
# file) and its replication credentials: writes `masteruser ledger-replica` and its
# `masterauth` (a replica authenticates to its master as that user) into an include file of
# its own, mode 0600 under /data, and runs the given command with `--include` that file and
# `--aclfile` the users. Passwords come from secret files (REDIS_PASSWORD_FILE,
# REDIS_ADMIN_PASSWORD_FILE, REDIS_REPLICA_PASSWORD_FILE); never from a command line or an
# environment, only the files' paths are.
set -eu
AUTH_CONF="${AUTH_CONF:-/data/auth.conf}"
export ACL_TEMPLATE="${ACL_TEMPLATE:-/usr/local/etc/redis/cluster-users.acl.in}"
for name in REDIS_PASSWORD_FILE REDIS_ADMIN_PASSWORD_FILE REDIS_REPLICA_PASSWORD_FILE; do
    eval "file=\${$name:-}"
    if [ -z "$file" ] || [ ! -r "$file" ] || [ -z "$(cat "$file")" ]; then
        echo "redis-node-auth.sh: $name must name a non-empty secret file" >&2
        exit 1
    fi
done
# the file as redis-acl.sh hashes it (trailing newlines dropped), one line, quoted for
# redis.conf (a backslash or a double quote escaped)
replica="$(cat "$REDIS_REPLICA_PASSWORD_FILE")"
newline='
'
case "$replica" in
    *"$newline"*|*"$(printf '\r')"*)
        echo "redis-node-auth.sh: the replicas' password must be one line" >&2
        exit 1 ;;
esac
quoted="$(printf '%s' "$replica" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
umask 077
tmp="$AUTH_CONF.tmp"
printf 'masteruser ledger-replica\nmasterauth "%s"\n' "$quoted" > "$tmp"
mv "$tmp" "$AUTH_CONF"
exec sh "$(dirname "$0")/redis-acl.sh" "$@" --include "$AUTH_CONF"
