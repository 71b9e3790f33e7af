#!/bin/sh
# First start of the compose `postgres` service (docker-entrypoint-initdb.d, run once on an empty
# volume): the platform's tables, the decoder's least-privilege role and the demo seed, from the
# same files scripts/stack.sh applies to the local stack (scripts/platform, mounted at /sck-platform).
# The tables' owner is POSTGRES_USER (sck_platform); the decoders and the forwarder log in as
# sck_registry with REGISTRY_PASSWORD.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$REGISTRY_PASSWORD" -U "$POSTGRES_USER" -d "$POSTGRES_DB" <<'SQL'
CREATE ROLE sck_registry LOGIN PASSWORD :'pw';
SQL
for f in schema grants seed; do
  psql -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "/sck-platform/$f.sql"
done
