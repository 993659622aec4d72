#!/usr/bin/env bash
# wrk against shop's `GET /items/{id}` (cache hits) through the gateway: the whole stack in one
# process, as two processes (edge + app | data) and as three (edge | app | data) on loopback.
#
#   scripts/shop_bench.sh [--quick]
#
# Installs wrk from Debian's packages if missing, builds shop (release), and for each layout:
# starts it on 127.0.0.1 with ephemeral ports, stores one item, warms the cache, runs wrk
# (2 threads, 64 connections; the gateway's per-IP rate limit off, since every request comes
# from 127.0.0.1) and stops every process it started by PID. Results go to
# target/compare/shop.json and a markdown table on stdout. Every load is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=10
if [ "${1:-}" = "--quick" ]; then SECS=3; fi
CONNS=64
THREADS=2
TARGET="${CARGO_TARGET_DIR:-target}"
OUT=target/compare
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
    echo "== installing wrk"
    apt-get update -q && apt-get install -y -q wrk
fi

echo "== building shop and troupe (release)"
cargo build -q --release -p troupe-examples --bin shop
cargo build -q --release -p troupe-cli
SHOP="$TARGET/release/shop"
TROUPE="$TARGET/release/troupe"

# Starts `shop ARGS...` in the background with stdout to LOG; waits (bounded) for a line
# starting with PREFIX and sets FOUND to the rest of it. (Not in a subshell: PIDS must keep the
# new process, so the cleanup can stop it.)
FOUND=""
start() {
    local log=$1 prefix=$2
    shift 2
    "$SHOP" "$@" >"$log" 2>"$log.err" &
    PIDS+=($!)
    await_line "$log" "$prefix"
}

# Waits (bounded) for a line of LOG starting with PREFIX; sets FOUND to the rest of it
await_line() {
    local log=$1 prefix=$2 line
    for _ in $(seq 1 300); do
        line=$(grep -m1 "^$prefix " "$log" 2>/dev/null || true)
        if [ -n "$line" ]; then FOUND="${line#"$prefix "}"; return; fi
        sleep 0.1
    done
    echo "no '$prefix' line in $log" >&2
    cat "$log.err" >&2 || true
    exit 1
}

wait_healthy() {
    local http=$1
    for _ in $(seq 1 300); do
        if curl -sf "http://$http/health" >/dev/null; then return; fi
        sleep 0.1
    done
    echo "shop at $http never became healthy" >&2
    exit 1
}

# Runs wrk against the item and appends a JSON line to $OUT/shop.json
measure() {
    local layout=$1 http=$2
    curl -sf -X PUT "http://$http/items/bench" -d '{"name":"benchmark item","price":1}' >/dev/null
    for _ in $(seq 1 20); do curl -sf "http://$http/items/bench" >/dev/null; done
    local report
    report=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "http://$http/items/bench")
    echo "$report" >"$WORK/wrk-$layout.txt"
    local rps p99 errors
    rps=$(echo "$report" | awk '/Requests\/sec:/ {print $2}')
    p99=$(echo "$report" | awk '$1 == "99%" {print $2}')
    errors=$(echo "$report" | awk '/Non-2xx or 3xx responses:/ {print $5}')
    echo "{\"bench\":\"shop_get_item\",\"layout\":\"$layout\",\"connections\":$CONNS,\"threads\":$THREADS,\"secs\":$SECS,\"requests_per_sec\":$rps,\"p99\":\"$p99\",\"non_2xx\":${errors:-0}}" >>"$OUT/shop.json"
    printf '| %s | %s | %s | %s |\n' "$layout" "$rps" "$p99" "${errors:-0}" >>"$WORK/table.md"
}

stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}

: >"$OUT/shop.json"
printf '| layout | requests/s | p99 | non-2xx |\n|---|---|---|---|\n' >"$WORK/table.md"

echo "== one process"
start "$WORK/one.log" "http listening" --http 127.0.0.1:0 --resp 127.0.0.1:0 \
    --data "$WORK/one-data" --rate-limit-per-ip 0
http=$FOUND
wait_healthy "$http"
measure one-process "$http"
stop_all

"$TROUPE" ca init "$WORK/ca" >/dev/null
for n in edge app data; do "$TROUPE" ca issue "$WORK/ca" "$n" >/dev/null; done

echo "== two processes (edge + app | data)"
common=(--listen 127.0.0.1:0 --ca "$WORK/ca" --http 127.0.0.1:0 --resp 127.0.0.1:0
    --data "$WORK/two-data" --rate-limit-per-ip 0)
start "$WORK/two-data.log" listening --node data "${common[@]}"
data=$FOUND
start "$WORK/two-front.log" listening --node edge --node app --seed "$data" "${common[@]}"
await_line "$WORK/two-front.log" "http listening"
http=$FOUND
wait_healthy "$http"
measure two-processes "$http"
stop_all

echo "== three processes (edge | app | data)"
common=(--listen 127.0.0.1:0 --ca "$WORK/ca" --http 127.0.0.1:0 --resp 127.0.0.1:0
    --data "$WORK/three-data" --rate-limit-per-ip 0)
start "$WORK/data.log" listening --node data "${common[@]}"
data=$FOUND
start "$WORK/app.log" listening --node app --seed "$data" "${common[@]}"
start "$WORK/edge.log" listening --node edge --seed "$data" "${common[@]}"
await_line "$WORK/edge.log" "http listening"
http=$FOUND
wait_healthy "$http"
measure three-processes "$http"
stop_all

echo
echo "shop GET /items/{id} through the gateway: wrk -t$THREADS -c$CONNS -d${SECS}s ($(date -u +%FT%TZ), $(nproc) cores)"
cat "$WORK/table.md"
