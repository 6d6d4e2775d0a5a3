#!/usr/bin/env bash
# The Slurm executor against local workers (docs/executors.md): 200 `sleep 1` shell nodes,
# `kairos run --jobs 16` against `kairos run --executor slurm` on a 16-slot node. Reports wall
# time, kairos's own CPU time per job (user + system of the kairos process and the programs
# it starts: `sleep` locally, `sbatch`/`squeue` on Slurm) and the status queries a minute
# (kairos's count, and the controller's own count of job-info requests from `sdiag`).
#
#   ci/slurm/start.sh 16 && bash bench/slurm.sh [NODES]
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-200}
sinfo --noheader >/dev/null 2>&1 || {
  echo "bench/slurm.sh: no Slurm controller answers; start one with ci/slurm/start.sh 16" >&2
  exit 1
}
cargo build --release --quiet
bin=$PWD/target/release/kairos
work=$(mktemp -d "$PWD/target/bench-slurm.XXXXXX")
trap 'rm -rf "$work"' EXIT

{
  echo "version: 1"
  echo "name: sleeps"
  echo "policy: { preset: permissive }"
  # Default limits: up to 100 jobs in flight, 10 submissions a second; the node runs 16.
  echo "executor: { work_dir: $work/slurm }"
  echo "nodes:"
  for i in $(seq 1 "$nodes"); do printf '  - id: s%d\n    run: sleep 1\n' "$i"; done
} >"$work/wf.yaml"

# measure NAME ARGS...: one run of kairos in $work; prints wall, CPU and kairos's timings line.
measure() {
  python3 - "$work" "$bin" "$@" <<'PY'
import os, resource, subprocess, sys, time
work, kairos, name, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
before = resource.getrusage(resource.RUSAGE_CHILDREN)
start = time.monotonic()
env = dict(os.environ, KAIROS_TIMINGS="1")
done = subprocess.run([kairos, "run", "wf.yaml", "-q", "--ledger", name + ".jsonl", *args],
                      cwd=work, env=env, stderr=subprocess.PIPE, text=True)
wall = time.monotonic() - start
after = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
slurm = [l for l in done.stderr.splitlines() if "slurm:" in l]
print(f"{name}: exit {done.returncode}, wall {wall:.1f} s, kairos CPU {cpu:.2f} s "
      f"({cpu / int(os.environ['NODES']) * 1000:.1f} ms a job)")
for line in slurm:
    queries = int(line.split(" status queries")[0].rsplit(", ", 1)[1])
    print(f"  {line.strip()}")
    print(f"  status queries: {queries} in {wall:.1f} s = {queries / wall * 60:.1f} a minute")
PY
}

export NODES=$nodes
measure local --executor local --jobs 16
# The controller's own count of job-info requests (what `squeue` sends) during the run.
if command -v sdiag >/dev/null 2>&1; then sdiag --reset >/dev/null 2>&1 || true; fi
measure slurm --executor slurm
if command -v sdiag >/dev/null 2>&1; then
  sdiag 2>/dev/null | grep -E "REQUEST_JOB_INFO |REQUEST_SUBMIT_BATCH_JOB " |
    sed 's/^ */  controller: /' || true
fi
# The cluster's own floor: the same jobs submitted at once with plain `sbatch` (no limit on
# jobs in flight, no rate limit), until the controller lists none of them; with
# `--export=NONE` as kairos submits (on a small machine it costs more than `ALL`: measured
# too).
floor() {
  local start end export=$1
  mkdir -p "$work/floor"
  printf '#!/bin/sh\nsleep 1\n' >"$work/floor/job.sh"
  start=$(date +%s.%N)
  for _ in $(seq 1 "$nodes"); do
    sbatch --parsable --export="$export" --job-name=kairos-bench-floor --output=/dev/null \
      "$work/floor/job.sh" >/dev/null
  done
  while [ -n "$(squeue --noheader --name=kairos-bench-floor --format=%i)" ]; do sleep 0.2; done
  end=$(date +%s.%N)
  echo "floor: $nodes plain sbatch --export=$export jobs at once, wall $(echo "$end - $start" | bc) s"
}
floor NONE
floor ALL
cmp -s "$work/local.jsonl" "$work/slurm.jsonl" && echo "ledgers: identical" ||
  echo "ledgers: DIFFERENT"
