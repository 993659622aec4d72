#!/usr/bin/env bash
# Runs the simulator's randomized tests over many seeds, in parallel processes.
#
#   scripts/sim.sh [--seeds N | --seed S] [--part db|db-raft|db-raft-members|queue|cache|runtime|failover] [--jobs J]
#
# --seeds N   seeds 1..N (default 100), split across J processes (default: the CPU count)
# --seed S    one seed, with its fault schedule and outcomes printed (the replay of a failure)
# --part P    which part's simulation: db (default; the single-leader modes), db-raft (the
#             database's Raft mode), db-raft-members (Raft while the group is resized),
#             queue, cache, runtime, or failover (a failover child over the Raft metadata
#             group: never two instances at once; the root package's tests/failover_sim.rs)
#             (docs/reliability.md)
#
# Prints seeds run, faults injected, failures (each with its replay command), and exits non-zero
# if any seed failed. Every run is bounded: each process by 60 s per seed. The tests are built
# with --release (a seed takes ~0.7 s there, ~15 s in a debug build); the first run builds them
# (~13 min from a cold target on two cores).
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=100
ONE=""
PART=db
JOBS=$(nproc)
while [ $# -gt 0 ]; do
    case $1 in
        --seeds) SEEDS=$2; shift 2 ;;
        --seed) ONE=$2; shift 2 ;;
        --part) PART=$2; shift 2 ;;
        --jobs) JOBS=$2; shift 2 ;;
        *) echo "usage: $0 [--seeds N | --seed S] [--part db|db-raft|db-raft-members|queue|cache|runtime|failover] [--jobs J]" >&2; exit 2 ;;
    esac
done

# ONLY: the one test of the binary a part runs per seed, where the binary has others
ONLY=()
case $PART in
    db) TEST=(-p troupe-db --test random_faults_sim)
        ONLY=(--exact random_faults_lose_no_acknowledged_write) ;;
    db-raft) TEST=(-p troupe-db --test random_faults_sim)
        ONLY=(--exact raft_mode_stays_linearizable_under_random_faults) ;;
    db-raft-members) TEST=(-p troupe-db --test random_faults_sim)
        ONLY=(--exact raft_membership_changes_stay_linearizable_under_random_faults) ;;
    queue) TEST=(-p troupe-queue --test random_faults_sim) ;;
    cache) TEST=(-p troupe-cache --test random_faults_sim) ;;
    runtime) TEST=(-p troupe-sim --test random_faults) ;;
    failover) TEST=(-p troupe-framework --test failover_sim)
        ONLY=(--exact a_failover_child_never_runs_twice_under_faults) ;;
    *) echo "no simulation for part '$PART' (db, db-raft, db-raft-members, queue, cache, runtime, failover)" >&2; exit 2 ;;
esac

# the test binary, run directly: one process per seed, without cargo's start-up each time
BIN=$(cargo test --release -q "${TEST[@]}" --no-run --message-format=json \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])' | tail -1)
[ -x "$BIN" ] || { echo "could not find the test binary for ${TEST[*]}" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

if [ -n "$ONE" ]; then
    TROUPE_SIM_SEEDS=$ONE TROUPE_SIM_TRACE=1 timeout 120 "$BIN" "${ONLY[@]}" --nocapture
    exit
fi

START=$(date +%s)
per=$(( (SEEDS + JOBS - 1) / JOBS ))
pids=()
for j in $(seq 0 $((JOBS - 1))); do
    from=$(( j * per + 1 )); to=$(( (j + 1) * per ))
    [ "$to" -gt "$SEEDS" ] && to=$SEEDS
    [ "$from" -gt "$to" ] && continue
    (
        failed=0
        for seed in $(seq "$from" "$to"); do
            if ! TROUPE_SIM_SEEDS=$seed timeout 60 "$BIN" "${ONLY[@]}" --nocapture >"$OUT/$seed.log" 2>&1; then
                echo "$seed" >>"$OUT/failed.$j"
            fi
            echo "$seed" >>"$OUT/done.$j"
        done
    ) &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

run=$(cat "$OUT"/done.* 2>/dev/null | wc -l)
failed=$(cat "$OUT"/failed.* 2>/dev/null | sort -n || true)
sum() { grep -ho "$1=[0-9]*" "$OUT"/*.log 2>/dev/null | cut -d= -f2 | awk '{s += $1} END {print s + 0}'; }
echo "== part $PART: $run seeds run in $(( $(date +%s) - START )) s, $(echo -n "$failed" | grep -c . || true) failed"
echo "   faults injected: $(sum faults), writes or enqueues: $(sum writes) ($(sum acked) acknowledged, $(sum unknown) with unknown outcome), all checked"
# every other count a part's SIM lines report (reads, pokes, lost calls, leaderships...)
others=$(grep -h -E "^(SIM|LEADERS) " "$OUT"/*.log 2>/dev/null | tr ' ' '\n' \
    | grep -E '^[a-z_]+=[0-9]+$' | grep -vE '^(seed|faults|writes|acked|unknown|keys|converged_ms|settled_after_ms)=' \
    | awk -F= '{s[$1] += $2} END {for (k in s) printf "%s=%d ", k, s[k]}' || true)
[ -n "$others" ] && echo "   other totals: $others"
restarts=$(grep -ho "[0-9]* pair restarts, [0-9]* escalations" "$OUT"/*.log 2>/dev/null \
    | awk '{r += $1; e += $4} END {if (r + e > 0) printf "%d restarts and %d escalations of the one-for-all pairs", r, e}' || true)
[ -n "$restarts" ] && echo "   supervision: $restarts, every report checked against the policies"
for seed in $failed; do
    echo "-- seed $seed failed; replay: scripts/sim.sh --part $PART --seed $seed"
    grep -m1 -A3 "panicked" "$OUT/$seed.log" || tail -5 "$OUT/$seed.log"
done
[ -z "$failed" ]
