#!/usr/bin/env bash
# scripts/bench.sh: end-to-end benchmark of cairn (`make bench`).
#
# Builds bin/cairn, makes a test image and measures full, encrypted,
# incremental and sparse backups, restore, space efficiency, the per-stage
# costs and restic on the same image. Every figure is printed beside a
# ceiling measured in the same run on the same machine (raw page-cache read,
# raw copy), so the numbers mean something on any hardware. One table goes to
# stdout; the same results, with raw numbers, go to .bench/results.json.
#
# Environment:
#   BENCH_DIR     work directory (default /tmp/cairn-bench; removed at the end
#                 unless KEEP=1)
#   KEEP=1        keep BENCH_DIR (images, repositories) for inspection
#   IMAGE_SIZE    dense test image (default 2GiB)
#   SPARSE_SIZE   sparse test image (default 64GiB) holding SPARSE_DATA
#                 (default 4GiB) of data; SPARSE=0 skips that part
#   NO_SYNC=1     pass the hidden --no-sync flag (skip fsync in the shard
#                 stores). Default: measure WITH fsync, as a real backup runs.
#   RESTIC=0      skip the restic comparison
#   BENCHTIME     -benchtime of the stage benchmarks (default 20x)
#
# Needs: go, python3, GNU coreutils; restic for the comparison (installed
# with apt-get when missing and running as root).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

BENCH_DIR=${BENCH_DIR:-/tmp/cairn-bench}
KEEP=${KEEP:-0}
IMAGE_SIZE=${IMAGE_SIZE:-2GiB}
SPARSE=${SPARSE:-1}
SPARSE_SIZE=${SPARSE_SIZE:-64GiB}
SPARSE_DATA=${SPARSE_DATA:-4GiB}
NO_SYNC=${NO_SYNC:-0}
RESTIC=${RESTIC:-1}
BENCHTIME=${BENCHTIME:-20x}
OUT_DIR=$ROOT/.bench
RESULTS=$OUT_DIR/results.json

W=$BENCH_DIR/run.$$
mkdir -p "$W" "$OUT_DIR"
cleanup() {
	if [[ $KEEP == 1 ]]; then
		echo "bench: kept $W" >&2
	else
		rm -rf "$W"
		rmdir "$BENCH_DIR" 2>/dev/null || true
	fi
}
trap cleanup EXIT

log() { printf 'bench: %s\n' "$*" >&2; }

ROWS=$W/rows.tsv   # section \t metric \t value \t ceiling \t note
NUMS=$W/nums.tsv   # key \t number  (raw figures for results.json)
: >"$ROWS"
: >"$NUMS"
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" "${5:-}" >>"$ROWS"; }
num() { printf '%s\t%s\n' "$1" "$2" >>"$NUMS"; }

# timed KEY CMD...: runs CMD, storing wall/user/sys seconds and minor page
# faults of it and its children in $W/time.KEY (one line "wall user sys
# minflt"); stdout goes to $W/out.KEY, stderr to $W/err.KEY. Fails the
# script when CMD fails. GNU time, not a Python wrapper: a child forked by
# Python took about 6,500 faults of its own before it ran CMD, counted as
# CMD's.
timed() {
	local key=$1
	shift
	if ! /usr/bin/time -o "$W/time.$key" -f "%e %U %S %R" "$@" >"$W/out.$key" 2>"$W/err.$key"; then
		log "command failed: $*"
		sed 's/^/  | /' "$W/err.$key" >&2 || true
		exit 1
	fi
}
wall() { cut -d' ' -f1 "$W/time.$1"; }
sys_s() { cut -d' ' -f3 "$W/time.$1"; }
# faults KEY BYTES: minor page faults of KEY per GiB of BYTES (on this
# machine a fault costs more than hashing a page).
faults() { awk -v b="$2" '{ printf "%.0f", $4 / (b / 1073741824) }' "$W/time.$1"; }
# faults_net KEY BASE BYTES: the same beyond BASE's faults (opening the
# repository: process start, index, and for an encrypted one argon2id's
# 64 MiB), i.e. what grows with the data moved.
faults_net() { awk -v b="$3" 'NR == FNR { base = $4; next } { printf "%.0f", ($4 - base) / (b / 1073741824) }' "$W/time.$2" "$W/time.$1"; }
cpu() { awk '{printf "%.2f", $2 + $3}' "$W/time.$1"; }

# calc EXPR: floating-point arithmetic.
calc() { python3 -c "print(round($1, 3))"; }
# mbps BYTES SECONDS
mbps() { python3 -c "import sys; b, s = float(sys.argv[1]), float(sys.argv[2]); print(f'{b / s / 1e6:.0f}' if s > 0 else 'inf')" "$1" "$2"; }
pct() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{100 * a / b:.0f}%' if b > 0 else '-')" "$1" "$2"; }
mb() { python3 -c "import sys; print(f'{float(sys.argv[1]) / 1e6:.0f}')" "$1"; }
cores() { awk '{ if ($1 > 0) printf "%.2f", ($2 + $3) / $1; else print "-" }' "$W/time.$1"; }

# jget FILE KEY...: first value of any of the KEYs anywhere in the JSON in
# FILE (tolerant of the CLI wrapping its result in an object or list).
jget() {
	python3 - "$@" <<'PY'
import json, sys
path, keys = sys.argv[1], sys.argv[2:]
text = open(path).read().strip()
docs = []
try:
    docs = [json.loads(text)]
except ValueError:
    for line in text.splitlines():  # JSON lines
        try:
            docs.append(json.loads(line))
        except ValueError:
            pass
def find(o, k):
    if isinstance(o, dict):
        if k in o:
            return o[k]
        for v in o.values():
            r = find(v, k)
            if r is not None:
                return r
    elif isinstance(o, list):
        for v in reversed(o):  # the last record is the final result
            r = find(v, k)
            if r is not None:
                return r
    return None
for k in keys:
    for d in reversed(docs):
        v = find(d, k)
        if v is not None:
            print(v)
            sys.exit(0)
sys.exit(1)
PY
}

# engine_s KEY: the backup's own duration (finished_at - created_at in its
# JSON), without process start, repository open (argon2) and close.
engine_s() {
	python3 - "$W/out.$1" <<'PY'
import json, sys, datetime
d = json.load(open(sys.argv[1]))
p = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
print(f"{(p(d['finished_at']) - p(d['created_at'])).total_seconds():.3f}")
PY
}

bytes_of() { python3 - "$1" <<'PY'
import sys
s = sys.argv[1].strip().upper().removesuffix("B").removesuffix("I")
m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(s[-1:], 1)
print(int(float(s[:-1] if m > 1 else s) * m))
PY
}

# warm FILE: read FILE once so the timed reads come from the page cache.
warm() { cat "$1" >/dev/null; }

# ---------------------------------------------------------------- build
log "building bin/cairn and scripts/mkimage"
go build -o bin/cairn ./cmd/cairn
go build -o "$W/mkimage" ./scripts/mkimage
CAIRN=$ROOT/bin/cairn
MKIMAGE=$W/mkimage

SYNC_FLAGS=()
if [[ $NO_SYNC == 1 ]]; then
	if "$CAIRN" --help 2>&1 | grep -q -- --no-sync || grep -rqs -- '"no-sync"' cmd/cairn; then
		SYNC_FLAGS=(--no-sync)
	else
		log "NO_SYNC=1 but cairn has no --no-sync flag: measuring with fsync"
		NO_SYNC=0
	fi
fi
if [[ $NO_SYNC == 1 ]]; then DURABILITY="--no-sync (no fsync: NOT durable)"; else DURABILITY="fsync on (durable)"; fi

cairn() { "$CAIRN" "${SYNC_FLAGS[@]}" "$@"; }

# ------------------------------------------------------------- machine
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
NPROC=$(nproc)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FS=$(df -T "$W" | awk 'NR == 2 { print $2 " on " $1 }')
GOVER=$(go env GOVERSION)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain 2>/dev/null | head -1) ]]; then COMMIT="$COMMIT+dirty"; fi
echo "cairn bench $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $COMMIT  $GOVER"
echo "machine: $NPROC cores, $CPU_MODEL, $MEM RAM; work dir $W ($FS)"
echo "durability: $DURABILITY"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# Machine-wide busy CPU time, to tell at the end how much of the machine
# other processes took while the bench ran.
busy_s() { awk -v tck="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / tck }' /proc/stat; }
BUSY0=$(busy_s)
T0=$(date +%s.%N)
echo "load average at start: $LOAD_START (figures are only meaningful on an otherwise idle machine)"
echo

IMG=$W/image.img
IMG_BYTES=$(bytes_of "$IMAGE_SIZE")
num image_bytes "$IMG_BYTES"

# ----------------------------------------------------------- test image
log "writing the $IMAGE_SIZE test image (10% zero blocks, 20% text, 70% random)"
timed mkimage "$MKIMAGE" -out "$IMG" -size "$IMAGE_SIZE" -seed 1 -zero-frac 0.10 -text-frac 0.20
row "setup" "make ${IMAGE_SIZE} image" "$(wall mkimage) s" "" "10% zero, 20% text, 70% random 4 MiB blocks"

# -------------------------------------------------------- read ceiling
log "raw read ceiling"
warm "$IMG"
timed rawread dd if="$IMG" of=/dev/null bs=4M
RAW_READ=$(mbps "$IMG_BYTES" "$(wall rawread)")
num raw_read_mbps "$RAW_READ"
row "ceiling" "raw read, page cache (dd bs=4M)" "$RAW_READ MB/s" "" "1 core; $(wall rawread) s"

# ---------------------------------------------------- full backups
backup_full() { # KEY REPO [encrypt]
	local key=$1 repo=$2 enc=${3:-}
	if [[ -n $enc ]]; then
		CAIRN_PASSWORD=bench-passphrase cairn --repo "$repo" repo init --encrypt >/dev/null
	else
		cairn --repo "$repo" repo init >/dev/null
	fi
	warm "$IMG"
	if [[ -n $enc ]]; then
		CAIRN_PASSWORD=bench-passphrase timed "$key" "$CAIRN" "${SYNC_FLAGS[@]}" --repo "$repo" --json --quiet backup --source "$IMG"
	else
		timed "$key" "$CAIRN" "${SYNC_FLAGS[@]}" --repo "$repo" --json --quiet backup --source "$IMG"
	fi
}

REPO=$W/repo
EREPO=$W/repo-enc
log "full backup, unencrypted"
backup_full full "$REPO"
log "full backup, encrypted"
backup_full fullenc "$EREPO" encrypt

for k in full fullenc; do
	t=$(wall $k)
	s=$(mbps "$IMG_BYTES" "$t")
	num "${k}_seconds" "$t"
	num "${k}_mbps" "$s"
	num "${k}_cpu_seconds" "$(cpu $k)"
	num "${k}_cores" "$(cores $k)"
done
CP1=$(jget "$W/out.full" id)
CP1ENC=$(jget "$W/out.fullenc" id)
# Opening costs (process start, index, argon2 for the encrypted one):
# a no-op command on each repository.
timed open "$CAIRN" --repo "$REPO" checkpoints
CAIRN_PASSWORD=bench-passphrase timed openenc "$CAIRN" --repo "$EREPO" checkpoints
num open_seconds "$(wall open)"
num open_enc_seconds "$(wall openenc)"
for k in full fullenc; do
	e=$(engine_s $k)
	num "${k}_engine_seconds" "$e"
	num "${k}_engine_mbps" "$(mbps "$IMG_BYTES" "$e")"
done
row "backup" "full, unencrypted 4+2, 4 MiB blocks" "$(mbps "$IMG_BYTES" "$(wall full)") MB/s" "$RAW_READ MB/s raw read" \
	"$(pct "$(mbps "$IMG_BYTES" "$(wall full)")" "$RAW_READ") of raw; $(wall full) s wall ($(engine_s full) s in Backup = $(mbps "$IMG_BYTES" "$(engine_s full)") MB/s); cpu $(cpu full) s = $(cores full) of $NPROC cores"
row "backup" "full, encrypted (AES-256-GCM)" "$(mbps "$IMG_BYTES" "$(wall fullenc)") MB/s" "$RAW_READ MB/s raw read" \
	"$(pct "$(mbps "$IMG_BYTES" "$(wall fullenc)")" "$RAW_READ") of raw; $(wall fullenc) s wall ($(engine_s fullenc) s in Backup = $(mbps "$IMG_BYTES" "$(engine_s fullenc)") MB/s); cpu $(cpu fullenc) s = $(cores fullenc) of $NPROC cores"
row "backup" "open cost: 'cairn checkpoints'" "$(wall openenc) s encrypted" "$(wall open) s unencrypted" \
	"difference is mostly argon2id key derivation (64 MiB, t=3), paid by every command on an encrypted repository"

# ------------------------------------------------------------ restore
log "restore the full checkpoint"
RESTORED=$W/restored.img
timed restore "$CAIRN" "${SYNC_FLAGS[@]}" --repo "$REPO" --json restore "$CP1" --to "$RESTORED"
RESTORE_WRITTEN=$(jget "$W/out.restore" bytes_written || echo "?")
if ! cmp -s "$IMG" "$RESTORED"; then
	log "RESTORED IMAGE DIFFERS FROM THE SOURCE"
	RESTORE_OK="MISMATCH"
else
	RESTORE_OK="identical (cmp)"
fi
rm -f "$RESTORED"
log "restore the encrypted full checkpoint"
CAIRN_PASSWORD=bench-passphrase timed restoreenc "$CAIRN" "${SYNC_FLAGS[@]}" --repo "$EREPO" --json restore "$CP1ENC" --to "$RESTORED"
rm -f "$RESTORED"
# Ceiling: copying the image on the same filesystem, flushed like a restore.
warm "$IMG"
timed rawcopy bash -c 'cp "$1" "$2" && sync "$2"' _ "$IMG" "$W/copy.img"
rm -f "$W/copy.img"
RAW_COPY=$(mbps "$IMG_BYTES" "$(wall rawcopy)")
RESTORE_MBPS=$(mbps "$IMG_BYTES" "$(wall restore)")
num restore_seconds "$(wall restore)"
num restore_enc_seconds "$(wall restoreenc)"
for k in full fullenc restore restoreenc; do
	num "${k}_minflt_per_gib" "$(faults $k "$IMG_BYTES")"
done
num full_minflt_per_gib_beyond_open "$(faults_net full open "$IMG_BYTES")"
num restore_minflt_per_gib_beyond_open "$(faults_net restore open "$IMG_BYTES")"
num restore_mbps "$RESTORE_MBPS"
num raw_copy_mbps "$RAW_COPY"
row "ceiling" "raw copy to same fs (cp + sync)" "$RAW_COPY MB/s" "" "$(wall rawcopy) s"
row "restore" "restore ${IMAGE_SIZE} to a file" "$RESTORE_MBPS MB/s" "$RAW_COPY MB/s raw copy" \
	"$(pct "$RESTORE_MBPS" "$RAW_COPY") of raw copy; $(wall restore) s; wrote $(mb "$RESTORE_WRITTEN") MB (holes skipped), fsync at the end; cpu $(cpu restore) s = $(cores restore) cores; $RESTORE_OK"
row "restore" "restore ${IMAGE_SIZE}, encrypted" "$(mbps "$IMG_BYTES" "$(wall restoreenc)") MB/s" "$RAW_COPY MB/s raw copy" \
	"$(wall restoreenc) s; cpu $(cpu restoreenc) s, of which system $(sys_s restoreenc) s"
row "faults" "minor page faults per GiB: full backup" "$(faults full "$IMG_BYTES")" "5000 (goal)" \
	"encrypted: $(faults fullenc "$IMG_BYTES"); system time $(sys_s full) s / $(sys_s fullenc) s; includes the process's fixed cost (start, index, argon2); beyond opening the repository: $(faults_net full open "$IMG_BYTES") / $(faults_net fullenc openenc "$IMG_BYTES")"
row "faults" "minor page faults per GiB: restore" "$(faults restore "$IMG_BYTES")" "5000 (goal)" \
	"encrypted: $(faults restoreenc "$IMG_BYTES"); system time $(sys_s restore) s / $(sys_s restoreenc) s; beyond opening the repository: $(faults_net restore open "$IMG_BYTES") / $(faults_net restoreenc openenc "$IMG_BYTES"); opening it: $(awk '{print $4}' "$W/time.open") unencrypted, $(awk '{print $4}' "$W/time.openenc") encrypted (argon2id's 64 MiB)"

# -------------------------------------------------------------- space
log "stats"
cairn --repo "$REPO" --json stats >"$W/stats.json"
CAIRN_PASSWORD=bench-passphrase cairn --repo "$EREPO" --json stats >"$W/stats-enc.json"
DEDUP=$(jget "$W/stats.json" dedup_ratio DedupRatio || echo "?")
COMP=$(jget "$W/stats.json" compression_ratio CompressionRatio || echo "?")
STORED=$(jget "$W/stats.json" stored_bytes StoredBytes || echo 0)
UNIQUE=$(jget "$W/stats.json" unique_bytes UniqueBytes || echo 0)
REPO_DU=$(du -sb "$REPO" | cut -f1)
EREPO_DU=$(du -sb "$EREPO" | cut -f1)
num dedup_ratio "$DEDUP"
num compression_ratio "$COMP"
num stored_bytes "$STORED"
num unique_bytes "$UNIQUE"
num repo_du_bytes "$REPO_DU"
num repo_enc_du_bytes "$EREPO_DU"
row "space" "dedup ratio (allocated / unique)" "$(calc "$DEDUP")" "" "no duplicate blocks in the image; its 10% zero blocks are holes, outside both"
row "space" "compression ratio (unique / packed)" "$(calc "$COMP")" "" "image: 20% text blocks, 70% random"
row "space" "stored in shard stores" "$(mb "$STORED") MB" "$(mb "$IMG_BYTES") MB image" \
	"$(pct "$STORED" "$IMG_BYTES") of image, incl. 4+2 parity (1.5x); du of repo dir $(mb "$REPO_DU") MB (incl. index)"

# -------------------------------------------- incremental after 1% change
log "modify 1% of the image in random 4 KiB writes, then back up again"
CHANGE_WRITES=$("$MKIMAGE" -out "$IMG" -change-frac 0.01 -seed 7 | awk '{ print $1 }')
warm "$IMG"
timed incr "$CAIRN" "${SYNC_FLAGS[@]}" --repo "$REPO" --json --quiet backup --source "$IMG"
INCR_READ=$(jget "$W/out.incr" read_bytes ReadBytes)
INCR_NEW=$(jget "$W/out.incr" new_bytes NewBytes)
INCR_PARENT=$(jget "$W/out.incr" parent Parent || echo "")
num incr_seconds "$(wall incr)"
num incr_engine_seconds "$(engine_s incr)"
num incr_read_bytes "$INCR_READ"
num incr_new_bytes "$INCR_NEW"
num incr_change_writes "$CHANGE_WRITES"
row "incremental" "after 1% change ($CHANGE_WRITES random 4 KiB writes)" "$(wall incr) s" "$(wall full) s full backup" \
	"$(engine_s incr) s in Backup; read $(mb "$INCR_READ") MB, new $(mb "$INCR_NEW") MB ($(pct "$INCR_NEW" "$IMG_BYTES") of image); parent ${INCR_PARENT:-none}; file source: no change tracking, every allocated block is re-read and hashed"

# ------------------------------------------------ sparse no-change backup
if [[ $SPARSE == 1 ]]; then
	SIMG=$W/sparse.img
	SREPO=$W/repo-sparse
	SPARSE_DATA_BYTES=$(bytes_of "$SPARSE_DATA")
	log "writing the $SPARSE_SIZE sparse image with $SPARSE_DATA of data"
	timed mksparse "$MKIMAGE" -out "$SIMG" -size "$SPARSE_SIZE" -sparse-data "$SPARSE_DATA" -seed 3
	cairn --repo "$SREPO" repo init >/dev/null
	warm "$SIMG"
	log "sparse: first backup"
	timed sparse1 "$CAIRN" "${SYNC_FLAGS[@]}" --repo "$SREPO" --json --quiet backup --source "$SIMG"
	warm "$SIMG"
	log "sparse: no-change backup"
	timed sparse2 "$CAIRN" "${SYNC_FLAGS[@]}" --repo "$SREPO" --json --quiet backup --source "$SIMG"
	S1_READ=$(jget "$W/out.sparse1" read_bytes ReadBytes)
	S2_READ=$(jget "$W/out.sparse2" read_bytes ReadBytes)
	S2_NEW=$(jget "$W/out.sparse2" new_bytes NewBytes)
	num sparse_first_seconds "$(wall sparse1)"
	num sparse_first_read_bytes "$S1_READ"
	num sparse_nochange_seconds "$(wall sparse2)"
	num sparse_nochange_engine_seconds "$(engine_s sparse2)"
	num sparse_nochange_read_bytes "$S2_READ"
	num sparse_nochange_new_bytes "$S2_NEW"
	row "sparse" "first backup, $SPARSE_SIZE image / $SPARSE_DATA data" "$(wall sparse1) s" "" \
		"$(engine_s sparse1) s in Backup; read $(mb "$S1_READ") MB ($(mbps "$S1_READ" "$(wall sparse1)") MB/s of data)"
	row "sparse" "no-change backup, same image" "$(wall sparse2) s" "$(calc "$S2_READ / ($RAW_READ * 1e6)") s to read $(mb "$S2_READ") MB raw" \
		"$(engine_s sparse2) s in Backup; read $(mb "$S2_READ") MB of $(mb "$SPARSE_DATA_BYTES") MB data, new $(mb "$S2_NEW") MB; holes skipped via SEEK_DATA, data re-read (no change tracking for files)"
	rm -f "$SIMG"
	rm -rf "$SREPO"
fi

# ------------------------------------------------------- per-stage costs
log "per-stage benchmarks (go test -bench BenchmarkStage, 1 core)"
go test -run '^$' -bench 'BenchmarkStage' -cpu 1 -benchtime "$BENCHTIME" ./dedup/ >"$W/stages.txt"
MEMCPY=$(awk '$1 ~ /^BenchmarkStageMemcpy/ { printf "%.0f", $5 }' "$W/stages.txt")
declare -A STAGE_MBPS
while read -r name _ nsop _ mbs _ rest; do
	stage=${name#BenchmarkStage}
	stage=${stage%-*}
	STAGE_MBPS[$stage]=$mbs
	num "stage_${stage}_mbps" "$mbs"
	case $stage in
	Memcpy) what="copy 4 MiB: the ceiling" ;;
	Hash) what="keyed BLAKE3 chunk ID" ;;
	XXH3) what="xxh3-64 (pack entry and shard block checksums)" ;;
	Compress) what="zstd level 3 (the repository's codec), half-compressible 4 KiB pages" ;;
	Decompress) what="zstd, MB/s of plaintext out" ;;
	Encrypt) what="AES-256-GCM seal" ;;
	Decrypt) what="AES-256-GCM open" ;;
	ErasureEncode) what="4+2 Reed-Solomon + shard objects, 32 MiB pack" ;;
	Reconstruct) what="4 MiB range, shards 0 and 1 lost: 4 shard reads + RS rebuild (mem store)" ;;
	Read) what="4 MiB range, all shards present: 1 shard read + verify (mem store)" ;;
	*) what="" ;;
	esac
	note="$what; $(python3 -c "import sys; print(f'{float(sys.argv[1]) / 1e6:.2f} ms/op')" "$nsop")"
	[[ -n $rest ]] && note="$note; ${rest}"
	mbs=$(printf '%.0f' "$mbs")
	if [[ $stage == Memcpy ]]; then
		row "stage (1 core)" "$stage" "$mbs MB/s" "" "$note"
	else
		row "stage (1 core)" "$stage" "$mbs MB/s" "$MEMCPY MB/s memcpy" "$note"
	fi
done < <(grep '^BenchmarkStage' "$W/stages.txt")
# A CPU-only model of the backup: every data byte is hashed and compressed,
# and (roughly) every byte is erasure-coded; the encrypted backup seals them
# too. Summing the per-byte costs and multiplying by the cores gives the
# throughput the engine would reach with no I/O, no copies and perfect
# parallelism: the measured backup against this shows what the rest costs.
if [[ -n ${STAGE_MBPS[Hash]:-} && -n ${STAGE_MBPS[Compress]:-} && -n ${STAGE_MBPS[ErasureEncode]:-} ]]; then
	model=$(python3 -c "import sys; h, c, e, n = map(float, sys.argv[1:]); print(f'{n / (1 / h + 1 / c + 1 / e):.0f}')" \
		"${STAGE_MBPS[Hash]}" "${STAGE_MBPS[Compress]}" "${STAGE_MBPS[ErasureEncode]}" "$NPROC")
	model_enc=$(python3 -c "import sys; h, c, e, s, n = map(float, sys.argv[1:]); print(f'{n / (1 / h + 1 / c + 1 / e + 1 / s):.0f}')" \
		"${STAGE_MBPS[Hash]}" "${STAGE_MBPS[Compress]}" "${STAGE_MBPS[ErasureEncode]}" "${STAGE_MBPS[Encrypt]}" "$NPROC")
	num model_backup_mbps "$model"
	num model_backup_enc_mbps "$model_enc"
	row "stage (1 core)" "model: backup CPU ceiling, $NPROC cores" "$model MB/s" "$(mbps "$IMG_BYTES" "$(wall full)") MB/s measured" \
		"$NPROC / (1/hash + 1/compress + 1/erasure): no I/O, no copies; measured is $(pct "$(mbps "$IMG_BYTES" "$(wall full)")" "$model") of it"
	row "stage (1 core)" "model: encrypted backup, $NPROC cores" "$model_enc MB/s" "$(mbps "$IMG_BYTES" "$(wall fullenc)") MB/s measured" \
		"adds 1/encrypt; measured is $(pct "$(mbps "$IMG_BYTES" "$(wall fullenc)")" "$model_enc") of it"
fi

# -------------------------------------------------------------- restic
if [[ $RESTIC == 1 ]]; then
	if ! command -v restic >/dev/null && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "installing restic"
		apt-get install -y -qq restic >/dev/null 2>&1 || true
	fi
	if command -v restic >/dev/null; then
		# The comparison is of the same bytes: restore the image to what the
		# encrypted cairn repository backed up (the 1% change came later).
		log "restic: backup of the original image"
		"$MKIMAGE" -out "$IMG" -size "$IMAGE_SIZE" -seed 1 -zero-frac 0.10 -text-frac 0.20
		export RESTIC_PASSWORD=bench-passphrase
		RREPO=$W/restic
		restic --no-cache -r "$RREPO" init -q >/dev/null
		warm "$IMG"
		timed restic restic --no-cache -r "$RREPO" backup -q "$IMG"
		RREPO_DU=$(du -sb "$RREPO" | cut -f1)
		RVER=$(restic version | awk '{ print $2 }')
		num restic_seconds "$(wall restic)"
		num restic_repo_bytes "$RREPO_DU"
		num restic_cpu_seconds "$(cpu restic)"
		row "restic $RVER" "backup time (encrypted, compressed)" "$(wall restic) s" "$(wall fullenc) s cairn encrypted" \
			"restic takes $(calc "$(wall restic) / $(wall fullenc)")x cairn's time; restic cpu $(cpu restic) s = $(cores restic) cores, cairn $(cpu fullenc) s"
		log "restic: restore"
		timed resticrestore restic --no-cache -r "$RREPO" restore latest -q --target "$W/restic-restore"
		rm -rf "$W/restic-restore"
		num restic_restore_seconds "$(wall resticrestore)"
		num restic_restore_minflt_per_gib "$(faults resticrestore "$IMG_BYTES")"
		row "restic $RVER" "restore time (encrypted, compressed)" "$(wall resticrestore) s" "$(wall restoreenc) s cairn encrypted" \
			"restic takes $(calc "$(wall resticrestore) / $(wall restoreenc)")x cairn's time; minor faults per GiB: restic $(faults resticrestore "$IMG_BYTES"), cairn $(faults restoreenc "$IMG_BYTES"); system time restic $(sys_s resticrestore) s, cairn $(sys_s restoreenc) s"
		row "restic $RVER" "repo size" "$(mb "$RREPO_DU") MB" "$(mb "$EREPO_DU") MB cairn encrypted" \
			"cairn is $(calc "$EREPO_DU / $RREPO_DU")x restic's size; cairn stores 4+2 parity (1.5x), restic none: $(mb "$(calc "$EREPO_DU / 1.5")") MB without parity"
		unset RESTIC_PASSWORD
	else
		row "restic" "restic not installed" "-" "" ""
	fi
fi

# ---------------------------------------------------- other processes
times >"$W/times"
python3 - "$BUSY0" "$(busy_s)" "$T0" "$(date +%s.%N)" "$(tail -1 "$W/times")" >"$W/others" <<'PY'
import re, sys
b0, b1, t0, t1 = map(float, sys.argv[1:5])
def secs(s):
    m = re.fullmatch(r"(\d+)m([\d.]+)s", s)
    return int(m[1]) * 60 + float(m[2])
ours = sum(secs(x) for x in sys.argv[5].split())
other = max(0.0, (b1 - b0) - ours)
print(f"{other:.0f} {other / (t1 - t0):.2f} {ours:.0f} {t1 - t0:.0f}")
PY
read -r OTHER_S OTHER_CORES OURS_S BENCH_S <"$W/others"
num other_processes_cpu_seconds "$OTHER_S"
num other_processes_cores "$OTHER_CORES"
num bench_cpu_seconds "$OURS_S"
num bench_wall_seconds "$BENCH_S"

# --------------------------------------------------------------- table
python3 - "$ROWS" "$NUMS" "$RESULTS" "$NPROC" "$CPU_MODEL" "$MEM" "$GOVER" "$COMMIT" "$DURABILITY" "$FS" "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys, datetime
rows_p, nums_p, out_p, nproc, cpu, mem, gover, commit, durability, fs, load0, load1 = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(rows_p) if l.strip()]
nums = {}
for l in open(nums_p):
    if not l.strip():
        continue
    k, v = l.rstrip("\n").split("\t", 1)
    try:
        v = float(v)
        v = int(v) if v.is_integer() else v
    except ValueError:
        pass
    nums[k] = v
hdr = ["section", "metric", "value", "ceiling (same run)", "notes"]
w = [max(len(r[i]) for r in rows + [hdr]) for i in range(4)]
def line(r):
    return "  ".join(r[i].ljust(w[i]) for i in range(4)) + "  " + r[4]
print(line(hdr))
print("  ".join("-" * x for x in w) + "  " + "-" * 5)
prev = None
for r in rows:
    r = list(r)
    if r[0] == prev:
        r[0] = ""
    else:
        prev = r[0]
    print(line(r))
res = {
    "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "commit": commit, "go": gover,
    "machine": {"nproc": int(nproc), "cpu": cpu, "memory": mem, "filesystem": fs,
                "loadavg_start": load0, "loadavg_end": load1},
    "durability": durability,
    "rows": [dict(zip(["section", "metric", "value", "ceiling", "notes"], r)) for r in rows],
    "metrics": nums,
}
with open(out_p, "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
PY
echo
echo "bench took ${BENCH_S} s; other processes used $OTHER_S CPU-s = $OTHER_CORES of $NPROC cores on average meanwhile (should be ~0)"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg) (at start: $LOAD_START)"
echo "results: ${RESULTS#"$ROOT"/}"
