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
#   - `troupe-http --upstream` (the gateway as a reverse proxy to the same upstream, no actors),
#     and the same over TLS, with nginx serving TLS on a second port with the same certificate;
#   - `hyper-proxy`: hyper and hyper-util proxying to the same upstream with nothing else, with
#     hyper-util's pooled client (as the gateway) and with a connection per client connection
#     driven in its task: the HTTP engine's own reach, beside the gateway's.
# Then wrk -t2 -c64 --latency, interleaved: troupe (actors), nginx, troupe as a reverse proxy,
# the upstream alone (hyper-direct), troupe answering in place and the two hyper-proxy runs,
# twice; troupe TLS and nginx TLS twice; a 10 MiB
# body (`GET /big`) through troupe and nginx at -c8, twice (MB/s, and troupe's peak RSS); then
# shop's GET /items/bench (cache hit) in one, two and three processes.
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
HYPER_PROXY="$TARGET/release/hyper-proxy"
echo "== building shop and the troupe CLI (release)"
cargo build -q --release -p troupe-examples --bin shop
cargo build -q --release -p troupe-cli --bin troupe
SHOP_TARGET=$(cargo metadata -q --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
SHOP="$SHOP_TARGET/release/shop"
TROUPE_CLI="$SHOP_TARGET/release/troupe"

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
        if [ -n "$line" ]; then STARTED=${line#"$prefix "}; STARTED=${STARTED%% *}; return; fi
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

echo "== a certificate for the TLS runs (ECDSA P-256, made by openssl: both servers use it)"
CERT=$WORK/tls.crt
KEY=$WORK/tls.key
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$KEY" -out "$CERT" -subj /CN=gateway \
    -addext subjectAltName=DNS:gateway,IP:127.0.0.1 2>/dev/null
chmod 644 "$KEY"   # nginx workers run as nobody

echo "== starting upstream and troupe-http (actors, reverse proxy, reverse proxy over TLS)"
start "$WORK/upstream.log" listening "$UPSTREAM" --listen 127.0.0.1:0
upstream=$STARTED
start "$WORK/troupe.log" "http listening" "$TROUPE_HTTP" --listen 127.0.0.1:0 --pool "$POOL"
troupe=$STARTED
TROUPE_PID=$LAST_PID
start "$WORK/troupe-in-place.log" "http listening" "$TROUPE_HTTP" --listen 127.0.0.1:0 \
    --pool "$POOL" --in-place
troupe_in_place=$STARTED
start "$WORK/troupe-proxy.log" "http listening" "$TROUPE_HTTP" --listen 127.0.0.1:0 \
    --upstream "http://$upstream"
troupe_proxy=$STARTED
TROUPE_PROXY_PID=$LAST_PID
start "$WORK/troupe-tls.log" "http listening" "$TROUPE_HTTP" --listen 127.0.0.1:0 \
    --upstream "http://$upstream" --tls-cert "$CERT" --tls-key "$KEY"
troupe_tls=$STARTED
start "$WORK/hyper-proxy.log" listening "$HYPER_PROXY" --listen 127.0.0.1:0 \
    --upstream "$upstream"
hyper_proxy=$STARTED
start "$WORK/hyper-proxy-per-connection.log" listening "$HYPER_PROXY" --listen 127.0.0.1:0 \
    --upstream "$upstream" --client per-connection
hyper_proxy_per_connection=$STARTED

echo "== starting nginx"
mkdir -p "$WORK/nginx"
nginx_port=
for _ in 1 2 3 4 5; do
    port=$(free_port)
    tls_port=$(free_port)
    [ "$tls_port" != "$port" ] || continue
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
    client_max_body_size 0;
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {
        listen 127.0.0.1:$tls_port ssl http2;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.3;
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
nginx_tls=127.0.0.1:$tls_port

# both sides must answer the same bytes
body_troupe=$(curl -sf "http://$troupe/bench")
body_nginx=$(curl -sf "http://$nginx/bench")
if [ "$body_troupe" != "$body_nginx" ] || [ "${#body_troupe}" -ne 63 ]; then
    # (command substitution drops the trailing newline of the 64-byte body)
    echo "bodies differ: troupe '$body_troupe' nginx '$body_nginx'" >&2
    exit 1
fi
body_proxy=$(curl -sf "http://$troupe_proxy/bench")
body_tls=$(curl -sfk "https://$troupe_tls/bench")
body_nginx_tls=$(curl -sfk "https://$nginx_tls/bench")
body_in_place=$(curl -sf "http://$troupe_in_place/bench")
body_hyper_proxy=$(curl -sf "http://$hyper_proxy/bench")
body_hyper_per_conn=$(curl -sf "http://$hyper_proxy_per_connection/bench")
if [ "$body_proxy" != "$body_nginx" ] || [ "$body_tls" != "$body_nginx" ] ||
    [ "$body_in_place" != "$body_nginx" ] || [ "$body_hyper_proxy" != "$body_nginx" ] ||
    [ "$body_hyper_per_conn" != "$body_nginx" ] ||
    [ "$body_nginx_tls" != "$body_nginx" ]; then
    echo "bodies differ: proxy '$body_proxy' tls '$body_tls' nginx tls '$body_nginx_tls'" \
        "in place '$body_in_place' hyper-proxy '$body_hyper_proxy' '$body_hyper_per_conn'" >&2
    exit 1
fi
echo "   troupe-http $troupe (pid $TROUPE_PID), as a reverse proxy $troupe_proxy, TLS $troupe_tls;"
echo "   nginx $nginx, TLS $nginx_tls (pid $NGINX_PID) -> upstream $upstream"
for _ in $(seq 1 50); do
    curl -sf "http://$troupe/bench" "http://$nginx/bench" "http://$troupe_proxy/bench" \
        "http://$hyper_proxy/bench" "http://$hyper_proxy_per_connection/bench" >/dev/null
done

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
# MB/s from wrk's "Transfer/sec:  1.05GB"
to_mb() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /GB$/) n = n * 1024
        else if (v ~ /KB$/) n = n / 1024
        else if (v ~ /MB$/) n = n
        else n = n / 1048576
        printf "%.1f", n
    }'
}
measure() {
    local key=$1 round=$2 url=$3 conns=${4:-$CONNS}
    echo "== wrk $key round $round (${SECS}s, -c$conns): $url"
    local report
    report=$(wrk -t"$THREADS" -c"$conns" -d"${SECS}s" --latency "$url")
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
    local mbps
    mbps=$(to_mb "$(echo "$report" | awk '/Transfer\/sec:/ {print $2}')")
    echo "   $rps req/s ($ok_rps 2xx/s), $mbps MB/s, p50 ${p50} ms, p99 ${p99} ms, non-2xx $non2xx, socket errors $sock"
    echo "{\"bench\":\"http_compare\",\"server\":\"$key\",\"round\":$round,\"threads\":$THREADS,\"connections\":$conns,\"secs\":$SECS,\"requests_per_sec\":$rps,\"ok_per_sec\":$ok_rps,\"mb_per_sec\":$mbps,\"p50_ms\":$p50,\"p99_ms\":$p99,\"non_2xx\":$non2xx,\"socket_errors\":$sock}" >>"$OUT/http.json"
    ROWS+=("$key $round $rps $ok_rps $p50 $p99 $non2xx $sock $mbps")
}

for round in 1 2; do
    measure troupe "$round" "http://$troupe/bench"
    measure nginx "$round" "http://$nginx/bench"
    measure troupe-proxy "$round" "http://$troupe_proxy/bench"
    # the upstream alone (hyper answering the bytes itself, no hop): the ceiling
    measure hyper-direct "$round" "http://$upstream/bench"
    measure troupe-in-place "$round" "http://$troupe_in_place/bench"
    measure hyper-proxy "$round" "http://$hyper_proxy/bench"
    measure hyper-proxy-per-conn "$round" "http://$hyper_proxy_per_connection/bench"
done
for round in 1 2; do
    measure troupe-tls "$round" "https://$troupe_tls/bench"
    measure nginx-tls "$round" "https://$nginx_tls/bench"
done
# large bodies: 10 MiB per response through the reverse proxies, 8 connections
for round in 1 2; do
    measure troupe-big "$round" "http://$troupe_proxy/big" 8
    measure nginx-big "$round" "http://$nginx/big" 8
done
PROXY_PEAK_KB=$(awk '/VmHWM:/ {print $2}' "/proc/$TROUPE_PROXY_PID/status")
echo "   troupe reverse proxy peak RSS after every run: $((PROXY_PEAK_KB / 1024)) MiB"

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
echo "troupe-in-place: the same, the responders answering in place (Ctx::answer_in_place, on the gateway's task);"
echo "troupe-proxy: the gateway as a reverse proxy (Upstream::http) → the same hyper upstream as nginx;"
echo "nginx: 2 workers → keepalive → hyper upstream process, same 64 bytes;"
echo "hyper-direct: wrk straight at the upstream (no proxy, no actors): the ceiling;"
echo "hyper-proxy: hyper + hyper-util's pooled client proxying to the upstream, nothing else (the engine alone);"
echo "hyper-proxy-per-conn: the same with an upstream connection per client connection, driven in its task;"
echo "*-tls: the reverse proxies serving HTTPS (TLS 1.3, same certificate), wrk's keep-alive connections;"
echo "*-big: GET /big, 10 MiB per response, through the reverse proxies at -c8 (MB/s);"
echo "shop: GET /items/bench, cache hit, through shop's gateway (JSON body), per-IP rate limit off"
echo
printf '| run | requests/s | 2xx/s | MB/s | p50 (ms) | p99 (ms) | non-2xx | socket errors |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for row in "${ROWS[@]}"; do
    read -r key round rps ok_rps p50 p99 non2xx sock mbps <<<"$row"
    case "$key" in shop-*) label=$key ;; *) label="$key #$round" ;; esac
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$rps" "$ok_rps" "$mbps" "$p50" "$p99" "$non2xx" "$sock"
done
# means over the rounds and the ratios (requests/s or MB/s: the first over the second, troupe
# first wherever it is in the row, so that above 1.0 means troupe is better)
printf '%s\n' "${ROWS[@]}" | awk -v json="$OUT/http.json" -v peak_kb="$PROXY_PEAK_KB" '
    { n[$1]++; rps[$1] += $3; p50[$1] += $5; p99[$1] += $6; mb[$1] += $9 }
    END {
        for (s in n) { rps[s] /= n[s]; p50[s] /= n[s]; p99[s] /= n[s]; mb[s] /= n[s] }
        printf "\n| comparison (means of two runs) | first | second | ratio | target |\n|---|---|---|---|---|\n"
        printf "| gateway → actors vs nginx → upstream, requests/s | %.0f | %.0f | **%.2fx** | ≥ 1.0x |\n", rps["troupe"], rps["nginx"], rps["troupe"] / rps["nginx"]
        printf "| gateway → upstream vs nginx → upstream, requests/s | %.0f | %.0f | **%.2fx** | ≥ 1.0x |\n", rps["troupe-proxy"], rps["nginx"], rps["troupe-proxy"] / rps["nginx"]
        printf "| gateway → actors vs bare hyper, requests/s | %.0f | %.0f | **%.2fx** | ≥ 0.7x |\n", rps["troupe"], rps["hyper-direct"], rps["troupe"] / rps["hyper-direct"]
        printf "| gateway → actors answering in place vs bare hyper, requests/s | %.0f | %.0f | **%.2fx** | ≥ 0.7x |\n", rps["troupe-in-place"], rps["hyper-direct"], rps["troupe-in-place"] / rps["hyper-direct"]
        printf "| the engine alone: hyper-util pooled proxy vs nginx → upstream, requests/s | %.0f | %.0f | %.2fx | (reference) |\n", rps["hyper-proxy"], rps["nginx"], rps["hyper-proxy"] / rps["nginx"]
        printf "| the engine alone, a connection per client connection, vs nginx, requests/s | %.0f | %.0f | %.2fx | (reference) |\n", rps["hyper-proxy-per-conn"], rps["nginx"], rps["hyper-proxy-per-conn"] / rps["nginx"]
        printf "| gateway → upstream vs the engine alone (pooled), requests/s | %.0f | %.0f | %.2fx | (reference) |\n", rps["troupe-proxy"], rps["hyper-proxy"], rps["troupe-proxy"] / rps["hyper-proxy"]
        printf "| TLS: gateway → upstream vs nginx → upstream, requests/s | %.0f | %.0f | **%.2fx** | ≥ 1.0x |\n", rps["troupe-tls"], rps["nginx-tls"], rps["troupe-tls"] / rps["nginx-tls"]
        printf "| 10 MiB bodies: gateway vs nginx, MB/s | %.0f | %.0f | **%.2fx** | ≥ 1.0x |\n", mb["troupe-big"], mb["nginx-big"], mb["troupe-big"] / mb["nginx-big"]
        printf "\ntroupe reverse proxy peak RSS after every run: %.0f MiB\n", peak_kb / 1024
        printf "{\"bench\":\"http_compare\",\"summary\":true,\"troupe_rps\":%.1f,\"troupe_in_place_rps\":%.1f,\"nginx_rps\":%.1f,\"troupe_proxy_rps\":%.1f,\"hyper_direct_rps\":%.1f,\"hyper_proxy_rps\":%.1f,\"hyper_proxy_per_conn_rps\":%.1f,\"troupe_tls_rps\":%.1f,\"nginx_tls_rps\":%.1f,\"troupe_big_mbps\":%.1f,\"nginx_big_mbps\":%.1f,\"troupe_proxy_peak_rss_kb\":%d}\n",
            rps["troupe"], rps["troupe-in-place"], rps["nginx"], rps["troupe-proxy"], rps["hyper-direct"], rps["hyper-proxy"], rps["hyper-proxy-per-conn"], rps["troupe-tls"], rps["nginx-tls"], mb["troupe-big"], mb["nginx-big"], peak_kb >> json
    }'
