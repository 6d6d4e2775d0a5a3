#!/usr/bin/env bash
# Stops what ci/slurm/start.sh started, by PID file: slurmd, slurmctld, munged.
set -uo pipefail
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
for pidfile in /run/kairos-slurm/slurmd.pid /run/kairos-slurm/slurmctld.pid /run/munge/munged.pid; do
  [ -s "$pidfile" ] || continue
  pid=$($sudo cat "$pidfile")
  $sudo kill "$pid" 2>/dev/null || continue
  # Up to 10 s to go away.
  for _ in $(seq 1 50); do
    $sudo kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  $sudo rm -f "$pidfile"
done
