#!/usr/bin/env bash
# HTTP pair of issue 9: troupe's gateway → balancer → responder pool (one process) against
# nginx proxying to an upstream that answers the same bytes, with wrk at the same threads,
# connections and duration; then shop's full path beside them (scripts/shop_bench.sh's three
# layouts, replicated here for p50 and one table).
#
#   scripts/http_compare.sh [--quick] [--perf]
#
#   --quick   3 s per wrk run instead of 10 s
#   --perf    then one more troupe run (not in the table) under `perf record -g -p`; the
#             report's top lines go to target/compare/http-perf.txt
#
# Installs nginx and wrk from Debian's packages if missing, builds compare/http-bench, shop
# and the troupe CLI (release), and starts on 127.0.0.1 only:
#   - `upstream` (hyper 1, HTTP/1.1, fixed 64-byte text/plain body) on an ephemeral port;
#   - nginx (2 worker processes, keepalive 64 to the upstream, access_log off, daemon off,
#     conf, pid and logs in a temp dir) on a free port;
#   - `troupe-http` (gateway → round-robin balancer → 4 responder actors) on an ephemeral port.
# Then wrk -t2 -c64 --latency, A/B/A/B: troupe, nginx, troupe, nginx; the upstream alone for
# reference; then shop's GET /items/bench (cache hit) in one, two and three processes.
# Results: JSON lines in target/compare/http.json and a markdown table on stdout. Every load
# is bounded in time and every process this script starts is stopped by PID (trap on EXIT).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=10
PERF=0
for arg in "$@"; do
    case "$arg" in
        --quick) SECS=3 ;;
        --perf) PERF=1 ;;
        *) echo "usage: $0 [--quick] [--perf]" >&2; exit 2 ;;
    esac
done
THREADS=2
CONNS=64
POOL=4
OUT=target/compare
mkdir -p "$OUT"
WORK=$(mktemp -d)
chmod 755 "$WORK"   # nginx workers run as nobody
PIDS=()

stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
# Drops PID (already waited for) from PIDS, so it is never signalled again.
forget() {
    local keep=() pid
    for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}
cleanup() {
    stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ] || ! command -v wrk >/dev/null; then
    echo "== installing nginx and wrk"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx wrk
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi

echo "== building compare/http-bench (release)"
(cd compare/http-bench && cargo build -q --release)
TARGET=$(cd compare/http-bench && cargo metadata -q --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TROUPE_HTTP="$TARGET/release/troupe-http"
UPSTREAM="$TARGET/release/upstream"
echo "== building shop and the troupe CLI (release)"
cargo build -q --release -p troupe-examples --bin shop
cargo build -q --release -p troupe-cli --bin troupe

# Starts CMD... in the background with stdout to LOG and waits (bounded) for a line starting
# with PREFIX; the rest of that line goes to STARTED and the PID to LAST_PID and PIDS. Called
# directly, never in $(...), so the PID is recorded in this shell.
STARTED=
LAST_PID=
start() {
    local log=$1 prefix=$2
    shift 2
    : >"$log"
    "$@" >>"$log" 2>"$log.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    local line
    for _ in $(seq 1 300); do
        line=$(grep -m1 "^$prefix " "$log" || true)
        if [ -n "$line" ]; then STARTED=${line#"$prefix "}; return; fi
        sleep 0.1
    done
    echo "no '$prefix' line from $*" >&2
    cat "$log.err" >&2
    exit 1
}

# A port on 127.0.0.1 that nothing listens on, below the ephemeral range.
free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "no free port found" >&2
    exit 1
}

echo "== starting upstream and troupe-http"
start "$WORK/upstream.log" listening "$UPSTREAM" --listen 127.0.0.1:0
upstream=$STARTED
start "$WORK/troupe.log" "http listening" "$TROUPE_HTTP" --listen 127.0.0.1:0 --pool "$POOL"
troupe=$STARTED
TROUPE_PID=$LAST_PID

echo "== starting nginx"
mkdir -p "$WORK/nginx"
nginx_port=
for _ in 1 2 3 4 5; do
    port=$(free_port)
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log off;
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    # hyper (troupe's gateway and the upstream) has no per-connection request cap; nginx's
    # default of 1000 would make wrk reconnect and the upstream pool churn
    keepalive_requests 1000000;
    upstream backend {
        server $upstream;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    "$NGINX" -t -q -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf"
    "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" \
        >"$WORK/nginx/stdout.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    for _ in $(seq 1 50); do
        if curl -sf "http://127.0.0.1:$port/" >/dev/null; then nginx_port=$port; break; fi
        if ! kill -0 "$NGINX_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    [ -n "$nginx_port" ] && break
    echo "nginx did not come up on $port; retrying" >&2
    cat "$WORK/nginx/error.log" >&2 || true
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    forget "$NGINX_PID"
done
if [ -z "$nginx_port" ]; then echo "nginx never came up" >&2; exit 1; fi
nginx=127.0.0.1:$nginx_port

# both sides must answer the same bytes
body_troupe=$(curl -sf "http://$troupe/bench")
body_nginx=$(curl -sf "http://$nginx/bench")
if [ "$body_troupe" != "$body_nginx" ] || [ "${#body_troupe}" -ne 63 ]; then
    # (command substitution drops the trailing newline of the 64-byte body)
    echo "bodies differ: troupe '$body_troupe' nginx '$body_nginx'" >&2
    exit 1
fi
echo "   troupe-http $troupe (pid $TROUPE_PID), nginx $nginx (pid $NGINX_PID) -> upstream $upstream"
for _ in $(seq 1 50); do curl -sf "http://$troupe/bench" "http://$nginx/bench" >/dev/null; done

# wrk's latency ("812.00us", "1.20ms", "1.02s") in milliseconds
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000
        else if (v ~ /ms$/) n = n
        else if (v ~ /m$/) n = n * 60000
        else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n
    }'
}

: >"$OUT/http.json"
ROWS=()
# Runs wrk against URL for the run KEY (troupe, nginx, hyper-direct, shop-...) round ROUND, appends a JSON
# line to $OUT/http.json and a row to ROWS.
measure() {
    local key=$1 round=$2 url=$3
    echo "== wrk $key round $round (${SECS}s): $url"
    local report
    report=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "$url")
    echo "$report" >"$WORK/wrk-$key-$round.txt"
    local rps p50 p99 non2xx sock ok_rps
    rps=$(echo "$report" | awk '/Requests\/sec:/ {print $2}')
    p50=$(to_ms "$(echo "$report" | awk '$1 == "50%" {print $2}')")
    p99=$(to_ms "$(echo "$report" | awk '$1 == "99%" {print $2}')")
    non2xx=$(echo "$report" | awk '/Non-2xx or 3xx responses:/ {print $5}')
    non2xx=${non2xx:-0}
    # "Socket errors: connect 0, read 0, write 0, timeout 0"
    sock=$(echo "$report" | awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}')
    sock=${sock:-0}
    # "  527482 requests in 10.00s, 68.92MB read": answers that were 2xx, per second
    ok_rps=$(echo "$report" | awk -v bad="$non2xx" '/ requests in / {
        d = $4; sub(/s,$/, "", d); printf "%.2f", ($1 - bad) / d }')
    echo "   $rps req/s ($ok_rps 2xx/s), p50 ${p50} ms, p99 ${p99} ms, non-2xx $non2xx, socket errors $sock"
    echo "{\"bench\":\"http_compare\",\"server\":\"$key\",\"round\":$round,\"threads\":$THREADS,\"connections\":$CONNS,\"secs\":$SECS,\"requests_per_sec\":$rps,\"ok_per_sec\":$ok_rps,\"p50_ms\":$p50,\"p99_ms\":$p99,\"non_2xx\":$non2xx,\"socket_errors\":$sock}" >>"$OUT/http.json"
    ROWS+=("$key $round $rps $ok_rps $p50 $p99 $non2xx $sock")
}

measure troupe 1 "http://$troupe/bench"
measure nginx 1 "http://$nginx/bench"
measure troupe 2 "http://$troupe/bench"
measure nginx 2 "http://$nginx/bench"
# reference, not in the ratio: the upstream alone (hyper answering the bytes itself, no hop)
measure hyper-direct 1 "http://$upstream/bench"

if [ "$PERF" = 1 ]; then
    # an extra troupe run under the profiler, kept out of the table
    echo "== wrk troupe under perf record -g (${SECS}s, not in the table)"
    perf record -q -F 499 -g -p "$TROUPE_PID" -o "$WORK/perf.data" -- sleep "$SECS" \
        >"$WORK/perf.log" 2>&1 &
    perf_pid=$!
    PIDS+=("$perf_pid")
    wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" "http://$troupe/bench" >"$WORK/wrk-perf.txt"
    wait "$perf_pid" || true
    forget "$perf_pid"
    if [ -s "$WORK/perf.data" ]; then
        perf_top() {
            perf report -q -i "$WORK/perf.data" --stdio -g none "$@" 2>/dev/null |
                sed 's/[ -]*$//' | grep -v '^$'
        }
        {
            echo "# perf record -F 499 -g -p troupe-http, wrk -t$THREADS -c$CONNS -d${SECS}s ($(date -u +%FT%TZ))"
            grep 'Requests/sec' "$WORK/wrk-perf.txt"
            echo "## by shared object (self time)"
            perf_top --no-children --sort dso | head -20
            echo "## flat (self time), symbols at 0.5% or more"
            perf_top --no-children --percent-limit 0.5 --sort symbol | head -70
            # Rust frames have no frame pointers, so -g's inclusive view is unreliable; self
            # time grouped by where the code comes from says the same more robustly
            echo "## self time by origin"
            perf_top --no-children --sort symbol | awk '
                { pct = $1; sub(/%/, "", pct); $1 = ""; sym = $0
                  if (sym ~ /\[k\]/) g = "kernel (TCP, scheduler, syscalls)"
                  else if (sym ~ /troupe_|ractor/) g = "troupe crates + ractor (proxy, balancer, actors)"
                  else if (sym ~ /hyper/) g = "hyper (HTTP/1 parse, encode, dispatch)"
                  else if (sym ~ /tokio|mio/) g = "tokio + mio (scheduler, wakers, I/O driver)"
                  else if (sym ~ /malloc|free|_int_|unlink_chunk|realloc/) g = "allocator (glibc malloc/free)"
                  else if (sym ~ /mem(move|cpy|cmp|set)/) g = "libc mem* (copies)"
                  else g = "other user space"
                  t[g] += pct }
                END { for (g in t) printf "%7.2f%%  %s\n", t[g], g }' | sort -rn
        } >"$OUT/http-perf.txt"
        echo "   perf report in $OUT/http-perf.txt"
    else
        echo "perf recorded nothing:" >&2
        cat "$WORK/perf.log" >&2 || true
    fi
fi
stop_all

# shop's full path: GET /items/bench (a cache hit) through shop's gateway, its whole stack in
# one process, then as two (edge + app | data) and three (edge | app | data) processes with
# mutual TLS between them: scripts/shop_bench.sh's layouts and flags (the per-IP rate limit
# off: every wrk connection comes from 127.0.0.1), replicated to get p50 and this table.
SHOP_TARGET=$(cargo metadata -q --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
SHOP="$SHOP_TARGET/release/shop"
TROUPE_CLI="$SHOP_TARGET/release/troupe"

wait_healthy() {
    local http=$1
    for _ in $(seq 1 300); do
        if curl -sf "http://$http/health" >/dev/null; then return; fi
        sleep 0.1
    done
    echo "shop at $http never became healthy" >&2
    exit 1
}
# Waits (bounded) for `http listening ADDR` in LOG and puts ADDR in STARTED.
http_of() {
    local line
    for _ in $(seq 1 300); do
        line=$(grep -m1 "^http listening " "$1" || true)
        if [ -n "$line" ]; then STARTED=${line#"http listening "}; return; fi
        sleep 0.1
    done
    echo "no 'http listening' line in $1" >&2
    exit 1
}
measure_shop() {
    local layout=$1 http=$2
    wait_healthy "$http"
    curl -sf -X PUT "http://$http/items/bench" -d '{"name":"benchmark item","price":1}' >/dev/null
    for _ in $(seq 1 20); do curl -sf "http://$http/items/bench" >/dev/null; done
    measure "shop-$layout" 1 "http://$http/items/bench"
    stop_all
}

echo "== shop, one process"
start "$WORK/shop-one.log" "http listening" "$SHOP" --http 127.0.0.1:0 --resp 127.0.0.1:0 \
    --data "$WORK/shop-one-data" --rate-limit-per-ip 0
measure_shop one-process "$STARTED"

"$TROUPE_CLI" ca init "$WORK/ca" >/dev/null
for n in edge app data; do "$TROUPE_CLI" ca issue "$WORK/ca" "$n" >/dev/null; done

echo "== shop, two processes (edge + app | data)"
common=(--listen 127.0.0.1:0 --ca "$WORK/ca" --http 127.0.0.1:0 --resp 127.0.0.1:0
    --data "$WORK/shop-two-data" --rate-limit-per-ip 0)
start "$WORK/shop-two-data.log" listening "$SHOP" --node data "${common[@]}"
data=$STARTED
start "$WORK/shop-two-front.log" listening "$SHOP" --node edge --node app --seed "$data" \
    "${common[@]}"
http_of "$WORK/shop-two-front.log"
measure_shop two-processes "$STARTED"

echo "== shop, three processes (edge | app | data)"
common=(--listen 127.0.0.1:0 --ca "$WORK/ca" --http 127.0.0.1:0 --resp 127.0.0.1:0
    --data "$WORK/shop-three-data" --rate-limit-per-ip 0)
start "$WORK/shop-data.log" listening "$SHOP" --node data "${common[@]}"
data=$STARTED
start "$WORK/shop-app.log" listening "$SHOP" --node app --seed "$data" "${common[@]}"
start "$WORK/shop-edge.log" listening "$SHOP" --node edge --seed "$data" "${common[@]}"
http_of "$WORK/shop-edge.log"
measure_shop three-processes "$STARTED"

echo
echo "HTTP GET through a gateway, wrk -t$THREADS -c$CONNS -d${SECS}s --latency," \
    "$(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "troupe: gateway → balancer (round robin) → $POOL responder actors, one process, fixed 64-byte body;"
echo "nginx: 2 workers → keepalive → hyper upstream process, same 64 bytes;"
echo "hyper-direct: wrk straight at the upstream (no proxy, no actors), for reference;"
echo "shop: GET /items/bench, cache hit, through shop's gateway (JSON body), per-IP rate limit off"
echo
printf '| run | requests/s | 2xx/s | p50 (ms) | p99 (ms) | non-2xx | socket errors |\n'
printf '|---|---|---|---|---|---|---|\n'
for row in "${ROWS[@]}"; do
    read -r key round rps ok_rps p50 p99 non2xx sock <<<"$row"
    case "$key" in shop-* | hyper-direct) label=$key ;; *) label="$key #$round" ;; esac
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$rps" "$ok_rps" "$p50" "$p99" "$non2xx" "$sock"
done
# means over the rounds and the troupe/nginx ratios (requests/s: troupe/nginx, latency:
# nginx/troupe, so that above 1.0 means troupe is better in every column)
printf '%s\n' "${ROWS[@]}" | awk -v json="$OUT/http.json" '
    { n[$1]++; rps[$1] += $3; ok[$1] += $4; p50[$1] += $5; p99[$1] += $6 }
    END {
        for (s in n) { rps[s] /= n[s]; ok[s] /= n[s]; p50[s] /= n[s]; p99[s] /= n[s] }
        printf "| troupe (mean) | %.0f | %.0f | %.3f | %.3f | | |\n", rps["troupe"], ok["troupe"], p50["troupe"], p99["troupe"]
        printf "| nginx (mean) | %.0f | %.0f | %.3f | %.3f | | |\n", rps["nginx"], ok["nginx"], p50["nginx"], p99["nginx"]
        printf "| **troupe vs nginx** | **%.2fx** | %.2fx | %.2fx | %.2fx | | |\n",
            rps["troupe"] / rps["nginx"], ok["troupe"] / ok["nginx"],
            p50["nginx"] / p50["troupe"], p99["nginx"] / p99["troupe"]
        printf "{\"bench\":\"http_compare\",\"summary\":true,\"troupe_rps\":%.1f,\"nginx_rps\":%.1f,\"ratio_troupe_over_nginx\":%.3f,\"target_ratio\":1.0}\n",
            rps["troupe"], rps["nginx"], rps["troupe"] / rps["nginx"] >> json
    }'
echo
echo "ratio row: requests/s and 2xx/s troupe/nginx; latencies nginx/troupe (above 1.0 = troupe better)"
