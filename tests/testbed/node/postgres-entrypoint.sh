#!/bin/sh
# The in-namespace database of the test bed's PostgreSQL image, started the way the service's
# StatefulSet asks (the official image's variables): POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB and PGDATA. Written for this image only: Debian's PostgreSQL 15, no extensions.
set -eu
bin=/usr/lib/postgresql/15/bin
if [ "$(id -u)" = 0 ]; then
  # The volume arrives owned by root: hand it to postgres, then run as postgres.
  mkdir -p "$PGDATA"
  chown -R postgres:postgres "$(dirname "$PGDATA")"
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  password_file=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" > "$password_file"
  "$bin/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$password_file" \
    --auth-host=scram-sha-256 --auth-local=trust > /dev/null
  rm -f "$password_file"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/tmp" -w start > /dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -h /tmp -U "$POSTGRES_USER" -d postgres -q -c "CREATE DATABASE \"$POSTGRES_DB\""
  fi
  "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop > /dev/null
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp
