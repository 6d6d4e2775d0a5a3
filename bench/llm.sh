#!/usr/bin/env bash
# Model calls against a local fake server (bench/fake_llm_server.py, 100 ms per answer):
#   1. 200 `llm` calls (one for_each node) by `kairos run --jobs 4`, with the network lane at
#      its default (64 calls at once) and at 200;
#   2. the same 200 calls by plain asyncio + httpx, every request in flight at once, and by bare
#      asyncio streams (bench/llm_asyncio.py: the floor, as httpx's pool slows down with
#      hundreds of requests waiting on it);
#   3. the same 200 calls fanned out by LangGraph + langchain-openai, when they import;
#   4. `kairos replay --check` of a 1,000-call LLM ledger (recorded against a 0 ms server).
# Wall clock, best of RUNS (default 3). Python: $PYTHON (default python3) with httpx, and
# langgraph + langchain-openai for row 3:
#   python3 -m venv /tmp/v && /tmp/v/bin/pip install httpx langgraph langchain-openai
#   PYTHON=/tmp/v/bin/python bash bench/llm.sh
# Extra kairos flags for row 1 go in KAIROS_LLM_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
runs=${RUNS:-3}
n=${CALLS:-200}
work=$(mktemp -d)
cleanup() {
  for f in "$work"/pid.*; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet
bin=$PWD/target/release/kairos

# serve LATENCY_MS: starts a fake server; prints its base URL.
serve() {
  # Called as $(serve ...): the server's pid goes to a file, as a subshell's variables do not
  # reach the caller; its output must not hold the substitution's pipe open.
  python3 bench/fake_llm_server.py --latency-ms "$1" --lifetime 1800 > "$work/port.$1" 2>/dev/null &
  echo $! > "$work/pid.$1"
  for _ in $(seq 50); do [ -s "$work/port.$1" ] && break; sleep 0.1; done
  echo "http://127.0.0.1:$(head -1 "$work/port.$1")/v1"
}

# workflow N FILE: one `llm` node over N items.
workflow() {
  python3 - "$1" > "$2" <<'PY'
import sys
n = int(sys.argv[1])
print(f"""version: 1
name: llm-bench
inputs:
  url: {{ default: "http://127.0.0.1:9/v1" }}
policy:
  preset: restrictive
  allow: [llm]
  hosts: [127.0.0.1]
nodes:
  - id: ask
    for_each: {list(range(n))}
    tool: llm
    with:
      base_url: "{{{{ inputs.url }}}}"
      model: bench-model
      prompt: "item {{{{ item }}}}"
""")
PY
}

# best RUNS CMD...: the best wall time of RUNS runs, in seconds.
best() {
  python3 - "$@" <<'PY'
import subprocess, sys, time
import os
runs, cmd = int(sys.argv[1]), sys.argv[2:]
best = None
for _ in range(runs):
    # A ledger is never overwritten: each run writes a fresh one.
    if "--ledger" in cmd:
        path = cmd[cmd.index("--ledger") + 1]
        if os.path.exists(path):
            os.remove(path)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    d = time.perf_counter() - t
    best = d if best is None else min(best, d)
print(f"{best:.3f}")
PY
}

# best_printed RUNS CMD...: the best of the times a script prints itself.
best_printed() {
  local r=$1; shift
  local b=""
  for _ in $(seq "$r"); do
    t=$("$@")
    b=$(python3 -c "import sys; a=[float(x) for x in sys.argv[1:] if x]; print(f'{min(a):.3f}')" $b "$t")
  done
  echo "$b"
}

url=$(serve 100)
workflow "$n" "$work/wf.yaml"
export OPENAI_API_KEY=
echo "| $n llm calls, 100 ms each | wall time (s) |"
echo "|---|---|"
for lane in 64 "$n"; do
  t=$(best "$runs" "$bin" run "$work/wf.yaml" --quiet --jobs 4 --net-jobs "$lane" --ledger "$work/l.jsonl" -i "url=$url" ${KAIROS_LLM_FLAGS:-})
  echo "| kairos run --jobs 4 --net-jobs $lane | $t |"
done
if "$py" -c "import httpx" 2>/dev/null; then
  echo "| python asyncio + httpx (floor) | $(best_printed "$runs" "$py" bench/llm_httpx.py "$url" "$n") |"
else
  echo "| python asyncio + httpx (floor) | skipped: $py cannot import httpx |"
fi
echo "| python asyncio streams, no client library (floor) | $(best_printed "$runs" python3 bench/llm_asyncio.py "$url" "$n") |"
if "$py" -c "import langgraph, langchain_openai" 2>/dev/null; then
  echo "| LangGraph + langchain-openai | $(best_printed "$runs" "$py" bench/llm_langgraph.py "$url" "$n") |"
else
  echo "| LangGraph + langchain-openai | skipped: $py cannot import langgraph, langchain_openai |"
fi

fast=$(serve 0)
workflow 1000 "$work/big.yaml"
"$bin" run "$work/big.yaml" --quiet --jobs 64 --ledger "$work/big.jsonl" -i "url=$fast"
lines=$(wc -l < "$work/big.jsonl")
bytes=$(wc -c < "$work/big.jsonl")
t=$(best "$runs" "$bin" replay "$work/big.jsonl" --check)
echo
echo "| replay --check of a 1,000-call LLM ledger ($lines lines, $bytes bytes) | $t s |"
