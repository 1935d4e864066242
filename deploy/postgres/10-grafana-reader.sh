#!/bin/sh
# Runs once, when the database volume is first initialised: the read-only login of the
# region's Grafana. Its rights come from the group role suvnet_reader, which the suvnet
# migrations (0803) fill: every table but the secrets (password and code hashes, tokens,
# keys). A branch's Grafana gets a login of its own that sees that branch only:
# suvnet branches reader (docs/branches.md, "Grafana per branch").
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v pw="$GRAFANA_DB_PASSWORD" <<'SQL'
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'suvnet_reader') THEN
        CREATE ROLE suvnet_reader NOLOGIN;
    END IF;
END $$;
CREATE ROLE grafana_reader LOGIN PASSWORD :'pw' IN ROLE suvnet_reader;
GRANT CONNECT ON DATABASE suvnet TO grafana_reader;
ALTER ROLE grafana_reader SET statement_timeout = '30s';
SQL
