#!/usr/bin/env bash
# The cache's memcached front end vs Debian's memcached under memcaslap (libmemcached's
# memaslap), rounds alternating troupe / memcached.
#
#   scripts/memcached_compare.sh [--quick]
#
# Installs memcached and libmemcached-tools from Debian's packages if missing, builds the
# cache_server example (release), starts both servers on 127.0.0.1 (free ports picked by the
# kernel), runs `memcaslap` against each in turn — the default mix (90% get, 10% set, 1 KiB
# values) and multi-gets of 16 keys (-d 16) — and stops both by PID. Each run is bounded by
# its time (-t) and by `timeout`. Results: JSON lines in target/compare/memcached.json and a
# markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=10
ROUNDS=3
if [ "${1:-}" = "--quick" ]; then SECONDS_EACH=4; ROUNDS=1; fi
THREADS=2
CONCURRENCY=32
CORES=$(nproc)
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

if ! command -v memcached >/dev/null || ! command -v memcaslap >/dev/null; then
    echo "== installing memcached and libmemcached-tools"
    apt-get update -q && apt-get install -y -q memcached libmemcached-tools
fi

echo "== building cache_server (release)"
cargo build -q --release --example cache_server
CACHE="$TARGET/release/examples/cache_server"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
    for _ in $(seq 1 300); do
        if printf 'version\r\n' | timeout 1 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(sys.stdin.buffer.read())
sys.exit(0 if s.recv(64).startswith(b"VERSION") else 1)' "$1" 2>/dev/null; then return; fi
        sleep 0.1
    done
    echo "nothing answers version on port $1" >&2
    exit 1
}

# memcached as its users run it: one worker thread per core, 512 MiB, no UDP; root needs a
# user to switch to. cache_server gets the same 512 MiB and no entry bound short of it
# (memcaslap's window of 10k keys per connection would overflow its default 200,000 entries),
# and 4 shards (on 2 cores the best of 1, 2, 4, 8 and 16 in a trial: 58k, 70k, 85k, 77k, 85k
# ops/s on the mix)
MC_PORT=$(free_port)
memcached -u nobody -l 127.0.0.1 -p "$MC_PORT" -U 0 -m 512 -t "$CORES" >"$WORK/memcached.log" 2>&1 &
PIDS+=($!)
TROUPE_PORT=$(free_port)
"$CACHE" --resp "127.0.0.1:$(free_port)" --memcached "127.0.0.1:$TROUPE_PORT" \
    --shards 4 --entries 10000000 --bytes $((512 << 20)) >"$WORK/cache.log" 2>&1 &
PIDS+=($!)
wait_port "$MC_PORT"
wait_port "$TROUPE_PORT"

: >"$OUT/memcached.json"
run() {
    local system=$1 port=$2 test=$3 round=$4
    local extra=()
    if [ "$test" = "mget16" ]; then extra=(-d 16); fi
    local text tps gets sets misses
    text=$(timeout $((SECONDS_EACH + 60)) memcaslap -s "127.0.0.1:$port" -t "${SECONDS_EACH}s" \
        -T "$THREADS" -c "$CONCURRENCY" "${extra[@]}" 2>&1)
    # "Run time: 10.0s Ops: 943201 TPS: 94320 Net_rate: 103.6M/s"
    tps=$(sed -n 's/.*TPS: \([0-9]*\).*/\1/p' <<<"$text" | tail -1)
    gets=$(sed -n 's/^cmd_get: \([0-9]*\)/\1/p' <<<"$text" | tail -1)
    sets=$(sed -n 's/^cmd_set: \([0-9]*\)/\1/p' <<<"$text" | tail -1)
    misses=$(sed -n 's/^get_misses: \([0-9]*\)/\1/p' <<<"$text" | tail -1)
    if [ -z "$tps" ]; then
        echo "memcaslap gave no TPS against $system:" >&2
        echo "$text" >&2
        exit 1
    fi
    echo "{\"bench\":\"memcached\",\"system\":\"$system\",\"test\":\"$test\",\"round\":$round,\"threads\":$THREADS,\"concurrency\":$CONCURRENCY,\"seconds\":$SECONDS_EACH,\"tps\":$tps,\"cmd_get\":${gets:-0},\"cmd_set\":${sets:-0},\"get_misses\":${misses:-0}}" >>"$OUT/memcached.json"
    echo "   $system $test: $tps ops/s (get misses ${misses:-0})"
}

for round in $(seq 1 "$ROUNDS"); do
    for test in mix mget16; do
        echo "== round $round, $test"
        # alternate which goes first, so neither always runs on a warmer machine
        if [ $((round % 2)) -eq 1 ]; then
            run troupe "$TROUPE_PORT" "$test" "$round"
            run memcached "$MC_PORT" "$test" "$round"
        else
            run memcached "$MC_PORT" "$test" "$round"
            run troupe "$TROUPE_PORT" "$test" "$round"
        fi
    done
done

echo
echo "memcached: memcaslap -t ${SECONDS_EACH}s -T $THREADS -c $CONCURRENCY, $ROUNDS rounds ($(date -u +%FT%TZ), $CORES cores)"
python3 - "$OUT/memcached.json" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| test | troupe ops/s | memcached ops/s | ratio | troupe get misses | memcached get misses |")
print("|---|---|---|---|---|---|")
for test in ("mix", "mget16"):
    t = [r for r in rows if r["system"] == "troupe" and r["test"] == test]
    m = [r for r in rows if r["system"] == "memcached" and r["test"] == test]
    if not t or not m:
        continue
    tm = statistics.median(x["tps"] for x in t)
    mm = statistics.median(x["tps"] for x in m)
    tmiss = sum(x["get_misses"] for x in t)
    mmiss = sum(x["get_misses"] for x in m)
    print(f"| {test} | {tm:,.0f} | {mm:,.0f} | {tm / mm:.2f}x | {tmiss} | {mmiss} |")
EOF
