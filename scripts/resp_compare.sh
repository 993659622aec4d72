#!/usr/bin/env bash
# The cache's RESP front end vs redis-server under redis-benchmark, without and with
# pipelining (-P 16), rounds alternating troupe / redis-server.
#
#   scripts/resp_compare.sh [--quick]
#
# Installs redis-server and redis-tools from Debian's packages if missing, builds the
# cache_server example (release), starts both servers on 127.0.0.1 (free ports picked by the
# kernel), runs `redis-benchmark -t get,set`, stops both by PID. Results: JSON lines in
# target/compare/resp.json and a markdown table on stdout (medians of the rounds). Every run is
# bounded by its request count (and by `timeout`). Pipelined runs send 16 times the requests,
# so that they last about as long as the others (200,000 pipelined GETs take a tenth of a
# second, too short to tell 5% apart); rounds alternate which server goes first.
set -euo pipefail
cd "$(dirname "$0")/.."

N=200000
ROUNDS=3
if [ "${1:-}" = "--quick" ]; then N=50000; ROUNDS=1; fi
CLIENTS=50
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

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "== installing redis-server and redis-tools"
    apt-get update -q && apt-get install -y -q redis-server redis-tools
fi

echo "== building cache_server (release)"
cargo build -q --release --example cache_server
CACHE="$TARGET/release/examples/cache_server"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
    for _ in $(seq 1 300); do
        if redis-cli -p "$1" ping >/dev/null 2>&1; then return; fi
        sleep 0.1
    done
    echo "nothing answers PING on port $1" >&2
    exit 1
}

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    --logfile "$WORK/redis.log" &
PIDS+=($!)
TROUPE_PORT=$(free_port)
"$CACHE" --resp "127.0.0.1:$TROUPE_PORT" >"$WORK/cache.log" 2>&1 &
PIDS+=($!)
wait_port "$REDIS_PORT"
wait_port "$TROUPE_PORT"

: >"$OUT/resp.json"
run() {
    local system=$1 port=$2 pipeline=$3 round=$4
    local csv n=$((N * pipeline))
    csv=$(timeout 300 redis-benchmark -p "$port" -t get,set -n "$n" -c "$CLIENTS" -P "$pipeline" --csv)
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    echo "$csv" | tail -n +2 | tr -d '"' | while IFS=, read -r test rps _avg _min p50 _p95 p99 _max; do
        echo "{\"bench\":\"resp\",\"system\":\"$system\",\"test\":\"$test\",\"pipeline\":$pipeline,\"round\":$round,\"clients\":$CLIENTS,\"n\":$n,\"rps\":$rps,\"p50_ms\":$p50,\"p99_ms\":$p99}" >>"$OUT/resp.json"
    done
}

for round in $(seq 1 "$ROUNDS"); do
    for pipeline in 1 16; do
        echo "== round $round, -P $pipeline"
        # alternate which goes first, so neither always runs on a warmer machine
        if [ $((round % 2)) -eq 1 ]; then
            run troupe "$TROUPE_PORT" "$pipeline" "$round"
            run redis "$REDIS_PORT" "$pipeline" "$round"
        else
            run redis "$REDIS_PORT" "$pipeline" "$round"
            run troupe "$TROUPE_PORT" "$pipeline" "$round"
        fi
    done
done

echo
echo "RESP: redis-benchmark -t get,set -n $N (-P 16: $((N * 16))) -c $CLIENTS, $ROUNDS rounds ($(date -u +%FT%TZ), $(nproc) cores)"
python3 - "$OUT/resp.json" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| test | pipeline | troupe rps | redis-server rps | ratio | troupe p99 ms | redis p99 ms |")
print("|---|---|---|---|---|---|---|")
for test in ("SET", "GET"):
    for p in (1, 16):
        t = [r for r in rows if r["system"] == "troupe" and r["test"] == test and r["pipeline"] == p]
        r = [r for r in rows if r["system"] == "redis" and r["test"] == test and r["pipeline"] == p]
        if not t or not r:
            continue
        tm = statistics.median(x["rps"] for x in t)
        rm = statistics.median(x["rps"] for x in r)
        tp = statistics.median(x["p99_ms"] for x in t)
        rp = statistics.median(x["p99_ms"] for x in r)
        print(f"| {test} | {p} | {tm:,.0f} | {rm:,.0f} | {tm / rm:.2f}x | {tp:.2f} | {rp:.2f} |")
EOF
