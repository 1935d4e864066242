#!/bin/sh
# The suvnet scheduler: runs the periodic jobs once a day after $SUVNET_SCHEDULER_AT (HHMM,
# UTC), and the monthly ones on the 1st. A day already done is remembered in
# /var/lib/suvnet/scheduler.last, so a restart does not run it twice. Edit the job lists below.
# SUVNET_NOW (ISO 8601 with a UTC offset) pins the clock, as for every suvnet command: the tests
# use it, and an operator can use it to catch up a missed day by hand.
set -u

job() {  # run one job; a failure is logged and the next job still runs
    "$@" || echo "scheduler: '$*' failed (exit $?)"
}

daily() {
    # compression and retention of raw readings (SUVNET_READINGS_RETENTION_DAYS), in both
    # storage modes: TimescaleDB's own background jobs fail on some versions
    job suvnet db maintain
    job suvnet billing dunning --out-dir /var/lib/suvnet/dunning-letters
    # refresh the pipes and zone outlines of the Grafana network map from the registry
    job suvnet dashboards build --out /var/lib/suvnet/grafana --network
}

monthly() {
    job suvnet billing penalties
}

utc() {  # date -u, at the instant SUVNET_NOW pins when it is set
    if [ -n "${SUVNET_NOW:-}" ]; then date -u -d "$SUVNET_NOW" "$@"; else date -u "$@"; fi
}

at="${SUVNET_SCHEDULER_AT:-0300}"
state="${SUVNET_SCHEDULER_STATE:-/var/lib/suvnet/scheduler.last}"
alive="${SUVNET_SCHEDULER_ALIVE:-/tmp/scheduler.alive}"
trap 'echo "scheduler: stopping"; kill $! 2>/dev/null; exit 0' TERM INT
echo "scheduler: daily jobs after ${at} UTC"
# the network map is needed by Grafana from the start
suvnet dashboards build --out /var/lib/suvnet/grafana --network || echo "scheduler: map export failed"
while :; do
    touch "$alive"
    today=$(utc +%F) || { echo "scheduler: cannot read the clock (SUVNET_NOW=${SUVNET_NOW:-})"; exit 1; }
    now=$(utc +%H%M)
    last=$(cat "$state" 2>/dev/null || echo none)
    if [ "$today" != "$last" ] && [ "$now" -ge "$at" ]; then
        echo "scheduler: daily jobs for $today"
        daily
        if [ "$(utc +%d)" = "01" ]; then
            echo "scheduler: monthly jobs"
            monthly
        fi
        echo "$today" > "$state"
    fi
    sleep 60 &
    wait $!
done
