// Package rbd gives access to Ceph RBD images through librbd (go-ceph):
// snapshots are created, listed and removed, diffs give allocated and
// changed extents, a Source reads an image at a snapshot and a Target
// writes one. The backup and restore flow over them (plan, snapshot
// rotation, sampled verification, commit) is package backup's. Everything
// that links librbd is built only with the build tag "ceph" (and
// "pacific" for go-ceph on Ceph 16); without it the package holds just
// the pure-Go helpers (specs, snapshot names, tags), so that the rest of
// cairn builds without cgo.
//
// # Glossary
//
//   - Spec: "rbd:POOL/IMAGE", "rbd:POOL/NAMESPACE/IMAGE", optionally with
//     "@SNAP". The source name of a checkpoint is the spec without the
//     snapshot, so that every backup of one image forms one chain.
//   - Cluster: one librados connection (ceph.conf, client ID, keyring, and
//     the CEPH_CONF / CEPH_ARGS environment).
//   - Source: an image opened read-only at a snapshot. A backup never reads
//     the live image: a snapshot is crash-consistent and does not change
//     under the reader. ReadAt is safe for concurrent use (librbd image
//     handles are thread-safe).
//   - Allocated extents: what a diff against no snapshot reports, i.e. the
//     objects that exist; the rest of the image reads as zeros and is never
//     read.
//   - Changed extents: what a diff between an older snapshot of the same
//     image (the base) and the source's snapshot reports. With the fast-diff
//     feature the object map answers in whole objects; without it librbd
//     lists each object's snapshots and reports exact byte ranges. Either
//     way it is a hint that cairn verifies by sampling.
//   - Managed snapshot: one cairn created, named "cairn-<repo>-<time>"; cairn
//     removes it again. A snapshot named by the user (IMAGE@SNAP) is never
//     removed.
//   - Base snapshot: the managed snapshot of an image's newest checkpoint,
//     which the next backup diffs against; every other managed snapshot of
//     the repository on the image is a leftover of a killed backup.
//   - Target: an image that a restore writes, created sparse (only written
//     objects exist) or, with Force, an existing image whose holes are
//     zeroed by deallocating them.
package rbd
