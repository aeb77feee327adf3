#!/usr/bin/env bash
# Ranking fidelity with every network trained in its own process, side by side (on one GPU:
# small networks leave it mostly idle, so 11 processes share it well), then combined.
#
#   benchmarks/ranking_fidelity_parallel.sh OUT_DIR REPS [ranking_fidelity.py options...]
#
# One process per stand-alone subnet (running seed repetitions 0 .. REPS-1 in turn) and one
# per strategy (sandwich, poa, uniform); each writes OUT_DIR/<name>.json and .log; the taus
# are printed by `ranking_fidelity.py --combine` at the end (also into OUT_DIR/combined.txt).
# Example (the GPU run in benchmarks/RESULTS.md):
#   benchmarks/ranking_fidelity_parallel.sh out 1 --data fashion-mnist --stem-stride 2 \
#       --batch-size 256 --epochs 12 --device cuda --threads 1
set -u -o pipefail
out=$1; reps=$2; shift 2
mkdir -p "$out"
rm -f "$out"/alone*.json "$out"/sandwich.json "$out"/poa.json "$out"/uniform.json
here=$(dirname "$0")
py=${PYTHON:-python3}
subnets=8
pids=()
for i in $(seq 0 $((subnets - 1))); do
  "$py" "$here/ranking_fidelity.py" "$@" --subnets $subnets --only "$i" \
    --standalone-seeds "$reps" --strategies --json "$out/alone$i.json" >"$out/alone$i.log" 2>&1 &
  pids+=($!)
done
for s in sandwich poa uniform; do
  "$py" "$here/ranking_fidelity.py" "$@" --subnets $subnets --only --strategies "$s" \
    --json "$out/$s.json" >"$out/$s.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
files=()  # a process that failed wrote nothing (its log says why): combine the others
for f in "$out"/alone*.json "$out"/sandwich.json "$out"/poa.json "$out"/uniform.json; do
  [ -f "$f" ] && files+=("$f")
done
[ ${#files[@]} -gt 0 ] || { echo "no results in $out (see its .log files)" >&2; exit 1; }
"$py" "$here/ranking_fidelity.py" --combine "${files[@]}" | tee "$out/combined.txt" || rc=1
exit $rc
