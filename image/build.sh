#!/usr/bin/env bash
# Builds the cairn appliance image: a bootable qcow2 from Debian 12 packages
# (image/packages.txt), the cairn binary and the files in image/rootfs.
#
#   image/build.sh BINARY OUT.qcow2
#
# Two caches under CAIRN_IMAGE_CACHE (default ~/.cache/cairn-image), so that a
# rebuild with nothing changed costs a copy and one with only a new binary
# costs seconds, not a download:
#   rootfs-KEY.tar   the mmdebstrap tarball, KEY = hash of packages.txt and
#                    of this script's package stage;
#   image-KEY.qcow2  the finished image, KEY = hash of the rootfs key, the
#                    binary and every file in image/rootfs.
# Needs root (mmdebstrap --mode=root, device nodes in the rootfs), mmdebstrap,
# grub-pc-bin, e2fsprogs, fdisk and qemu-utils; no loop devices, no mounts.
set -euo pipefail

bin=${1:?usage: image/build.sh BINARY OUT.qcow2}
out=${2:?usage: image/build.sh BINARY OUT.qcow2}
here=$(cd "$(dirname "$0")" && pwd)
cache=${CAIRN_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn-image}
suite=${CAIRN_IMAGE_SUITE:-bookworm}
mirror=${CAIRN_IMAGE_MIRROR:-}
# The root file system's size: the virtual disk is this plus 1 MiB for the
# MBR and the boot loader; Glance's min_disk is 2 GiB (docs/appliance.md).
root_mib=${CAIRN_IMAGE_ROOT_MIB:-1800}
# A fixed file system UUID keeps the image reproducible from its inputs.
root_uuid=c41e0a5e-0b1d-4b4e-9b51-ca1e2a99a0f1

export PATH="$PATH:/usr/sbin:/sbin"
for cmd in mmdebstrap grub-mkimage mkfs.ext4 sfdisk qemu-img sha256sum; do
	command -v "$cmd" >/dev/null || { echo "build.sh: $cmd not found (make deps installs it)" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "build.sh: needs root (mmdebstrap --mode=root)" >&2; exit 1; }
[[ -x $bin ]] || { echo "build.sh: binary $bin not found or not executable: run make build first" >&2; exit 1; }
mkdir -p "$cache"

packages=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages.txt" | tr -s ' \n' ',' | sed 's/,$//')
stage_hash() { sed -n '/^# --- package stage ---$/,/^# --- end of package stage ---$/p' "$0"; }
rootfs_key=$( { printf '%s\n' "$suite" "$packages"; stage_hash; } | sha256sum | cut -c1-16)
rootfs_tar=$cache/rootfs-$rootfs_key.tar
image_key=$( { echo "$rootfs_key"; sha256sum <"$bin"; (cd "$here/rootfs" && find . -type f | LC_ALL=C sort | xargs sha256sum);
	echo "$root_mib"; sed -n '/^# --- assembly ---$/,$p' "$0"; } | sha256sum | cut -c1-16)
image_cache=$cache/image-$image_key.qcow2

t0=$SECONDS
if [[ -f $image_cache ]]; then
	cp "$image_cache" "$out.tmp" && mv "$out.tmp" "$out"
	echo "build.sh: $out from the cache (image $image_key, rootfs $rootfs_key) in $((SECONDS - t0))s"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- package stage ---
# The initramfs holds only what finds and mounts a virtio disk
# (MODULES=list plus a hook naming the modules), so that booting under TCG
# does not load hundreds of modules. The hook is in place before the kernel
# package runs update-initramfs, so the initramfs is built once.
if [[ ! -f $rootfs_tar ]]; then
	echo "build.sh: building the rootfs ($suite: $packages)"
	mmdebstrap --mode=root --variant=minbase --include="$packages" \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"
			printf "MODULES=list\nCOMPRESS=gzip\n" >"$1/etc/initramfs-tools/conf.d/cairn.conf"
			printf "%s\n" "#!/bin/sh" "[ \"\$1\" = prereqs ] && exit 0" ". /usr/share/initramfs-tools/hook-functions" \
				"for m in virtio_pci virtio_blk virtio_scsi virtio_net ext4 crc32c_generic; do manual_add_modules \$m; done" \
				>"$1/etc/initramfs-tools/hooks/cairn-virtio"
			chmod 755 "$1/etc/initramfs-tools/hooks/cairn-virtio"' \
		--customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
		"$suite" "$work/rootfs.tar" ${mirror:+"$mirror"}
	mv "$work/rootfs.tar" "$rootfs_tar"
	echo "build.sh: rootfs $rootfs_key built in $((SECONDS - t0))s"
fi
# --- end of package stage ---

# --- assembly ---
root=$work/root
mkdir "$root"
tar -C "$root" -xpf "$rootfs_tar"
install -m 0755 "$bin" "$root/usr/bin/cairn"
cp -R --preserve=mode "$here/rootfs/." "$root/"
echo cairn >"$root/etc/hostname"
printf '/dev/vda1 / ext4 defaults,errors=remount-ro 0 1\n' >"$root/etc/fstab"
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
: >"$root/etc/machine-id" # first boot generates it
chroot "$root" /usr/bin/systemd-sysusers
chroot "$root" /usr/bin/systemctl enable systemd-networkd.service systemd-resolved.service cairn-configure.service cairn.service cairn-nbd.service >/dev/null
chroot "$root" /usr/bin/systemctl enable serial-getty@ttyS0.service >/dev/null 2>&1 || true
# Nothing waits for the network to be "online" (DHCP on a cloud is quick,
# and cairn retries), and no first-boot wizard prompts on the console.
chroot "$root" /usr/bin/systemctl mask systemd-networkd-wait-online.service systemd-firstboot.service >/dev/null 2>&1
passwd -R "$root" -l root >/dev/null

kernel=$(cd "$root/boot" && ls vmlinuz-* | sort -V | tail -1)
initrd=initrd.img-${kernel#vmlinuz-}
mkdir -p "$root/boot/grub/i386-pc"
cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst "$root/boot/grub/i386-pc/"
cat >"$root/boot/grub/grub.cfg" <<EOF
set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_output serial console
menuentry "cairn appliance" {
	linux /boot/$kernel root=/dev/vda1 ro console=tty0 console=ttyS0,115200n8 quiet
	initrd /boot/$initrd
}
EOF

# The disk: an MBR with one partition from 1 MiB, GRUB's boot sector in the
# MBR, its core image in the gap before the partition, the root file system
# written by mkfs.ext4 -d straight into the partition's bytes.
disk=$work/disk.raw
truncate -s $(((root_mib + 1) * 1024 * 1024)) "$disk"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$disk"
mkfs.ext4 -q -F -L cairn-root -U "$root_uuid" -E offset=$((2048 * 512)) -d "$root" "$disk" "${root_mib}M"
grub-mkimage -O i386-pc -o "$work/core.img" -p '(hd0,msdos1)/boot/grub' \
	biosdisk part_msdos ext2 normal configfile linux echo test serial terminal
(($(stat -c %s "$work/core.img") < 2047 * 512)) || { echo "build.sh: GRUB core image too big for the MBR gap" >&2; exit 1; }
dd if=/usr/lib/grub/i386-pc/boot.img of="$disk" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$disk" bs=512 seek=1 conv=notrunc status=none
qemu-img convert -c -O qcow2 "$disk" "$work/out.qcow2"
mv "$work/out.qcow2" "$image_cache"
cp "$image_cache" "$out.tmp" && mv "$out.tmp" "$out"
echo "build.sh: $out ($(du -m "$out" | cut -f1) MiB, image $image_key, rootfs $rootfs_key) in $((SECONDS - t0))s"
