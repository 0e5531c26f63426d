// Package cinder protects OpenStack Cinder volumes (OS::Cinder::Volume):
// those on Ceph RBD straight from Ceph (the direct read path), any volume
// through the appliance's own Nova attachment (the attach path: a
// temporary volume from the cairn snapshot attached to the appliance's
// server and read at its block device, with RBD diff choosing the
// extents when the RBD image is known). ChoosePath picks the path.
//
// A protection takes a Cinder snapshot named and tagged as cairn's
// (recorded in the Journal before it is created), asks Cinder where the
// volume lives through an attachment with a connector (connection_info
// name "POOL/IMAGE"), reads the RBD snapshot Cinder made
// ("volume-<id>@snapshot-<snapshot id>") with only the extents changed
// since the previous cairn snapshot of the volume, commits the checkpoint,
// removes the attachment, and deletes the older cairn snapshot through
// Cinder: one cairn snapshot per volume stays, the base of the next
// incremental. A restore creates a new volume through Cinder and writes
// it through its RBD image, found the same way. docs/openstack.md
// describes it.
//
// Glossary:
//   - rotation snapshot: the one cairn snapshot a protected volume keeps.
//   - temporary volume: the attach path's copy of a cairn snapshot, alive
//     only while its protection reads it (metadata cairn.temporary_of).
//   - journal entry: a record, made before cairn creates a snapshot,
//     attachment or volume in the cloud, removed once the object is
//     either owned by a checkpoint or deleted; what is left after a crash
//     is cleaned up by Recover.
package cinder
