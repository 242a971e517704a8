#!/bin/sh
# Starts a Redis Cluster node of deploy/docker-compose.cluster.yml with its password from a
# secret file: writes `requirepass` and `masterauth` (a replica authenticates to its master
# with the same password) into an include file of its own, mode 0600 under /data, and runs
# the given command with `--include` that file. The password is never on a command line or
# in an environment; only the file's path is (REDIS_PASSWORD_FILE).
set -eu
AUTH_CONF="${AUTH_CONF:-/data/auth.conf}"
if [ -z "${REDIS_PASSWORD_FILE:-}" ] || [ ! -s "$REDIS_PASSWORD_FILE" ]; then
    echo "redis-node-auth.sh: REDIS_PASSWORD_FILE must name a non-empty secret file" >&2
    exit 1
fi
# one line, quoted for redis.conf (a backslash or a double quote escaped)
quoted="$(head -n 1 "$REDIS_PASSWORD_FILE" | tr -d '\r' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
umask 077
tmp="$AUTH_CONF.tmp"
printf 'requirepass "%s"\nmasterauth "%s"\n' "$quoted" "$quoted" > "$tmp"
mv "$tmp" "$AUTH_CONF"
exec "$@" --include "$AUTH_CONF"
