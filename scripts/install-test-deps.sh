#!/usr/bin/env bash
# Installs the Debian packages that cairn's tests, benchmarks and demo call.
# Idempotent: does nothing when everything is present; runs `apt-get update`
# only when something is missing. Needs root to install; without root it
# fails and lists what is missing.
#
# Add a dependency as "package" (checked with dpkg) or "package:command"
# (satisfied when the command is on PATH, e.g. a python3 from pyenv).
set -euo pipefail

deps=(
	"e2fsprogs:mkfs.ext4"   # demo and tests build ext4 images (mkfs.ext4 -d)
	"e2fsprogs:debugfs"     # tests read files out of ext4 images without mounting
	"util-linux:losetup"    # loop devices for block-device tests
	"mount:mount"           # mount -o loop,ro for file-level checks
	"fuse3:fusermount3"     # FUSE mount of checkpoints
	"fdisk:sfdisk"          # FUSE tests write MBR/GPT partition tables
	"restic:restic"         # peer in scripts/bench.sh
	"xxd:xxd"               # hex dumps in test scripts
	"python3:python3"       # scripts/demo.sh parses --json output
	"gcc:gcc"               # cgo, required by go test -race
	"libc6-dev"             # cgo headers
	"ca-certificates"       # module proxy over https
	"qemu-utils:qemu-img"   # NBD e2e tests and bench: qemu-img convert/compare
	"qemu-utils:qemu-io"    # NBD e2e tests: writes through a writable export
	"libnbd-bin:nbdinfo"    # NBD e2e tests: --list, --map
	"libnbd-bin:nbdcopy"    # NBD e2e tests and scripts/bench-nbd.sh
	"nbdkit:nbdkit"         # scripts/bench-nbd.sh: the NBD ceiling (nbdkit pattern plugin)
	"openssl:openssl"       # NBD e2e tests: a self-signed certificate for TLS
	"ceph-mon:ceph-mon"     # scripts/ceph-cluster.sh: throwaway cluster for tests
	"ceph-osd:ceph-osd"     # (memstore OSD)
	"ceph-mgr:ceph-mgr"
	"ceph-common:ceph"      # ceph, rados, rbd, monmaptool
	"librados-dev"          # go-ceph (cgo, -tags ceph pacific)
	"librbd-dev"
	"python3-karborclient:karbor" # e2e: the real Karbor client against cairn serve
	"python3-keystone:keystone-manage" # scripts/keystone.sh: throwaway Keystone for tests
	"python3-werkzeug"      # (its WSGI server, scripts/keystone-wsgi.py)
)

export PATH="$PATH:/usr/sbin:/sbin"

missing=()
for dep in "${deps[@]}"; do
	pkg=${dep%%:*}
	cmd=
	[[ $dep == *:* ]] && cmd=${dep#*:}
	if [[ -n $cmd ]]; then
		command -v "$cmd" >/dev/null 2>&1 && continue
	elif [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]]; then
		continue
	fi
	# de-duplicate (several commands may come from one package)
	[[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
	echo "install-test-deps: all test dependencies present"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "install-test-deps: missing Debian packages: ${missing[*]}" >&2
	echo "install-test-deps: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
echo "install-test-deps: done"
