#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each (default 60) and fails if one
# crashes, leaks, runs out of memory or hangs on an input. CI runs it for a minute per target;
# the long run is `fuzz/run.sh 3600` (docs/fuzzing.md).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Limits, each overridable from the environment:
#   FUZZ_MAX_LEN   longest input tried, in bytes                  (default 65536)
#   FUZZ_RSS_MB    memory a run may hold before it is a finding   (default 2048)
#   FUZZ_TIMEOUT   seconds one input may take before it is one    (default 10)
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

# The fuzz crate's own lock file, as committed (cargo fuzz itself has no --locked).
cargo fetch --locked --quiet

"$fuzz/seed.sh"

# Debug assertions on: an integer overflow is a finding too.
build=(-s none --debug-assertions)
cargo fuzz build "${build[@]}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The ledger target writes the ledger it checks to a file here (the commands read files).
export KAIROS_FUZZ_TMP="$tmp"

failed=()
for target in "${targets[@]}"; do
  binary="$fuzz/target/x86_64-unknown-linux-gnu/release/$target"
  if [ ! -x "$binary" ]; then binary="$(find "$fuzz/target" -path "*/release/$target" -type f | head -n1)"; fi
  limits=(-rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" -max_len="$max_len" -timeout="$timeout")

  # Known findings first: each must pass, unless it is still open.
  if [ -d "$fuzz/regressions/$target" ]; then
    for input in "$fuzz/regressions/$target"/*; do
      [ -f "$input" ] || continue
      name="$(basename "$input")"
      if "$binary" "${limits[@]}" -runs=1 "$input" >"$tmp/replay.log" 2>&1; then
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
  fi

  corpus="$fuzz/corpus/$target"
  dict="$fuzz/dict/$target.dict"
  # The differential target starts from the analysis target's corpus and dictionary.
  if [ "$target" = shell_differential ]; then
    mkdir -p "$corpus"
    cp -n "$fuzz/corpus/shell_programs"/* "$corpus"/ 2>/dev/null || true
    dict="$fuzz/dict/shell_programs.dict"
  fi
  mkdir -p "$fuzz/artifacts/$target"
  log="$tmp/$target.log"
  echo "run.sh: fuzzing $target for ${seconds}s"
  status=0
  cargo fuzz run "${build[@]}" "$target" "$corpus" -- \
    "${limits[@]}" -max_total_time="$seconds" -dict="$dict" \
    -print_final_stats=1 -artifact_prefix="$fuzz/artifacts/$target/" >"$log" 2>&1 || status=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
  cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1)"
  echo "run.sh: $target: ${execs:-?} executions, ${cov:-no coverage line}, corpus $(find "$corpus" -type f | wc -l) inputs"
  if [ "$status" -ne 0 ]; then
    artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)"
    grep -E '^(==[0-9]+== ?ERROR|thread .* panicked|SUMMARY)' "$log" | head -n 5 >&2 || true
    tail -n 40 "$log" >&2
    echo "run.sh: $target FAILED; reproduce with: cargo fuzz run ${build[*]} $target ${artifact:-<artifact>}" >&2
    failed+=("$target: ${artifact:-exit $status}")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "run.sh: findings:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "run.sh: ${#targets[@]} targets fuzzed for ${seconds}s each, no finding"
