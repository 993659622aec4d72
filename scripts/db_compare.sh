#!/usr/bin/env bash
# troupe's replicated DB (three db_cluster processes) vs etcd (three members), on loopback,
# 64 concurrent clients: writes/s and reads/s. See docs/benchmarks.md, "Replicated DB vs etcd".
#
#   scripts/db_compare.sh           # 10 s per phase
#   scripts/db_compare.sh --quick   # 3 s per phase
#
# Runs A/B/A/B (troupe raft, etcd, troupe raft, etcd), then troupe's single-leader modes
# (majority, leader-only, all) once each, and etcd once more with its client on the leader's endpoint only (as
# troupe's client, which sends every request to the leader). Every run starts its own three
# servers on fresh data directories and kills them (by PID) when it ends. Ratios are against
# the mean of the two default etcd runs (client on all three members, linearizable gets).
# Results: target/compare/db.json (one object per phase), and a markdown table on standard
# output. Operations slower than 100 ms are listed per stall on standard error.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECS=10
case "${1:-}" in
    --quick) SECS=3 ;;
    "") ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac
CLIENTS=64

need_apt=()
[ -x /usr/bin/etcd ] || need_apt+=(etcd-server)
# etcd-client compiles etcd's .proto files at build time.
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "== installing ${need_apt[*]}"
    apt-get update -q && apt-get install -y -q "${need_apt[@]}"
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
echo "== building db_cluster and db-bench (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release -q -p troupe-examples --bin db_cluster
(cd compare/db-bench && cargo build --release -q)
BENCH="$CARGO_TARGET_DIR/release/db-bench"
DB_CLUSTER="$CARGO_TARGET_DIR/release/db_cluster"

OUT_DIR="$ROOT/target/compare"
mkdir -p "$OUT_DIR"
LINES="$OUT_DIR/db.jsonl"
: >"$LINES"

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load: $(uptime | sed 's/.*load average: //')"
echo "== etcd: $(/usr/bin/etcd --version | head -1); troupe: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (work tree modified)')"
echo "== $CLIENTS clients, $SECS s per phase"

run=0
bench() {
    run=$((run + 1))
    echo "-- run $run: $*"
    # JSON lines to the results file, the '#' lines to the terminal.
    "$BENCH" "$@" --clients "$CLIENTS" --secs "$SECS" --tag "$run" | tee -a "$LINES" | grep '^#' || true
    # A failed run leaves no lines; say so rather than print a table without it.
    if ! grep -q "\"run\":\"$run\"" "$LINES"; then
        echo "run $run failed (see the messages above)" >&2
        exit 1
    fi
}

bench troupe --db-cluster "$DB_CLUSTER" --ack raft
bench etcd
bench troupe --db-cluster "$DB_CLUSTER" --ack raft
bench etcd
bench troupe --db-cluster "$DB_CLUSTER" --ack majority
bench troupe --db-cluster "$DB_CLUSTER" --ack leader-only
bench troupe --db-cluster "$DB_CLUSTER" --ack all
bench etcd --leader-endpoint

grep '^{' "$LINES" | paste -sd, - | sed 's/^/[/; s/$/]/' >"$OUT_DIR/db.json"
rm -f "$LINES"
echo "== results: $OUT_DIR/db.json"
echo
"$BENCH" table "$OUT_DIR/db.json"
