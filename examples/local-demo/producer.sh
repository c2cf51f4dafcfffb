#!/bin/sh
# Sends a burst of jobs to the demo's spool: producer.sh [COUNT]
spool="$(dirname "$0")/spool"
mkdir -p "$spool"
count="${1:-60}"
i=0
while [ "$i" -lt "$count" ]; do
  # Write then rename, so a worker never takes a half-written job.
  echo "job $i" > "$spool/.job-$$-$i.tmp" && mv "$spool/.job-$$-$i.tmp" "$spool/job-$$-$i.job"
  i=$((i + 1))
done
echo "queued $count jobs in $spool"
