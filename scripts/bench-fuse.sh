#!/usr/bin/env bash
# scripts/bench-fuse.sh: sequential read speed of one checkpoint through the
# FUSE mount, beside `cairn restore` of the same checkpoint and a memcpy
# ceiling measured on the same machine in the same run.
#
# Usage: CAIRN_BIN=bin/cairn CAIRN_REPO=/path/to/repo scripts/bench-fuse.sh CHECKPOINT
#
# Prints one figure per line, as
#   name: value unit (ceiling: value unit)
# in decimal MB/s of the volume's size (holes included: both the FUSE read
# and the restore produce the whole volume). Each measurement starts cold:
# the FUSE mount is fresh (so the repository's chunk cache is empty), and,
# when running as root, the kernel's page cache is dropped first.
#
# Environment:
#   CAIRN_BIN       the cairn binary (default bin/cairn)
#   CAIRN_REPO      the repository (required); CAIRN_PASSWORD if encrypted
#   BENCH_FUSE_DIR  work directory (default: a new one under /tmp; it gets a
#                   mount point and the restored image, then is removed)
#
# Needs: /dev/fuse (root, or fusermount3), dd, python3.
set -euo pipefail

ID=${1:?usage: CAIRN_BIN=... CAIRN_REPO=... $0 CHECKPOINT}
CAIRN_BIN=${CAIRN_BIN:-bin/cairn}
: "${CAIRN_REPO:?set CAIRN_REPO to the repository}"
export CAIRN_REPO
export LC_ALL=C

W=${BENCH_FUSE_DIR:-$(mktemp -d /tmp/cairn-bench-fuse.XXXXXX)}
MNT=$W/mnt
mkdir -p "$MNT"
MOUNT_PID=

log() { printf 'bench-fuse: %s\n' "$*" >&2; }

mounted() { grep -qF " $MNT " /proc/self/mountinfo; }

unmount() {
	if [[ -n $MOUNT_PID ]]; then
		kill -TERM "$MOUNT_PID" 2>/dev/null || true
		wait "$MOUNT_PID" 2>/dev/null || true
		MOUNT_PID=
	fi
	if mounted; then
		fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT"
	fi
}

cleanup() {
	unmount
	rm -f "$W/restore.img"
	rmdir "$MNT" 2>/dev/null || true
	[[ -n ${BENCH_FUSE_DIR:-} ]] || rmdir "$W" 2>/dev/null || true
}
trap cleanup EXIT

# fresh_mount mounts the repository on $MNT in a new process: a new
# repository handle with an empty chunk cache, and new inodes (no page cache).
fresh_mount() {
	unmount
	"$CAIRN_BIN" mount --quiet "$MNT" &
	MOUNT_PID=$!
	for _ in $(seq 300); do
		mounted && return 0
		kill -0 "$MOUNT_PID" 2>/dev/null || { log "cairn mount failed"; exit 1; }
		sleep 0.1
	done
	log "cairn mount did not come up within 30s"
	exit 1
}

drop_page_cache() {
	sync
	if [[ -w /proc/sys/vm/drop_caches ]]; then
		echo 3 >/proc/sys/vm/drop_caches
	fi
}

# dd_rate prints dd's decimal MB/s: bytes over seconds from its last line,
# e.g. "4294967296 bytes (4.3 GB, 4.0 GiB) copied, 0.316 s, 13.6 GB/s".
dd_rate() {
	dd "$@" 2>&1 >/dev/null | tail -n 1 | awk '{ if ($(NF-3) > 0) printf "%.1f\n", $1 / $(NF-3) / 1e6; else print "inf" }'
}

now() { date +%s.%N; }

[[ $(id -u) -eq 0 ]] || log "not root: the page cache is not dropped between runs"

# Ceiling: memory bandwidth of a 1 MiB copy loop.
memcpy=$(dd_rate if=/dev/zero of=/dev/null bs=1M count=4096)

# FUSE: a cold sequential read of the whole volume.
drop_page_cache
fresh_mount
disk=$MNT/by-id/$ID/disk.raw
if [[ ! -e $disk ]]; then
	# A prefix: find the full ID among the mount's checkpoints.
	full=$(ls "$MNT/by-id" | grep "^$ID" || true)
	[[ $(wc -w <<<"$full") -eq 1 ]] || { log "checkpoint $ID not found (or ambiguous)"; exit 1; }
	ID=$full
	disk=$MNT/by-id/$ID/disk.raw
fi
fuse=$(dd_rate if="$disk" of=/dev/null bs=1M)
unmount

# cairn restore of the same checkpoint to a new sparse file, by wall clock.
drop_page_cache
t0=$(now)
size=$("$CAIRN_BIN" restore "$ID" --to "$W/restore.img" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')
t1=$(now)
rm -f "$W/restore.img"
restore=$(python3 -c "print(f'{$size / ($t1 - $t0) / 1e6:.1f}')")

printf 'fuse sequential read (dd bs=1M, cold): %s MB/s (ceiling: %s MB/s)\n' "$fuse" "$memcpy"
printf 'cairn restore: %s MB/s (ceiling: %s MB/s)\n' "$restore" "$memcpy"
printf 'memcpy (dd /dev/zero to /dev/null bs=1M): %s MB/s (ceiling: %s MB/s)\n' "$memcpy" "$memcpy"
