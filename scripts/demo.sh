#!/usr/bin/env bash
# The quick start: back up a small ext4 disk image into a local-directory
# repository (no Ceph, no OpenStack), change it, back it up again, restore
# both checkpoints and check them byte for byte.
#
# Everything happens in ./.demo (removed and recreated on each run).
# Usage: scripts/demo.sh            (make demo builds bin/cairn first)
# Env:   CAIRN_BIN   the cairn binary (default ./bin/cairn, built if missing)
#        DEMO_DIR    working directory (default ./.demo)
#        DEMO_SIZE   image size (default 256M)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$PATH:/usr/sbin:/sbin"

demo=$(realpath -m "${DEMO_DIR:-$root/.demo}")
size=${DEMO_SIZE:-256M}
cairn=${CAIRN_BIN:-$root/bin/cairn}

bold=$'\e[1m' dim=$'\e[2m' green=$'\e[32m' reset=$'\e[0m'
if [[ ! -t 1 ]]; then bold='' dim='' green='' reset=''; fi
step_no=0
step() { step_no=$((step_no + 1)); printf '\n%s==> %d. %s%s\n' "$bold" "$step_no" "$*" "$reset"; }
run() { printf '%s$ %s%s\n' "$dim" "$*" "$reset"; "$@"; }
die() { echo "demo: $*" >&2; exit 1; }

# --- tools ---------------------------------------------------------------
need=()
for c in mkfs.ext4 debugfs e2fsck python3 cmp truncate dd; do
	command -v "$c" >/dev/null 2>&1 || need+=("$c")
done
if ((${#need[@]})); then
	if [[ $(id -u) -eq 0 ]]; then
		echo "demo: missing ${need[*]}; installing the test dependencies"
		"$root/scripts/install-test-deps.sh"
	else
		die "missing ${need[*]}: run scripts/install-test-deps.sh as root (packages e2fsprogs, python3, diffutils)"
	fi
fi
if [[ ! -x $cairn ]]; then
	echo "demo: building $cairn"
	go build -o "$cairn" ./cmd/cairn
fi

# json FIELD...: reads one JSON document on stdin and prints the fields
# (dotted paths, list indexes allowed: 0.id), one per line.
json() {
	python3 -c '
import json, sys
doc = json.load(sys.stdin)
for path in sys.argv[1:]:
    v = doc
    for k in path.split("."):
        v = v[int(k)] if isinstance(v, list) else v[k]
    print(v)
' "$@"
}
mib() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / 2**20:.1f} MiB")' "$1"; }

# --- 1. a disk image -----------------------------------------------------
step "Make a $size sparse disk image with an ext4 file system"
rm -rf "$demo"
mkdir -p "$demo/files/docs" "$demo/files/data"
export CAIRN_REPO="$demo/repo"
cat >"$demo/files/README.txt" <<'TXT'
This file system was made by cairn's demo (scripts/demo.sh).
It holds a few text files and some random data, and it is backed up
block by block: cairn never looks inside the file system.
TXT
for i in $(seq 1 200); do echo "line $i: the quick brown fox jumps over the lazy dog"; done >"$demo/files/docs/fox.txt"
seq 1 100000 >"$demo/files/docs/numbers.txt"
head -c 24M /dev/urandom >"$demo/files/data/random-1.bin"
head -c 8M /dev/urandom >"$demo/files/data/random-2.bin"
img="$demo/disk.img"
run truncate -s "$size" "$img"
run mkfs.ext4 -q -F -b 4096 -L cairn-demo -d "$demo/files" "$img"
echo "image: $(du -h --apparent-size "$img" | cut -f1) apparent, $(du -h "$img" | cut -f1) allocated (the rest is holes)"

# --- 2. a repository ------------------------------------------------------
step "Create a repository: 4 data + 2 parity shards in $CAIRN_REPO"
run "$cairn" repo init --data-shards 4 --parity-shards 2

# --- 3. full backup ------------------------------------------------------
step "Full backup (only allocated extents are read; holes are skipped)"
run "$cairn" backup --source "$img"
cp --sparse=always "$img" "$demo/disk-v1.img" # what checkpoint 1 must restore to

# --- 4. change a few MiB -------------------------------------------------
step "Change the image: add a 4 MiB file and rewrite 2 MiB of random-2.bin"
head -c 4M /dev/urandom >"$demo/new.bin"
run debugfs -w -R "write $demo/new.bin new.bin" "$img" 2>&1 | grep -v '^debugfs ' || true
# Overwrite the first 2 MiB of random-2.bin in place, at its physical
# blocks in the image, as a guest rewriting part of a file would.
blocks=$(debugfs -R "blocks /data/random-2.bin" "$img" 2>/dev/null)
bsize=$(debugfs -R "stats" "$img" 2>/dev/null | awk -F: '/^Block size/ {gsub(/ /, "", $2); print $2}')
[[ -n $blocks && -n $bsize ]] || die "could not locate random-2.bin in the image"
printf '%s$ %s%s\n' "$dim" "overwrite the first 2 MiB of /data/random-2.bin's blocks with random bytes" "$reset"
python3 - "$img" "$bsize" $blocks <<'PY'
import os, sys
img, bsize, blocks = sys.argv[1], int(sys.argv[2]), [int(b) for b in sys.argv[3:]]
with open(img, "r+b") as f:
    for b in blocks[: (2 << 20) // bsize]:
        f.seek(b * bsize)
        f.write(os.urandom(bsize))
PY

# --- 5. incremental backup ----------------------------------------------
step "Incremental backup (parent: the latest checkpoint of this source)"
run "$cairn" backup --source "$img"
echo "${dim}(cairn re-read the allocated extents but stored only the blocks that differ;"
echo " a block is 4 MiB, and ext4 also touched its journal, bitmaps and inode table)${reset}"

# --- 6. list ------------------------------------------------------------
step "List the checkpoints"
run "$cairn" checkpoints
cps=$("$cairn" --json checkpoints)
n=$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' <<<"$cps")
[[ $n -eq 2 ]] || die "expected 2 checkpoints, found $n"
{ read -r id1; read -r id2; } < <(json 0.id 1.id <<<"$cps")
{ read -r read1; read -r new1; read -r stored1; } < <(json 0.read_bytes 0.new_bytes 0.stored_bytes <<<"$cps")
{ read -r parent2; read -r read2; read -r new2; read -r stored2; } < <(json 1.parent 1.read_bytes 1.new_bytes 1.stored_bytes <<<"$cps")
[[ $parent2 == "$id1" ]] || die "checkpoint $id2 has parent '$parent2', want $id1"

# --- 7. restore both ----------------------------------------------------
step "Restore both checkpoints and compare them with the images they came from"
run "$cairn" restore "$id1" --to "$demo/restored-1.img"
run "$cairn" restore "$id2" --to "$demo/restored-2.img"
run cmp "$demo/disk-v1.img" "$demo/restored-1.img"
run cmp "$img" "$demo/restored-2.img"
echo "${green}both restores are byte-for-byte identical to their sources${reset}"
for i in 1 2; do
	printf '%s$ %s%s\n' "$dim" "e2fsck -fn $demo/restored-$i.img" "$reset"
	e2fsck -fn "$demo/restored-$i.img" >/dev/null 2>&1 || die "restored-$i.img: e2fsck found errors"
done
echo "both restored file systems are clean (e2fsck -fn)"
echo "files in restored-2.img:"
debugfs -R "ls -l /" "$demo/restored-2.img" 2>/dev/null | awk 'NF >= 9 && $NF != "." && $NF != ".." {print "  " $NF}'

# --- 8. verify ------------------------------------------------------------
step "Verify the repository (every shard's checksum, every chunk referenced)"
run "$cairn" verify

# --- 9. stats -----------------------------------------------------------
step "Repository statistics"
run "$cairn" stats

# --- summary --------------------------------------------------------------
cat <<SUMMARY

${bold}What the demo did${reset}
  disk image        $img ($size, ext4, sparse)
  repository        $CAIRN_REPO (local directories, 4+2 Reed-Solomon shards)
  checkpoint 1      $id1 (full): read $(mib "$read1"), new $(mib "$new1"), stored $(mib "$stored1")
  checkpoint 2      $id2 (incremental): read $(mib "$read2"), new $(mib "$new2"), stored $(mib "$stored2")
  restores          both identical to their sources (cmp)
  verify            passed

Try next (CAIRN_REPO=$CAIRN_REPO):
  $cairn --repo $CAIRN_REPO checkpoints --json
  $cairn --repo $CAIRN_REPO verify --deep
  $cairn --help
SUMMARY
