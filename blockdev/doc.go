// Package blockdev holds the sources and targets of blocks: files and block
// devices here, Ceph RBD images in rbd/. A source tells which extents may
// hold data so that holes are never read. Backups and restores over them
// run in package backup.
//
// # Glossary
//
//   - Source: a volume being backed up (a disk image file, a block device).
//     It is read with concurrent ReadAt calls.
//   - Target: where a restore writes a volume back. Bytes never written must
//     read as zeros once the target is closed. A file target is written
//     under a temporary name (PartialSuffix) and renamed into place by
//     Close, never over an existing file unless forced.
//   - Extent: a byte range [Off, Off+Len) of a volume. Allocated returns the
//     extents that may hold data; backup reads whole blocks, so extents are
//     widened to block boundaries with AlignExtents.
//   - Hole: a range known to read as zeros. In a sparse file it occupies no
//     disk space; on a block device it does not exist physically, so a
//     restore must zero it explicitly (FileTarget.Zero).
package blockdev
