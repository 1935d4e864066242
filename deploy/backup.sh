#!/bin/sh
# Nightly database backup of the compose stack: a pg_dump (custom format) into deploy/backups,
# keeping the last $KEEP_DAYS days. Run from cron on the host, e.g.
#   30 23 * * *  /opt/suvnet/deploy/backup.sh >> /var/log/suvnet-backup.log 2>&1
# Copy deploy/backups off the server afterwards (rclone, rsync). See docs/operations.md.
set -eu
cd "$(dirname "$0")"
KEEP_DAYS="${KEEP_DAYS:-14}"
name="suvnet-$(date -u +%Y-%m-%dT%H%M).dump"
docker compose exec -T timescaledb pg_dump -U suvnet -d suvnet -Fc -Z 6 -f "/backups/$name"
docker compose exec -T timescaledb pg_restore --list "/backups/$name" > /dev/null  # readable?
find backups -name 'suvnet-*.dump' -mtime +"$KEEP_DAYS" -delete
echo "backup written: deploy/backups/$name"
