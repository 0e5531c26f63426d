package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"cairn/internal/fspath"
	"cairn/mount/files"
)

func newFilesCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "files",
		Short: "List, print or restore files inside a checkpoint",
		Long: `Reach the files inside a checkpoint without restoring the volume:
cairn mounts the repository with FUSE in a private temporary directory,
attaches the chosen partition to a loop device read-only, mounts its file
system read-only (ext4 without journal replay), does the work, and always
unmounts and detaches everything again, on errors and Ctrl-C too.

CHECKPOINT is a checkpoint ID or a unique prefix of one, optionally
followed by ":PARTITION": a partition number as in part1.raw ("1" or
"part1"), or "disk" for the whole volume. Without it, the first partition
is used, or the whole volume when it has no partition table.

Needs root (loop devices and mount).`,
		Example: `  cairn files ls 0197c2a4 /etc
  cairn files cat 0197c2a4:2 /etc/fstab
  cairn files restore 0197c2a4 /home/ann --to /tmp/`,
		Args: usageArgs(cobra.NoArgs),
		RunE: groupRunE,
	}
	cmd.AddCommand(newFilesLsCmd(a), newFilesCatCmd(a), newFilesRestoreCmd(a))
	return cmd
}

func newFilesLsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "ls CHECKPOINT[:PARTITION] [PATH]",
		Short: "List a directory (or one file) inside a checkpoint",
		Long: `List PATH (default /) inside the checkpoint's file system like ls -la:
type and permissions, owner and group (numeric, as stored), size,
modification time and name. With --json, print an array of objects with
name, type, mode, size, mtime, uid, gid and, for links, target.`,
		Example: `  cairn files ls 0197c2a4 /etc
  cairn files ls 0197c2a4:2 / --json`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := "/"
			if len(args) == 2 {
				p = args[1]
			}
			return a.withFiles(cmd.Context(), args[0], func(fsys *os.Root) error {
				return a.listFiles(fsys, p)
			})
		},
	}
}

func newFilesCatCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "cat CHECKPOINT[:PARTITION] PATH",
		Short: "Print a file inside a checkpoint on stdout",
		Long: `Write the content of the regular file PATH inside the checkpoint's file
system to stdout. Symbolic links are followed within that file system.`,
		Example: `  cairn files cat 0197c2a4 /etc/fstab
  cairn files cat 0197c2a4:disk /var/log/syslog | less`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withFiles(ctx, args[0], func(fsys *os.Root) error {
				return catFile(ctx, fsys, args[1], a.stdout)
			})
		},
	}
}

func newFilesRestoreCmd(a *app) *cobra.Command {
	var (
		to        string
		keepSetid bool
	)
	cmd := &cobra.Command{
		Use:   "restore CHECKPOINT[:PARTITION] PATH --to DEST",
		Short: "Copy a file or directory tree out of a checkpoint",
		Long: `Copy PATH (a file, a symbolic link or a whole directory tree) out of
the checkpoint's file system to DEST, keeping permissions, owners and
modification times. When DEST is an existing directory, PATH is copied
into it under its own name; otherwise DEST becomes the copy. Existing
files are never overwritten; existing directories are merged into.
Devices, FIFOs and sockets are skipped.

The setuid and setgid bits of files are dropped (and the files listed)
unless --keep-setid is given: a program restored for inspection must not
become a way to gain its owner's rights. Directories keep theirs.

Nothing is written outside DEST: symbolic links inside DEST, whether
already there or restored, are never followed out of it, and an existing
symlink is never merged into as a directory.`,
		Example: `  cairn files restore 0197c2a4 /etc/nginx --to /tmp/
  cairn files restore 0197c2a4:1 /home/ann/report.odt --to ./report.odt`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withFiles(ctx, args[0], func(fsys *os.Root) error {
				st, err := restoreFiles(ctx, fsys, args[1], to, keepSetid)
				if err != nil {
					return err
				}
				return a.printFilesRestore(st)
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "where to copy PATH (required)")
	cmd.Flags().BoolVar(&keepSetid, "keep-setid", false, "keep the setuid and setgid bits of restored files")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// fileSpec is a parsed CHECKPOINT[:PARTITION] argument.
type fileSpec struct {
	id string
	// file is the file of the checkpoint directory to mount: "disk.raw",
	// "partN.raw", or "" for the default (first partition, else disk).
	file string
}

func parseFileSpec(s string) (fileSpec, error) {
	id, part, _ := strings.Cut(s, ":")
	if id == "" {
		return fileSpec{}, usagef("no checkpoint in %q", s)
	}
	file, err := fspath.PartitionFile(part)
	if err != nil {
		return fileSpec{}, usagef("bad partition in %q: want a number (1, part2) or \"disk\"", s)
	}
	return fileSpec{id: id, file: file}, nil
}

// relPath turns a path inside the checkpoint's file system into one
// relative to its root ("." for the root). ".." cannot climb above it.
func relPath(p string) string { return fspath.RelPath(p) }

// errNotRoot is returned by cairn files for a user other than root.
var errNotRoot = fmt.Errorf("cairn files: %w", files.ErrNotRoot)

func requireRoot() error {
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	return nil
}
