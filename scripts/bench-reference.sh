#!/usr/bin/env bash
# scripts/bench-reference.sh: cairn beside restic on a file system image,
# the workload of issue 13 ("the reference image"), called by
# scripts/bench-all.sh or on its own.
#
# The image is a 4 GiB sparse ext4 file system holding copies of
# /usr/share and /usr/lib/python3 (mkfs.ext4 -d). Measured, each beside
# restic (encrypted, compressed, the same bytes) and the issue's goal:
#   - full backup (cairn: encrypted, 4+2), time and CPU;
#   - incremental after the "1% change": 40 scattered 1 MiB random writes
#     (a file source: no change information, every block is read again);
#   - restore with a cold page cache (dropped when running as root), beside
#     `cp --sparse=always` plus sync of the image;
#   - minor page faults per GiB, whole process and beyond what opening the
#     repository costs (argon2id, scrypt); wall, user, system per command;
#   - scattered small writes: a 512 MiB image of random data, 1% of it
#     rewritten in scattered 4 KiB writes; what the incremental adds to the
#     shard stores, over the bytes changed.
# Prints one figure per line, "name: value unit (ceiling: value unit)".
#
# Environment: CAIRN_BIN (default bin/cairn, built when missing), BENCH_DIR
# (parent of the work directory, default /tmp), RESTIC=0 skips restic.
# Needs: go, python3, mkfs.ext4 (e2fsprogs), restic for the comparison.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CAIRN_BIN=${CAIRN_BIN:-$ROOT/bin/cairn}
RESTIC=${RESTIC:-1}
W=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-bench-ref.XXXXXX")
trap 'rm -rf "$W"' EXIT

log() { printf 'bench-reference: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not found: apt-get install e2fsprogs"
[[ -x $CAIRN_BIN ]] || go build -o "$CAIRN_BIN" ./cmd/cairn
if [[ $RESTIC == 1 ]] && ! command -v restic >/dev/null; then
	log "restic not found: its column prints n/a (apt-get install restic)"
	RESTIC=0
fi

# timed KEY CMD...: runs CMD; $W/t.KEY gets "wall user sys minflt".
timed() {
	local key=$1
	shift
	/usr/bin/time -o "$W/t.$key" -f "%e %U %S %R" "$@" >"$W/out.$key" 2>"$W/err.$key" ||
		die "$key failed: $(tail -3 "$W/err.$key")"
}
wall() { awk '{ print $1 }' "$W/t.$1"; }
cpu() { awk '{ printf "%.2f", $2 + $3 }' "$W/t.$1"; }
flt() { awk -v b="$2" '{ printf "%.0f", $4 / (b / 1073741824) }' "$W/t.$1"; }
# fltnet KEY OPEN BYTES: faults per GiB beyond OPEN's.
fltnet() { awk -v b="$3" -v o="$(awk '{ print $4 }' "$W/t.$2")" '{ printf "%.0f", ($4 - o) / (b / 1073741824) }' "$W/t.$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
fig() { printf '%s: %s %s (ceiling: %s)\n' "$1" "$2" "$3" "$4"; }
cold() { sync; [[ $(id -u) == 0 ]] && echo 3 >/proc/sys/vm/drop_caches || true; }
storebytes() { du -sb --exclude=index "$1" | awk '{ print $1 }'; }

# ---------------------------------------------------------------- image
log "making the reference image (ext4 of /usr/share and /usr/lib/python3)"
mkdir -p "$W/tree"
cp -a /usr/share "$W/tree/share"
cp -a /usr/lib/python3 "$W/tree/python3" 2>/dev/null || true
IMG=$W/ref.img
truncate -s 4G "$IMG"
mkfs.ext4 -q -F -d "$W/tree" "$IMG"
rm -rf "$W/tree"
ALLOC=$(($(stat -c %b "$IMG") * 512))
log "image: 4 GiB, $((ALLOC >> 20)) MiB allocated"
cp --sparse=always "$IMG" "$W/ref-orig.img"

export CAIRN_PASSWORD=bench-reference RESTIC_PASSWORD=bench-reference
CREPO=$W/cairn-repo
RREPO=$W/restic-repo
"$CAIRN_BIN" --repo "$CREPO" -q repo init --encrypt >/dev/null

# ---------------------------------------------------------------- full
cold
timed cfull "$CAIRN_BIN" --repo "$CREPO" --json -q backup --source "$IMG"
CP1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$W/out.cfull")
if [[ $RESTIC == 1 ]]; then
	restic --no-cache -r "$RREPO" init -q >/dev/null
	cold
	timed rfull restic --no-cache -r "$RREPO" backup -q "$IMG"
fi

# -------------------------------------------------------- 1% change
python3 - "$IMG" <<'PY'
import os, random, sys
rng = random.Random(13)
size = os.path.getsize(sys.argv[1])
with open(sys.argv[1], "r+b") as f:
    for _ in range(40):
        f.seek(rng.randrange(0, size - (1 << 20)) & ~4095)
        f.write(rng.randbytes(1 << 20))
PY
cold
timed cincr "$CAIRN_BIN" --repo "$CREPO" --json -q backup --source "$IMG"
CP2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$W/out.cincr")
if [[ $RESTIC == 1 ]]; then
	cold
	timed rincr restic --no-cache -r "$RREPO" backup -q "$IMG"
fi

# ------------------------------------------------- opening, for faults
# A process's fixed cost (start, index, the encrypted repository's 64 MiB
# argon2id or restic's scrypt) is no cost per GiB: the fault figures are
# also printed beyond what merely opening the repository and listing costs.
timed copen "$CAIRN_BIN" --repo "$CREPO" -q checkpoints
[[ $RESTIC == 1 ]] && timed ropen restic --no-cache -r "$RREPO" snapshots -q

# ------------------------------------------------------------- restore
cold
timed copy bash -c 'cp --sparse=always "$1" "$2" && sync "$2"' _ "$IMG" "$W/copy.img"
rm -f "$W/copy.img"
cold
timed crestore "$CAIRN_BIN" --repo "$CREPO" -q restore "$CP2" --to "$W/restored.img"
cmp -s "$IMG" "$W/restored.img" || die "cairn's restore differs from the image"
rm -f "$W/restored.img"
if [[ $RESTIC == 1 ]]; then
	cold
	timed rrestore restic --no-cache -r "$RREPO" restore latest -q --target "$W/restic-restore"
	# restic leaves what it wrote in the page cache; cairn's restore ends
	# only once the volume is on disk (fsync), as cp + sync does above.
	timed rflush sync -f "$W/restic-restore"
	rm -rf "$W/restic-restore"
fi

r() { [[ $RESTIC == 1 ]] && wall "$1" || echo n/a; }
rsum() { [[ $RESTIC == 1 ]] && awk -v a="$(wall "$1")" -v b="$(wall "$2")" 'BEGIN { printf "%.2f", a + b }' || echo n/a; }
fig "reference: full backup, encrypted 4+2 ($((ALLOC >> 20)) MiB allocated of 4 GiB)" "$(wall cfull)" s \
	"restic $(r rfull) s; cairn/restic $(ratio "$(wall cfull)" "$(r rfull)"), goal 0.4; cpu cairn $(cpu cfull) s"
fig "reference: incremental after 40 scattered 1 MiB writes" "$(wall cincr)" s \
	"restic $(r rincr) s; cairn/restic $(ratio "$(wall cincr)" "$(r rincr)"), goal 0.2"
fig "reference: restore, cold cache" "$(wall crestore)" s \
	"restic $(r rrestore) s, cairn/restic $(ratio "$(wall crestore)" "$(r rrestore)") (goal 0.5); restic + sync $(rsum rrestore rflush) s, cairn/(restic + sync) $(ratio "$(wall crestore)" "$(rsum rrestore rflush)"); cp --sparse=always + sync $(wall copy) s, cairn at $(ratio "$(wall copy)" "$(wall crestore)")x its throughput (goal 0.8)"
fig "reference: minor page faults per GiB allocated beyond opening the repository, backup / restore" \
	"$(fltnet cfull copen "$ALLOC") / $(fltnet crestore copen "$ALLOC")" faults \
	"goal 5000; restic $([[ $RESTIC == 1 ]] && echo "$(fltnet rfull ropen "$ALLOC") / $(fltnet rrestore ropen "$ALLOC")" || echo n/a); opening: cairn $(awk '{print $4}' "$W/t.copen")$([[ $RESTIC == 1 ]] && echo ", restic $(awk '{print $4}' "$W/t.ropen")") faults"
fig "reference: minor page faults per GiB allocated, whole process, backup / restore" "$(flt cfull "$ALLOC") / $(flt crestore "$ALLOC")" faults \
	"goal 5000; restic $([[ $RESTIC == 1 ]] && echo "$(flt rfull "$ALLOC") / $(flt rrestore "$ALLOC")" || echo n/a); system time cairn $(awk '{print $3}' "$W/t.cfull") / $(awk '{print $3}' "$W/t.crestore") s"

# ----------------------------------------------------- scattered writes
log "scattered 4 KiB writes into 512 MiB of random data"
SREPO=$W/scatter-repo
"$CAIRN_BIN" --repo "$SREPO" -q repo init --encrypt >/dev/null
head -c 512M /dev/urandom >"$W/random.img"
"$CAIRN_BIN" --repo "$SREPO" -q backup --source "$W/random.img" >/dev/null
before=$(storebytes "$SREPO")
CHANGED=$(python3 - "$W/random.img" <<'PY'
import os, random, sys
rng = random.Random(14)
size = os.path.getsize(sys.argv[1])
pages = rng.sample(range(size // 4096), size // 4096 // 100)
with open(sys.argv[1], "r+b") as f:
    for p in pages:
        f.seek(p * 4096)
        f.write(rng.randbytes(4096))
print(len(pages) * 4096)
PY
)
"$CAIRN_BIN" --repo "$SREPO" -q backup --source "$W/random.img" >/dev/null
added=$(($(storebytes "$SREPO") - before))
fig "scattered: added to the shard stores by rewriting 1% in 4 KiB writes" "$(ratio "$added" "$CHANGED")" "x the changed bytes" \
	"goal 3x at 4+2; $((CHANGED >> 20)) MiB changed, $((added >> 20)) MiB added"
