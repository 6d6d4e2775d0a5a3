#!/usr/bin/env bash
# Reproduces the README's benchmark tables with one command: bash bench/run.sh [--quick]
#
# Builds kairos in release mode, generates workloads with ../shared/bench/gen.py (the same DAG
# shapes the peers are measured on) and times whole processes (best of several runs, wall
# clock; peak RSS from the kernel's accounting of each child):
#   1. `kairos validate` on chain, fan-out and random DAG workflows of 10k and 100k nodes;
#   2. `kairos run` on the same no-op workflows (and 1M nodes), with `kairos validate` timed on
#      the same file so that parsing is reported apart from running;
#   3. a 10k-node random DAG of /bin/true shell nodes, `kairos run --jobs 2` against
#      `make -j2` on the identical graph;
#   4. a fork of 8 nodes sleeping 200 ms with `--jobs 8`.
# `cargo bench` has the in-process criterion numbers (benches/).
#
# bash bench/run.sh --compare OLD_KAIROS puts another build (e.g. the previous release) side by
# side with this one on the two workloads a change to the engine must not slow down: the
# 100k-node no-op random DAG (engine time, loading excluded) and the 10k-node /bin/true DAG
# against make -j2. Runs of the two builds alternate, so drift hits both alike.
set -euo pipefail
cd "$(dirname "$0")/.."
gen=${KAIROS_GEN:-../shared/bench/gen.py}
quick=${1:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
bin=$PWD/target/release/kairos

# measure RUNS DIR CMD...: prints "best_seconds peak_rss_kib load_seconds" over RUNS runs (in
# DIR). With KAIROS_TIMINGS set, `kairos run` reports on stderr how long loading the workflow
# (reading, parsing, validating) took; load_seconds is that of the fastest run, or 0.
measure() {
  python3 - "$@" <<'PY'
import os, re, sys, time
runs, cwd, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
best, rss, load = None, 0, 0.0
for i in range(runs):
    for f in os.listdir(cwd):
        if f.endswith(".jsonl"):  # fresh ledger paths for every run
            os.remove(os.path.join(cwd, f))
    err = os.path.join(cwd, "stderr.txt")
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        os.environ["KAIROS_TIMINGS"] = "1"
        os.execvp(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    d = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("command failed: %s\n%s" % (" ".join(cmd), open(err).read()))
    if best is None or d < best:
        best = d
        m = re.search(r"timings: load ([0-9.]+) ms", open(err).read())
        load = float(m.group(1)) / 1000 if m else 0.0
    rss = max(rss, usage.ru_maxrss)
print("%.3f %d %.3f" % (best, rss, load))
PY
}

workload() { # shape n tool -> path of the workflow
  local dir="$work/$1-$2"
  [ -f "$dir/graph.json" ] || python3 "$gen" "$1" "$2" --out "$work" --formats json,make >/dev/null
  python3 bench/graph2yaml.py "$dir/graph.json" "$dir/$3.yaml" --tool "$3"
  echo "$dir/$3.yaml"
}

if [ "$quick" = "--compare" ]; then
  old=${2:?usage: bash bench/run.sh --compare OLD_KAIROS}
  echo "## this build ($bin) against $old, runs alternating, best of each"
  wf=$(workload random-dag 100000 noop)
  best() { sort -n | head -1; }
  : > "$work/new.txt"; : > "$work/old.txt"
  for _ in 1 2 3 4 5 6 7; do
    read -r t _ l < <(measure 1 "$work" "$bin" run -q --ledger l.jsonl "$wf")
    python3 -c "print(max($t - $l, 1e-9))" >> "$work/new.txt"
    read -r t _ l < <(measure 1 "$work" "$old" run -q --ledger l.jsonl "$wf")
    python3 -c "print(max($t - $l, 1e-9))" >> "$work/old.txt"
  done
  e_new=$(best < "$work/new.txt"); e_old=$(best < "$work/old.txt")
  wf=$(workload random-dag 10000 shell)
  dir=$(dirname "$wf")
  : > "$work/snew.txt"; : > "$work/sold.txt"; : > "$work/make.txt"
  for _ in 1 2 3; do
    measure 1 "$work" "$bin" run -q --jobs 2 --ledger l.jsonl "$wf" | cut -d' ' -f1 >> "$work/snew.txt"
    measure 1 "$work" "$old" run -q --jobs 2 --ledger l.jsonl "$wf" | cut -d' ' -f1 >> "$work/sold.txt"
    measure 1 "$dir" make -s -j2 all | cut -d' ' -f1 >> "$work/make.txt"
  done
  s_new=$(best < "$work/snew.txt"); s_old=$(best < "$work/sold.txt"); s_make=$(best < "$work/make.txt")
  python3 - "$e_new" "$e_old" "$s_new" "$s_old" "$s_make" <<'PY'
import sys
e_new, e_old, s_new, s_old, s_make = map(float, sys.argv[1:])
print("| %-46s | %10s | %10s | %7s |" % ("workload", "this build", "old build", "change"))
print("| %-46s | %10s | %10s | %6.1f%% |" % ("100k no-op random DAG, engine time (nodes/s)", format(int(100000 / e_new), ","), format(int(100000 / e_old), ","), (e_old / e_new - 1) * 100))
print("| %-46s | %9.3fs | %9.3fs | %6.1f%% |" % ("10k /bin/true random DAG, --jobs 2 (wall)", s_new, s_old, (s_old / s_new - 1) * 100))
print("| %-46s | %9.3fs | %10s | %7s |" % ("  make -j2 on the same graph", s_make, "", ""))
PY
  exit 0
fi

sizes="10000 100000 1000000"
[ "$quick" = "--quick" ] && sizes="10000 100000"

# The constant part of peak RSS: a one-node workflow.
printf 'version: 1\nname: base\nnodes:\n  - id: only\n    tool: noop\n' > "$work/base.yaml"
read -r _ base_rss _ < <(measure 3 "$work" "$bin" run -q --ledger l.jsonl "$work/base.yaml")

echo "## kairos run, no-op nodes (whole process; parse = its loading phase, KAIROS_TIMINGS)"
echo "Peak RSS of a one-node run (the constant): ${base_rss} KiB; RSS/node = (peak RSS - constant) / nodes."
printf '| %-18s | %9s | %9s | %9s | %13s | %12s | %10s | %12s |\n' workload nodes "run (s)" "parse (s)" "run-parse (s)" "nodes/s" "RSS/node" "validate (s)"
for shape in chain fanout random-dag; do
  for n in $sizes; do
    wf=$(workload "$shape" "$n" noop)
    runs=7; [ "$n" -ge 1000000 ] && runs=2
    read -r t_run rss t_load < <(measure "$runs" "$work" "$bin" run -q --ledger l.jsonl "$wf")
    read -r t_val _ _ < <(measure "$runs" "$work" "$bin" validate "$wf")
    nodes=$(grep -c '^  - id:' "$wf")
    python3 - "$shape-$n" "$nodes" "$t_run" "$t_load" "$rss" "$base_rss" "$t_val" <<'PY'
import sys
name, nodes, run, load, rss, base, val = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
engine = max(run - load, 1e-9)
print("| %-18s | %9d | %9.3f | %9.3f | %13.3f | %12s | %8.0f B | %12.3f |" % (name, nodes, run, load, engine, format(int(nodes / engine), ","), (rss - base) * 1024 / nodes, val))
PY
  done
done

echo
echo "## 10k-node random DAG of /bin/true, 2 workers"
wf=$(workload random-dag 10000 shell)
dir=$(dirname "$wf")
read -r t_k _ < <(measure 3 "$work" "$bin" run -q --jobs 2 --ledger l.jsonl "$wf")
read -r t_m _ < <(measure 3 "$dir" make -s -j2 all)
printf '| %-22s | %8s | %10s |\n' tool "time (s)" "tasks/s"
python3 - "$t_k" "$t_m" <<'PY'
import sys
k, m = float(sys.argv[1]), float(sys.argv[2])
print("| %-22s | %8.3f | %10s |" % ("kairos run --jobs 2", k, format(int(10000 / k), ",")))
print("| %-22s | %8.3f | %10s |" % ("make -j2", m, format(int(10000 / m), ",")))
PY

echo
echo "## fork of 8 nodes sleeping 200 ms, --jobs 8"
cat > "$work/sleepy.yaml" <<'YAML'
version: 1
name: sleepy
nodes:
  - id: start
    fork: [s0, s1, s2, s3, s4, s5, s6, s7]
YAML
for i in 0 1 2 3 4 5 6 7; do
  printf '  - id: s%s\n    tool: sleep\n    with: { duration: 200ms }\n' "$i" >> "$work/sleepy.yaml"
done
read -r t_s _ < <(measure 3 "$work" "$bin" run -q --jobs 8 --ledger l.jsonl "$work/sleepy.yaml")
echo "whole process: ${t_s} s"

echo
echo "## kairos replay: chain check and state rebuild of a 1M-event ledger (500k no-op nodes)"
wf=$(workload chain 500000 noop)
(cd "$work" && "$bin" run -q --ledger replay-bench.jsonl "$wf")
cp "$work/replay-bench.jsonl" "$work/replay-bench.keep"
read -r t_r rss_r _ < <(measure 3 "$work" "$bin" replay replay-bench.keep)
python3 - "$t_r" "$rss_r" "$(wc -l < "$work/replay-bench.keep")" <<'PY'
import sys
t, rss, lines = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print("%d lines in %.3f s: %s lines/s (whole process, peak RSS %d MiB)" % (lines, t, format(int(lines / t), ","), rss // 1024))
PY
