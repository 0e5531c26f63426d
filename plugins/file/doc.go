// Package file is the protection plugin for local files and block devices
// ("OS::Cairn::File"): the instances are the regular files (and, if
// allowed, block devices) directly inside a configured allow-list of
// directories. Backups and restores run through cairn/backup (a live
// source: files have no snapshots), like the CLI's.
//
// # Glossary
//
//   - Root: an allowed directory; only files directly inside a root are
//     protectable, and restores may only write inside a root. Whoever can
//     write into a root is untrusted: a symlink there is never listed,
//     opened or written through (os.Root, O_NOFOLLOW).
//   - Partial file: a restore in progress, ".NAME.<random>.cairn-partial"
//     beside its target (blockdev.PartialSuffix), renamed into place when
//     complete; Recover removes those a crash left.
//   - Instance ID: a UUID derived from the file's absolute path (stable
//     across restarts, safe in a URL).
package file
