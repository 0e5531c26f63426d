// Package files reads the file systems inside checkpoints: it mounts the
// repository with FUSE, attaches a checkpoint's disk or partition file to
// a read-only loop device and mounts the file system on it read-only, so
// that callers browse and copy files through an *os.Root confined to it.
// `cairn files` and the API's file browsing (`cairn serve`) share it.
//
// # Glossary
//
//   - Session: one checkpoint's file system made readable (FUSE mount,
//     loop device, read-only mount), undone by Close.
//   - Partition file: "disk.raw" (the whole disk) or "partN.raw" (its
//     Nth partition) in a checkpoint's FUSE directory.
package files
