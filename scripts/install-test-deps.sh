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
	"time"                  # /usr/bin/time: the benches' CPU time and page faults
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
	"mmdebstrap:mmdebstrap" # make image: the appliance's Debian 12 rootfs
	"grub-pc-bin"           # make image: the BIOS boot loader (boot.img, i386-pc modules)
	"grub-common:grub-mkimage" # make image: GRUB's core image
	"qemu-system-x86:qemu-system-x86_64" # e2e: boots the appliance image under TCG
	"qemu-system-common:qemu-storage-daemon" # e2e TestKarborCinderAttach: a FUSE export of an RBD image as the "hypervisor"
	"qemu-block-extra"      # (qemu's rbd block driver)
	"genisoimage:genisoimage" # e2e: the config drive (ISO 9660, label config-2)
	# scripts/openstack.sh: the loopback test cloud (Debian's packages ship no
	# console scripts or init-free units we use; only the Python modules)
	"python3-glance"
	"python3-cinder"
	"python3-nova"
	"python3-placement"
	"python3-neutron"       # neutron-server, ML2 without agents
	"python3-openstackclient:openstack" # also brings the cinder CLI
	"python3-pymysql"
	"python3-rbd"
	"python3-rados"
	"mariadb-server:mariadbd"
	"rabbitmq-server:rabbitmq-server"
	"chromium:chromium"     # e2e console tests and scripts/bench-console.sh: headless browser
	"chromium-driver:chromedriver" # (driven over W3C WebDriver)
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
# mariadb-server and rabbitmq-server would start system-wide services on
# install; the tests run their own on loopback ports. policy-rc.d 101 forbids
# invoke-rc.d from starting anything; only add it when the machine has none.
policy=/usr/sbin/policy-rc.d
made_policy=
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	made_policy=1
fi
cleanup_policy() { [[ -z $made_policy ]] || rm -f "$policy"; }
trap cleanup_policy EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
echo "install-test-deps: done"
