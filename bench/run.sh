#!/usr/bin/env bash
# Reproduces the README's benchmark table with one command: bash bench/run.sh
#
# Builds kairos in release mode, generates workloads with ../shared/bench/gen.py (the same
# DAG shapes the peers are measured on), and times whole `kairos validate` processes on them
# (best of 5 runs, wall clock). `cargo bench` has the in-process criterion numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
gen=${KAIROS_GEN:-../shared/bench/gen.py}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
bin=target/release/kairos

best_of_5() {
  python3 - "$@" <<'PY'
import subprocess, sys, time
best = None
for _ in range(5):
    t = time.perf_counter()
    subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
    d = time.perf_counter() - t
    best = d if best is None else min(best, d)
print("%.3f" % best)
PY
}

printf '%-28s %10s %10s %12s\n' "workload" "nodes" "size" "validate (s)"
for shape in chain fanout random-dag; do
  for n in 10000 100000; do
    python3 "$gen" "$shape" "$n" --out "$work" --formats json >/dev/null
    dir="$work/$shape-$n"
    python3 bench/graph2yaml.py "$dir/graph.json" "$dir/wf.yaml"
    size=$(du -h "$dir/wf.yaml" | cut -f1)
    nodes=$(grep -c '^  - id:' "$dir/wf.yaml")
    printf '%-28s %10s %10s %12s\n' "$shape-$n" "$nodes" "$size" "$(best_of_5 "$bin" validate "$dir/wf.yaml")"
  done
done
