#!/bin/sh
# A demo worker: takes one job at a time from the spool and "works" on it. On SIGTERM it puts
# back the job it holds and exits, which is what a drained worker should do.
spool="${SPOOL:-spool}"
stop=0
trap 'stop=1' TERM
mkdir -p "$spool/taken"
echo "worker $CAPSTAN_REPLICA started"
while [ "$stop" -eq 0 ]; do
  for job in "$spool"/*.job; do
    [ -e "$job" ] || break
    mine="$spool/taken/$(basename "$job").$CAPSTAN_REPLICA"
    mv "$job" "$mine" 2>/dev/null || continue
    sleep "${WORK_SECONDS:-1}"
    if [ "$stop" -eq 1 ]; then
      mv "$mine" "$job"
      break
    fi
    rm -f "$mine"
    echo "worker $CAPSTAN_REPLICA finished $(basename "$job")"
  done
  [ "$stop" -eq 0 ] && sleep 0.2
done
echo "worker $CAPSTAN_REPLICA drained"
if [ -n "$DRAIN_MARKERS" ]; then echo "$CAPSTAN_REPLICA" >> "$DRAIN_MARKERS"; fi
