#!/usr/bin/env bash
# Ranking fidelity with every network trained in its own process, then combined: first the
# three supernets side by side, then the stand-alone subnets side by side.
#
#   benchmarks/ranking_fidelity_parallel.sh OUT_DIR REPS [ranking_fidelity.py options...]
#
# One process per strategy (sandwich, poa, uniform), then one per stand-alone subnet (running
# seed repetitions 0 .. REPS-1 in turn); each writes OUT_DIR/<name>.json and .log; the taus
# are printed by `ranking_fidelity.py --combine` at the end (also into OUT_DIR/combined.txt).
# Two phases, not all 11 processes at once: processes share one GPU by time slices, and
# measured on an H200 the sandwich supernet's epochs took 182-217 s beside 8 stand-alone
# trainings replaying CUDA graphs, against 32-36 s with the three supernets alone
# (benchmarks/RESULTS.md).
# Example (the recipe of the 8-epoch GPU run in benchmarks/RESULTS.md, which was run in
# pieces to fit the device's 10-minute limit per command):
#   benchmarks/ranking_fidelity_parallel.sh out 5 --data fashion-mnist --stem-stride 2 \
#       --batch-size 256 --epochs 8 --device cuda --threads 1 --span extremes --cuda-graphs
set -u -o pipefail
out=$1; reps=$2; shift 2
mkdir -p "$out"
rm -f "$out"/alone*.json "$out"/sandwich.json "$out"/poa.json "$out"/uniform.json
here=$(dirname "$0")
py=${PYTHON:-python3}
# TIMEOUT=SECONDS: stop each process after that long (a device with a time limit per command:
# what finished is still combined)
limit=()
[ -n "${TIMEOUT:-}" ] && limit=(timeout "$TIMEOUT")
subnets=8
rc=0
pids=()
for s in sandwich poa uniform; do
  "${limit[@]}" "$py" "$here/ranking_fidelity.py" "$@" --subnets $subnets --only --strategies "$s" \
    --json "$out/$s.json" >"$out/$s.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || rc=1; done
pids=()
for i in $(seq 0 $((subnets - 1))); do
  "${limit[@]}" "$py" "$here/ranking_fidelity.py" "$@" --subnets $subnets --only "$i" \
    --standalone-seeds "$reps" --strategies --json "$out/alone$i.json" >"$out/alone$i.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || rc=1; done
files=()  # a process that failed wrote nothing (its log says why): combine the others
for f in "$out"/alone*.json "$out"/sandwich.json "$out"/poa.json "$out"/uniform.json; do
  [ -f "$f" ] && files+=("$f")
done
[ ${#files[@]} -gt 0 ] || { echo "no results in $out (see its .log files)" >&2; exit 1; }
"$py" "$here/ranking_fidelity.py" --combine "${files[@]}" | tee "$out/combined.txt" || rc=1
exit $rc
