#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each (default 60) and fails if one
# crashes, runs out of memory or hangs on an input. CI runs it for a minute per target; the
# long run is `fuzz/run.sh 3600` (docs/fuzzing.md).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Limits, each overridable from the environment:
#   FUZZ_MAX_LEN   longest input tried, in bytes                  (default 65536)
#   FUZZ_RSS_MB    memory a run may hold before it is a finding   (default 2048)
#   FUZZ_TIMEOUT   seconds one input may take before it is one    (default 10)
#   FUZZ_JOBS      targets fuzzed at the same time                (default 1; CI: 2)
#   FUZZ_SEED      libFuzzer's seed: 0 picks one at random        (default 0; CI: 1)
#
# CI fixes the seed and starts from the corpus seed.sh builds, so the inputs it tries are the
# same on every run, as far as its time allows: CI then tells about a change, not about luck.
# Finding what nobody tried yet is the long run's job, with a random seed.
#
# Before fuzzing, each file of fuzz/regressions/TARGET/ is run once: a file that fails fails
# the run, except one named `open-*` (a finding not fixed yet), which is only reported.
# Stable Rust is enough: `-s none` builds without a sanitizer, which is what needs nightly.
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz"

seconds="${1:-60}"
shift || true
all=(workflow_load template_render shell_programs ledger_read shell_differential)
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then targets=("${all[@]}"); fi
max_len="${FUZZ_MAX_LEN:-65536}"
rss_mb="${FUZZ_RSS_MB:-2048}"
timeout="${FUZZ_TIMEOUT:-10}"
jobs="${FUZZ_JOBS:-1}"
seed="${FUZZ_SEED:-0}"

# cargo-fuzz, pinned: the fuzz crate's libfuzzer-sys and this driver go together.
cargo_fuzz_version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
  cargo install --locked cargo-fuzz --version "$cargo_fuzz_version"
fi

# shell_differential runs what the analysis accepts under `sh` in a bubblewrap sandbox.
if [[ " ${targets[*]} " == *" shell_differential "* ]] && ! command -v bwrap >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    bubblewrap dash >/dev/null
fi

# The fuzz crate's own lock file, as committed (cargo fuzz itself has no --locked). When the
# main crate's dependencies changed since, it starts again from the main lock file, so the
# fuzzed code uses the versions kairos ships; cargo then adds only libFuzzer's crates.
if ! cargo fetch --locked --quiet 2>/dev/null; then
  echo "run.sh: fuzz/Cargo.lock is behind the main Cargo.lock: rebuilt from it (commit the result)" >&2
  cp "$fuzz/../Cargo.lock" "$fuzz/Cargo.lock"
  cargo fetch --quiet
fi

"$fuzz/seed.sh"
# The differential target starts from the analysis target's corpus.
mkdir -p "$fuzz/corpus/shell_differential"
cp -n "$fuzz/corpus/shell_programs"/* "$fuzz/corpus/shell_differential"/ 2>/dev/null || true

# Debug assertions on: an integer overflow is a finding too.
build=(-s none --debug-assertions)
cargo fuzz build "${build[@]}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The ledger and differential targets write their files here.
export KAIROS_FUZZ_TMP="$tmp"
limits=(-rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" -max_len="$max_len" -timeout="$timeout")
binary() { find "$fuzz/target" -path "*/release/$1" -type f -perm -u+x | head -n1; }

failed=()
# Known findings first: each must pass, unless it is still open.
for target in "${targets[@]}"; do
  [ -d "$fuzz/regressions/$target" ] || continue
  for input in "$fuzz/regressions/$target"/*; do
    [ -f "$input" ] || continue
    name="$(basename "$input")"
    # Whole files (-max_len would cut them); an open hang need not be waited out in full: 3 s
    # tells whether it still hangs.
    replay_limits=(-rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" -timeout="$timeout")
    case "$name" in open-*) replay_limits+=(-timeout=3) ;; esac
    if "$(binary "$target")" "${replay_limits[@]}" -runs=1 "$input" >"$tmp/replay.log" 2>&1; then
      case "$name" in
        open-*) echo "run.sh: $target: $name passes now: rename it without \`open-\` to keep it as a guard" ;;
      esac
    else
      case "$name" in
        open-*) echo "run.sh: $target: $name: still open (not counted as a failure)" ;;
        *)
          echo "run.sh: $target: regression $input fails again:" >&2
          tail -n 30 "$tmp/replay.log" >&2
          failed+=("$target: regressions/$target/$name")
          ;;
      esac
    fi
  done
done

# Fuzzes one target; its log and exit status are left in $tmp.
fuzz_one() {
  local target=$1 dict="$fuzz/dict/$1.dict" status=0
  if [ "$target" = shell_differential ]; then dict="$fuzz/dict/shell_programs.dict"; fi
  mkdir -p "$fuzz/artifacts/$target"
  cargo fuzz run "${build[@]}" "$target" "$fuzz/corpus/$target" -- \
    "${limits[@]}" -max_total_time="$seconds" -seed="$seed" -dict="$dict" \
    -print_final_stats=1 -artifact_prefix="$fuzz/artifacts/$target/" \
    >"$tmp/$target.log" 2>&1 || status=$?
  echo "$status" >"$tmp/$target.status"
}

echo "run.sh: fuzzing ${targets[*]} for ${seconds}s each, $jobs at a time"
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  fuzz_one "$target" &
done
wait

for target in "${targets[@]}"; do
  log="$tmp/$target.log"
  status="$(cat "$tmp/$target.status" 2>/dev/null || echo 1)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
  cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1 || true)"
  echo "run.sh: $target: ${execs:-?} executions, ${cov:-no coverage line}, corpus $(find "$fuzz/corpus/$target" -type f | wc -l) inputs"
  if [ "$status" -ne 0 ]; then
    artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)"
    # What failed (a panic's message, or libFuzzer's summary), then the end of the log.
    grep -E -A2 -m1 'panicked at|^==[0-9]+== ERROR' "$log" >&2 || true
    tail -n 12 "$log" >&2
    echo "run.sh: $target FAILED; reproduce with: (cd fuzz && cargo fuzz run ${build[*]} $target ${artifact:-<artifact>})" >&2
    failed+=("$target: ${artifact:-exit $status}")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "run.sh: findings:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "run.sh: ${#targets[@]} targets fuzzed for ${seconds}s each, no finding"
