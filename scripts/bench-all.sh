#!/usr/bin/env bash
# scripts/bench-all.sh: everything `make bench` prints. The repository
# benchmark (scripts/bench.sh: backup, restore, per-stage costs, restic) runs
# first, then the reference file-system image beside restic
# (scripts/bench-reference.sh, issue 13's goals); then FUSE and NBD read
# figures on a 1 GiB checkpoint, and the Ceph figures against a throwaway cluster (scripts/bench-ceph.sh starts one when
# CEPH_CONF is unset). Each script prints its figures beside ceilings it
# measures in the same run; the console's figures (scripts/bench-console.sh)
# stand beside the API calls the page waits for; the OpenStack figures
# (scripts/bench-openstack.sh) beside `cairn backup --source rbd:` of the
# same volumes.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/cairn ./cmd/cairn
if [[ -f /usr/include/rados/librados.h ]]; then
	go build -tags 'ceph pacific' -o bin/cairn ./cmd/cairn
fi

echo "=== repository (scripts/bench.sh)"
./scripts/bench.sh
echo
echo "=== reference image beside restic (scripts/bench-reference.sh: ext4 of /usr/share and /usr/lib/python3)"
./scripts/bench-reference.sh

W=$(mktemp -d /tmp/cairn-bench-all.XXXXXX)
trap 'rm -rf "$W"' EXIT
go run ./scripts/mkimage -out "$W/img" -size 1GiB >/dev/null
export CAIRN_BIN=$PWD/bin/cairn CAIRN_REPO=$W/repo
"$CAIRN_BIN" repo init -q >/dev/null
id=$("$CAIRN_BIN" backup --source "$W/img" --json -q | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

echo
echo "=== FUSE (scripts/bench-fuse.sh, 1 GiB checkpoint)"
./scripts/bench-fuse.sh "$id"
echo
echo "=== NBD (scripts/bench-nbd.sh: 1 GiB checkpoint, and its own 100 GiB sparse one)"
./scripts/bench-nbd.sh
echo
echo "=== API (scripts/bench-api.sh)"
./scripts/bench-api.sh
echo
echo "=== console (scripts/bench-console.sh)"
./scripts/bench-console.sh
if [[ -f /usr/include/rados/librados.h ]]; then
	echo
	echo "=== Ceph (scripts/bench-ceph.sh)"
	./scripts/bench-ceph.sh
	if /usr/bin/python3 -c 'import cinder, nova, glance, placement, neutron' 2>/dev/null; then
		echo
		echo "=== OpenStack (scripts/bench-openstack.sh: a plan of Cinder volumes)"
		./scripts/bench-openstack.sh
	fi
fi
