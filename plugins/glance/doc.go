// Package glance protects OpenStack Glance images (OS::Glance::Image):
// their data and their properties.
//
// A protection reads the image's data straight from Ceph when Glance
// keeps it in RBD (the image's direct_url or locations say
// rbd://FSID/POOL/IMAGE/SNAP; the snapshot is the protected one Glance
// made, never changed), else it streams the data through the Glance API
// into a spool file and backs that up. The image's properties (formats,
// minimum disk and RAM, visibility, tags, custom properties) and its
// checksums are saved as checkpoint tags. A restore creates a new image
// with the saved properties, uploads the data through the Glance API
// (whatever Glance's backend), waits for it to become active and
// compares its checksum with the saved one. docs/openstack.md describes
// it.
//
// Glossary:
//   - read path: "rbd" (from Ceph) or "api" (through Glance).
//   - journal entry: recorded before a restore creates an image, removed
//     once the image is complete or deleted; Recover deletes the images
//     of entries a crash left.
package glance
