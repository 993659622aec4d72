#!/usr/bin/env bash
# Issue 18, item 7: what watching costs the gateway. compare/http-bench's `troupe-http`
# (gateway → balancer → 4 responders, one process) under wrk -t2 -c64, A/B/A/B:
#
#   off            no admin endpoint, no metrics recorder, no tracing subscriber
#   metrics        --observed: the admin endpoint and its Prometheus recorder, logs at warn
#   traces 1%      --observed with OTEL_EXPORTER_OTLP_ENDPOINT set (spans exported to the
#                  `upstream` binary, which answers 200) and a 1% parent-based ratio sampler
#   traces 100%    the same, every request recorded and exported
#
#   scripts/http_observed.sh [--quick] [ROUNDS]
#   scripts/http_observed.sh --callgrind     off, metrics and traces 1% under valgrind's
#                                           callgrind: instructions per request (wrk -t1 -c8
#                                           for 15 s), steadier than requests/s on a shared VM
#
# Installs wrk from Debian's packages if missing; everything listens on 127.0.0.1, every load
# is bounded in time, and every process it starts is stopped (trap on EXIT).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=8
ROUNDS=3
CALLGRIND=
for arg in "$@"; do
    case "$arg" in
        --quick) SECS=3 ;;
        --callgrind) CALLGRIND=1 ;;
        [0-9]*) ROUNDS=$arg ;;
        *) echo "usage: $0 [--quick] [ROUNDS]" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
(cd compare/http-bench && cargo build -q --release)
BIN="$CARGO_TARGET_DIR/release"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
"$BIN/upstream" --listen 127.0.0.1:0 >"$WORK/upstream.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q 127.0.0.1 "$WORK/upstream.out" 2>/dev/null && break; sleep 0.05; done
SINK=$(grep -o '127.0.0.1:[0-9]*' "$WORK/upstream.out" | head -1)

# run LABEL FLAG [ENV...]: one troupe-http under wrk; prints "LABEL requests/s"
run() {
    local label=$1 flag=$2
    shift 2
    env "$@" timeout $((SECS + 20)) "$BIN/troupe-http" --pool 4 $flag >"$WORK/th.out" 2>"$WORK/th.err" &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do grep -q "http listening" "$WORK/th.out" 2>/dev/null && break; sleep 0.05; done
    local addr
    addr=$(grep "http listening" "$WORK/th.out" | grep -o '127.0.0.1:[0-9]*')
    local rps
    rps=$(wrk -t2 -c64 -d"${SECS}s" "http://$addr/" | awk '/Requests\/sec/ {print $2}')
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "$label $rps"
}

# callgrind LABEL FLAG [ENV...]: one troupe-http under callgrind; prints its instructions per
# request
callgrind() {
    local label=$1 flag=$2
    shift 2
    env "$@" timeout 120 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$label" \
        "$BIN/troupe-http" --pool 4 $flag >"$WORK/th.out" 2>"$WORK/th.err" &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 300); do grep -q "http listening" "$WORK/th.out" 2>/dev/null && break; sleep 0.1; done
    local addr requests instructions
    addr=$(grep "http listening" "$WORK/th.out" | grep -o '127.0.0.1:[0-9]*')
    requests=$(wrk -t1 -c8 -d15s "http://$addr/" | awk '/requests in/ {print $1}')
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    instructions=$(awk '/^(summary|totals):/ {print $2; exit}' "$WORK/cg.$label")
    echo "$label requests=$requests instructions/request=$((instructions / requests))"
}

if [ -n "$CALLGRIND" ]; then
    command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
    echo "== callgrind, $(date -u +%FT%TZ)"
    callgrind off ""
    callgrind metrics --observed
    callgrind traces-1pct --observed OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK" \
        OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01
    exit 0
fi

echo "== $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), ${SECS}s per run"
for round in $(seq "$ROUNDS"); do
    run off ""
    run metrics --observed
    run traces-1pct --observed OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK" \
        OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01
    run traces-100pct --observed OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK"
done | tee "$WORK/results.txt"
echo "== medians (requests/s) and ratio to off"
awk '{ v[$1] = v[$1] " " $2 } END { for (k in v) print k, v[k] }' "$WORK/results.txt" |
    while read -r label values; do
        median=$(tr ' ' '\n' <<<"$values" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        echo "$label $median"
    done | sort >"$WORK/medians.txt"
OFF=$(awk '$1 == "off" {print $2}' "$WORK/medians.txt")
awk -v off="$OFF" '{ printf "%-14s %10.0f  %.2fx\n", $1, $2, $2 / off }' "$WORK/medians.txt"
