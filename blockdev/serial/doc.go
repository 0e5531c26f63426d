// Package serial finds the block device of a volume attached to this
// machine by its serial: Nova gives a Cinder volume its ID as serial, and
// udev links the disk under /dev/disk/by-id by that serial.
//
// Glossary:
//   - serial: what the hypervisor tells the guest a disk is called; for a
//     Cinder volume its ID, cut to 20 characters by virtio-blk.
//   - device directory: where the links named by serial live
//     (/dev/disk/by-id); a test gives a directory of its own.
//   - Finder: what waits for the device of one volume to appear.
package serial
