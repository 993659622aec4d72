#!/usr/bin/env bash
# Every comparison of issue 9 in one run, each troupe side beside the system users would pick
# instead, on this machine, on loopback, with the same load tool; then one report with charts.
#
#   scripts/compare.sh [--quick] [PAIR ...]      # PAIR: local remote http resp db (default: all)
#                                                # resp: the cache's RESP and memcached front ends
#
# Each pair is its own script or bench binary, which installs what it needs from Debian's
# packages where missing (nginx, wrk, redis-server and redis-tools, etcd-server), starts every
# peer on 127.0.0.1, runs rounds alternating troupe and the peer, and stops every process it
# started by its PID. Every load loop is bounded in count and time. Builds come first; with
# --quick the measurements then finish in under 5 minutes.
#
# Output: target/compare/*.json (raw, per pair; remote.json also holds remote_scale's rows, the
# same ring of three troupe nodes in 1, 2 and 3 processes), target/compare/results.json and
# results.md (all pairs, with ratios and targets), and SVG charts in docs/benchmarks/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=""
PAIRS=()
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=--quick ;;
        local | remote | http | resp | db) PAIRS+=("$arg") ;;
        *) echo "usage: $0 [--quick] [local|remote|http|resp|db ...]" >&2; exit 2 ;;
    esac
done
if [ ${#PAIRS[@]} -eq 0 ]; then PAIRS=(local remote http resp db); fi
wants() { [[ " ${PAIRS[*]} " == *" $1 "* ]]; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT=$ROOT/target/compare
mkdir -p "$OUT"
FAILED=()
START=$(date +%s)

# Results of the pairs run now replace earlier ones; the others' files are kept.
for pair in "${PAIRS[@]}"; do rm -f "$OUT/$pair.json"; done
rm -f "$OUT/shop.json"

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"

if wants local; then
    echo "== local messaging and scale: troupe vs ractor, kameo, actix, tokio mpsc"
    # five rounds in a full run: single rounds of the same system differ by up to a third here
    if [ -n "$QUICK" ]; then LOCAL_ROUNDS=3; else LOCAL_ROUNDS=5; fi
    if (cd compare/local-bench && cargo build -q --release) &&
        "$CARGO_TARGET_DIR/release/local-bench" $QUICK --rounds "$LOCAL_ROUNDS" | tee "$OUT/local.txt"; then
        grep '^{' "$OUT/local.txt" >"$OUT/local.json" || true
    else
        FAILED+=(local)
    fi
fi

if wants remote; then
    echo "== remote messaging: troupe (QUIC) vs ractor_cluster (TCP), raw quinn and raw TCP as the limits"
    if [ -n "$QUICK" ]; then
        export TROUPE_REMOTE_N=200000 TROUPE_REMOTE_M=5000
        # remote_scale: 3 rounds of the 3 layouts, 3 x 100k casts each (about 10 s in all), each
        # layout bounded by 30 s
        export TROUPE_SCALE_N=100000 TROUPE_SCALE_TIMEOUT_SECS=30
        ROUNDS=1
        SCALE_LIMIT=100
    else
        ROUNDS=2
        SCALE_LIMIT=600
    fi
    : >"$OUT/remote.json"
    if cargo bench -q --bench remote_messaging --bench remote_scale --no-run &&
        (cd compare/ractor-cluster-bench && cargo build -q --release) &&
        (cd compare/quinn-raw-bench && cargo build -q --release); then
        for round in $(seq 1 "$ROUNDS"); do
            for side in troupe troupe-spin troupe-spin-1w ractor quinn quinn-hop tcp; do
                case $side in
                    troupe) cmd=(cargo bench -q --bench remote_messaging) ;;
                    # NetConfig::spin_after_traffic on: with 2 and with 1 tokio worker per process
                    troupe-spin) cmd=(env TROUPE_REMOTE_SPIN_US=1000 cargo bench -q --bench remote_messaging) ;;
                    troupe-spin-1w) cmd=(env TROUPE_REMOTE_SPIN_US=1000 TROUPE_REMOTE_WORKERS=1 cargo bench -q --bench remote_messaging) ;;
                    ractor) cmd=("$CARGO_TARGET_DIR/release/ractor-cluster-bench") ;;
                    quinn) cmd=("$CARGO_TARGET_DIR/release/quinn-raw-bench") ;;
                    # one task between the connection and the code on each side: a mailbox
                    # design's floor on quinn
                    quinn-hop) cmd=("$CARGO_TARGET_DIR/release/quinn-raw-bench" --hop) ;;
                    tcp) cmd=("$CARGO_TARGET_DIR/release/quinn-raw-bench" --tcp) ;;
                esac
                if ! timeout 600 "${cmd[@]}" | tee "$OUT/remote-$side-$round.txt"; then
                    FAILED+=("remote/$side")
                fi
                grep '^{' "$OUT/remote-$side-$round.txt" >>"$OUT/remote.json" || true
            done
        done
        # no peer here: the same ring a -> b -> c -> a of troupe nodes in 1, 2 and 3 processes
        echo "== remote scale: a ring of three troupe nodes in 1, 2 and 3 processes"
        if ! timeout "$SCALE_LIMIT" cargo bench -q --bench remote_scale | tee "$OUT/remote-scale.txt"; then
            FAILED+=(remote/scale)
        fi
        grep '^{' "$OUT/remote-scale.txt" >>"$OUT/remote.json" || true
    else
        FAILED+=(remote)
    fi
    unset TROUPE_REMOTE_N TROUPE_REMOTE_M TROUPE_SCALE_N TROUPE_SCALE_TIMEOUT_SECS
fi

if wants http; then
    echo "== HTTP: troupe gateway vs nginx (wrk), and shop's full path"
    scripts/http_compare.sh $QUICK || FAILED+=(http)
fi

if wants resp; then
    echo "== cache: troupe RESP front end vs redis-server (redis-benchmark)"
    scripts/resp_compare.sh $QUICK || FAILED+=(resp)
    echo "== cache: troupe memcached front end vs memcached (memcaslap)"
    scripts/memcached_compare.sh $QUICK || FAILED+=(memcached)
fi

if wants db; then
    echo "== replicated DB: troupe (3 replicas) vs etcd (3 members)"
    scripts/db_compare.sh $QUICK || FAILED+=(db)
fi

echo "== report"
(cd compare/report && cargo build -q --release)
"$CARGO_TARGET_DIR/release/compare-report" --input "$OUT" --charts "$ROOT/docs/benchmarks"

echo
echo "== done in $(($(date +%s) - START)) s; results: target/compare/results.json, results.md; charts: docs/benchmarks/"
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "these pairs failed: ${FAILED[*]}" >&2
    exit 1
fi
