#!/usr/bin/env bash
# Failover time of a failover child across three processes on loopback: examples/failover.rs
# (the metadata group on a, b, c; a counter on b failing over to c; a pinger on a calling it
# every 10 ms). KILLS times: SIGKILL the process running the counter, read the gap a's pinger
# prints between the last answer from the old node and the first from the new one, start the
# killed process again (it rejoins and holds nothing), and go on. Prints each gap, then
# p50/p99/max beside the peer-down timeout (the detection bound).
#
#   scripts/failover_bench.sh [--kills N] [--peer-down-ms MS]
#
# Defaults: 20 kills, the launcher's default peer-down timeout (3000 ms). Builds the example
# (release). Every wait is bounded; every process it started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

KILLS=20
PEER_DOWN_MS=3000
while [ $# -gt 0 ]; do
    case $1 in
        --kills) KILLS=$2; shift 2 ;;
        --peer-down-ms) PEER_DOWN_MS=$2; shift 2 ;;
        *) echo "usage: $0 [--kills N] [--peer-down-ms MS]" >&2; exit 2 ;;
    esac
done

TARGET="${CARGO_TARGET_DIR:-target}"
WORK=$(mktemp -d)
declare -A PID
cleanup() {
    for node in "${!PID[@]}"; do kill -9 "${PID[$node]}" 2>/dev/null || true; done
    for node in "${!PID[@]}"; do wait "${PID[$node]}" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building the failover example (release)"
cargo build -q --release -p troupe-examples --bin failover
cargo build -q --release -p troupe-cli
BIN="$TARGET/release/failover"
TROUPE="$TARGET/release/troupe"
"$TROUPE" ca init "$WORK/ca" >/dev/null
for node in a b c; do "$TROUPE" ca issue "$WORK/ca" "$node" >/dev/null; done

# Waits up to $3 seconds for a line of file $1 matching regex $2 after line $4; prints it
await() {
    local file=$1 pattern=$2 secs=$3 after=${4:-0} line
    for _ in $(seq 1 $((secs * 20))); do
        line=$(tail -n +"$((after + 1))" "$file" 2>/dev/null | grep -m1 -E "$pattern" || true)
        if [ -n "$line" ]; then echo "$line"; return 0; fi
        sleep 0.05
    done
    echo "timed out after ${secs}s waiting for /$pattern/ in $file" >&2
    tail -n 20 "$file" >&2
    return 1
}

SEED=""
start() {
    local node=$1 seed=() mark
    if [ -n "$SEED" ]; then seed=(--seed "$SEED"); fi
    mark=$(lines "$WORK/$node.log")
    "$BIN" --node "$node" --listen 127.0.0.1:0 --ca "$WORK/ca" --data "$WORK/data/$node" \
        --interval-ms 10 --peer-down-ms "$PEER_DOWN_MS" "${seed[@]}" \
        >>"$WORK/$node.log" 2>"$WORK/$node.err" &
    PID[$node]=$!
    await "$WORK/$node.log" '^listening ' 30 "$mark" >/dev/null
}
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

start a
SEED=$(grep -m1 '^listening ' "$WORK/a.log" | awk '{print $2}')
start b
start c
await "$WORK/a.log" '^served by ' 60 >/dev/null
holder=$(grep -E '^(served by|moved from)' "$WORK/a.log" | tail -1 | awk '/^served/{print $3} /^moved/{print $5}')

GAPS=()
for i in $(seq 1 "$KILLS"); do
    mark=$(lines "$WORK/a.log")
    kill -9 "${PID[$holder]}"
    wait "${PID[$holder]}" 2>/dev/null || true
    line=$(await "$WORK/a.log" "^moved from $holder to " 60 "$mark")
    gap=$(echo "$line" | awk '{print $(NF-1)}')
    next=$(echo "$line" | awk '{print $5}')
    GAPS+=("$gap")
    echo "kill $i: $line"
    start "$holder"
    # the restarted node is up in a's view before the next kill
    await "$WORK/a.log" "^node up $holder" 30 "$mark" >/dev/null
    holder=$next
done

sorted=$(printf '%s\n' "${GAPS[@]}" | sort -n)
n=${#GAPS[@]}
pick() { echo "$sorted" | sed -n "$1p"; }
p50=$(pick $(( (n + 1) / 2 )))
p99=$(pick $(( (n * 99 + 99) / 100 )))
max=$(pick "$n")
echo "failover over $n kills (peer-down ${PEER_DOWN_MS} ms): p50 ${p50} ms, p99 ${p99} ms, max ${max} ms"
