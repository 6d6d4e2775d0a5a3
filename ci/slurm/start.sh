#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine, for the executor's integration test
# (tests/slurm.rs) and benchmark (bench/slurm.sh). Installs nothing: it needs Debian's
# `slurmctld slurmd slurm-client munge` (see .ci/run). Works without systemd: munged, then
# `slurmctld -c`, then slurmd, each writing a PID file that stop.sh reads.
#
#   ci/slurm/start.sh [CPUS]    CPUS slots on the node (default 16, more than the machine has:
#                               the jobs the tests run mostly wait)
#
# Writes /etc/slurm/slurm.conf (where the client programs look), so it runs as root or with
# sudo. Calling it again with the cluster up restarts it with the new configuration.
set -euo pipefail
cpus=${1:-16}
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
here=$(cd "$(dirname "$0")" && pwd)
"$here/stop.sh" >/dev/null 2>&1 || true

for program in munged slurmctld slurmd sbatch; do
  command -v "$program" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
  command -v "$program" >/dev/null 2>&1 || {
    echo "start.sh: $program is missing: apt-get install slurmctld slurmd slurm-client munge" >&2
    exit 1
  }
done

host=$(hostname -s)
run=/run/kairos-slurm
$sudo mkdir -p "$run" /var/lib/kairos-slurm/ctld /var/lib/kairos-slurm/d /var/log/kairos-slurm \
  /etc/slurm /run/munge /var/lib/munge /var/log/munge
$sudo chown munge:munge /run/munge /var/lib/munge /var/log/munge
$sudo chmod 0755 /run/munge

# munge: the key the package made, or a new one.
if [ ! -s /etc/munge/munge.key ]; then
  $sudo mungekey --create --keyfile=/etc/munge/munge.key
fi
$sudo chown munge:munge /etc/munge/munge.key
$sudo chmod 0400 /etc/munge/munge.key
$sudo -u munge /usr/sbin/munged --pid-file="/run/munge/munged.pid" 2>/dev/null ||
  $sudo runuser -u munge -- /usr/sbin/munged --pid-file="/run/munge/munged.pid"

# Memory in MB, a little under what the machine has.
mem=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
$sudo tee /etc/slurm/slurm.conf >/dev/null <<CONF
# Written by kairos's ci/slurm/start.sh: one node, no accounting, no cgroups.
ClusterName=kairos
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# Without these, each job waits about 3 s to be scheduled; with them about 1 s.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
# Lets the node declare more CPUs than the machine has.
SlurmdParameters=config_overrides
StateSaveLocation=/var/lib/kairos-slurm/ctld
SlurmdSpoolDir=/var/lib/kairos-slurm/d
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.pid
SlurmctldLogFile=/var/log/kairos-slurm/slurmctld.log
SlurmdLogFile=/var/log/kairos-slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# `-c`: a clean start, without the jobs of an earlier cluster.
$sudo /usr/sbin/slurmctld -c
$sudo /usr/sbin/slurmd

# Ready when the node takes jobs.
for _ in $(seq 1 60); do
  if sinfo --noheader --nodes="$host" --format=%t 2>/dev/null | grep -Eq '^(idle|mix|alloc)'; then
    echo "slurm: node $host up with $cpus CPUs"
    exit 0
  fi
  sleep 0.5
done
echo "start.sh: the node did not come up; see /var/log/kairos-slurm/" >&2
sinfo >&2 || true
exit 1
