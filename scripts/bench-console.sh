#!/usr/bin/env bash
# scripts/bench-console.sh: benchmark of the web console, called by
# scripts/bench-all.sh or on its own.
#
# Starts a noauth `cairn serve` on a free port of 127.0.0.1 with its own
# data directory, seeds one project with CONSOLE_RESOURCES protected 4 KiB
# files (one plan each) and CONSOLE_CHECKPOINTS checkpoints, and runs
# scripts/consolebench: the project view loaded CONSOLE_LOADS times in
# headless chromium (Debian's chromium and chromium-driver). Prints, one
# figure per line on stdout:
#   - the p50 of the API calls the view rests on (resources, summary, the
#     jobs poll, a full checkpoint page), each over LIST_N requests;
#   - the p50 of Chromium's first contentful paint and of the console's
#     time to interactive (the performance mark cairn-interactive: every
#     section rendered from its answers), from the start of navigation,
#     beside the slowest of those API calls as the ceiling.
# The checkpoint count reached is in the figures' names (seeding stops at
# SEED_SECONDS). Progress goes to stderr.
#
# Environment:
#   CAIRN_BIN            the cairn binary (default bin/cairn, built when missing)
#   BENCH_DIR            parent of the work directory (default /tmp)
#   CONSOLE_RESOURCES    protected files (default 1000)
#   CONSOLE_CHECKPOINTS  checkpoints to seed (default 10000)
#   CONSOLE_LOADS        page loads measured (default 5)
#   SEED_SECONDS         seeding time limit (default 1800)
#   LIST_N               requests per API figure (default 20)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CAIRN_BIN=${CAIRN_BIN:-$ROOT/bin/cairn}
CONSOLE_RESOURCES=${CONSOLE_RESOURCES:-1000}
CONSOLE_CHECKPOINTS=${CONSOLE_CHECKPOINTS:-10000}
CONSOLE_LOADS=${CONSOLE_LOADS:-5}
SEED_SECONDS=${SEED_SECONDS:-1800}
LIST_N=${LIST_N:-20}
W=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-bench-console.XXXXXX")

SERVE_PID=
cleanup() {
	if [[ -n $SERVE_PID ]]; then
		kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
	fi
	rm -rf "$W"
}
trap cleanup EXIT

log() { printf 'bench-console: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=scripts/bench-serve.sh
source "$ROOT/scripts/bench-serve.sh"

command -v chromium >/dev/null && command -v chromedriver >/dev/null ||
	die "chromium and chromedriver are needed (Debian packages chromium, chromium-driver: make deps)"
[[ -x $CAIRN_BIN ]] || go build -o "$CAIRN_BIN" ./cmd/cairn
go build -o "$W/consolebench" ./scripts/consolebench

DATA=$W/data
mkdir -p "$DATA/volumes"
printf '{"workers": 8}\n' >"$W/serve.json"
start_serve "$DATA" "$W/serve.json"
log "cairn serve at $URL; seeding $CONSOLE_RESOURCES resources and $CONSOLE_CHECKPOINTS checkpoints (at most ${SEED_SECONDS}s)"

"$W/consolebench" -url "$URL" -project console -volumes "$DATA/volumes" \
	-resources "$CONSOLE_RESOURCES" -checkpoints "$CONSOLE_CHECKPOINTS" -seed-seconds "$SEED_SECONDS" \
	-loads "$CONSOLE_LOADS" -n "$LIST_N"
