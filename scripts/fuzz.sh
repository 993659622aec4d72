#!/usr/bin/env bash
# Runs every fuzz target under fuzz/ for SECONDS each (default 60), one after another, with
# cargo fuzz on the nightly toolchain (installed with `cargo install cargo-fuzz` if missing).
#
#   scripts/fuzz.sh [SECONDS]
#
# Targets: frame_decode (the wire's frame codec), resp_decode (the cache's RESP decoder and
# command parser), memcache_decode (the cache's memcached text decoder, whole and resumed), control_decode (names from an authenticated peer, with their
# limits), swim_decode (membership datagrams: codec, identity filter, foca), payload_decode (the payloads of every part's real message types), http_head_route
# (the gateway's request head check and routing). Each run is bounded
# by -max_total_time; crashes are kept under fuzz/artifacts/TARGET/ and fail the script. Nothing
# touches the network. Not in .ci/run (it needs nightly and minutes); results go in
# docs/security.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
case "$SECONDS_EACH" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --help >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

TARGETS=(frame_decode resp_decode memcache_decode control_decode swim_decode payload_decode http_head_route)
FAILED=()
for target in "${TARGETS[@]}"; do
    echo "== fuzz $target for ${SECONDS_EACH}s"
    # its own target dir, so the sanitizer build never mixes with the workspace's
    if ! CARGO_TARGET_DIR=target/fuzz cargo +nightly fuzz run "$target" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -print_final_stats=1; then
        FAILED+=("$target")
    fi
done
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${FAILED[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets, ${SECONDS_EACH}s each, no crash"
