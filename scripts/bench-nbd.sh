#!/usr/bin/env bash
# scripts/bench-nbd.sh: benchmark of `cairn nbd serve`, called by
# scripts/bench.sh or on its own.
#
#   CAIRN_BIN=bin/cairn CAIRN_REPO=DIR scripts/bench-nbd.sh CHECKPOINT [SPARSE_CHECKPOINT]
#   scripts/bench-nbd.sh        # makes its own repository (see below)
#
# Prints one figure per line on stdout, "name: value unit (ceiling: value
# unit)", each beside a ceiling measured in the same run on this machine:
#   - sequential read through NBD (nbdcopy ... null:) of CHECKPOINT, beside
#     the same read from nbdkit's pattern plugin (the NBD ceiling here);
#   - `cairn restore` of CHECKPOINT to a file, beside memcpy
#     (dd if=/dev/zero of=/dev/null);
#   - random 4 KiB read latency p50/p99 through NBD, cold (a server just
#     started, page cache dropped when possible) and warm (the same offsets
#     again), beside the same client against nbdkit (scripts/nbdlat);
#   - time from starting `cairn nbd serve` to the first byte served of
#     SPARSE_CHECKPOINT (meant to be a 100 GiB sparse volume), beside the
#     same for nbdkit's memory plugin of that size.
# Progress goes to stderr.
#
# Environment:
#   CAIRN_BIN       the cairn binary (default bin/cairn, built when missing)
#   CAIRN_REPO      the repository holding the checkpoints (and
#                   CAIRN_PASSWORD when it is encrypted)
#   BENCH_DIR       parent of the work directory (default /tmp)
#   IMAGE_SIZE      without arguments: the dense test image (default 1GiB);
#                   the sparse one is 100 GiB holding 3 x 32 MiB of data
#   LAT_N           random reads per latency pass (default 2000)
#
# Needs: go, python3, nbdcopy (libnbd-bin); nbdkit for the ceilings.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CAIRN_BIN=${CAIRN_BIN:-$ROOT/bin/cairn}
IMAGE_SIZE=${IMAGE_SIZE:-1GiB}
LAT_N=${LAT_N:-2000}
W=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-bench-nbd.XXXXXX")

PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
	done
	rm -rf "$W"
}
trap cleanup EXIT

log() { printf 'bench-nbd: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
command -v nbdcopy >/dev/null || die "nbdcopy not found: apt-get install libnbd-bin"
command -v python3 >/dev/null || die "python3 not found"
HAVE_NBDKIT=0
command -v nbdkit >/dev/null && HAVE_NBDKIT=1 || log "nbdkit not found: ceilings print n/a (apt-get install nbdkit)"

[[ -x $CAIRN_BIN ]] || go build -o "$CAIRN_BIN" ./cmd/cairn
go build -o "$W/nbdlat" ./scripts/nbdlat

now() { date +%s%N; }
# mbps BYTES NANOSECONDS
mbps() { awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.1f", b / 1e6 / (ns / 1e9) }'; }
ms() { awk -v ns="$1" 'BEGIN { printf "%.1f", ns / 1e6 }'; }
fig() { printf '%s: %s %s (ceiling: %s %s)\n' "$1" "$2" "$3" "$4" "$3"; }
cp_field() { # cp_field ID FIELD
	"$CAIRN_BIN" --json checkpoints | python3 -c '
import json, sys
for cp in json.load(sys.stdin):
    if cp["id"] == sys.argv[1] or cp["id"].startswith(sys.argv[1]):
        print(cp[sys.argv[2]]); break
else:
    sys.exit("no checkpoint " + sys.argv[1])' "$1" "$2"
}

if (($# == 0)); then
	export CAIRN_REPO=$W/repo
	log "no checkpoint given: making a repository in $CAIRN_REPO"
	"$CAIRN_BIN" -q repo init >/dev/null
	bytes=$(python3 -c 'import sys; u={"K":1<<10,"M":1<<20,"G":1<<30}; s=sys.argv[1].rstrip("iB"); print(int(s[:-1])*u[s[-1]] if s[-1] in u else int(s))' "$IMAGE_SIZE")
	head -c "$bytes" /dev/urandom >"$W/dense.img"
	truncate -s 100G "$W/sparse.img"
	for off in 0 51200 102336; do # MiB: start, middle, end
		head -c 32M /dev/urandom | dd of="$W/sparse.img" bs=1M seek="$off" conv=notrunc status=none
	done
	set -- "$("$CAIRN_BIN" --json backup --source "$W/dense.img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')" \
		"$("$CAIRN_BIN" --json backup --source "$W/sparse.img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
	rm -f "$W/dense.img" "$W/sparse.img"
fi
[[ -n ${CAIRN_REPO:-} ]] || die "set CAIRN_REPO"
ID=$(cp_field "$1" id)
SIZE=$(cp_field "$ID" size)
SPARSE_ID=
[[ -n ${2:-} ]] && SPARSE_ID=$(cp_field "$2" id)

SERVER=
# serve SOCKET: start `cairn nbd serve` on a unix socket, wait until it listens.
serve() {
	rm -f "$1"
	"$CAIRN_BIN" nbd serve --listen "unix:$1" >"$W/serve.out" 2>"$W/serve.err" &
	SERVER=$!
	PIDS+=("$SERVER")
	for _ in $(seq 600); do
		grep -q '^listening on' "$W/serve.out" 2>/dev/null && return 0
		kill -0 "$SERVER" 2>/dev/null || die "cairn nbd serve failed: $(cat "$W/serve.err")"
		sleep 0.05
	done
	die "cairn nbd serve did not start"
}
stop() { kill -TERM "$SERVER" && wait "$SERVER" || true; }
# kit SOCKET PLUGIN ARGS...: start nbdkit in the foreground of a background job.
KIT=
kit() {
	local sock=$1
	shift
	rm -f "$sock"
	nbdkit -f --exit-with-parent -U "$sock" "$@" &
	KIT=$!
	PIDS+=("$KIT")
}
kit_wait() { for _ in $(seq 600); do [[ -S $1 ]] && return 0; sleep 0.01; done; die "nbdkit did not start"; }
drop_caches() { sync; { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null || log "cannot drop the page cache (not root?): cold means a cold chunk cache only"; }

# Ceilings.
log "memcpy ceiling"
t=$(now)
dd if=/dev/zero of=/dev/null bs=1M count=4096 status=none
MEMCPY=$(mbps $((4096 << 20)) $(($(now) - t)))
KIT_SEQ=n/a
if ((HAVE_NBDKIT)); then
	log "NBD ceiling: nbdkit pattern, $SIZE bytes"
	kit "$W/kit.sock" pattern size="$SIZE"
	kit_wait "$W/kit.sock"
	t=$(now)
	nbdcopy "nbd+unix:///?socket=$W/kit.sock" null:
	KIT_SEQ=$(mbps "$SIZE" $(($(now) - t)))
fi

log "sequential read through NBD of $ID ($SIZE bytes)"
serve "$W/cairn.sock"
t=$(now)
nbdcopy "nbd+unix:///$ID?socket=$W/cairn.sock" null:
fig "nbd sequential read (nbdcopy null:)" "$(mbps "$SIZE" $(($(now) - t)))" MB/s "$KIT_SEQ"
stop

log "restore of $ID to a file"
t=$(now)
"$CAIRN_BIN" -q restore "$ID" --to "$W/restore.img"
fig "restore to a file" "$(mbps "$SIZE" $(($(now) - t)))" MB/s "$MEMCPY"
rm -f "$W/restore.img"
fig "nbd protocol ceiling (nbdkit pattern, nbdcopy null:)" "$KIT_SEQ" MB/s "$MEMCPY"

log "random 4 KiB reads, $LAT_N per pass"
declare -A LAT KLAT
drop_caches
serve "$W/cairn.sock"
while read -r k v; do LAT[$k]=$v; done < <("$W/nbdlat" -addr "unix:$W/cairn.sock" -export "$ID" -n "$LAT_N")
stop
for k in cold_p50_us cold_p99_us warm_p50_us warm_p99_us; do KLAT[$k]=n/a; done
if ((HAVE_NBDKIT)); then
	while read -r k v; do KLAT[$k]=$v; done < <("$W/nbdlat" -addr "unix:$W/kit.sock" -n "$LAT_N")
	kill "$KIT" && wait "$KIT" 2>/dev/null || true
fi
for pass in cold warm; do
	for p in p50 p99; do
		fig "nbd random 4K read $p ($pass)" "${LAT[${pass}_${p}_us]}" us "${KLAT[${pass}_${p}_us]}"
	done
done

if [[ -n $SPARSE_ID ]]; then
	SPARSE_SIZE=$(cp_field "$SPARSE_ID" size)
	log "time to first byte of $SPARSE_ID ($SPARSE_SIZE bytes)"
	rm -f "$W/first.sock"
	t=$(now)
	"$CAIRN_BIN" nbd serve --listen "unix:$W/first.sock" >/dev/null 2>"$W/serve.err" &
	SERVER=$!
	PIDS+=("$SERVER")
	"$W/nbdlat" -first -addr "unix:$W/first.sock" -export "$SPARSE_ID" >/dev/null
	FIRST=$(ms $(($(now) - t)))
	stop
	KIT_FIRST=n/a
	if ((HAVE_NBDKIT)); then
		t=$(now)
		kit "$W/kitfirst.sock" memory size="$SPARSE_SIZE"
		"$W/nbdlat" -first -addr "unix:$W/kitfirst.sock" >/dev/null
		KIT_FIRST=$(ms $(($(now) - t)))
		kill "$KIT" && wait "$KIT" 2>/dev/null || true
	fi
	fig "nbd time to first byte ($((SPARSE_SIZE >> 30)) GiB sparse checkpoint)" "$FIRST" ms "$KIT_FIRST"
fi
