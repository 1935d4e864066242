#!/bin/sh
# The suvnet scheduler: runs the periodic jobs once a day after $SUVNET_SCHEDULER_AT (HHMM,
# UTC), and the monthly ones on the 1st. A day already done is remembered in
# /var/lib/suvnet/scheduler.last, so a restart does not run it twice. Edit the job lists below.
set -u

daily() {
    suvnet billing dunning --out-dir /var/lib/suvnet/dunning-letters
    # refresh the pipes and zone outlines of the Grafana network map from the registry
    suvnet dashboards build --out /var/lib/suvnet/grafana --network
}

monthly() {
    suvnet billing penalties
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
    today=$(date -u +%F)
    now=$(date -u +%H%M)
    last=$(cat "$state" 2>/dev/null || echo none)
    if [ "$today" != "$last" ] && [ "$now" -ge "$at" ]; then
        echo "scheduler: daily jobs for $today"
        daily || echo "scheduler: a daily job failed (exit $?)"
        if [ "$(date -u +%d)" = "01" ]; then
            echo "scheduler: monthly jobs"
            monthly || echo "scheduler: a monthly job failed (exit $?)"
        fi
        echo "$today" > "$state"
    fi
    sleep 60 &
    wait $!
done
