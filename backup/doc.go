// Package backup is the one backup and restore flow of cairn: the CLI
// (`cairn backup`, `cairn restore`) and every protection plugin call Run
// and Restore, and differ only in how they choose the parent and report.
// The devices plug in through small interfaces; blockdev and blockdev/rbd
// only give access to them.
//
// A backup (Run) of a Source with a Snapshotter goes: plan from the
// parent's tags and the device's snapshots (PlanBackup), remove leftovers
// of killed backups, take a new snapshot, open a Reader of it, read the
// allocated extents (only the changed ones when the plan has a base,
// verified by re-reading a sample of the rest), commit the checkpoint,
// and only then remove the previous snapshot. A failed or cancelled
// backup commits nothing, removes its new snapshot and keeps the old
// base. A Source without a Snapshotter (Live: a plain file or block
// device) is read as it is, deduplicated against its parent.
//
// A restore (Restore) writes a checkpoint's data blocks into a Target,
// zeroes its holes, and completes it (Close: flush, and for a partial
// file a rename into place) or gives it up (Abort). Where the target is
// opened and what name it finally gets stays the caller's.
//
// # Glossary
//
//   - Source: a device to back up, with the name its checkpoints share.
//   - Reader: the device opened at one snapshot (or as it is, for a live
//     source); safe for concurrent reads.
//   - Differ: a Reader that lists the extents changed since an older
//     snapshot of the same device (the RBD diff). A hint: verified by
//     sampling.
//   - Tagger: a Reader that records device facts (pool, image) on the
//     checkpoint.
//   - Snapshotter: takes, lists and removes the device's snapshots and
//     says which of them it manages. The only part that differs between
//     librbd snapshots (ImageSnapshots) and Cinder snapshots.
//   - Managed snapshot: one Snapshotter.Create made; Run removes it again
//     when a newer one is committed. Other snapshots are never touched.
//   - Base: the managed snapshot of the device's newest checkpoint, which
//     the next backup diffs against.
//   - Plan: which parent a backup follows and whether it reads only the
//     changed extents (PlanBackup); any doubt reads everything.
//   - Target: what a restore writes (blockdev.FileTarget, rbd.Target).
//
// # Snapshots through another API (Cinder)
//
// A Cinder volume on RBD is an RBD image: it is read with NewImage, like
// any image. Only its snapshots must be made and removed through the
// Cinder API, never behind Cinder's back, so its plugin implements one
// interface, Snapshotter: Create asks Cinder for a snapshot (recorded
// before it is created, waited for until available) and returns the RBD
// snapshot Cinder made ("snapshot-<id>", with its RBD snapshot ID from
// the image); List lists the image's RBD snapshots; Remove deletes the
// Cinder snapshot behind an RBD snapshot name; Managed is true for the
// snapshots of cairn's Cinder snapshots of this repository; DeviceID is
// the RBD image ID. Then
//
//	src := backup.NewImage(cl, head, cinderSnapshots)
//	cp, err := backup.Run(ctx, repo, src, backup.Options{Parent: prev})
//
// plans, diffs, verifies, commits and rotates exactly as for an RBD image.
//
// Everything that links librbd (Image, ImageSnapshots,
// CompareWithSnapshot) is built only with the build tag "ceph".
package backup
