#!/usr/bin/env bash
# Checks that every published crate of the workspace would publish: `cargo publish --workspace
# --dry-run` packs each crate (troupe-examples is `publish = false`; compare/ and fuzz/ are not
# workspace members), in dependency order, into a temporary registry under target/package, then
# builds each one from its package alone, as a user would get it, against the others' packages.
#
#   scripts/publish_check.sh             # pack and build every crate (~2 min warm; from a cold
#                                        # target about 7 CPU-minutes: not in .ci/run)
#   scripts/publish_check.sh --no-verify # pack only, no build (well under a minute; .ci/run)
#
# cargo only warns about what the registry would refuse or flag (no description or license, a
# readme that is not in the package, a target whose file is left out), so any warning besides
# the dry run's own "aborting upload" fails this check. Nothing is written outside target/.
set -euo pipefail
cd "$(dirname "$0")/.."

args=(--workspace --dry-run)
case "${1:-}" in
    --no-verify) args+=(--no-verify) ;;
    "") ;;
    *) echo "usage: $0 [--no-verify]" >&2; exit 2 ;;
esac

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# --allow-dirty: CI checks out a clean tree anyway, and a developer may check before committing.
cargo publish "${args[@]}" --allow-dirty 2>&1 | tee "$log"

if grep '^warning:' "$log" | grep -v 'aborting upload due to dry run'; then
    echo "publish check: cargo warned about the packages above" >&2
    exit 1
fi
echo "publish check: every published crate packs$([ "${1:-}" = --no-verify ] || echo " and builds")"
