// Package fusefs serves the checkpoints of one cairn repository as a
// read-only FUSE file system, for file-level recovery: every checkpoint's
// volume is a file (disk.raw), and so is each partition found in its MBR or
// GPT (part1.raw, …), which the kernel can loop-mount read-only.
//
//	MOUNTPOINT/
//	  <source>/                          one per backed-up source
//	    2025-06-01T10-00-00Z_1a2b3c4d/   one per checkpoint, oldest first
//	      disk.raw                       the whole volume
//	      part1.raw  part2.raw …         one per partition (Linux numbering)
//	      info.json                      checkpoint metadata and partitions
//	    latest -> <newest checkpoint dir>
//	  by-id/<checkpoint ID> -> ../<source>/<checkpoint dir>
//
// Reads go through dedup.Reader; the repository's chunk cache holds what
// was read. A file handle that reads sequentially gets read-ahead: the next
// blocks are fetched in the background, at most readAhead blocks ahead.
//
// # Glossary
//
//   - Catalog: the list of checkpoints, grouped by source, with their
//     directory names; re-read from the repository when a directory is
//     listed (or a name is not found) and the last read is older than
//     Options.Refresh.
//   - Source directory: the top-level directory of one source; its name is
//     the source path made safe (see sourceDirNames).
//   - Checkpoint directory: "<created, UTC>_<short ID>"; opened lazily on
//     first use, which reads the partition table through the checkpoint.
//   - Volume: an opened checkpoint: its dedup.Reader, partition table and
//     info.json, shared by every file and handle of the checkpoint.
//   - Window: the byte range of the volume a file shows: all of it for
//     disk.raw, one partition for partN.raw.
//   - Handle: one open of a file. It tracks whether its reads are
//     sequential and owns the read-ahead goroutines, which end when the
//     handle is released or the file system is unmounted.
//   - Warm: fetch a block into the repository's chunk cache ahead of the
//     read that needs it; the repository shares one fetch among everyone
//     asking for the same chunk at once.
package fusefs
