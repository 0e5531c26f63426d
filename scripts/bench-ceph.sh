#!/usr/bin/env bash
# scripts/bench-ceph.sh: cairn against Ceph RBD, each figure beside its
# ceiling measured in the same run on the same cluster.
#
#   rbd export of a 4 GiB image        the read ceiling
#   cairn full backup (local repo)     vs rbd export
#   incremental after 1% random 4 KiB writes, and after rewriting 1% of the
#   objects: seconds, MB read, MB stored (vs 5% of the full backup's time)
#   restore to RBD                     vs rbd import
#
# The changes are random data written with rbd import-diff. 1% of the image
# in random 4 KiB writes touches nearly every 4 MiB object, so that
# incremental reads nearly everything (with fast-diff, and with 4 MiB cairn
# blocks without it); 1% of the objects rewritten is the proportional case.
#
# Prints lines "name: value unit (ceiling: value unit)" on stdout; progress
# goes to stderr.
#
# Environment:
#   CEPH_CONF          a running cluster to use; unset: start a throwaway one
#                      with scripts/ceph-cluster.sh in a temporary directory
#                      (memstore of CEPH_MEMSTORE_BYTES, default 9 GiB: RAM, used as
#                      written; the run peaks at twice the image size)
#   BENCH_IMAGE_SIZE   image size in MiB (default 4096)
#   BENCH_POOL         pool (default rbd)
#   BENCH_DATA         "bench" (default): rbd bench --io-type write --io-size 4M
#                      --io-pattern seq, as the issue asks (its data is one
#                      repeated byte pattern: dedup and zstd shrink it to
#                      almost nothing); "random": rbd import of random data
#   BENCH_STEP_TIMEOUT seconds one step may take (default 600): a cluster
#                      that dies (an OSD killed for memory) fails the run
#                      instead of hanging it
#   NO_SYNC=1          pass --no-sync to cairn (no fsync in the local repo)
#   KEEP=1             keep the work directory
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SIZE_MIB=${BENCH_IMAGE_SIZE:-4096}
POOL=${BENCH_POOL:-rbd}
DATA=${BENCH_DATA:-bench}
NO_SYNC=${NO_SYNC:-0}
KEEP=${KEEP:-0}
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-600}

# rbd, bounded in time (librados waits for a dead OSD forever).
RBD_BIN=$(command -v rbd) || { echo "bench-ceph: rbd not found (apt-get install ceph-common)" >&2; exit 1; }
rbd() { timeout "$STEP_TIMEOUT" "$RBD_BIN" "$@"; }
log() { printf 'bench-ceph: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-ceph.XXXXXX")
CLUSTER=
cleanup() {
	set +e
	if [[ -n ${CEPH_CONF-} ]]; then
		for img in "${IMAGES[@]}"; do
			rbd snap purge "$POOL/$img" >/dev/null 2>&1
			rbd rm --no-progress "$POOL/$img" >/dev/null 2>&1
		done
	fi
	[[ -n $CLUSTER ]] && ./scripts/ceph-cluster.sh stop "$CLUSTER"
	if [[ $KEEP == 1 ]]; then log "kept $W"; else rm -rf "$W"; fi
}
IMAGES=()
trap cleanup EXIT

if [[ -z ${CEPH_CONF-} ]]; then
	CLUSTER=$W/ceph
	log "starting a throwaway cluster in $CLUSTER"
	CEPH_CONF=$(CEPH_MON_PORT=${CEPH_MON_PORT:-auto} \
		CEPH_MEMSTORE_BYTES=${CEPH_MEMSTORE_BYTES:-$((9 << 30))} \
		./scripts/ceph-cluster.sh start "$CLUSTER" | tail -n 1)
fi
export CEPH_CONF
log "CEPH_CONF=$CEPH_CONF"

log "building cairn with Ceph support"
go build -tags 'ceph pacific' -o "$W/cairn" ./cmd/cairn
CAIRN=(timeout "$STEP_TIMEOUT" "$W/cairn")
[[ $NO_SYNC == 1 ]] && CAIRN+=(--no-sync)
export CAIRN_REPO=$W/repo
"${CAIRN[@]}" repo init >/dev/null

now() { date +%s.%N; }
# mbps BYTES SECONDS
mbps() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 1e6 / float(sys.argv[2]):.1f}')" "$1" "$2"; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$1" "$2"; }
# phase FILE: seconds between a checkpoint's created_at and finished_at (the
# backup itself, without connecting, snapshot creation and removal).
phase() {
	python3 - "$1" <<'PY'
import datetime, json, re, sys
d = json.load(open(sys.argv[1]))
t = lambda s: datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", s.replace("Z", "+00:00")))
print(f"{(t(d['finished_at']) - t(d['created_at'])).total_seconds():.3f}")
PY
}

IMG=bench-$$
IMAGES+=("$IMG")
BYTES=$((SIZE_MIB << 20))
log "creating $POOL/$IMG ($SIZE_MIB MiB, fast-diff), data: $DATA"
FEATURES=layering,exclusive-lock,object-map,fast-diff
case $DATA in
bench)
	rbd create --size "${SIZE_MIB}M" --image-feature "$FEATURES" "$POOL/$IMG"
	rbd bench --io-type write --io-size 4M --io-pattern seq --io-total "${SIZE_MIB}M" "$POOL/$IMG" >/dev/null
	;;
random)
	head -c "$BYTES" /dev/urandom >"$W/random.img"
	rbd import --no-progress --image-feature "$FEATURES" "$W/random.img" "$POOL/$IMG" >/dev/null
	rm -f "$W/random.img"
	;;
*) die "BENCH_DATA=$DATA: want bench or random" ;;
esac

# ------------------------------------------------------------ rbd export
log "rbd export (ceiling)"
t0=$(now)
rbd export --no-progress "$POOL/$IMG" - >/dev/null
t1=$(now)
EXPORT_S=$(elapsed "$t0" "$t1")
EXPORT=$(mbps "$BYTES" "$EXPORT_S")
echo "rbd_export: $EXPORT MB/s ($SIZE_MIB MiB in $EXPORT_S s)"

# ------------------------------------------------------ cairn full backup
log "cairn full backup"
t0=$(now)
"${CAIRN[@]}" --json backup --source "rbd:$POOL/$IMG" >"$W/full.json"
t1=$(now)
FULL_S=$(elapsed "$t0" "$t1")
FULL_PHASE=$(phase "$W/full.json")
echo "cairn_full_backup_local: $(mbps "$BYTES" "$FULL_S") MB/s (ceiling: $EXPORT MB/s rbd export; $FULL_S s wall, read $(jget "$W/full.json" 'd["read_bytes"]//10**6') MB, stored $(jget "$W/full.json" 'd["stored_bytes"]//10**6') MB)"
echo "cairn_full_backup_local_read_phase: $(mbps "$BYTES" "$FULL_PHASE") MB/s (ceiling: $EXPORT MB/s rbd export; $FULL_PHASE s inside the dedup backup: reads, hashing, packing, commit)"

# ---------------------------------------------------- restore vs import
ID=$(jget "$W/full.json" 'd["id"]')
R=restore-$$
IMAGES+=("$R")
rbd export --no-progress "$POOL/$IMG" "$W/export.img" >/dev/null
cat "$W/export.img" >/dev/null
# memstore takes its RAM as objects are first written and reuses what a
# removed image freed, and the cluster keeps getting faster over the first
# few writes of an image's size: whichever write ran first paid for it
# (measured here: a restore took 15 s first and 4 s after two imports; run
# once after one untimed import, the restore took 7.4 s and the import 4.5
# s; three rounds after it, the restore 7.0, 5.3, 4.8 s). So each runs once
# untimed, then the two alternate, three times each, and the medians are
# compared.
log "warming the cluster up: an untimed cairn restore and rbd import"
"${CAIRN[@]}" restore "$ID" --to "rbd:$POOL/$R" >/dev/null
rbd rm --no-progress "$POOL/$R" >/dev/null
rbd import --no-progress "$W/export.img" "$POOL/$R" >/dev/null
rbd rm --no-progress "$POOL/$R" >/dev/null
RESTORES=() IMPORTS=()
for round in 1 2 3; do
	log "cairn restore to RBD ($round of 3)"
	t0=$(now)
	"${CAIRN[@]}" restore "$ID" --to "rbd:$POOL/$R" >/dev/null
	t1=$(now)
	RESTORES+=("$(elapsed "$t0" "$t1")")
	rbd rm --no-progress "$POOL/$R" >/dev/null # memstore is RAM: free it

	log "rbd import ($round of 3; ceiling; from a local file in the page cache)"
	t0=$(now)
	rbd import --no-progress "$W/export.img" "$POOL/$R" >/dev/null
	t1=$(now)
	IMPORTS+=("$(elapsed "$t0" "$t1")")
	rbd rm --no-progress "$POOL/$R" >/dev/null
done
rm -f "$W/export.img"
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
RESTORE_S=$(median "${RESTORES[@]}")
IMPORT_S=$(median "${IMPORTS[@]}")
IMPORT=$(mbps "$BYTES" "$IMPORT_S")
echo "cairn_restore_rbd: $(mbps "$BYTES" "$RESTORE_S") MB/s (ceiling: $IMPORT MB/s rbd import; median $RESTORE_S s of ${RESTORES[*]} s)"
echo "rbd_import: $IMPORT MB/s (median $IMPORT_S s of ${IMPORTS[*]} s)"

# ------------------------------------------------------------ incrementals
# The floor of any incremental: one snapshot created and one removed.
t0=$(now)
rbd snap create "$POOL/$IMG@bench-floor" >/dev/null 2>&1
rbd snap rm --no-progress "$POOL/$IMG@bench-floor" >/dev/null
t1=$(now)
SNAP_S=$(elapsed "$t0" "$t1")
echo "rbd_snap_create_and_rm: $SNAP_S s (the fixed cost every incremental pays)"

# change IOSIZE TOTAL SEED: random data in TOTAL bytes of IOSIZE writes at
# random IOSIZE-aligned offsets, through rbd import-diff (rbd bench writes
# one repeated byte, which would change nothing).
change() {
	python3 - "$BYTES" "$1" "$2" "$3" "$W/change.diff" <<'PY'
import os, random, struct, sys
size, iosize, total, seed = (int(a) for a in sys.argv[1:5])
out = sys.argv[5]
rng = random.Random(seed)
offs = sorted(rng.sample(range(size // iosize), max(1, total // iosize)))
with open(out, "wb") as f:
    f.write(b"rbd diff v1\n" + b"s" + struct.pack("<Q", size))
    for o in offs:
        f.write(b"w" + struct.pack("<QQ", o * iosize, iosize) + os.urandom(iosize))
    f.write(b"e")
PY
	rbd import-diff --no-progress "$W/change.diff" "$POOL/$IMG" >/dev/null
	rm -f "$W/change.diff"
}

# incremental NAME: back up the changed image and report.
incremental() {
	local name=$1 t0 t1 s limit
	t0=$(now)
	"${CAIRN[@]}" --json backup --source "rbd:$POOL/$IMG" >"$W/$name.json"
	t1=$(now)
	s=$(elapsed "$t0" "$t1")
	limit=$(python3 -c "import sys; print(f'{0.05 * float(sys.argv[1]):.3f}')" "$FULL_S")
	echo "$name: $s s, read $(jget "$W/$name.json" 'round(d["read_bytes"]/1e6, 1)') MB, stored $(jget "$W/$name.json" 'round(d["stored_bytes"]/1e6, 1)') MB, verify sample $(jget "$W/$name.json" 'd["tags"].get("rbd.verify_sampled", "-")') blocks (ceiling: $limit s = 5% of the full backup)"
}

ONE_PCT=$((BYTES / 100))
log "incremental after 1% random 4 KiB writes"
change 4096 "$ONE_PCT" 1
incremental cairn_incremental_1pct_4k_random
log "incremental after rewriting 1% of the 4 MiB objects"
change $((4 << 20)) "$ONE_PCT" 2
incremental cairn_incremental_1pct_objects
