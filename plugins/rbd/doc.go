// Package rbd is the protection plugin for Ceph RBD images
// ("OS::Cairn::RBDImage"): the instances are the images in a configured
// list of pools (or RBD namespaces), and the work is cairn/backup's (Run
// and Restore over the images of cairn/blockdev/rbd), the same code as
// `cairn backup --source rbd:...`. Everything that talks
// to Ceph is built only with the build tag "ceph".
//
// # Glossary
//
//   - Location: a configured "POOL" or "POOL/NAMESPACE"; either part may
//     contain plugins.ProjectPlaceholder, so that each project gets its own
//     pool or namespace and sees only its images.
//   - Instance ID: a UUID derived from the pool, the namespace and the
//     image's internal RBD ID (InstanceID). It survives a rename of the
//     image; an image deleted and created again under the same name is a
//     new instance.
//   - Base snapshot: the managed snapshot ("cairn-<repo>-<time>-<random>")
//     of an image's newest backup, kept for the next backup to diff
//     against; every other managed snapshot of the repository is removed.
//   - Partial image: "<name>.cairn-partial-<repo>", where a restore writes
//     before renaming the image to its final name.
package rbd
