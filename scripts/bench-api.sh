#!/usr/bin/env bash
# scripts/bench-api.sh: benchmark of the appliance API (`cairn serve`),
# called by scripts/bench-all.sh or on its own.
#
# Starts `cairn serve` on a free port of 127.0.0.1 with its own data
# directory (workers = JOBS_K, at least 8) and drives it with
# scripts/apibench. Prints one figure per line on stdout, "name: value unit
# (ceiling: value unit)":
#   - checkpoint list latency p50/p99 (GET .../checkpoints?limit=1000, the
#     largest page, and limit=10, N sequential requests each) with
#     SEED_TARGET checkpoints (10,000), beside GET /healthz measured the
#     same way. The API cannot write checkpoint records without running
#     jobs, so seeding protects a plan of one 4 KiB file, 8 clients each
#     waiting for its checkpoint, until SEED_TARGET or SEED_SECONDS; the
#     count reached is in the figure's name. Printed beside them: the
#     figure of the JSON-file state store the bbolt database replaced
#     (p50 24 ms / p99 34 ms at 10,000 checkpoints, limit=1000), and the
#     seeding rate in checkpoints/s and in state objects written/s
#     (cairn_state_writes_total: every put and delete, each its own
#     fsynced transaction);
#   - protection throughput (MB of file data per second of wall time) of
#     JOBS_K random files of JOBS_MIB MiB protected one job at a time, and
#     JOBS_K others all at once, with their ratio; the ceiling is `cairn
#     backup` of the first set run directly, one after the other, into a
#     fresh repository;
#   - the protection throughput of two projects at once against one: JOBS_K
#     files of project "solo" all at once, then JOBS_K files each of
#     projects "duo-a" and "duo-b" all at once, started together, with the
#     two projects' finishing times (per-project limits keep one from
#     starving the other).
# Progress goes to stderr.
#
# Environment:
#   CAIRN_BIN     the cairn binary (default bin/cairn, built when missing)
#   BENCH_DIR     parent of the work directory (default /tmp)
#   SEED_TARGET   checkpoints to seed (default 10000)
#   SEED_SECONDS  seeding time limit (default 1200)
#   LIST_N        requests per latency pass (default 200)
#   JOBS_K        files per throughput phase (default 4)
#   JOBS_MIB      size of each file (default 64)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CAIRN_BIN=${CAIRN_BIN:-$ROOT/bin/cairn}
SEED_TARGET=${SEED_TARGET:-10000}
SEED_SECONDS=${SEED_SECONDS:-1200}
LIST_N=${LIST_N:-200}
JOBS_K=${JOBS_K:-4}
JOBS_MIB=${JOBS_MIB:-64}
PROJECT=bench
W=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-bench-api.XXXXXX")

SERVE_PID=
cleanup() {
	if [[ -n $SERVE_PID ]]; then
		kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
	fi
	rm -rf "$W"
}
trap cleanup EXIT

log() { printf 'bench-api: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=scripts/bench-serve.sh
source "$ROOT/scripts/bench-serve.sh"
fig() { printf '%s: %s %s (ceiling: %s %s)\n' "$1" "$2" "$3" "$4" "$3"; }

[[ -x $CAIRN_BIN ]] || go build -o "$CAIRN_BIN" ./cmd/cairn
go build -o "$W/apibench" ./scripts/apibench

DATA=$W/data
mkdir -p "$DATA/volumes"
workers=$((JOBS_K > 8 ? JOBS_K : 8))
printf '{"workers": %d}\n' "$workers" >"$W/serve.json"
start_serve "$DATA" "$W/serve.json"
log "cairn serve at $URL, $workers workers, data in $DATA"

AB=("$W/apibench")
COMMON=(-url "$URL" -project "$PROJECT")

log "seeding $SEED_TARGET checkpoints (at most ${SEED_SECONDS}s)"
t0=$(date +%s.%N)
read -r _ count _ seed_cps _ seed_wps < <("${AB[@]}" seed "${COMMON[@]}" -volumes "$DATA/volumes" -seed-seconds "$SEED_SECONDS" -target "$SEED_TARGET")
t1=$(date +%s.%N)
log "seeded $count checkpoints in $(python3 -c "print('%.0f' % ($t1 - $t0))")s"
read -r _ lp50 _ lp99 < <("${AB[@]}" list "${COMMON[@]}" -n "$LIST_N")
read -r _ sp50 _ sp99 < <("${AB[@]}" list "${COMMON[@]}" -n "$LIST_N" -path "/v1/$PROJECT/providers/cf56bd3e-97a7-4078-b6d5-f36246333fd9/checkpoints?limit=10")
read -r _ hp50 _ hp99 < <("${AB[@]}" list "${COMMON[@]}" -n "$LIST_N" -path /healthz)
fig "checkpoint list p50 ($count checkpoints, limit=1000)" "$lp50" ms "$hp50"
fig "checkpoint list p99 ($count checkpoints, limit=1000)" "$lp99" ms "$hp99"
fig "checkpoint list p50 ($count checkpoints, limit=10)" "$sp50" ms "$hp50"
fig "checkpoint list p99 ($count checkpoints, limit=10)" "$sp99" ms "$hp99"
# Measured on this script before the state store became a bbolt database.
printf 'checkpoint list p50/p99 (10000 checkpoints, limit=1000), JSON-file state store before: 24 / 34 ms; bbolt state store now (%s checkpoints): %s / %s ms\n' "$count" "$lp50" "$lp99"
printf 'seeding rate: %s checkpoints/s, %s state objects written/s\n' "$seed_cps" "$seed_wps"

log "protecting $JOBS_K x $JOBS_MIB MiB, one at a time then all at once"
read -r _ seq_mbs _ par_mbs < <("${AB[@]}" jobs "${COMMON[@]}" -volumes "$DATA/volumes" -k "$JOBS_K" -size-mib "$JOBS_MIB")

log "two projects at once against one: $JOBS_K x $JOBS_MIB MiB each, all at once"
BURST=("${AB[@]}" burst -url "$URL" -volumes "$DATA/volumes" -k "$JOBS_K" -size-mib "$JOBS_MIB")
read -r _ one_mbs _ one_s < <("${BURST[@]}" -project solo)
# Both processes write their files and plans first, then start together.
start_at=$(( $(date +%s%N) + 30000000000 ))
"${BURST[@]}" -project duo-a -start-at "$start_at" >"$W/duo-a.out" &
duo_a=$!
"${BURST[@]}" -project duo-b -start-at "$start_at" >"$W/duo-b.out" &
duo_b=$!
wait "$duo_a" || die "burst of project duo-a failed"
wait "$duo_b" || die "burst of project duo-b failed"
read -r _ _ _ a_s <"$W/duo-a.out"
read -r _ _ _ b_s <"$W/duo-b.out"
two_mbs=$(python3 -c "print('%.1f' % (2 * $JOBS_K * $JOBS_MIB * 1048576 / 1e6 / max($a_s, $b_s)))")

kill "$SERVE_PID"
wait "$SERVE_PID" || die "cairn serve exited non-zero after SIGTERM: $(tail -5 "$W/serve.log")"
SERVE_PID=

log "ceiling: cairn backup of the same $JOBS_K files, sequential"
export CAIRN_REPO=$W/ceiling-repo
unset CAIRN_PASSWORD
"$CAIRN_BIN" -q repo init >/dev/null
t0=$(date +%s.%N)
for f in "$DATA"/volumes/apibench-seq-*.img; do
	"$CAIRN_BIN" -q backup --source "$f" >/dev/null
done
t1=$(date +%s.%N)
bk_mbs=$(python3 -c "print('%.1f' % ($JOBS_K * $JOBS_MIB * 1048576 / 1e6 / ($t1 - $t0)))")
ratio=$(python3 -c "print('%.2f' % ($par_mbs / $seq_mbs))")
fig "protect 1 job at a time ($JOBS_K x $JOBS_MIB MiB)" "$seq_mbs" MB/s "$bk_mbs"
fig "protect $JOBS_K jobs at once ($JOBS_K x $JOBS_MIB MiB)" "$par_mbs" MB/s "$bk_mbs"
printf 'protect %d at once / 1 at a time: %sx (cores: %s)\n' "$JOBS_K" "$ratio" "$(nproc)"
fig "protect, 1 project ($JOBS_K x $JOBS_MIB MiB at once)" "$one_mbs" MB/s "$bk_mbs"
fig "protect, 2 projects at once ($JOBS_K x $JOBS_MIB MiB each)" "$two_mbs" MB/s "$bk_mbs"
printf 'protect 2 projects / 1 project: %sx; the 2 projects finished in %s s and %s s (1 project alone: %s s; project_max_running %s, workers %s, cores %s)\n' \
	"$(python3 -c "print('%.2f' % ($two_mbs / $one_mbs))")" "$a_s" "$b_s" "$one_s" "$((workers / 2))" "$workers" "$(nproc)"
