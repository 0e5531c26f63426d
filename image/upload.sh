#!/usr/bin/env bash
# Uploads the appliance image to Glance with the properties Nova needs.
#
#   image/upload.sh [IMAGE.qcow2] [NAME]     (defaults: cairn-appliance.qcow2, cairn-appliance)
#
# Uses the openstack client (python3-openstackclient) with the OS_* variables
# of an openrc file; docs/appliance.md walks through the rest of a deployment.
set -euo pipefail
img=${1:-cairn-appliance.qcow2}
name=${2:-cairn-appliance}
[[ -f $img ]] || { echo "upload.sh: $img not found: run make image first" >&2; exit 1; }
command -v openstack >/dev/null || { echo "upload.sh: the openstack client is missing (apt-get install python3-openstackclient)" >&2; exit 1; }
[[ -n ${OS_AUTH_URL-} ]] || { echo "upload.sh: OS_AUTH_URL is not set: source an openrc file first" >&2; exit 1; }

# min_disk: the root file system is 1.8 GiB; min_ram: cairn, its index and
# the Ceph client in 1 GiB (2 GiB recommended, docs/appliance.md).
openstack image create "$name" \
	--disk-format qcow2 --container-format bare --file "$img" \
	--min-disk 2 --min-ram 1024 \
	--property hw_disk_bus=virtio \
	--property hw_vif_model=virtio \
	--property hw_qemu_guest_agent=yes \
	--property os_distro=debian --property os_version=12 \
	--property os_type=linux \
	--property cairn_version="$(git -C "$(dirname "$0")" describe --always --dirty 2>/dev/null || echo unknown)"
