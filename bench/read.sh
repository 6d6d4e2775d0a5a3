#!/usr/bin/env bash
# Reading ledgers, whole process, this build against another: bash bench/read.sh OLD_KAIROS [RUNS]
#
# Makes a 1,000,002-line ledger (a 500,000-node no-op chain run), then times, for each build,
#   - `kairos verify --require-signature` and `kairos replay` on that ledger with its embedded
#     workflow cut to a word and the chain made again (160 MB: the ledger of benches/ledgers.rs,
#     whose numbers the README gives), signed;
#   - `kairos diff` of it against the same run with one node retried;
#   - `kairos replay --check` on the ledger as written (it re-drives the embedded workflow).
# Runs of the two builds alternate, so drift on a shared machine hits both alike; the best and
# the median of RUNS runs (default 9) are printed, with lines/s of the best and the peak RSS
# (GNU time's, of the largest run). RAYON_NUM_THREADS, if set, reaches both builds.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bash bench/read.sh OLD_KAIROS [RUNS]}
old=$(realpath "$old")
runs=${2:-9}
gen=${KAIROS_GEN:-../shared/bench/gen.py}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
new=$PWD/target/release/kairos

python3 "$gen" chain 500000 --out "$work" --formats json >/dev/null
python3 bench/graph2yaml.py "$work/chain-500000/graph.json" "$work/chain.yaml" --tool noop
(cd "$work" && "$new" run -q --ledger run.jsonl chain.yaml)

# ledger.jsonl: run.jsonl with a one-word workflow_source; other.jsonl: node t249999 retried.
python3 - "$work" <<'PY'
import hashlib, json, sys, os
work = sys.argv[1]
def write(dst, edit):
    prev = "0" * 64
    with open(os.path.join(work, "run.jsonl"), "rb") as f, open(os.path.join(work, dst), "wb") as out:
        for i, line in enumerate(f):
            s = edit(i, line.rstrip(b"\n"))
            j = s.index(b'"prev":"') + 8
            s = s[:j] + prev.encode() + s[j + 64:]
            prev = hashlib.sha256(s).hexdigest()
            out.write(s + b"\n")
def small_start(i, s):
    if i == 0:
        d = json.loads(s)
        d["workflow_source"] = "bench"
        s = json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()
    return s
def retried(i, s):
    s = small_start(i, s)
    return s.replace(b'"attempts":1', b'"attempts":2') if i == 500000 else s
write("ledger.jsonl", small_start)
write("other.jsonl", retried)
PY
(cd "$work" && "$new" keygen --out k >/dev/null && "$new" sign ledger.jsonl --key k.key >/dev/null)
lines=$(wc -l < "$work/ledger.jsonl")

# compare NAME ARGS...: both builds, alternating, in $work.
compare() {
  local name=$1
  shift
  python3 - "$work" "$runs" "$lines" "$name" "$old" "$new" "$@" <<'PY'
import os, statistics, subprocess, sys, time
work, runs, lines, name, old, new, args = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7:]
walls = {old: [], new: []}
for _ in range(runs):
    for b in (old, new):
        t = time.perf_counter()
        p = subprocess.run([b] + args, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        walls[b].append(time.perf_counter() - t)
        if p.returncode not in (0, 1):
            sys.exit("%s %s failed: %s" % (b, args, p.stderr.decode()))
def rss(b):
    # GNU time's peak RSS: the child is started by `time`, not by this (larger) process.
    p = subprocess.run(["/usr/bin/time", "-f", "%M", b] + args, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return int(p.stderr.decode().strip().splitlines()[-1]) // 1024
for label, b in (("old", old), ("new", new)):
    w = walls[b]
    print("| %-32s | %s | %6.3f s | %6.3f s | %5.2f M | %4d MiB |" % (name, label, min(w), statistics.median(w), lines / min(w) / 1e6, rss(b)))
print("| %-32s | speed-up of the best run: %.2fx |" % (name, min(walls[old]) / min(walls[new])))
PY
}

echo "## reading a ${lines}-line ledger: $old (old) against $new (new), best and median of $runs"
echo "| command | build | best | median | lines/s (best) | peak RSS |"
echo "|---|---|---|---|---|---|"
compare "verify --require-signature" verify ledger.jsonl --key k.pub --require-signature
compare "replay" replay ledger.jsonl
compare "diff (one node differs)" diff ledger.jsonl other.jsonl
compare "replay --check (embedded workflow)" replay --check run.jsonl
